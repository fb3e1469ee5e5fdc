#pragma once

// Email-domain auto-join (DESIGN §1): a person whose verified address is at a
// domain of the mapping is a member of that domain's org, with the domain's
// user type and default role. `user.signup` and `user.email_changed` events
// (DESIGN §3) both go through apply_address, so an address that moves into a
// domain joins and an address that moves out of one leaves, by the same rule.
//
// Memberships made here are asserted by the source k_signup_source, and only
// that source's assertions are ever withdrawn: a membership that another
// source (the admin API, an LDAP or SCIM source) also asserts stays.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "directory/error.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"

namespace orgsync::sync {

// The source that asserts auto-joined memberships; audit events of
// apply_address are recorded under it.
inline constexpr std::string_view k_signup_source = "signup";

// One `user.signup` or `user.email_changed` event from the platform.
struct AddressEvent {
    std::string email;  // the (new) address, as the platform sent it
    bool email_verified = false;
    std::string name;                           // display name; empty keeps the stored one
    std::optional<std::string> previous_email;  // set for user.email_changed
};

struct AutoJoinResult {
    std::string email;  // canonical
    std::vector<std::string>
        joined;                     // org slugs newly asserted, or whose asserted type/role changed
    std::vector<std::string> left;  // org slugs whose signup assertion was withdrawn
    // For the admin and the log, e.g. "joined acme as internal member via
    // domain acme.com", "address not verified: no org joined", "domain
    // example.org belongs to no org".
    std::string reason;
};

// Applies one address event in a single store transaction under
// k_signup_source:
//  - signup (no previous_email): creates the user, or finds them and updates
//    a non-empty display name;
//  - email change: the user found by previous_email gets `email` (when
//    previous_email is unknown but `email` is already a user, the change is
//    taken as already applied, so a redelivered event is harmless);
// then, for both, the wanted membership is the org whose domain rule
// mapping::resolve_domain finds for the address's domain, with that rule's
// type and role, when the address is verified and, for an internal domain,
// no other source keeps the user internal in another org (invariant 3: the
// join gives way and the reason says so); none otherwise. The signup
// assertion is made for that org and withdrawn in every other org of the
// store (so an unverified event also withdraws an earlier auto-join: the
// platform no longer vouches for the address). Other sources' assertions are
// never touched. A withdrawn admin assertion that is the membership's last is first
// demoted to member, so the audit log records both steps (invariant 4).
//
// Errors (the store is unchanged): invalid_argument for an unusable email or
// previous_email; not_found for an unknown previous_email, or when the
// domain's org is in the mapping but not yet in the store (sync creates
// orgs); already_exists when the new address belongs to another user; the
// store's invariant codes when the result would break one (e.g.
// internal_elsewhere when another source keeps the user internal in another
// org); storage.
//
// Thread-safe, but decided on reads made just before the write (a write body
// cannot read), so events for the same user are meant to be applied one at a
// time: a concurrent event for that user may be decided on the state before
// it. Either way each event is applied whole or not at all.
directory::Expected<AutoJoinResult> apply_address(directory::Store& store,
                                                  const mapping::Mapping& mapping,
                                                  const AddressEvent& event);

}  // namespace orgsync::sync
