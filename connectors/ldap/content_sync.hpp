#pragma once

// RFC 4533 content synchronisation ("syncrepl"), as OpenLDAP's syncprov
// overlay offers it: ask for what changed since a cookie (refreshOnly), or
// keep the search open and be told of each change as it happens
// (refreshAndPersist). libldap has no public API for it, so the request
// control and the three response messages are encoded and decoded here
// with liblber.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "connectors/ldap/connection.hpp"

namespace orgsync::ldap {

// The changes one refresh reported.
struct ContentChanges {
    std::vector<Entry> changed;        // added or modified entries, complete
    std::vector<std::string> deleted;  // entryUUIDs of deleted entries
    // Present phase (the server had no change log for the cookie): every
    // entry that still exists is listed here, and whatever the client holds
    // that is missing from it (and from `changed`) was deleted.
    bool present_phase = false;
    std::unordered_set<std::string> present;
    std::string cookie;             // where the next refresh starts
    bool refresh_required = false;  // the cookie is too old: a full read is needed
    std::size_t references = 0;     // continuation references skipped (ignore_referrals)
};

// `request` run once in refreshOnly mode from `cookie` (empty: from the
// beginning, which returns every entry). Not paged (RFC 4533 searches
// cannot be), so a server size limit smaller than the changes fails it.
Result<ContentChanges> refresh_changes(Connection& connection, const SearchRequest& request,
                                       const std::string& cookie);

// A refreshAndPersist search kept open. poll() waits up to `wait` for
// messages and returns what arrived (possibly nothing); a dropped connection
// is an error, after which the caller reconnects from the last cookie. The
// search ends with its connection.
class PersistentSearch {
  public:
    static Result<PersistentSearch> start(Connection& connection, const SearchRequest& request,
                                          const std::string& cookie);

    // Changes that arrived within `wait`; `refreshed` turns true once the
    // initial refresh is over.
    Result<ContentChanges> poll(std::chrono::milliseconds wait);
    bool refreshed() const { return m_refreshed; }

  private:
    PersistentSearch(Connection& connection, int msgid)
        : m_connection(&connection), m_msgid(msgid) {}

    Connection* m_connection;
    int m_msgid = 0;
    bool m_refreshed = false;
};

// The 16 bytes of a sync state's entryUUID in entryUUID's string form.
std::string format_uuid(std::string_view bytes);

}  // namespace orgsync::ldap
