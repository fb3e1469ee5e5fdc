#pragma once

// Live mode (`live = true`, OpenLDAP with syncprov): a refreshAndPersist
// content sync search stays open, and each batch of changes the server
// pushes is applied as an incremental run, so a change reaches the store
// within about a second instead of at the next interval.
//
// A background thread owns the connection. It first brings the mirror up
// to date with an ordinary run (full or incremental, as sync_ldap_source
// decides), then keeps two persistent searches (users, groups) open from
// the stored cookies. Changes are batched until the server has been quiet
// for a moment (or half a second has passed) and applied through the same
// pipeline and guards as any run; a group change triggers a full read. A
// dropped connection, a failed or blocked run: the thread starts over from
// the stored cursor after a backoff (1 s doubling to 60 s).

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "connectors/ldap/ldap_source.hpp"

namespace orgsync::ldap {

class LiveSync {
  public:
    using OnRun = std::function<void(const LdapSyncReport&)>;

    // `store` and `mapping` must outlive the LiveSync.
    LiveSync(directory::Store& store, const mapping::Mapping& mapping, sync::SourceSpec source,
             LdapSourceConfig config, OnRun on_run = {});
    ~LiveSync();
    LiveSync(const LiveSync&) = delete;
    LiveSync& operator=(const LiveSync&) = delete;

    void start();
    // Stops the thread: an open search is abandoned, a run in progress ends
    // first (it is one transaction).
    void stop();

  private:
    void run();
    void listen();
    bool wait(std::chrono::milliseconds duration);  // false when stopping
    void report(const LdapSyncReport& report);

    directory::Store& m_store;
    const mapping::Mapping& m_mapping;
    sync::SourceSpec m_source;
    LdapSourceConfig m_config;
    OnRun m_on_run;

    std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stopping = false;
    std::thread m_thread;
};

}  // namespace orgsync::ldap
