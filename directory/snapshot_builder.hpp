#pragma once

// Internal to directory/: builds the decision views from SQLite. Called by
// the Store inside a write transaction (so a view matches what is about to
// be committed) and at open.

#include <algorithm>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "directory/db.hpp"
#include "directory/snapshot.hpp"

namespace orgsync::directory {

// Changes a ShardedMap in place (normally a fresh copy of a published one)
// by copy-on-write of its shards: the first change to a shard replaces it
// with a private copy, later changes go to that copy, untouched shards stay
// shared. When insertions have doubled the entries per shard, finish()
// re-splits the map into twice as many shards, so an org that grows one
// member at a time costs amortised constant time per member.
template <typename V>
class ShardedMapEditor {
  public:
    using Shard = typename ShardedMap<V>::Shard;

    ShardedMapEditor(ShardedMap<V>& map, std::size_t per_shard)
        : m_map(map), m_per_shard(per_shard) {
        if (m_map.m_shards.empty()) {
            m_map = ShardedMap<V>::from({}, per_shard);
        }
        m_owned.assign(m_map.m_shards.size(), nullptr);
    }
    ShardedMapEditor(const ShardedMapEditor&) = delete;
    ShardedMapEditor& operator=(const ShardedMapEditor&) = delete;
    // Unfinished edits leave the map unreadable: a destroyed editor
    // finishes them.
    ~ShardedMapEditor() { finish(); }

    // The entry at `key` to change in place, or null (then nothing is copied).
    V* find(std::string_view key) {
        HashedKey hashed{key, StringHash{}(key)};
        std::size_t index = m_map.shard_of(hashed.hash);
        if (!m_map.m_shards[index].data->entries.contains(hashed)) {
            return nullptr;
        }
        Shard& shard = owned(index);
        auto it = shard.find(hashed);
        return it == shard.end() ? nullptr : &it->second;
    }

    void insert_or_assign(std::string key, V value) {
        Shard& shard = owned(m_map.shard_of(StringHash{}(key)));
        if (shard.insert_or_assign(std::move(key), std::move(value)).second) {
            ++m_map.m_size;
        }
    }

    // Whether `key` was there.
    bool erase(std::string_view key) {
        HashedKey hashed{key, StringHash{}(key)};
        std::size_t index = m_map.shard_of(hashed.hash);
        if (!m_map.m_shards[index].data->entries.contains(hashed)) {
            return false;
        }
        Shard& shard = owned(index);
        auto it = shard.find(hashed);
        if (it == shard.end()) {
            return false;
        }
        shard.erase(it);
        --m_map.m_size;
        return true;
    }

    // Re-indexes the shards changed so far (the map's lookups read the
    // index, so the map is readable again), and re-splits the map when
    // insertions have doubled the entries per shard.
    void finish() {
        for (std::size_t i = 0; i < m_owned.size(); ++i) {
            if (m_owned[i] != nullptr) {
                m_owned[i]->index();
                m_map.m_shards[i] = typename ShardedMap<V>::ShardRef(m_map.m_shards[i].data);
            }
        }
        std::size_t count = m_map.m_shards.size();
        if (count < ShardedMap<V>::k_max_shards && m_map.m_size > 2 * m_per_shard * count) {
            Shard all;
            all.reserve(m_map.m_size);
            for (const auto& shard : m_map.m_shards) {
                all.insert(shard.data->entries.begin(), shard.data->entries.end());
            }
            m_map = ShardedMap<V>::from(std::move(all), m_per_shard);
        }
        m_owned.assign(m_map.m_shards.size(), nullptr);
    }

  private:
    using ShardData = typename ShardedMap<V>::ShardData;

    Shard& owned(std::size_t index) {
        if (m_owned[index] == nullptr) {
            auto copy = std::make_shared<ShardData>();
            copy->entries = m_map.m_shards[index].data->entries;
            m_owned[index] = copy.get();
            // Indexed (and its ShardRef refreshed) by finish().
            m_map.m_shards[index].data = std::move(copy);
        }
        return m_owned[index]->entries;
    }

    ShardedMap<V>& m_map;
    std::size_t m_per_shard;
    std::vector<ShardData*> m_owned;  // the private copies made so far, by shard
};

// The view of one org as SQLite holds it, or null when there is no such org.
std::shared_ptr<const OrgView> build_org_view(Db& db, OrgId org);

// Every org's view.
std::shared_ptr<const Snapshot> build_snapshot(Db& db);

enum class GrantTarget : std::uint8_t { project, dataset };

// A user's direct grant on one project or dataset.
struct UserGrantKey {
    GrantTarget target = GrantTarget::project;
    std::int64_t id = 0;  // ProjectId or DatasetId
    UserId user = 0;

    friend auto operator<=>(const UserGrantKey&, const UserGrantKey&) = default;
};

// What a write changed in one org, as far as its view is concerned.
struct OrgChanges {
    OrgId org = 0;
    // Anything the fields below do not cover (groups, group grants,
    // projects, datasets, visibility): the view is rebuilt.
    bool rebuild = false;
    // Members whose own rows changed (type, role, active flag, groups,
    // address) or whose membership began or ended.
    std::vector<UserId> members;
    // A touched member's address before the write, where it changed.
    std::vector<std::pair<UserId, std::string>> previous_emails;
    // Direct user grants set, changed or removed, including those a
    // membership's end removed by cascade.
    std::vector<UserGrantKey> user_grants;
};

// `old` updated for `changes` (which must not ask for a rebuild), sharing
// every member, project and dataset shard they leave alone. Returns null
// when that is not enough (a member is in a group, or a grant is on a
// project or dataset, that `old` does not know): the caller then rebuilds.
std::shared_ptr<const OrgView> update_org_view(Db& db, const OrgView& old,
                                               const OrgChanges& changes);

// `current` with the views of the orgs in `changes` updated or rebuilt,
// sharing every other org's view.
std::shared_ptr<const Snapshot> next_snapshot(Db& db, const Snapshot& current,
                                              const std::vector<OrgChanges>& changes);

}  // namespace orgsync::directory
