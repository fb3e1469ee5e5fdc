#pragma once

// SCIM PATCH (RFC 7644 §3.5.2) on a User or Group held as JSON, with the
// request shapes Entra ID and Okta actually send:
// - op names in any case ("Add", "Replace", "remove");
// - paths with value filters (`members[value eq "id"]`,
//   `emails[type eq "work"].value`); add or replace through a filter of
//   `eq` terms that matches no element creates one from those terms
//   (`{"type": "work", "value": ...}`);
// - ops without a path whose value object has dotted keys (`name.givenName`),
//   URN-prefixed keys (`urn:...:enterprise:2.0:User:department`) or a whole
//   extension object under its URN;
// - a complex single value given bare (`manager` as "id" for {"value": "id"});
// - `remove` on a multi-valued attribute with a value (Entra's
//   `{"op":"Remove","path":"members","value":[{"value":"id1"}]}`) removes just
//   the listed values;
// - booleans as the strings "True"/"False";
// - readOnly attributes repeated unchanged in a value object (Okta's group
//   rename carries the group's `id`) are ignored.
//
// Attribute names are written in the schema's canonical spelling (`username`
// becomes `userName`; a differently-cased key already in the resource is
// replaced). apply_patch never touches `meta`: stamping lastModified and the
// version is the store's job.

#include <cstddef>
#include <expected>
#include <nlohmann/json.hpp>

#include "connectors/scim/error.hpp"
#include "connectors/scim/filter.hpp"
#include "connectors/scim/schema.hpp"

namespace orgsync::scim {

struct PatchLimits {
    std::size_t max_operations = 1000;  // Operations per request
    std::size_t max_members = 10000;    // member values named across the request
    FilterLimits path_limits;           // each path, and each filter in one
};

// Applies the PatchOp `request` to `resource` (one of the type `rules`
// describes) and returns the patched resource. The request is all or
// nothing: on any error the result is the error alone and the caller's
// resource, passed by value, is unchanged.
//
// Errors:
// - invalid_syntax: not a PatchOp message (not an object, `schemas` without
//   the PatchOp URN, `Operations` missing or empty, an operation without a
//   string `op`);
// - invalid_value: an unknown `op`, add/replace without `value`, a value of
//   the wrong type, an unknown sub-attribute in a value, removing or nulling
//   a required attribute (userName, a Group's displayName);
// - invalid_path: a path that does not parse or names no attribute of the
//   resource type, a filter on a simple attribute;
// - no_target: remove without a path; add/replace through a filter that
//   matches nothing and is not a conjunction of `eq` terms to build from;
// - mutability: any write to id, meta or a User's groups (except repeating
//   the current value in a path-less value), changing an immutable
//   sub-attribute (a member's value);
// - too_many: more than `limits.max_operations` operations or
//   `limits.max_members` member values.
// A remove whose target is absent succeeds and changes nothing. A replace
// with null unassigns the attribute; an add with null changes nothing.
std::expected<nlohmann::json, ScimError> apply_patch(nlohmann::json resource,
                                                     const nlohmann::json& request,
                                                     const ResourceRules& rules,
                                                     const PatchLimits& limits = {});

}  // namespace orgsync::scim
