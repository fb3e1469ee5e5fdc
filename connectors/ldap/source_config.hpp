#pragma once

// How to reach and read one LDAP directory: a `[[source]]` with
// `type = "ldap"` in orgsyncd.toml (DESIGN §3). The daemon's loader
// (daemon/config.cpp) fills and validates it; the connector only reads it.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::ldap {

// The directory server implementation; it decides which attribute is a
// user's stable id (entryUUID, objectGUID, nsUniqueId), how a disabled
// account looks, and how changes since the last run are found.
enum class LdapFlavor : std::uint8_t { openldap, active_directory, ds389 };

std::string_view to_string(LdapFlavor flavor);  // "openldap" | "ad" | "389ds"
std::optional<LdapFlavor> parse_ldap_flavor(std::string_view text);

// File paths are absolute after loading; an empty path means the key was not
// set.
struct LdapSourceConfig {
    LdapFlavor flavor = LdapFlavor::openldap;
    std::vector<std::string> uris;  // key "uri": at least one, tried in order
    bool start_tls = false;
    bool tls_verify = true;  // verify the server certificate (ldaps:// and StartTLS)
    std::filesystem::path ca_file;
    std::filesystem::path client_cert_file;  // with client_key_file: TLS client authentication
    std::filesystem::path client_key_file;
    std::string bind_dn;                       // empty: anonymous
    std::filesystem::path bind_password_file;  // set exactly when bind_dn is
    std::string user_base;                     // required
    std::string user_filter = "(objectClass=inetOrgPerson)";
    std::string group_base;  // where group entries are searched; empty: user_base
    std::string group_filter = "(objectClass=groupOfNames)";
    std::string group_member_attribute = "member";  // member | uniqueMember | memberUid | memberOf
    std::string member_uid_attribute = "uid";       // memberUid: the user attribute its values name
    std::string email_attribute = "mail";
    bool nested_groups = true;      // a group that is a member of another passes its members on
    bool ignore_referrals = false;  // true: continuation references are skipped, not a failure
    bool live = false;              // openldap: keep a refreshAndPersist search open between runs
    std::chrono::seconds interval = std::chrono::minutes(15);          // 10s..7d
    std::chrono::seconds full_sync_interval = std::chrono::hours(24);  // incremental runs between
    // After a failed run the next one waits retry_initial, doubling with
    // each further failure up to `interval`. 1s..1h
    std::chrono::seconds retry_initial = std::chrono::seconds(30);
    // Failed runs in a row after which /readyz reports the source. 1..1000
    int failure_threshold = 3;
    // modifyTimestamp markers: how far the directory's clock may lag
    // orgsync's; each incremental read re-reads this much. 0s..1h
    std::chrono::seconds clock_skew = std::chrono::minutes(5);
    std::chrono::seconds timeout = std::chrono::seconds(30);  // per LDAP operation, 1s..10m
    int page_size = 1000;                                     // 1..100000

    bool operator==(const LdapSourceConfig&) const = default;
};

}  // namespace orgsync::ldap
