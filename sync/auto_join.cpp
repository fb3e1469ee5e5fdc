#include "sync/auto_join.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "directory/email.hpp"
#include "directory/model.hpp"

namespace orgsync::sync {
namespace {

using directory::ErrorCode;
using directory::Expected;
using directory::fail;
using directory::MembershipAssertion;
using directory::OrgId;
using directory::OrgRole;
using directory::UserId;

// An org where the signup source currently asserts the user's membership.
struct CurrentJoin {
    OrgId org = 0;
    std::string slug;
    MembershipAssertion assertion;
};

// The membership the address asks for.
struct WantedJoin {
    OrgId org = 0;
    std::string slug;
    MembershipAssertion assertion;
    std::string domain_rule;  // the mapping's domain that matched
};

Expected<std::string> canonical_or_fail(std::string_view address, std::string_view what) {
    auto canonical = directory::canonical_email(address);
    if (!canonical) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("invalid {} \"{}\": {}", what, address, canonical.error()),
                    std::string(address));
    }
    return *std::move(canonical);
}

// The signup assertions the user has now, in every org of the store (not only
// the mapping's: an org dropped from the mapping still loses them).
Expected<std::vector<CurrentJoin>> current_joins(const directory::Store& store, UserId user) {
    auto orgs = store.list_orgs();
    if (!orgs) {
        return std::unexpected(std::move(orgs.error()));
    }
    std::vector<CurrentJoin> joins;
    for (const auto& org : *orgs) {
        auto membership = store.membership(org.id, user);
        if (!membership) {
            return std::unexpected(std::move(membership.error()));
        }
        if (!*membership) {
            continue;
        }
        for (const auto& assertion : (*membership)->assertions) {
            if (assertion.source == k_signup_source) {
                joins.push_back(CurrentJoin{org.id, org.slug, assertion});
            }
        }
    }
    return joins;
}

// The org other than `except` where another source keeps the user internal,
// if any: joining `except` as internal too would break invariant 3, so the
// auto-join gives way to what that source states.
Expected<std::optional<std::string>> internal_elsewhere(const directory::Store& store, UserId user,
                                                        OrgId except) {
    auto orgs = store.list_orgs();
    if (!orgs) {
        return std::unexpected(std::move(orgs.error()));
    }
    for (const auto& org : *orgs) {
        if (org.id == except) {
            continue;
        }
        auto membership = store.membership(org.id, user);
        if (!membership) {
            return std::unexpected(std::move(membership.error()));
        }
        if (!*membership) {
            continue;
        }
        for (const auto& assertion : (*membership)->assertions) {
            if (assertion.source != k_signup_source &&
                assertion.user_type == directory::UserType::internal) {
                return fmt::format("{} (asserted by {})", org.slug, assertion.source);
            }
        }
    }
    return std::nullopt;
}

// Withdraws the signup assertion; when it is the membership's last and makes
// the user an admin, demotes to member first (invariant 4: both steps are
// recorded). Deciding on the store's own answer, rather than on the reads made
// before the write, keeps this right even if those reads are stale.
Expected<void> withdraw(directory::Transaction& tx, const CurrentJoin& join, UserId user) {
    auto retracted = tx.retract_membership(join.org, user, k_signup_source);
    if (retracted || retracted.error().code != ErrorCode::admin_must_be_demoted) {
        return retracted;
    }
    MembershipAssertion demoted{std::string(k_signup_source), join.assertion.user_type,
                                OrgRole::member};
    if (auto asserted = tx.assert_membership(join.org, user, demoted); !asserted) {
        return asserted;
    }
    return tx.retract_membership(join.org, user, k_signup_source);
}

std::string describe_join(const WantedJoin& wanted, std::string_view domain) {
    std::string via = wanted.domain_rule == domain
                          ? fmt::format("domain {}", domain)
                          : fmt::format("domain {} (subdomain {})", wanted.domain_rule, domain);
    return fmt::format("{} as {} {} via {}", wanted.slug,
                       directory::to_string(wanted.assertion.user_type),
                       directory::to_string(wanted.assertion.role), via);
}

}  // namespace

Expected<AutoJoinResult> apply_address(directory::Store& store, const mapping::Mapping& mapping,
                                       const AddressEvent& event) {
    auto email = canonical_or_fail(event.email, "email");
    if (!email) {
        return std::unexpected(std::move(email.error()));
    }
    const std::string domain(directory::email_domain(*email));

    // The user the event is about: known (id), or created by the write.
    std::optional<UserId> known_user;
    bool change_email = false;
    if (event.previous_email) {
        auto previous = canonical_or_fail(*event.previous_email, "previous email");
        if (!previous) {
            return std::unexpected(std::move(previous.error()));
        }
        auto found = store.find_user(*previous);
        if (!found) {
            return std::unexpected(std::move(found.error()));
        }
        if (*found) {
            known_user = (*found)->id;
            change_email = true;
        } else {
            // A redelivered event whose change is already applied.
            auto current = store.find_user(*email);
            if (!current) {
                return std::unexpected(std::move(current.error()));
            }
            if (!*current) {
                return fail(ErrorCode::not_found,
                            fmt::format("no user has the previous email {}", *previous), *previous);
            }
            known_user = (*current)->id;
        }
    } else {
        auto found = store.find_user(*email);
        if (!found) {
            return std::unexpected(std::move(found.error()));
        }
        if (*found) {
            known_user = (*found)->id;
        }
    }

    std::optional<WantedJoin> wanted;
    std::string no_join_reason;
    if (!event.email_verified) {
        no_join_reason = "address not verified: no org joined";
    } else if (auto match = mapping::resolve_domain(mapping, domain); !match) {
        no_join_reason = fmt::format("domain {} belongs to no org", domain);
    } else {
        auto org = store.find_org(match->org->slug);
        if (!org) {
            return std::unexpected(std::move(org.error()));
        }
        if (!*org) {
            return fail(ErrorCode::not_found,
                        fmt::format("org {} is in the mapping but not in the store yet; run a "
                                    "sync first",
                                    match->org->slug),
                        match->org->slug);
        }
        wanted = WantedJoin{(*org)->id, (*org)->slug,
                            MembershipAssertion{std::string(k_signup_source),
                                                match->rule->user_type, match->rule->role},
                            match->rule->name};
    }

    if (wanted && known_user && wanted->assertion.user_type == directory::UserType::internal) {
        auto elsewhere = internal_elsewhere(store, *known_user, wanted->org);
        if (!elsewhere) {
            return std::unexpected(std::move(elsewhere.error()));
        }
        if (*elsewhere) {
            no_join_reason = fmt::format(
                "already internal in org {}; a user is internal in one org only, so {} is not "
                "joined",
                **elsewhere, wanted->slug);
            wanted.reset();
        }
    }

    std::vector<CurrentJoin> current;
    if (known_user) {
        auto joins = current_joins(store, *known_user);
        if (!joins) {
            return std::unexpected(std::move(joins.error()));
        }
        current = *std::move(joins);
    }

    AutoJoinResult result{*email, {}, {}, {}};
    bool already_joined = false;
    auto body = [&](directory::Transaction& tx) -> Expected<void> {
        result.joined.clear();
        result.left.clear();
        if (change_email) {
            if (auto changed = tx.change_user_email(*known_user, *email); !changed) {
                return changed;
            }
        }
        // Finds (or creates) the user by the new address and records the name.
        auto user = tx.upsert_user(*email, event.name);
        if (!user) {
            return std::unexpected(std::move(user.error()));
        }
        // Withdraw before asserting, so an internal membership moves from one
        // org to another without the two ever coexisting (invariant 3).
        for (const auto& join : current) {
            if (wanted && join.org == wanted->org) {
                continue;
            }
            if (auto withdrawn = withdraw(tx, join, *user); !withdrawn) {
                return withdrawn;
            }
            result.left.push_back(join.slug);
        }
        if (wanted) {
            const CurrentJoin* existing = nullptr;
            for (const auto& join : current) {
                if (join.org == wanted->org) {
                    existing = &join;
                }
            }
            already_joined = existing != nullptr &&
                             existing->assertion.user_type == wanted->assertion.user_type &&
                             existing->assertion.role == wanted->assertion.role;
            if (!already_joined) {
                if (auto asserted = tx.assert_membership(wanted->org, *user, wanted->assertion);
                    !asserted) {
                    return asserted;
                }
                result.joined.push_back(wanted->slug);
            }
        }
        return {};
    };
    if (auto written = store.write(k_signup_source, body); !written) {
        return std::unexpected(std::move(written.error()));
    }

    if (wanted) {
        result.reason = fmt::format("{} {}", already_joined ? "already in" : "joined",
                                    describe_join(*wanted, domain));
    } else {
        result.reason = std::move(no_join_reason);
    }
    if (!result.left.empty()) {
        result.reason += fmt::format("; no longer auto-joined to {}", fmt::join(result.left, ", "));
    }
    return result;
}

}  // namespace orgsync::sync
