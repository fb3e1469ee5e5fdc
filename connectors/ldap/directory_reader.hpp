#pragma once

// Reads a directory's users and groups into what the sync pipeline takes
// (sync::SourceData): one user per entry with a stable id and an address,
// one group per group entry with its members as user ids, nested groups
// expanded.
//
// Flavors differ in three places: the stable id (OpenLDAP `entryUUID`,
// Active Directory `objectGUID`, 389-ds `nsUniqueId`), how a disabled
// account looks (AD `userAccountControl` bit 0x2, 389-ds `nsAccountLock`,
// OpenLDAP ppolicy's `pwdAccountLockedTime`) and which attribute orders
// changes (`uSNChanged` on AD, `modifyTimestamp` elsewhere).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "connectors/ldap/connection.hpp"
#include "connectors/ldap/source_config.hpp"
#include "directory/store.hpp"

namespace orgsync::ldap {

// What a read found besides users and groups: things an admin may want to
// know about (entries skipped and why), for logs and the run record.
struct ReadStats {
    std::size_t users = 0;
    std::size_t groups = 0;
    std::size_t users_without_id = 0;     // skipped: no stable id attribute
    std::size_t users_without_email = 0;  // skipped: no address
    std::size_t unresolved_members = 0;   // member values naming no user or group that was read
    std::size_t nested_groups = 0;        // group-in-group edges followed
    std::size_t cycles = 0;               // groups found inside themselves (members kept once)
    std::size_t pages = 0;
    std::size_t references = 0;  // continuation references skipped (ignore_referrals)
};

// A group as a change-marker read saw it: its change marker and a
// fingerprint of its membership, so a later read can tell whether a group
// it finds again at or past the stored marker really changed.
struct GroupMark {
    std::string id;
    std::string marker;
    std::uint64_t fingerprint = 0;
};

struct ChangeMarks {
    std::vector<GroupMark> groups;
};

// Turns directory entries into mirror records for one source.
class EntryMapper {
  public:
    EntryMapper(const LdapSourceConfig& config, std::string source);

    // The attributes to request for users and for groups.
    std::vector<std::string> user_attributes() const;
    std::vector<std::string> group_attributes() const;
    // The attribute that orders changes for this flavor.
    const std::string& change_attribute() const { return m_change_attribute; }
    const std::string& id_attribute() const { return m_id_attribute; }

    // The user an entry describes, or nullopt (counted in `stats`) when it
    // has no stable id or no address.
    std::optional<directory::SourceUser> user(const Entry& entry, ReadStats& stats) const;
    // The stable id of an entry as a string ("" when missing).
    std::string stable_id(const Entry& entry) const;

  private:
    const LdapSourceConfig& m_config;
    std::string m_source;
    std::string m_id_attribute;
    std::string m_change_attribute;
};

// Reads every user and group below the configured bases. `marks`, when
// given, receives each group's change marker and membership fingerprint
// (change-marker runs need them; content sync does not). Any failure (including a referral not
// ignored, a size or time limit) is returned: a partial read is never
// returned as if it were the directory.
// `progress` (optional) is called after each page with the entries read.
Result<std::pair<std::vector<directory::SourceUser>, std::vector<directory::SourceGroup>>>
read_directory(Connection& connection, const LdapSourceConfig& config, std::string_view source,
               ReadStats& stats, ChangeMarks* marks,
               const std::function<void(std::size_t)>& progress = {});

// The objectGUID bytes as Active Directory prints them
// ("{3f2504e0-4f89-11d3-9a0c-0305e82c3301}" without braces): the first three
// fields little-endian. Any other length is returned as lowercase hex.
std::string format_guid(std::string_view bytes);

// The values that make up a group's membership (its member attribute, or
// its and its users' memberOf in memberOf mode), complete: Active
// Directory's range retrieval is followed, and a range that cannot be
// completed is a `partial_results` failure.
Result<std::vector<std::string>> membership_values(Connection& connection,
                                                   const LdapSourceConfig& config,
                                                   const Entry& group);

// A fingerprint of a group's membership values (order does not matter).
std::uint64_t membership_fingerprint(std::vector<std::string> values);

// `member;range=0-1499` → the next range to ask for ("member;range=1500-*"),
// or "" when `attribute` is the last range (`…-*`) or not a range at all.
std::string next_range(std::string_view attribute);

}  // namespace orgsync::ldap
