#pragma once

// Distinguished names and search filter values (RFC 4514, RFC 4515).
//
// Directories disagree with themselves about DN spelling: a group's `member`
// value may say `CN=Alice Smith, OU=People,DC=Example,DC=com` for the entry
// the server returns as `cn=Alice Smith,ou=people,dc=example,dc=com`. Every DN
// orgsync compares (group members, mapping rules, renames) goes through
// normalize_dn first.

#include <optional>
#include <string>
#include <string_view>

namespace orgsync::ldap {

// The normal form of `dn`: attribute types and values lowercased (the
// attributes used in DNs are case-ignore; ASCII letters are folded, other
// characters kept), the spacing around separators dropped, the values of a
// multi-valued RDN sorted, and special characters escaped one way (RFC 4514
// §2.4, hex pairs for non-printable bytes). nullopt when `dn` is not a DN.
// The empty DN normalises to "".
std::optional<std::string> normalize_dn(std::string_view dn);

// normalize_dn written into `out`, whose storage is reused, for loops that
// normalise many DNs (every member value of every group). False when `dn`
// is not a DN; `out` then holds nothing meaningful.
bool normalize_dn_into(std::string_view dn, std::string& out);

// `value` escaped for use inside a search filter (RFC 4515 §3): `*`, `(`,
// `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`. Every value
// that comes from configuration or from a directory and goes into a filter
// passes through this.
std::string escape_filter_value(std::string_view value);

// Whether `filter` parses as an RFC 4515 search filter (balanced, with a
// known operator in each item, no unescaped NUL). Used to reject configured
// filters early.
bool is_valid_filter(std::string_view filter);

}  // namespace orgsync::ldap
