#include "connectors/scim/schema.hpp"

#include <array>

#include "connectors/scim/error.hpp"

namespace orgsync::scim {

namespace {

using enum AttributeType;
constexpr Mutability k_ro = Mutability::read_only;
constexpr Mutability k_imm = Mutability::immutable;

// RFC 7643 §3.1: meta and its sub-attributes are readOnly; version is
// caseExact (an entity tag).
constexpr std::array k_meta_subs{
    AttributeDef{.name = "resourceType", .case_exact = true, .mutability = k_ro},
    AttributeDef{.name = "created", .type = date_time, .mutability = k_ro},
    AttributeDef{.name = "lastModified", .type = date_time, .mutability = k_ro},
    AttributeDef{.name = "location", .type = reference, .case_exact = true, .mutability = k_ro},
    AttributeDef{.name = "version", .case_exact = true, .mutability = k_ro},
};

constexpr AttributeDef k_id{.name = "id", .case_exact = true, .mutability = k_ro};
constexpr AttributeDef k_external_id{.name = "externalId", .case_exact = true};
constexpr AttributeDef k_meta{
    .name = "meta", .type = complex, .mutability = k_ro, .sub_attributes = k_meta_subs};
constexpr AttributeDef k_schemas{
    .name = "schemas", .type = reference, .multi_valued = true, .case_exact = true};

constexpr std::array k_name_subs{
    AttributeDef{.name = "formatted"},       AttributeDef{.name = "familyName"},
    AttributeDef{.name = "givenName"},       AttributeDef{.name = "middleName"},
    AttributeDef{.name = "honorificPrefix"}, AttributeDef{.name = "honorificSuffix"},
};

// emails, phoneNumbers (RFC 7643 §4.1.2): value, display, type, primary.
constexpr std::array k_typed_value_subs{
    AttributeDef{.name = "value"},
    AttributeDef{.name = "display"},
    AttributeDef{.name = "type"},
    AttributeDef{.name = "primary", .type = boolean},
};

constexpr std::array k_address_subs{
    AttributeDef{.name = "formatted"},  AttributeDef{.name = "streetAddress"},
    AttributeDef{.name = "locality"},   AttributeDef{.name = "region"},
    AttributeDef{.name = "postalCode"}, AttributeDef{.name = "country"},
    AttributeDef{.name = "type"},       AttributeDef{.name = "primary", .type = boolean},
};

constexpr std::array k_user_group_subs{
    AttributeDef{.name = "value", .mutability = k_ro},
    AttributeDef{.name = "$ref", .type = reference, .case_exact = true, .mutability = k_ro},
    AttributeDef{.name = "display", .mutability = k_ro},
    AttributeDef{.name = "type", .mutability = k_ro},
};

constexpr std::array k_user_attributes{
    k_id,
    k_external_id,
    k_meta,
    k_schemas,
    AttributeDef{.name = "userName", .required = true},
    AttributeDef{.name = "name", .type = complex, .sub_attributes = k_name_subs},
    AttributeDef{.name = "displayName"},
    AttributeDef{.name = "nickName"},
    AttributeDef{.name = "profileUrl", .type = reference, .case_exact = true},
    AttributeDef{.name = "title"},
    AttributeDef{.name = "userType"},
    AttributeDef{.name = "preferredLanguage"},
    AttributeDef{.name = "locale"},
    AttributeDef{.name = "timezone"},
    AttributeDef{.name = "active", .type = boolean},
    AttributeDef{.name = "password", .case_exact = true, .mutability = Mutability::write_only},
    AttributeDef{.name = "emails",
                 .type = complex,
                 .multi_valued = true,
                 .sub_attributes = k_typed_value_subs},
    AttributeDef{.name = "phoneNumbers",
                 .type = complex,
                 .multi_valued = true,
                 .sub_attributes = k_typed_value_subs},
    AttributeDef{.name = "addresses",
                 .type = complex,
                 .multi_valued = true,
                 .sub_attributes = k_address_subs},
    AttributeDef{.name = "groups",
                 .type = complex,
                 .multi_valued = true,
                 .mutability = k_ro,
                 .sub_attributes = k_user_group_subs},
};

constexpr std::array k_manager_subs{
    AttributeDef{.name = "value"},
    AttributeDef{.name = "$ref", .type = reference, .case_exact = true},
    AttributeDef{.name = "displayName", .mutability = k_ro},
};

constexpr std::array k_enterprise_attributes{
    AttributeDef{.name = "employeeNumber"},
    AttributeDef{.name = "costCenter"},
    AttributeDef{.name = "organization"},
    AttributeDef{.name = "division"},
    AttributeDef{.name = "department"},
    AttributeDef{.name = "manager", .type = complex, .sub_attributes = k_manager_subs},
};

// RFC 7643 §4.2: value and $ref are immutable (a member is replaced, not
// edited); display is what IdPs send along and is kept.
constexpr std::array k_member_subs{
    AttributeDef{.name = "value", .mutability = k_imm},
    AttributeDef{.name = "display"},
    AttributeDef{.name = "$ref", .type = reference, .case_exact = true, .mutability = k_imm},
    AttributeDef{.name = "type", .mutability = k_imm},
};

constexpr std::array k_group_attributes{
    k_id,
    k_external_id,
    k_meta,
    k_schemas,
    AttributeDef{.name = "displayName", .required = true},
    AttributeDef{
        .name = "members", .type = complex, .multi_valued = true, .sub_attributes = k_member_subs},
};

constexpr std::array k_user_extensions{
    SchemaDef{.urn = k_enterprise_user_schema, .attributes = k_enterprise_attributes},
};

constexpr ResourceRules k_user_rules{
    .name = "User",
    .core = {.urn = k_user_schema, .attributes = k_user_attributes},
    .extensions = k_user_extensions,
};

constexpr ResourceRules k_group_rules{
    .name = "Group",
    .core = {.urn = k_group_schema, .attributes = k_group_attributes},
    .extensions = {},
};

char fold(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

const AttributeDef* find_in(std::span<const AttributeDef> attributes, std::string_view name) {
    for (const auto& attribute : attributes) {
        if (iequals(attribute.name, name)) {
            return &attribute;
        }
    }
    return nullptr;
}

ResolvedAttribute resolve_in(const SchemaDef& schema, bool in_extension, std::string_view name,
                             std::string_view sub) {
    const AttributeDef* attribute = find_in(schema.attributes, name);
    if (attribute == nullptr) {
        return {};
    }
    ResolvedAttribute resolved{
        .schema = &schema, .attribute = attribute, .in_extension = in_extension};
    if (!sub.empty()) {
        resolved.sub_attribute = find_sub_attribute(*attribute, sub);
        if (resolved.sub_attribute == nullptr) {
            return {};
        }
    }
    return resolved;
}

}  // namespace

std::string_view to_string(ScimType type) {
    switch (type) {
        case ScimType::invalid_filter:
            return "invalidFilter";
        case ScimType::invalid_path:
            return "invalidPath";
        case ScimType::invalid_value:
            return "invalidValue";
        case ScimType::no_target:
            return "noTarget";
        case ScimType::mutability:
            return "mutability";
        case ScimType::too_many:
            return "tooMany";
        case ScimType::invalid_syntax:
            return "invalidSyntax";
    }
    return "invalidSyntax";
}

const ResourceRules& user_rules() {
    return k_user_rules;
}
const ResourceRules& group_rules() {
    return k_group_rules;
}

const SchemaDef* find_extension(const ResourceRules& rules, std::string_view urn) {
    for (const auto& extension : rules.extensions) {
        if (iequals(extension.urn, urn)) {
            return &extension;
        }
    }
    return nullptr;
}

const AttributeDef* find_sub_attribute(const AttributeDef& parent, std::string_view name) {
    return find_in(parent.sub_attributes, name);
}

ResolvedAttribute resolve_attribute(const ResourceRules& rules, std::string_view urn,
                                    std::string_view name, std::string_view sub) {
    if (!urn.empty()) {
        if (iequals(urn, rules.core.urn)) {
            return resolve_in(rules.core, false, name, sub);
        }
        if (const SchemaDef* extension = find_extension(rules, urn)) {
            return resolve_in(*extension, true, name, sub);
        }
        return {};
    }
    if (auto core = resolve_in(rules.core, false, name, sub); core.attribute != nullptr) {
        return core;
    }
    for (const auto& extension : rules.extensions) {
        if (auto found = resolve_in(extension, true, name, sub); found.attribute != nullptr) {
            return found;
        }
    }
    return {};
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (fold(a[i]) != fold(b[i])) {
            return false;
        }
    }
    return true;
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = fold(c);
    }
    return out;
}

}  // namespace orgsync::scim
