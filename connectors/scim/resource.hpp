#pragma once

// SCIM resources as the server keeps them in the source mirror (DESIGN §2):
// a User or Group is stored whole, as canonical JSON, in the mirrored
// record's `attributes`; the record's other fields (address, display name,
// active, a group's name and members) are derived from it for the sync
// pipeline. A User's `groups` and a Group's `members` are not kept in the
// JSON: the mirror's membership rows are the one record of them.

#include <expected>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/scim/error.hpp"
#include "connectors/scim/patch.hpp"
#include "connectors/scim/schema.hpp"
#include "directory/store.hpp"

namespace orgsync::scim {

// A POST or PUT body as the resource to store, without id and meta (the
// service stamps those): attribute names in canonical spelling, extension
// attributes under their URN, bare complex values (`"manager": "id"`) and
// string booleans converted, exactly as a path-less PATCH would write them.
// Read-only attributes (id, meta, a User's groups) and the write-only
// password are dropped, as are attributes the schemas do not define
// (RFC 7644 §3.3 lets a server ignore them). Errors: invalid_syntax when the
// body is not an object or its `schemas` lack the resource's core schema;
// invalid_value for a wrong type or a missing required attribute; too_many
// past `limits`.
std::expected<nlohmann::json, ScimError> normalize_resource(const nlohmann::json& body,
                                                            const ResourceRules& rules,
                                                            const PatchLimits& limits);

// Whether a resource (normalized or patched) can be stored: a User needs a
// non-empty string userName, a Group a non-empty string displayName, and
// `active`, when present, must be a boolean.
std::expected<void, ScimError> check_resource(const nlohmann::json& resource,
                                              const ResourceRules& rules);

// The address the pipeline maps a SCIM user by: the primary email, else the
// work email, else the first, else the userName.
std::string user_email(const nlohmann::json& user);

// The mirror records for a resource that has its id and meta. A group's
// `members` become its member ids and are left out of its attributes.
directory::SourceUser to_source_user(std::string_view source, const nlohmann::json& user);
directory::SourceGroup to_source_group(std::string_view source, const nlohmann::json& group);

// The resource of a mirrored record: its attributes, and for a group, when
// `with_members`, its members as `{"value": id}`.
nlohmann::json user_resource(const directory::SourceUser& user);
nlohmann::json group_resource(const directory::SourceGroup& group, bool with_members);

// A stored resource as returned, without building a JSON document of it:
// the stored text (canonical JSON, as to_source_user wrote it) with
// `meta_member` appended to its top-level "meta" object and, when not
// empty, `top_member` appended to the resource; each is a `"name":value`
// text. nullopt when the text is not an object with an object "meta", or
// already has a top-level `top_member_name`: the caller then takes the
// document path (user_resource, located, project).
std::optional<std::string> splice_stored(std::string_view stored, std::string_view meta_member,
                                         std::string_view top_member,
                                         std::string_view top_member_name);

// The member ids a Group resource lists, each once, in order.
std::vector<std::string> member_ids(const nlohmann::json& group);

// `attributes` / `excludedAttributes` (RFC 7644 §3.9): comma-separated
// attribute paths, optionally URN-prefixed, optionally with a
// sub-attribute. `id` and `schemas` are always returned.
struct Projection {
    std::vector<std::string> attributes;  // when not empty, only these
    std::vector<std::string> excluded;

    static Projection parse(std::string_view attributes, std::string_view excluded);
    // Whether the top-level attribute `name` (canonical) is returned at all.
    bool returns(const ResourceRules& rules, std::string_view name) const;
};
nlohmann::json project(nlohmann::json resource, const Projection& projection,
                       const ResourceRules& rules);

}  // namespace orgsync::scim
