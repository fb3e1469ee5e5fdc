#pragma once

// SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): one grammar,
// parsed into a tree, evaluated against a resource as nlohmann::json.
//
//   filter    = or-expr
//   or-expr   = and-expr *( "or" and-expr )
//   and-expr  = term *( "and" term )
//   term      = "not" "(" filter ")" / "(" filter ")" / valuePath / attrExp
//   attrExp   = attrPath "pr" / attrPath compareOp compValue
//   valuePath = attrPath "[" valFilter "]" [ "." subAttr ( "pr" / compareOp compValue ) ]
//   attrPath  = [ schemaURN ":" ] name [ "." subAttr ]
//
// Operators, keywords (and, or, not, pr) and true/false/null compare
// case-insensitively; so do attribute names and URNs. `not` binds tighter
// than `and`, which binds tighter than `or`. Inside brackets attribute paths
// are sub-attributes of the bracketed attribute and brackets do not nest.
// The trailing `.subAttr op value` after a value path is not in the RFC
// grammar, but Entra ID sends it (`emails[type eq "work"].value eq "x"`):
// it means "some element matches the bracket and has that sub-attribute".

#include <cstddef>
#include <cstdint>
#include <expected>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/scim/error.hpp"
#include "connectors/scim/schema.hpp"

namespace orgsync::scim {

enum class CompareOp : std::uint8_t { eq, ne, co, sw, ew, gt, ge, lt, le };

std::string_view to_string(CompareOp op);  // "eq", ...

// An attribute as written: names keep the client's spelling (comparisons
// fold case); `schema` and `sub` are empty when absent.
struct AttrPath {
    std::string schema;  // e.g. "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    std::string name;
    std::string sub;

    bool operator==(const AttrPath&) const = default;
};

std::string to_string(const AttrPath& path);

struct Filter {
    enum class Kind : std::uint8_t {
        compare,      // path op value
        present,      // path pr
        logical_and,  // children: two or more, a chain `a and b and c` is one node
        logical_or,   // children: two or more
        logical_not,  // children: one
        value_path,   // path[children[0]], and children[1] (a compare or present
                      // whose path names the sub-attribute) for the Entra form
    };

    Kind kind = Kind::present;
    AttrPath path;
    CompareOp op = CompareOp::eq;
    nlohmann::json value;  // compare: a string, number, boolean or null
    std::vector<Filter> children;

    // Structural equality (names compared as written, numbers by value).
    bool operator==(const Filter& other) const;
};

// The canonical text: re-parses to an equal Filter. Nested and/or groups are
// parenthesised, literals are JSON.
std::string to_string(const Filter& filter);

struct FilterLimits {
    std::size_t max_length = 4096;  // bytes of filter text
    int max_depth = 16;             // nesting of (), not() and []
};

// Parses `text`. Fails with invalid_filter (message with the byte offset) on
// a syntax error, an unknown operator, a bad literal, a literal the operator
// cannot take (co/sw/ew need a string, gt/ge/lt/le a string or number, true,
// false and null go with eq and ne only), or text longer or nested deeper
// than `limits`. Recursion is bounded by `limits.max_depth`, so hostile
// input cannot exhaust the stack, here or in the functions below.
std::expected<Filter, ScimError> parse_filter(std::string_view text,
                                              const FilterLimits& limits = {});

// Checks `filter` against the schema: ordering and substring operators on
// boolean attributes, and comparing a single-valued complex attribute (e.g.
// `name eq "x"`) with a literal, are invalid_filter (RFC 7644 §3.4.2.2).
// Unknown attributes are allowed; they are simply never present.
std::expected<void, ScimError> check_filter(const Filter& filter, const AttributeRules& rules);

// Whether `resource` (a User or Group as stored) matches `filter`:
// - strings compare case-insensitively (ASCII) unless the attribute is
//   caseExact in `rules` (id, externalId, meta.version, $ref, ...); unknown
//   attributes are not caseExact; gt/ge/lt/le order strings by bytes, so
//   dateTimes in one ISO 8601 form order by time;
// - numbers compare by value, booleans with eq/ne only; a string literal
//   "true"/"false" compares with a boolean attribute;
// - a multi-valued attribute matches when any of its values does; a complex
//   value compared without a sub-attribute (`members eq "id"`) compares its
//   `value` sub-attribute;
// - `pr`: present and non-empty (not null, "", [], {} or only empty parts);
// - `ne` is the negation of `eq` (an absent attribute is `ne` anything);
//   `eq null` holds exactly when the attribute is not present.
bool matches(const Filter& filter, const nlohmann::json& resource, const AttributeRules& rules);

// A filter an index can answer: a top-level `attr eq "string"` on a single
// attribute (no value path, no logic). `attribute` is the canonical dotted
// name, URN-prefixed for extension attributes (`userName`, `name.givenName`,
// `urn:...:enterprise:2.0:User:employeeNumber`); `case_exact` says whether
// the index must compare exactly or fold case. nullopt for anything else,
// including attributes `rules` does not define.
struct EqualityLookup {
    std::string attribute;
    std::string value;
    bool case_exact = false;

    bool operator==(const EqualityLookup&) const = default;
};
std::optional<EqualityLookup> as_equality_lookup(const Filter& filter, const AttributeRules& rules);

// A PATCH path (RFC 7644 §3.5.2): `attrPath` or `valuePath [ "." subAttr ]`,
// e.g. `name.familyName`, `members[value eq "id"]`,
// `emails[type eq "work"].value`, `urn:...:enterprise:2.0:User:manager`.
struct PatchPath {
    AttrPath attribute;            // attribute.sub is empty when `filter` is set
    std::optional<Filter> filter;  // the bracket's filter, paths relative to an element
    std::string sub_attribute;     // after the bracket, e.g. "value"

    bool operator==(const PatchPath&) const = default;
};

// Parses a PATCH path; errors are invalid_path.
std::expected<PatchPath, ScimError> parse_patch_path(std::string_view text,
                                                     const FilterLimits& limits = {});

// Whether `element` (one value of a multi-valued complex attribute, or a
// single complex value) matches `filter`, a bracket filter whose paths name
// sub-attributes of `attribute`.
bool matches_element(const Filter& filter, const nlohmann::json& element,
                     const AttributeDef* attribute);

}  // namespace orgsync::scim
