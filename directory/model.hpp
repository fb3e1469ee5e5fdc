#pragma once

// The domain model of DESIGN §1: the value types every component speaks.
// Enumerations are ordered so that a larger value grants more; each has one
// spelling (to_string) and one parser (parse_*) used by config, CLI and HTTP.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::directory {

using OrgId = std::int64_t;
using UserId = std::int64_t;
using GroupId = std::int64_t;
using ProjectId = std::int64_t;
using DatasetId = std::int64_t;

// Who the person is to the org. Ordered by privilege: internal > workforce > external.
enum class UserType : std::uint8_t { external = 0, workforce = 1, internal = 2 };

// Org role. Ordered: owner > admin > member > guest.
enum class OrgRole : std::uint8_t { guest = 0, member = 1, admin = 2, owner = 3 };

// Project level. `none` is never stored; it is the answer when nothing grants access.
enum class Level : std::uint8_t { none = 0, read = 1, write = 2, admin = 3 };

// Dataset access granted to a principal (used for guests).
enum class DatasetAccess : std::uint8_t { read = 1, write = 2 };

enum class Visibility : std::uint8_t { private_ = 0, public_ = 1 };

enum class PrincipalKind : std::uint8_t { user = 0, group = 1 };

std::string_view to_string(UserType value);
std::string_view to_string(OrgRole value);
std::string_view to_string(Level value);
std::string_view to_string(DatasetAccess value);
std::string_view to_string(Visibility value);
std::string_view to_string(PrincipalKind value);

std::optional<UserType> parse_user_type(std::string_view text);
std::optional<OrgRole> parse_org_role(std::string_view text);
std::optional<Level> parse_level(std::string_view text);  // read | write | admin
std::optional<DatasetAccess> parse_dataset_access(std::string_view text);
std::optional<Visibility> parse_visibility(std::string_view text);

// The source name of changes made through the admin API or CLI. Sync never
// removes what this source asserts.
inline constexpr std::string_view k_manual_source = "manual";

// A slug is an org/project/dataset id: [a-z0-9-]{1,63}.
bool is_valid_slug(std::string_view slug);

struct Org {
    OrgId id = 0;
    std::string slug;
    std::string name;
    bool workforce = false;
    UserId owner = 0;
    std::string owner_email;
};

struct ExternalId {
    std::string source;  // configured source name
    std::string kind;    // entryUUID, objectGUID, dn, scim_id, external_id, ...
    std::string value;
};

struct User {
    UserId id = 0;
    std::string email;  // canonical (see email.hpp)
    std::string display_name;
    bool active = true;
    std::vector<ExternalId> external_ids;
};

// One source's statement that a user belongs to an org with a type and role.
// Sources never assert `owner`; ownership lives on the org.
struct MembershipAssertion {
    std::string source;
    UserType user_type = UserType::external;
    OrgRole role = OrgRole::guest;
};

// The effective membership: type and role derived from every assertion
// (highest wins), role `owner` for the org's owner.
struct Membership {
    OrgId org = 0;
    UserId user = 0;
    std::string email;
    UserType user_type = UserType::external;
    OrgRole role = OrgRole::guest;
    std::vector<MembershipAssertion> assertions;
};

struct Group {
    GroupId id = 0;
    OrgId org = 0;
    std::string name;  // DN for LDAP-derived groups, displayName for SCIM, free for manual
};

struct Project {
    ProjectId id = 0;
    OrgId org = 0;
    std::string slug;
    Visibility visibility = Visibility::private_;
    std::vector<std::string> tags;
};

struct Dataset {
    DatasetId id = 0;
    OrgId org = 0;
    std::string slug;
    std::vector<std::string> projects;  // slugs of the projects it is attached to
};

struct Principal {
    PrincipalKind kind = PrincipalKind::user;
    std::int64_t id = 0;  // UserId or GroupId

    friend bool operator==(const Principal&, const Principal&) = default;
};

struct ProjectGrant {
    Principal principal;
    std::string principal_name;  // email or group name
    Level level = Level::read;
    std::vector<std::string> sources;  // who asserts it; effective level is the highest asserted
};

struct DatasetGrant {
    Principal principal;
    std::string principal_name;
    DatasetAccess access = DatasetAccess::read;
    std::vector<std::string> sources;
};

}  // namespace orgsync::directory
