#include "directory/model.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "directory/error.hpp"

namespace orgsync::directory {
namespace {

template <typename E, std::size_t N>
std::optional<E> parse_from(const std::array<std::pair<std::string_view, E>, N>& table,
                            std::string_view text) {
    for (const auto& [name, value] : table) {
        if (name == text) {
            return value;
        }
    }
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<std::string_view, E>, N>& table, E value) {
    for (const auto& [name, candidate] : table) {
        if (candidate == value) {
            return name;
        }
    }
    return "?";
}

constexpr std::array<std::pair<std::string_view, UserType>, 3> k_user_types{{
    {"internal", UserType::internal},
    {"workforce", UserType::workforce},
    {"external", UserType::external},
}};
constexpr std::array<std::pair<std::string_view, OrgRole>, 4> k_roles{{
    {"owner", OrgRole::owner},
    {"admin", OrgRole::admin},
    {"member", OrgRole::member},
    {"guest", OrgRole::guest},
}};
constexpr std::array<std::pair<std::string_view, Level>, 4> k_levels{{
    {"none", Level::none},
    {"read", Level::read},
    {"write", Level::write},
    {"admin", Level::admin},
}};
constexpr std::array<std::pair<std::string_view, DatasetAccess>, 2> k_dataset_access{{
    {"read", DatasetAccess::read},
    {"write", DatasetAccess::write},
}};
constexpr std::array<std::pair<std::string_view, Visibility>, 2> k_visibilities{{
    {"private", Visibility::private_},
    {"public", Visibility::public_},
}};
constexpr std::array<std::pair<std::string_view, PrincipalKind>, 2> k_principal_kinds{{
    {"user", PrincipalKind::user},
    {"group", PrincipalKind::group},
}};
constexpr std::array<std::pair<std::string_view, ErrorCode>, 11> k_error_codes{{
    {"invalid_argument", ErrorCode::invalid_argument},
    {"not_found", ErrorCode::not_found},
    {"already_exists", ErrorCode::already_exists},
    {"owner_immutable", ErrorCode::owner_immutable},
    {"role_requires_internal", ErrorCode::role_requires_internal},
    {"internal_elsewhere", ErrorCode::internal_elsewhere},
    {"admin_must_be_demoted", ErrorCode::admin_must_be_demoted},
    {"last_project_admin", ErrorCode::last_project_admin},
    {"not_a_member", ErrorCode::not_a_member},
    {"storage", ErrorCode::storage},
    {"schema_too_new", ErrorCode::schema_too_new},
}};

}  // namespace

std::string_view to_string(UserType value) {
    return name_of(k_user_types, value);
}
std::string_view to_string(OrgRole value) {
    return name_of(k_roles, value);
}
std::string_view to_string(Level value) {
    return name_of(k_levels, value);
}
std::string_view to_string(DatasetAccess value) {
    return name_of(k_dataset_access, value);
}
std::string_view to_string(Visibility value) {
    return name_of(k_visibilities, value);
}
std::string_view to_string(PrincipalKind value) {
    return name_of(k_principal_kinds, value);
}
std::string_view to_string(ErrorCode code) {
    return name_of(k_error_codes, code);
}

std::optional<UserType> parse_user_type(std::string_view text) {
    return parse_from(k_user_types, text);
}
std::optional<OrgRole> parse_org_role(std::string_view text) {
    return parse_from(k_roles, text);
}
std::optional<Level> parse_level(std::string_view text) {
    auto level = parse_from(k_levels, text);
    return level == Level::none ? std::nullopt : level;
}
std::optional<DatasetAccess> parse_dataset_access(std::string_view text) {
    return parse_from(k_dataset_access, text);
}
std::optional<Visibility> parse_visibility(std::string_view text) {
    return parse_from(k_visibilities, text);
}

bool is_valid_slug(std::string_view slug) {
    return !slug.empty() && slug.size() <= 63 && std::all_of(slug.begin(), slug.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

}  // namespace orgsync::directory
