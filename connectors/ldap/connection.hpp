#pragma once

// One authenticated connection to an LDAP directory (libldap), and searches
// over it.
//
// Connecting tries the configured URIs in order (failover), each over TLS
// when asked (ldaps:// or StartTLS, the certificate verified unless the
// configuration turns that off), then binds. A round in which every URI
// failed is retried with exponential backoff. Searches are paged (RFC 2696)
// whenever the server advertises it, and every failure is typed: a caller
// can tell "the directory is unreachable" from "the directory has no users",
// which is the distinction that keeps an outage from emptying an org.

#include <ldap.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/ldap/source_config.hpp"

namespace orgsync::ldap {

enum class FailureKind : std::uint8_t {
    unreachable,      // no configured server answered, or the connection dropped
    bind_failed,      // the server refused the credentials
    timeout,          // an operation took longer than the configured timeout
    size_limit,       // the server stopped the search at its size limit
    time_limit,       // the server stopped the search at its time limit
    partial_results,  // the server returned part of the result (admin limit, unavailable)
    referral,         // part of the search lives on a server that was not asked
    tls,              // TLS could not be set up (certificate not trusted, handshake)
    rejected,         // the server refused the search (no such base, bad filter, access)
    local,            // a local problem: unreadable password file, out of memory
};

std::string_view to_string(FailureKind kind);

struct Failure {
    FailureKind kind = FailureKind::unreachable;
    std::string message;  // names the server and the operation; never a secret
};

template <typename T>
using Result = std::expected<T, Failure>;

inline std::unexpected<Failure> failure(FailureKind kind, std::string message) {
    return std::unexpected(Failure{kind, std::move(message)});
}

// One search result entry: its DN and the attributes asked for, names as
// the server spelled them, values as raw bytes (binary-safe).
struct Entry {
    std::string dn;
    std::vector<std::pair<std::string, std::vector<std::string>>> attributes;

    // The values of `name` (case-insensitive), or nullptr.
    const std::vector<std::string>* find(std::string_view name) const;
    // The first value of `name`, or "".
    std::string_view first(std::string_view name) const;
};

struct SearchRequest {
    std::string base;
    int scope = LDAP_SCOPE_SUBTREE;
    std::string filter = "(objectClass=*)";
    std::vector<std::string> attributes;  // empty: all user attributes
    // Extra request controls (the caller owns them), e.g. content sync.
    std::vector<LDAPControl*> controls;
    bool paged = true;  // paged when the server supports it and no other control is given
    // Called after each page with the entries returned so far.
    std::function<void(std::size_t entries)> on_page;
};

// What a search reported besides its entries.
struct SearchOutcome {
    std::size_t entries = 0;
    std::size_t pages = 0;
    std::size_t references = 0;  // continuation references skipped (ignore_referrals)
};

// What the root DSE says the server can do.
struct ServerFeatures {
    bool paged_results = false;  // RFC 2696
    bool content_sync = false;   // RFC 4533 (syncrepl)
    // Active Directory: the highest update sequence number this server has
    // committed (read at connect time); "" elsewhere.
    std::string highest_committed_usn;
};

class SetupWatchdog;

class Connection {
  public:
    // Connects and binds (bind_password is the content of bind_password_file;
    // unused when bind_dn is empty). Tries every URI in order, up to
    // `rounds` times with backoff between rounds; a refused bind is not
    // retried (the servers of one directory share their accounts).
    static Result<Connection> open(const LdapSourceConfig& config, std::string_view bind_password,
                                   int rounds = 3);

    Connection(Connection&&) noexcept;
    Connection& operator=(Connection&&) noexcept;
    ~Connection();

    // Runs a search, calling `on_entry` for each entry in the order the
    // server sent them. Paged, a page's entries are handed over once the
    // page is complete and the next page has been asked for, so the server
    // works on it meanwhile (one page of messages in memory); unpaged, as
    // they arrive. The Entry handed over is refilled for the next entry:
    // move from it to keep it. An error from `on_entry` stops the search
    // (the next page, if asked for, is abandoned) and is returned. Continuation references fail the
    // search with `referral` unless the configuration ignores them.
    Result<SearchOutcome> search(const SearchRequest& request,
                                 const std::function<Result<void>(Entry&&)>& on_entry);

    // Low-level access for protocol extensions (content sync): waits for the
    // next message of `msgid`; nullptr message on timeout is a `timeout`
    // failure. The caller frees the message with ldap_msgfree.
    Result<LDAPMessage*> next_message(int msgid, std::chrono::milliseconds wait);
    // The message's entry, materialised.
    Entry entry(LDAPMessage* message) const;

    LDAP* handle() const { return m_ld; }
    const std::string& uri() const { return m_uri; }
    const ServerFeatures& features() const { return m_features; }
    std::chrono::seconds timeout() const { return m_timeout; }
    bool ignores_referrals() const { return m_ignore_referrals; }

    // A failure for libldap's result code `code` during `what`.
    Failure failure_for(int code, std::string_view what) const;

  private:
    Connection(LDAP* ld, std::unique_ptr<SetupWatchdog> watchdog, std::string uri,
               const LdapSourceConfig& config);

    LDAP* m_ld = nullptr;
    std::unique_ptr<SetupWatchdog> m_watchdog;  // outlives m_ld: libldap calls it on close
    std::string m_uri;
    ServerFeatures m_features;
    std::chrono::seconds m_timeout{30};
    int m_page_size = 1000;
    bool m_ignore_referrals = false;
};

// The bind password from `file` (one trailing newline dropped), or a
// `local` failure naming the file. Never logged.
Result<std::string> read_secret_file(const std::filesystem::path& file);

}  // namespace orgsync::ldap
