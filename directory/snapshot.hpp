#pragma once

// The in-memory, immutable view that decisions are made from. The store
// keeps one OrgView per org and, after each commit that touches an org,
// publishes a new Snapshot that shares every part the commit left alone:
// untouched orgs, and inside a touched org its untouched member, project and
// dataset shards and its group table. A write that changes a few members or
// user grants costs in proportion to those (plus one pointer per shard);
// readers never lock.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "directory/model.hpp"

namespace orgsync::directory {

// A key with its hash already computed, so a sharded lookup hashes once: the
// hash picks the shard and is reused by the shard's own map.
struct HashedKey {
    std::string_view text;
    std::size_t hash = 0;

    friend bool operator==(const HashedKey& key, std::string_view other) {
        return key.text == other;
    }
};

// Not noexcept on purpose: libstdc++ then caches each key's hash in its node,
// so walking a bucket compares hashes instead of re-hashing other keys.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
    std::size_t operator()(const HashedKey& key) const { return key.hash; }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
using StringSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

template <typename V>
class ShardedMapEditor;

// An immutable string-keyed map split by key hash into a power-of-two
// number of shards, each held through a shared_ptr. Copying the map copies
// one pointer per shard; ShardedMapEditor (snapshot_builder.hpp) changes a
// copy by replacing only the shards it writes to, so two maps that differ
// in a few keys share every other shard.
//
// Each shard owns its entries in a StringMap and keeps beside it an
// open-addressing index of (hash, entry) slots, whose address the map keeps
// next to the shard pointer: a lookup reads one slot and, when the hash
// matches, one entry, never a shard header or a bucket list.
template <typename V>
class ShardedMap {
  public:
    using Shard = StringMap<V>;
    using value_type = typename Shard::value_type;

    // More shards than this cost more to copy than their smaller size saves.
    static constexpr std::size_t k_max_shards = 1024;

  private:
    struct Slot {
        std::size_t hash = 0;
        const value_type* entry = nullptr;  // null: empty
    };

    // Never changed once shared; ShardedMapEditor re-indexes its own copies.
    // Not copyable: the slots point into this object's own entries.
    struct ShardData {
        ShardData() = default;
        ShardData(const ShardData&) = delete;
        ShardData& operator=(const ShardData&) = delete;

        Shard entries;
        std::vector<Slot> slots;  // a power of two, at most half full

        void index() {
            std::size_t capacity = std::bit_ceil(std::max<std::size_t>(2, 2 * entries.size()));
            slots.assign(capacity, Slot{});
            for (const auto& entry : entries) {
                std::size_t hash = StringHash{}(entry.first);
                std::size_t i = hash & (capacity - 1);
                while (slots[i].entry != nullptr) {
                    i = (i + 1) & (capacity - 1);
                }
                slots[i] = Slot{hash, &entry};
            }
        }
    };

    struct ShardRef {
        std::shared_ptr<const ShardData> data;
        const Slot* slots = nullptr;  // data->slots, read without touching *data
        std::size_t mask = 0;         // data->slots.size() - 1

        explicit ShardRef(std::shared_ptr<const ShardData> shard)
            : data(std::move(shard)), slots(data->slots.data()), mask(data->slots.size() - 1) {}
    };

  public:
    class const_iterator {
      public:
        using value_type = typename Shard::value_type;
        using reference = const value_type&;
        using pointer = const value_type*;
        using difference_type = std::ptrdiff_t;
        using iterator_category = std::forward_iterator_tag;

        const_iterator() = default;
        reference operator*() const { return *m_entry; }
        pointer operator->() const { return &*m_entry; }
        const_iterator& operator++() {
            ++m_entry;
            skip_finished_shards();
            return *this;
        }
        const_iterator operator++(int) {
            const_iterator before = *this;
            ++*this;
            return before;
        }
        friend bool operator==(const const_iterator& a, const const_iterator& b) {
            return a.m_shard == b.m_shard && (a.m_shard == a.m_end || a.m_entry == b.m_entry);
        }

      private:
        friend class ShardedMap;

        const_iterator(const ShardRef* shard, const ShardRef* end,
                       typename Shard::const_iterator entry)
            : m_shard(shard), m_end(end), m_entry(entry) {}
        void skip_finished_shards() {
            while (m_shard != m_end && m_entry == m_shard->data->entries.end()) {
                if (++m_shard != m_end) {
                    m_entry = m_shard->data->entries.begin();
                }
            }
        }

        const ShardRef* m_shard = nullptr;
        const ShardRef* m_end = nullptr;
        typename Shard::const_iterator m_entry;
    };

    ShardedMap() = default;

    // The entries of `entries` (moved, not copied) in enough shards for
    // about `per_shard` entries each.
    static ShardedMap from(Shard entries, std::size_t per_shard) {
        ShardedMap map;
        map.m_size = entries.size();
        std::size_t wanted = std::max<std::size_t>(1, (entries.size() + per_shard - 1) / per_shard);
        std::size_t count = std::min(std::bit_ceil(wanted), k_max_shards);
        std::vector<std::shared_ptr<ShardData>> shards(count);
        for (auto& shard : shards) {
            shard = std::make_shared<ShardData>();
        }
        map.m_mask = count - 1;
        while (!entries.empty()) {
            auto node = entries.extract(entries.begin());
            shards[map.shard_of(StringHash{}(node.key()))]->entries.insert(std::move(node));
        }
        map.m_shards.reserve(count);
        for (auto& shard : shards) {
            shard->index();
            map.m_shards.emplace_back(std::move(shard));
        }
        return map;
    }

    std::size_t size() const { return m_size; }
    bool empty() const { return m_size == 0; }

    // The value at `key`, or null. The hot path of a decision.
    const V* get(std::string_view key) const { return get(probe(key)); }

    // A lookup in two steps: probe() hashes the key, finds its slot and
    // starts loading it, so that a caller can do other work (another
    // lookup) while that memory arrives; get() finishes it. A Probe is
    // valid while the map is.
    class Probe {
        friend class ShardedMap;
        HashedKey key;
        const Slot* slots = nullptr;
        std::size_t mask = 0;
    };
    Probe probe(std::string_view key) const {
        Probe probe;
        if (!m_shards.empty()) {
            probe.key = HashedKey{key, StringHash{}(key)};
            const ShardRef& shard = m_shards[shard_of(probe.key.hash)];
            probe.slots = shard.slots;
            probe.mask = shard.mask;
            __builtin_prefetch(probe.slots + (probe.key.hash & probe.mask));
        }
        return probe;
    }
    const V* get(const Probe& probe) const {
        if (probe.slots == nullptr) {
            return nullptr;
        }
        for (std::size_t i = probe.key.hash & probe.mask;; i = (i + 1) & probe.mask) {
            const Slot& slot = probe.slots[i];
            if (slot.entry == nullptr) {
                return nullptr;
            }
            if (slot.hash == probe.key.hash && slot.entry->first == probe.key.text) {
                return &slot.entry->second;
            }
        }
    }

    const_iterator find(std::string_view key) const {
        if (m_shards.empty()) {
            return end();
        }
        HashedKey hashed{key, StringHash{}(key)};
        std::size_t index = shard_of(hashed.hash);
        const Shard& entries = m_shards[index].data->entries;
        auto it = entries.find(hashed);
        if (it == entries.end()) {
            return end();
        }
        return const_iterator(m_shards.data() + index, shards_end(), it);
    }

    const_iterator begin() const {
        if (m_shards.empty()) {
            return end();
        }
        const_iterator it(m_shards.data(), shards_end(), m_shards.front().data->entries.begin());
        it.skip_finished_shards();
        return it;
    }
    const_iterator end() const { return const_iterator(shards_end(), shards_end(), {}); }

    // The layout, for tests that check what two snapshots share.
    std::size_t shard_count() const { return m_shards.size(); }
    const Shard* shard(std::size_t index) const { return &m_shards[index].data->entries; }
    const Shard* shard_for(std::string_view key) const {
        return m_shards.empty() ? nullptr : shard(shard_of(StringHash{}(key)));
    }

  private:
    friend class ShardedMapEditor<V>;

    // The hash's high bits after a multiplicative mix: a shard's index
    // starts from the hash's low bits, so the two choices stay unrelated.
    std::size_t shard_of(std::size_t hash) const {
        return static_cast<std::size_t>(
                   (static_cast<std::uint64_t>(hash) * 0x9E3779B97F4A7C15ULL) >> 54) &
               m_mask;
    }
    const ShardRef* shards_end() const { return m_shards.data() + m_shards.size(); }

    std::vector<ShardRef> m_shards;  // size 0 or a power of two
    std::size_t m_mask = 0;
    std::size_t m_size = 0;
};

// Index of a group inside its OrgView::groups.
using GroupIndex = std::uint32_t;

struct MemberView {
    UserId id = 0;
    UserType user_type = UserType::external;
    OrgRole role = OrgRole::guest;
    bool active = true;
    std::vector<GroupIndex> groups;  // sorted
};

template <typename Access>
struct GrantsView {
    std::vector<std::pair<UserId, Access>> users;       // sorted by user, one entry each (highest)
    std::vector<std::pair<GroupIndex, Access>> groups;  // sorted by access, highest first

    std::optional<Access> user_grant(UserId user) const {
        auto it = std::lower_bound(users.begin(), users.end(), user,
                                   [](const auto& entry, UserId id) { return entry.first < id; });
        if (it == users.end() || it->first != user) {
            return std::nullopt;
        }
        return it->second;
    }
};

struct ProjectView {
    ProjectId id = 0;
    Visibility visibility = Visibility::private_;
    GrantsView<Level> grants;
};

struct DatasetView {
    DatasetId id = 0;
    GrantsView<DatasetAccess> grants;
};

// An org's groups; a GroupIndex is a position in both vectors.
struct GroupTable {
    std::vector<std::string> names;
    std::vector<GroupId> ids;  // parallel to names, ascending
};

struct OrgView {
    // About this many entries per shard: a member-only write copies one
    // member shard per member it touches, a user grant one project or
    // dataset shard. Fewer, larger member shards keep the shard headers a
    // decision reads in cache (more shards made decisions slower).
    static constexpr std::size_t k_members_per_shard = 256;
    static constexpr std::size_t k_projects_per_shard = 64;
    static constexpr std::size_t k_datasets_per_shard = 64;

    OrgId id = 0;
    std::string slug;
    ShardedMap<MemberView> members;  // by canonical email
    std::shared_ptr<const GroupTable> groups = std::make_shared<const GroupTable>();
    ShardedMap<ProjectView> projects;  // by slug
    ShardedMap<DatasetView> datasets;  // by slug
};

struct Snapshot {
    static constexpr std::size_t k_orgs_per_shard = 16;

    ShardedMap<std::shared_ptr<const OrgView>> orgs;  // by slug

    const OrgView* find_org(std::string_view slug) const {
        const auto* view = orgs.get(slug);
        return view == nullptr ? nullptr : view->get();
    }
};

}  // namespace orgsync::directory
