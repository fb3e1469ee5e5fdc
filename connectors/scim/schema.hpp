#pragma once

// What the filter and PATCH cores know of the SCIM schemas (RFC 7643): the
// core User with the enterprise extension (§4.1, §4.3) and the core Group
// (§4.2), plus the common attributes id, externalId and meta (§3.1). Only
// what the cores need: canonical names, multi-valuedness, type, caseExact,
// mutability and required. The tables are static; nothing here allocates.
//
// Attribute names and schema URNs compare case-insensitively (RFC 7644
// §3.10); the canonical spelling is what the tables say.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace orgsync::scim {

inline constexpr std::string_view k_user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
inline constexpr std::string_view k_group_schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
inline constexpr std::string_view k_enterprise_user_schema =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
inline constexpr std::string_view k_patch_op_schema =
    "urn:ietf:params:scim:api:messages:2.0:PatchOp";

enum class AttributeType : std::uint8_t {
    string,
    boolean,
    decimal,
    integer,
    date_time,  // compared as its ISO 8601 string
    reference,
    complex,
};

enum class Mutability : std::uint8_t { read_only, read_write, immutable, write_only };

struct AttributeDef {
    std::string_view name;  // canonical spelling
    AttributeType type = AttributeType::string;
    bool multi_valued = false;
    bool case_exact = false;
    Mutability mutability = Mutability::read_write;
    bool required = false;
    std::span<const AttributeDef> sub_attributes = {};  // complex only
};

struct SchemaDef {
    std::string_view urn;
    std::span<const AttributeDef> attributes;
};

// One resource type: its core schema (whose attributes, with the common
// ones, sit at the top level of a resource) and its extensions (each an
// object under the extension's URN).
struct ResourceRules {
    std::string_view name;  // "User" | "Group"
    SchemaDef core;
    std::span<const SchemaDef> extensions;
};

// The filter evaluator needs exactly the resource's rules.
using AttributeRules = ResourceRules;

const ResourceRules& user_rules();
const ResourceRules& group_rules();

// Where a name resolves: the schema that defines it, the top-level
// attribute, and the sub-attribute when one was named.
struct ResolvedAttribute {
    const SchemaDef* schema = nullptr;
    const AttributeDef* attribute = nullptr;
    const AttributeDef* sub_attribute = nullptr;  // null when none was named
    bool in_extension = false;                    // stored under resource[schema->urn]
};

// Resolves `name` (and `sub`, when not empty) in the schema `urn` of
// `rules`. An empty `urn` looks in the core schema first, then in each
// extension: IdPs send `manager[...]` without the enterprise prefix.
// Returns a ResolvedAttribute with a null `attribute` when the schema or the
// name is unknown, or when `sub` is not a sub-attribute of `name`.
ResolvedAttribute resolve_attribute(const ResourceRules& rules, std::string_view urn,
                                    std::string_view name, std::string_view sub = {});

// The extension of `rules` whose URN is `urn`, or null.
const SchemaDef* find_extension(const ResourceRules& rules, std::string_view urn);

// The sub-attribute `name` of `parent`, or null.
const AttributeDef* find_sub_attribute(const AttributeDef& parent, std::string_view name);

// ASCII case-insensitive equality: attribute names, URNs, operators and
// (for attributes that are not caseExact) string values. Non-ASCII bytes
// compare exactly; SCIM servers commonly fold ASCII only.
bool iequals(std::string_view a, std::string_view b);
std::string ascii_lower(std::string_view text);

}  // namespace orgsync::scim
