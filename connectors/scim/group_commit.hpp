#pragma once

// Group commit for the writes of one SCIM source: requests that arrive
// while a commit is under way are committed together by the next one, in
// one store transaction (one fsync), instead of one transaction each.
//
// CommitQueue hands the batches out: a thread that queues a request either
// runs the next batch itself (it leads) or waits until a batch that held
// its request has run. commit_together commits one batch as if its
// requests had been written one after another in queue order: requests
// that depend on each other (they share a key: a userName, an address)
// are not committed together, and a batch the store refuses is committed
// again request by request, so each request gets the answer it would have
// got alone.

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

namespace orgsync::scim {

// Thread-safe. `Entry` is the caller's: the queue holds pointers to entries
// that live until submit() returns for them.
template <typename Entry>
class CommitQueue {
  public:
    // Queues `entry` and returns once a call of `process` (given every
    // entry of one batch, in queue order) has run on it: this thread's own
    // call (it led the batch), or another thread's. Batches run one at a
    // time; a batch is everything queued when it starts (each entry holds
    // a waiting thread, so the callers' thread pools bound it). An
    // exception from `process` reaches the thread that ran it; the entries
    // of that batch count as processed.
    template <typename Process>
    void submit(Entry& entry, Process&& process) {
        Node node{&entry};
        std::vector<Node*> batch;
        {
            std::unique_lock lock(m_mutex);
            m_queued.push_back(&node);
            m_changed.wait(lock, [&] { return node.done || !m_leading; });
            if (node.done) {
                return;
            }
            // Not done and nobody leading: this node is still queued, and
            // the batch this thread leads holds it.
            m_leading = true;
            batch.assign(m_queued.begin(), m_queued.end());
            m_queued.clear();
        }
        struct Finish {
            CommitQueue& queue;
            const std::vector<Node*>& batch;
            ~Finish() {
                std::lock_guard lock(queue.m_mutex);
                for (Node* done : batch) {
                    done->done = true;
                }
                queue.m_leading = false;
                queue.m_changed.notify_all();
            }
        } finish{*this, batch};
        std::vector<Entry*> entries;
        entries.reserve(batch.size());
        for (Node* queued : batch) {
            entries.push_back(queued->entry);
        }
        process(std::span<Entry* const>(entries));
    }

    // Entries queued and not yet taken into a batch.
    std::size_t waiting() const {
        std::lock_guard lock(m_mutex);
        return m_queued.size();
    }

  private:
    struct Node {
        Entry* entry;
        bool done = false;  // guarded by m_mutex
    };

    mutable std::mutex m_mutex;
    std::condition_variable m_changed;  // a batch finished
    std::vector<Node*> m_queued;        // guarded by m_mutex
    bool m_leading = false;             // guarded by m_mutex: a batch is running
};

// Commits `batch` (in queue order) as its entries would be committed one
// after another:
//
// - `check(entry)` -> bool: the checks against what is committed
//   (uniqueness); false when the entry is refused (check records why).
// - `commit(entries)` -> bool: writes the entries in one transaction; true
//   when committed. Called with one entry, it records why that one failed.
//
// `Entry::keys` name what an entry depends on: two entries sharing a key
// (e.g. "userName:alice") must see each other's outcome, so an entry that
// shares a key with an earlier one of the batch waits until the entries
// committed together are (and so does every later entry sharing a key with
// it); these are then checked and committed one by one, in order. Entries
// without a shared key are independent: checked, then committed in one
// transaction; when that fails, each is committed alone, so one entry the
// store refuses does not fail the others.
template <typename Entry, typename Check, typename Commit>
void commit_together(std::span<Entry* const> batch, Check&& check, Commit&& commit) {
    std::vector<Entry*> together;
    std::vector<Entry*> later;
    std::unordered_set<std::string> seen;
    for (Entry* entry : batch) {
        bool depends = false;
        for (const std::string& key : entry->keys) {
            depends = depends || seen.contains(key);
        }
        if (depends) {
            seen.insert(entry->keys.begin(), entry->keys.end());
            later.push_back(entry);
            continue;
        }
        if (!check(*entry)) {
            continue;  // refused: later entries sharing its keys see that
        }
        seen.insert(entry->keys.begin(), entry->keys.end());
        together.push_back(entry);
    }
    auto alone = [&](Entry* entry) { commit(std::span<Entry* const>(&entry, 1)); };
    if (together.size() > 1) {
        if (!commit(std::span<Entry* const>(together))) {
            for (Entry* entry : together) {
                alone(entry);
            }
        }
    } else if (together.size() == 1) {
        alone(together.front());
    }
    for (Entry* entry : later) {
        if (check(*entry)) {
            alone(entry);
        }
    }
}

}  // namespace orgsync::scim
