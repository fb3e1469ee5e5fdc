#include "connectors/scim/resource.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

namespace orgsync::scim {
namespace {

using nlohmann::json;

std::unexpected<ScimError> error(ScimType type, std::string message) {
    return std::unexpected(ScimError{type, std::move(message)});
}

bool is_urn(std::string_view text) {
    return text.size() > 4 && iequals(text.substr(0, 4), "urn:");
}

bool lists_schema(const json& schemas, std::string_view urn) {
    return std::any_of(schemas.begin(), schemas.end(), [&](const json& schema) {
        return schema.is_string() && iequals(schema.get_ref<const std::string&>(), urn);
    });
}

// `[urn:]name[.sub]` resolved in `rules` (a null attribute when unknown).
ResolvedAttribute resolve_path(const ResourceRules& rules, std::string_view path) {
    std::string_view urn;
    std::string_view name = path;
    if (is_urn(path)) {
        auto colon = path.rfind(':');
        urn = path.substr(0, colon);
        name = path.substr(colon + 1);
    }
    auto dot = name.find('.');
    std::string_view sub =
        dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
    return resolve_attribute(rules, urn, name.substr(0, dot), sub);
}

// Whether `key`, a top-level key of a request body, names something the
// resource type defines that a client may write.
bool writable_key(const ResourceRules& rules, std::string_view key) {
    if (find_extension(rules, key) != nullptr) {
        return true;
    }
    const ResolvedAttribute resolved = resolve_path(rules, key);
    if (resolved.attribute == nullptr) {
        return false;
    }
    const Mutability mutability = resolved.attribute->mutability;
    return mutability != Mutability::read_only && mutability != Mutability::write_only &&
           resolved.attribute->name != "schemas";
}

const json* find_key(const json& object, std::string_view name) {
    if (!object.is_object()) {
        return nullptr;
    }
    auto it = object.find(name);
    return it == object.end() ? nullptr : &*it;
}

// Where one projection path points in a resource.
struct Located {
    std::string container;  // "" for the resource itself, else an extension URN
    std::string name;       // canonical attribute; empty for a whole extension
    std::string sub;        // canonical sub-attribute, or empty
};

std::optional<Located> locate(const ResourceRules& rules, std::string_view path) {
    if (const SchemaDef* extension = find_extension(rules, path)) {
        return Located{std::string(extension->urn), "", ""};
    }
    const ResolvedAttribute resolved = resolve_path(rules, path);
    if (resolved.attribute == nullptr) {
        return std::nullopt;
    }
    return Located{resolved.in_extension ? std::string(resolved.schema->urn) : std::string(),
                   std::string(resolved.attribute->name),
                   resolved.sub_attribute ? std::string(resolved.sub_attribute->name) : ""};
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> items;
    while (!text.empty()) {
        auto comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        while (!item.empty() && item.front() == ' ') {
            item.remove_prefix(1);
        }
        while (!item.empty() && item.back() == ' ') {
            item.remove_suffix(1);
        }
        if (!item.empty()) {
            items.emplace_back(item);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        text.remove_prefix(comma + 1);
    }
    return items;
}

// Keeps only `sub` in a complex value, or in each element of a multi-valued one.
json only_sub(const json& value, const std::string& sub) {
    auto keep = [&](const json& element) {
        json kept = json::object();
        if (const json* found = find_key(element, sub)) {
            kept[sub] = *found;
        }
        return kept;
    };
    if (value.is_array()) {
        json kept = json::array();
        for (const auto& element : value) {
            kept.push_back(keep(element));
        }
        return kept;
    }
    return keep(value);
}

}  // namespace

std::expected<json, ScimError> normalize_resource(const json& body, const ResourceRules& rules,
                                                  const PatchLimits& limits) {
    if (!body.is_object()) {
        return error(ScimType::invalid_syntax,
                     fmt::format("the body must be a JSON object (a {})", rules.name));
    }
    if (const json* schemas = find_key(body, "schemas")) {
        if (!schemas->is_array() || !lists_schema(*schemas, rules.core.urn)) {
            return error(ScimType::invalid_syntax,
                         fmt::format("\"schemas\" must list {}", rules.core.urn));
        }
    }
    json value = json::object();
    for (const auto& [key, item] : body.items()) {
        if (writable_key(rules, key)) {
            value[key] = item;
        }
    }
    json resource = {{"schemas", json::array({rules.core.urn})}};
    if (!value.empty()) {
        json request = {
            {"schemas", json::array({k_patch_op_schema})},
            {"Operations", json::array({{{"op", "replace"}, {"value", std::move(value)}}})}};
        auto patched = apply_patch(std::move(resource), request, rules, limits);
        if (!patched) {
            // The client sent a resource, not a PATCH: say so in its terms.
            ScimError failure = patched.error();
            if (failure.type == ScimType::invalid_syntax || failure.type == ScimType::no_target ||
                failure.type == ScimType::invalid_path) {
                failure.type = ScimType::invalid_value;
            }
            return std::unexpected(std::move(failure));
        }
        resource = std::move(*patched);
    }
    if (auto checked = check_resource(resource, rules); !checked) {
        return std::unexpected(checked.error());
    }
    return resource;
}

std::expected<void, ScimError> check_resource(const json& resource, const ResourceRules& rules) {
    const std::string_view required = rules.name == "User" ? "userName" : "displayName";
    const json* value = find_key(resource, required);
    if (value == nullptr || !value->is_string() || value->get_ref<const std::string&>().empty()) {
        return error(ScimType::invalid_value,
                     fmt::format("{} needs a non-empty string \"{}\"", rules.name, required));
    }
    if (const json* active = find_key(resource, "active");
        active != nullptr && !active->is_null() && !active->is_boolean()) {
        return error(ScimType::invalid_value, "\"active\" must be a boolean");
    }
    return {};
}

std::string user_email(const json& user) {
    const json* emails = find_key(user, "emails");
    if (emails != nullptr && emails->is_array()) {
        const json* chosen = nullptr;
        int rank = 0;  // 3 primary, 2 work, 1 any
        for (const auto& email : *emails) {
            const json* value = find_key(email, "value");
            if (value == nullptr || !value->is_string() ||
                value->get_ref<const std::string&>().empty()) {
                continue;
            }
            const json* primary = find_key(email, "primary");
            const json* type = find_key(email, "type");
            int here = primary != nullptr && primary->is_boolean() && primary->get<bool>() ? 3
                       : type != nullptr && type->is_string() &&
                               iequals(type->get_ref<const std::string&>(), "work")
                           ? 2
                           : 1;
            if (here > rank) {
                rank = here;
                chosen = value;
            }
        }
        if (chosen != nullptr) {
            return chosen->get<std::string>();
        }
    }
    const json* user_name = find_key(user, "userName");
    return user_name != nullptr && user_name->is_string() ? user_name->get<std::string>() : "";
}

directory::SourceUser to_source_user(std::string_view source, const json& user) {
    directory::SourceUser record;
    record.source = std::string(source);
    record.external_id = user.at("id").get<std::string>();
    record.email = user_email(user);
    if (const json* display = find_key(user, "displayName"); display && display->is_string()) {
        record.display_name = display->get<std::string>();
    } else if (const json* name = find_key(user, "name")) {
        const json* formatted = find_key(*name, "formatted");
        const json* given = find_key(*name, "givenName");
        const json* family = find_key(*name, "familyName");
        if (formatted != nullptr && formatted->is_string()) {
            record.display_name = formatted->get<std::string>();
        } else {
            std::string parts;
            for (const json* part : {given, family}) {
                if (part == nullptr || !part->is_string() ||
                    part->get_ref<const std::string&>().empty()) {
                    continue;
                }
                if (!parts.empty()) {
                    parts += ' ';
                }
                parts += part->get_ref<const std::string&>();
            }
            record.display_name = std::move(parts);
        }
    }
    const json* active = find_key(user, "active");
    record.active = active == nullptr || !active->is_boolean() || active->get<bool>();
    record.attributes = user.dump();
    return record;
}

std::vector<std::string> member_ids(const json& group) {
    std::vector<std::string> ids;
    std::unordered_set<std::string> seen;
    const json* members = find_key(group, "members");
    if (members == nullptr || !members->is_array()) {
        return ids;
    }
    for (const auto& member : *members) {
        const json* value = find_key(member, "value");
        if (value != nullptr && value->is_string() &&
            seen.insert(value->get<std::string>()).second) {
            ids.push_back(value->get<std::string>());
        }
    }
    return ids;
}

directory::SourceGroup to_source_group(std::string_view source, const json& group) {
    directory::SourceGroup record;
    record.source = std::string(source);
    record.external_id = group.at("id").get<std::string>();
    record.name = group.at("displayName").get<std::string>();
    record.member_ids = member_ids(group);
    json attributes = group;
    attributes.erase("members");
    record.attributes = attributes.dump();
    return record;
}

json user_resource(const directory::SourceUser& user) {
    return json::parse(user.attributes);
}

std::optional<std::string> splice_stored(std::string_view stored, std::string_view meta_member,
                                         std::string_view top_member,
                                         std::string_view top_member_name) {
    // One pass over the text, tracking only what the splice needs: the
    // nesting depth, strings (their quotes and escapes), the last key seen
    // at the top level, and where the top-level "meta" object and the
    // resource close.
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    std::size_t string_start = 0;
    std::string_view pending;  // a top-level string that may be a key
    std::string_view key;      // the top-level key whose value is being read
    bool meta_value = false;   // inside the top-level "meta" object
    std::size_t meta_close = std::string_view::npos;
    std::size_t top_close = std::string_view::npos;
    for (std::size_t i = 0; i < stored.size(); ++i) {
        const char c = stored[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
                if (depth == 1) {
                    pending = stored.substr(string_start, i - string_start);
                }
            }
            continue;
        }
        switch (c) {
            case '"':
                in_string = true;
                string_start = i + 1;
                break;
            case ':':
                if (depth == 1) {
                    key = pending;
                    if (!top_member_name.empty() && key == top_member_name) {
                        return std::nullopt;
                    }
                }
                break;
            case '{':
            case '[':
                if (depth == 0 && c != '{') {
                    return std::nullopt;
                }
                if (depth == 1 && c == '{' && key == "meta") {
                    meta_value = true;
                }
                ++depth;
                break;
            case '}':
            case ']':
                --depth;
                if (depth == 1 && meta_value && c == '}') {
                    meta_close = i;
                    meta_value = false;
                } else if (depth == 0) {
                    top_close = i;
                }
                break;
            default:
                break;
        }
        if (depth < 0 || top_close != std::string_view::npos) {
            break;
        }
    }
    if (in_string || depth != 0 || meta_close == std::string_view::npos ||
        top_close == std::string_view::npos) {
        return std::nullopt;
    }
    auto opens_empty = [&](std::size_t close) {
        std::size_t before = close;
        while (before > 0 && (stored[before - 1] == ' ' || stored[before - 1] == '\n' ||
                              stored[before - 1] == '\t' || stored[before - 1] == '\r')) {
            --before;
        }
        return before > 0 && stored[before - 1] == '{';
    };
    std::string out;
    out.reserve(stored.size() + meta_member.size() + top_member.size() + 2);
    out.append(stored.substr(0, meta_close));
    if (!opens_empty(meta_close)) {
        out += ',';
    }
    out.append(meta_member);
    out.append(stored.substr(meta_close, top_close - meta_close));
    if (!top_member.empty()) {
        out += ',';
        out.append(top_member);
    }
    out.append(stored.substr(top_close));
    return out;
}

json group_resource(const directory::SourceGroup& group, bool with_members) {
    json resource = json::parse(group.attributes);
    if (with_members) {
        json members = json::array();
        for (const auto& id : group.member_ids) {
            members.push_back({{"value", id}});
        }
        resource["members"] = std::move(members);
    }
    return resource;
}

Projection Projection::parse(std::string_view attributes, std::string_view excluded) {
    return Projection{split_list(attributes), split_list(excluded)};
}

bool Projection::returns(const ResourceRules& rules, std::string_view name) const {
    auto names = [&](const std::string& path) {
        auto located = locate(rules, path);
        return located && located->container.empty() && located->name == name;
    };
    if (!attributes.empty()) {
        return std::any_of(attributes.begin(), attributes.end(), names);
    }
    return std::none_of(excluded.begin(), excluded.end(), [&](const std::string& path) {
        auto located = locate(rules, path);
        return located && located->container.empty() && located->name == name &&
               located->sub.empty();
    });
}

json project(json resource, const Projection& projection, const ResourceRules& rules) {
    if (projection.attributes.empty() && projection.excluded.empty()) {
        return resource;
    }
    if (!projection.attributes.empty()) {
        json out = json::object();
        for (const char* always : {"schemas", "id"}) {
            if (const json* value = find_key(resource, always)) {
                out[always] = *value;
            }
        }
        for (const auto& path : projection.attributes) {
            auto located = locate(rules, path);
            if (!located) {
                continue;
            }
            const json* container =
                located->container.empty() ? &resource : find_key(resource, located->container);
            if (container == nullptr) {
                continue;
            }
            json& target = located->container.empty() ? out : out[located->container];
            if (located->name.empty()) {
                target = *container;
                continue;
            }
            const json* value = find_key(*container, located->name);
            if (value == nullptr) {
                continue;
            }
            if (located->sub.empty()) {
                target[located->name] = *value;
            } else if (!target.contains(located->name) || !target[located->name].is_structured()) {
                target[located->name] = only_sub(*value, located->sub);
            }
        }
        return out;
    }
    json out = std::move(resource);
    for (const auto& path : projection.excluded) {
        auto located = locate(rules, path);
        if (!located || located->name == "id" || located->name == "schemas") {
            continue;
        }
        json* container = located->container.empty() ? &out : nullptr;
        if (!located->container.empty() && out.contains(located->container)) {
            container = &out[located->container];
        }
        if (container == nullptr || !container->is_object()) {
            continue;
        }
        if (located->name.empty()) {
            out.erase(located->container);
        } else if (located->sub.empty()) {
            container->erase(located->name);
        } else if (container->contains(located->name)) {
            json& value = (*container)[located->name];
            if (value.is_array()) {
                for (auto& element : value) {
                    if (element.is_object()) {
                        element.erase(located->sub);
                    }
                }
            } else if (value.is_object()) {
                value.erase(located->sub);
            }
        }
    }
    return out;
}

}  // namespace orgsync::scim
