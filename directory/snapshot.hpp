#pragma once

// The in-memory, immutable view that decisions are made from. The store
// builds one OrgView per org from SQLite after each commit that touches the
// org and publishes a new Snapshot sharing every untouched OrgView, so a
// write costs a rebuild of the orgs it changed and readers never lock.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "directory/model.hpp"

namespace orgsync::directory {

// Not noexcept on purpose: libstdc++ then caches each key's hash in its node,
// so walking a bucket compares hashes instead of re-hashing other keys.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// Index of a group inside its OrgView::group_names.
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

struct OrgView {
    OrgId id = 0;
    std::string slug;
    StringMap<MemberView> members;  // by canonical email
    std::vector<std::string> group_names;
    std::vector<GroupId> group_ids;   // parallel to group_names, ascending
    StringMap<ProjectView> projects;  // by slug
    StringMap<DatasetView> datasets;  // by slug
};

struct Snapshot {
    StringMap<std::shared_ptr<const OrgView>> orgs;  // by slug

    const OrgView* find_org(std::string_view slug) const {
        auto it = orgs.find(slug);
        return it == orgs.end() ? nullptr : it->second.get();
    }
};

}  // namespace orgsync::directory
