#include "connectors/scim/patch.hpp"

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgsync::scim {

using nlohmann::json;

namespace {

enum class Op { add, replace, remove };

std::unexpected<ScimError> error(ScimType type, std::string message) {
    return std::unexpected(ScimError{type, std::move(message)});
}

// ---- objects with case-insensitive keys ----

template <typename Json>
Json* find_member_in(Json& object, std::string_view name) {
    if (!object.is_object()) {
        return nullptr;
    }
    if (auto exact = object.find(name); exact != object.end()) {
        return &*exact;
    }
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (iequals(it.key(), name)) {
            return &*it;
        }
    }
    return nullptr;
}

json* find_member(json& object, std::string_view name) {
    return find_member_in(object, name);
}
const json* find_member(const json& object, std::string_view name) {
    return find_member_in(object, name);
}

void erase_member(json& object, std::string_view name) {
    if (!object.is_object()) {
        return;
    }
    for (auto it = object.begin(); it != object.end();) {
        if (iequals(it.key(), name)) {
            it = object.erase(it);
        } else {
            ++it;
        }
    }
}

// The member `canonical` of `object`, created null when absent; keys that
// spell the same name in another case are dropped first, keeping the value.
json& canonical_member(json& object, std::string_view canonical) {
    if (!object.is_object()) {
        object = json::object();
    }
    json kept;
    bool found = false;
    for (auto it = object.begin(); it != object.end();) {
        if (iequals(it.key(), canonical) && it.key() != canonical) {
            if (!found) {
                kept = std::move(*it);
                found = true;
            }
            it = object.erase(it);
        } else {
            ++it;
        }
    }
    json& slot = object[std::string(canonical)];
    if (found && slot.is_null()) {
        slot = std::move(kept);
    }
    return slot;
}

bool non_empty(const json& value) {
    if (value.is_null()) {
        return false;
    }
    if (value.is_string()) {
        return !value.get_ref<const json::string_t&>().empty();
    }
    if (value.is_array() || value.is_object()) {
        for (const auto& part : value) {
            if (non_empty(part)) {
                return true;
            }
        }
        return false;
    }
    return true;
}

std::string_view type_name(const json& value) {
    switch (value.type()) {
        case json::value_t::string:
            return "a string";
        case json::value_t::boolean:
            return "a boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return "a number";
        case json::value_t::array:
            return "an array";
        case json::value_t::object:
            return "an object";
        default:
            return "null";
    }
}

bool is_members(const AttributeDef& attribute) {
    return attribute.name == "members";
}

// ---- values in the schema's types ----

std::expected<json, ScimError> coerce(const AttributeDef& def, const json& value,
                                      std::string_view where);

std::expected<json, ScimError> coerce_simple(const AttributeDef& def, const json& value,
                                             std::string_view where) {
    auto wrong = [&](std::string_view wanted) {
        return error(ScimType::invalid_value,
                     fmt::format("{}: expected {}, got {}", where, wanted, type_name(value)));
    };
    switch (def.type) {
        case AttributeType::boolean:
            if (value.is_boolean()) {
                return value;
            }
            // Entra ID sends "True" and "False".
            if (value.is_string()) {
                const auto& text = value.get_ref<const json::string_t&>();
                if (iequals(text, "true")) {
                    return json(true);
                }
                if (iequals(text, "false")) {
                    return json(false);
                }
            }
            return wrong("a boolean");
        case AttributeType::integer:
            if (value.is_number_integer()) {
                return value;
            }
            return wrong("an integer");
        case AttributeType::decimal:
            if (value.is_number()) {
                return value;
            }
            return wrong("a number");
        case AttributeType::string:
        case AttributeType::date_time:
        case AttributeType::reference:
            if (value.is_string()) {
                return value;
            }
            return wrong("a string");
        case AttributeType::complex:
            break;
    }
    return wrong("a simple value");
}

// A complex value: keys in canonical spelling, nulls and readOnly
// sub-attributes dropped; a bare simple value stands for {"value": ...}
// (Entra ID sends `manager` as the manager's id).
std::expected<json, ScimError> coerce_complex(const AttributeDef& def, const json& value,
                                              std::string_view where) {
    if (!value.is_object()) {
        if (value.is_array() || find_sub_attribute(def, "value") == nullptr) {
            return error(ScimType::invalid_value,
                         fmt::format("{}: expected an object, got {}", where, type_name(value)));
        }
        return coerce_complex(def, json{{"value", value}}, where);
    }
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) {
        const AttributeDef* sub = find_sub_attribute(def, it.key());
        if (sub == nullptr) {
            return error(ScimType::invalid_value,
                         fmt::format("{}: unknown sub-attribute \"{}\"", where, it.key()));
        }
        if (it->is_null() || sub->mutability == Mutability::read_only) {
            continue;
        }
        auto coerced = coerce_simple(*sub, *it, fmt::format("{}.{}", where, sub->name));
        if (!coerced) {
            return coerced;
        }
        out[std::string(sub->name)] = std::move(*coerced);
    }
    return out;
}

// One value of `def` (one element when multi-valued).
std::expected<json, ScimError> coerce(const AttributeDef& def, const json& value,
                                      std::string_view where) {
    return def.type == AttributeType::complex ? coerce_complex(def, value, where)
                                              : coerce_simple(def, value, where);
}

// The values of a multi-valued attribute: an array, or one value.
std::expected<json, ScimError> coerce_multi(const AttributeDef& def, const json& value,
                                            std::string_view where) {
    json out = json::array();
    auto add = [&](const json& element) -> std::expected<void, ScimError> {
        if (element.is_null()) {
            return {};
        }
        auto coerced = coerce(def, element, where);
        if (!coerced) {
            return std::unexpected(coerced.error());
        }
        out.push_back(std::move(*coerced));
        return {};
    };
    if (value.is_array()) {
        for (const auto& element : value) {
            if (auto ok = add(element); !ok) {
                return std::unexpected(ok.error());
            }
        }
    } else if (auto ok = add(value); !ok) {
        return std::unexpected(ok.error());
    }
    return out;
}

bool string_equal(const json& a, const json& b, bool case_exact) {
    if (a.is_string() && b.is_string()) {
        return case_exact ? a == b
                          : iequals(a.get_ref<const json::string_t&>(),
                                    b.get_ref<const json::string_t&>());
    }
    return a == b;
}

// Whether `existing` is the value `given` names: members by their `value`
// (an id), other elements when every sub-attribute `given` states is equal.
bool same_element(const AttributeDef& def, const json& existing, const json& given) {
    if (!existing.is_object() || !given.is_object()) {
        return existing == given;
    }
    const json* given_value = find_member(given, "value");
    if (is_members(def)) {
        const json* existing_value = find_member(existing, "value");
        return given_value != nullptr && existing_value != nullptr &&
               *given_value == *existing_value;
    }
    if (given.empty()) {
        return false;
    }
    for (auto it = given.begin(); it != given.end(); ++it) {
        const json* other = find_member(existing, it.key());
        const AttributeDef* sub = find_sub_attribute(def, it.key());
        if (other == nullptr || !string_equal(*other, *it, sub != nullptr && sub->case_exact)) {
            return false;
        }
    }
    return true;
}

// RFC 7643 §2.4: at most one value is primary; the one just written wins.
void keep_one_primary(json& elements, const std::vector<std::size_t>& written) {
    std::optional<std::size_t> winner;
    for (std::size_t index : written) {
        if (index < elements.size() && elements[index].is_object()) {
            if (const json* primary = find_member(elements[index], "primary");
                primary != nullptr && primary->is_boolean() && primary->get<bool>()) {
                winner = index;
            }
        }
    }
    if (!winner) {
        return;
    }
    for (std::size_t i = 0; i < elements.size(); ++i) {
        if (i == *winner || !elements[i].is_object()) {
            continue;
        }
        if (json* primary = find_member(elements[i], "primary");
            primary != nullptr && primary->is_boolean() && primary->get<bool>()) {
            *primary = false;
        }
    }
}

// The element a filter of `eq` terms describes, e.g. `type eq "work"`
// gives {"type": "work"}; nullopt when the filter says anything else.
std::optional<json> element_from_filter(const AttributeDef& def, const Filter& filter) {
    json element = json::object();
    std::vector<const Filter*> terms;
    if (filter.kind == Filter::Kind::logical_and) {
        for (const auto& child : filter.children) {
            terms.push_back(&child);
        }
    } else {
        terms.push_back(&filter);
    }
    for (const Filter* term : terms) {
        if (term->kind != Filter::Kind::compare || term->op != CompareOp::eq ||
            term->value.is_null()) {
            return std::nullopt;
        }
        const AttributeDef* sub = find_sub_attribute(def, term->path.name);
        if (sub == nullptr) {
            return std::nullopt;
        }
        auto coerced = coerce_simple(*sub, term->value, sub->name);
        if (!coerced) {
            return std::nullopt;
        }
        element[std::string(sub->name)] = std::move(*coerced);
    }
    return element;
}

// Where an operation lands.
struct Target {
    const SchemaDef* schema = nullptr;
    bool in_extension = false;
    const AttributeDef* attribute = nullptr;   // null: the whole extension object
    const AttributeDef* sub = nullptr;         // `attr.sub`
    const Filter* filter = nullptr;            // `attr[filter]`
    const AttributeDef* filter_sub = nullptr;  // `attr[filter].sub`
    std::string label;                         // for messages
};

class Patcher {
  public:
    Patcher(json& resource, const ResourceRules& rules, const PatchLimits& limits)
        : m_resource(resource), m_rules(rules), m_limits(limits) {}

    std::expected<void, ScimError> apply(const json& operation, std::size_t index) {
        const std::string where = fmt::format("Operations[{}]", index);
        if (!operation.is_object()) {
            return error(ScimType::invalid_syntax, where + ": expected an object");
        }
        const json* op_name = find_member(operation, "op");
        if (op_name == nullptr || !op_name->is_string()) {
            return error(ScimType::invalid_syntax, where + ": \"op\" must be a string");
        }
        Op op;
        const auto& name = op_name->get_ref<const json::string_t&>();
        if (iequals(name, "add")) {
            op = Op::add;
        } else if (iequals(name, "replace")) {
            op = Op::replace;
        } else if (iequals(name, "remove")) {
            op = Op::remove;
        } else {
            return error(ScimType::invalid_value,
                         where + ": \"op\" must be \"add\", \"replace\" or \"remove\"");
        }
        const json* path = find_member(operation, "path");
        const json* value = find_member(operation, "value");
        if (path != nullptr && !path->is_null() && !path->is_string()) {
            return error(ScimType::invalid_path, where + ": \"path\" must be a string");
        }
        const bool has_path =
            path != nullptr && path->is_string() && !path->get_ref<const json::string_t&>().empty();
        if (op != Op::remove && value == nullptr) {
            return error(ScimType::invalid_value, where + ": add and replace need a \"value\"");
        }
        if (!has_path) {
            if (op == Op::remove) {
                return error(ScimType::no_target, where + ": remove needs a \"path\"");
            }
            return apply_without_path(op, *value, where);
        }
        auto target = resolve(path->get<std::string>(), where);
        if (!target) {
            return std::unexpected(target.error());
        }
        return apply_to(op, *target, value, false);
    }

  private:
    json& m_resource;
    const ResourceRules& m_rules;
    const PatchLimits& m_limits;
    std::size_t m_members = 0;                       // named so far, for max_members
    std::vector<std::unique_ptr<Filter>> m_filters;  // the filters Targets point to

    std::expected<void, ScimError> count_members(const Target& target, std::size_t count) {
        if (target.attribute == nullptr || !is_members(*target.attribute)) {
            return {};
        }
        m_members += count;
        if (m_members > m_limits.max_members) {
            return error(ScimType::too_many,
                         fmt::format("more than {} members in one request", m_limits.max_members));
        }
        return {};
    }

    std::expected<Target, ScimError> resolve(const std::string& text, std::string_view where) {
        auto parsed = parse_patch_path(text, m_limits.path_limits);
        if (!parsed) {
            return error(ScimType::invalid_path,
                         fmt::format("{}: path: {}", where, parsed.error().message));
        }
        const AttrPath& path = parsed->attribute;
        Target target;
        target.label = to_string(path);
        // The path is an extension's URN: its whole object.
        if (!path.schema.empty() && path.sub.empty() && !parsed->filter) {
            if (const SchemaDef* extension =
                    find_extension(m_rules, fmt::format("{}:{}", path.schema, path.name))) {
                target.schema = extension;
                target.in_extension = true;
                return target;
            }
        }
        const ResolvedAttribute resolved =
            resolve_attribute(m_rules, path.schema, path.name, path.sub);
        if (resolved.attribute == nullptr) {
            return error(ScimType::invalid_path, fmt::format("{}: {} has no attribute \"{}\"",
                                                             where, m_rules.name, target.label));
        }
        target.schema = resolved.schema;
        target.in_extension = resolved.in_extension;
        target.attribute = resolved.attribute;
        target.sub = resolved.sub_attribute;
        if (parsed->filter) {
            if (resolved.attribute->type != AttributeType::complex) {
                return error(ScimType::invalid_path,
                             fmt::format("{}: {} is not complex and takes no filter", where,
                                         resolved.attribute->name));
            }
            m_filters.push_back(std::make_unique<Filter>(std::move(*parsed->filter)));
            target.filter = m_filters.back().get();
            if (!parsed->sub_attribute.empty()) {
                target.filter_sub = find_sub_attribute(*resolved.attribute, parsed->sub_attribute);
                if (target.filter_sub == nullptr) {
                    return error(ScimType::invalid_path,
                                 fmt::format("{}: {} has no sub-attribute \"{}\"", where,
                                             resolved.attribute->name, parsed->sub_attribute));
                }
            }
        }
        if (target.sub != nullptr || target.filter_sub != nullptr) {
            target.label =
                fmt::format("{}.{}", resolved.attribute->name,
                            (target.sub != nullptr ? target.sub : target.filter_sub)->name);
        } else {
            target.label = std::string(resolved.attribute->name);
        }
        return target;
    }

    // The object holding the target's attribute: the resource, or the
    // extension's object (created, and its URN listed in `schemas`, when
    // `create`).
    json* container(const Target& target, bool create) {
        if (!target.in_extension) {
            return &m_resource;
        }
        json* found = find_member(m_resource, target.schema->urn);
        if (found != nullptr && found->is_object()) {
            if (create) {
                return &canonical_member(m_resource, target.schema->urn);
            }
            return found;
        }
        if (!create) {
            return nullptr;
        }
        json& object = canonical_member(m_resource, target.schema->urn);
        object = json::object();
        json& schemas = canonical_member(m_resource, "schemas");
        if (!schemas.is_array()) {
            schemas = json::array({m_rules.core.urn});
        }
        bool listed = false;
        for (const auto& urn : schemas) {
            listed =
                listed || (urn.is_string() && iequals(urn.get<std::string>(), target.schema->urn));
        }
        if (!listed) {
            schemas.push_back(target.schema->urn);
        }
        return &canonical_member(m_resource, target.schema->urn);
    }

    // Drops an extension object left empty, and its URN from `schemas`.
    void tidy_extension(const Target& target) {
        if (!target.in_extension) {
            return;
        }
        const json* object = find_member(m_resource, target.schema->urn);
        if (object != nullptr && !non_empty(*object)) {
            drop_extension(*target.schema);
        }
    }

    void drop_extension(const SchemaDef& extension) {
        erase_member(m_resource, extension.urn);
        json* schemas = find_member(m_resource, "schemas");
        if (schemas == nullptr || !schemas->is_array()) {
            return;
        }
        json kept = json::array();
        for (auto& urn : *schemas) {
            if (!(urn.is_string() && iequals(urn.get<std::string>(), extension.urn))) {
                kept.push_back(std::move(urn));
            }
        }
        *schemas = std::move(kept);
    }

    std::expected<void, ScimError> apply_without_path(Op op, const json& value,
                                                      std::string_view where) {
        if (!value.is_object()) {
            return error(
                ScimType::invalid_value,
                fmt::format("{}: without a path, \"value\" must be an object of attributes",
                            where));
        }
        for (auto it = value.begin(); it != value.end(); ++it) {
            if (iequals(it.key(), "schemas")) {
                continue;
            }
            auto target = resolve(it.key(), where);
            if (!target) {
                return std::unexpected(target.error());
            }
            if (auto ok = apply_to(op, *target, &*it, true); !ok) {
                return ok;
            }
        }
        return {};
    }

    std::expected<void, ScimError> apply_to(Op op, const Target& target, const json* value,
                                            bool in_value_object) {
        if (target.attribute == nullptr) {
            return apply_to_extension(op, target, value);
        }
        const AttributeDef& attribute = *target.attribute;
        if (attribute.mutability == Mutability::read_only) {
            // Okta's group rename repeats the group's id in the value.
            if (in_value_object && target.sub == nullptr && target.filter == nullptr) {
                const json* where = container(target, false);
                const json* current =
                    where != nullptr ? find_member(*where, attribute.name) : nullptr;
                if (current != nullptr && value != nullptr && *current == *value) {
                    return {};
                }
            }
            return error(ScimType::mutability, fmt::format("{} is read-only", attribute.name));
        }
        if (op == Op::add && value != nullptr && value->is_null()) {
            return {};  // nothing to add; never read as "remove all"
        }
        if (op == Op::remove || value == nullptr || value->is_null()) {
            return remove(target, op == Op::remove ? value : nullptr);
        }
        if (target.filter != nullptr) {
            return write_filtered(target, *value);
        }
        if (target.sub != nullptr) {
            return write_sub(target, *value);
        }
        return write_whole(op, target, *value);
    }

    std::expected<void, ScimError> apply_to_extension(Op op, const Target& target,
                                                      const json* value) {
        if (op == Op::add && value != nullptr && value->is_null()) {
            return {};
        }
        if (op == Op::remove || value == nullptr || value->is_null()) {
            drop_extension(*target.schema);
            return {};
        }
        if (!value->is_object()) {
            return error(ScimType::invalid_value,
                         fmt::format("{}: expected an object", target.schema->urn));
        }
        for (auto it = value->begin(); it != value->end(); ++it) {
            auto inner =
                resolve(fmt::format("{}:{}", target.schema->urn, it.key()), target.schema->urn);
            if (!inner) {
                return std::unexpected(inner.error());
            }
            if (auto ok = apply_to(op, *inner, &*it, true); !ok) {
                return ok;
            }
        }
        return {};
    }

    std::expected<void, ScimError> check_immutable(const AttributeDef& sub, const json* existing,
                                                   const json* replacement) {
        if (sub.mutability != Mutability::immutable || existing == nullptr || existing->is_null() ||
            (replacement != nullptr && *existing == *replacement)) {
            return {};
        }
        return error(ScimType::mutability, fmt::format("{} cannot be changed once set", sub.name));
    }

    // add/replace of a whole attribute.
    std::expected<void, ScimError> write_whole(Op op, const Target& target, const json& value) {
        const AttributeDef& attribute = *target.attribute;
        json& object = *container(target, true);
        if (!attribute.multi_valued) {
            auto coerced = coerce(attribute, value, attribute.name);
            if (!coerced) {
                return std::unexpected(coerced.error());
            }
            json& slot = canonical_member(object, attribute.name);
            if (attribute.type == AttributeType::complex && slot.is_object()) {
                // RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not given stay.
                for (auto it = coerced->begin(); it != coerced->end(); ++it) {
                    canonical_member(slot, it.key()) = *it;
                }
            } else {
                slot = std::move(*coerced);
            }
            if (attribute.type == AttributeType::complex && !non_empty(slot)) {
                erase_member(object, attribute.name);
            }
            return {};
        }
        auto coerced = coerce_multi(attribute, value, attribute.name);
        if (!coerced) {
            return std::unexpected(coerced.error());
        }
        if (auto ok = count_members(target, coerced->size()); !ok) {
            return ok;
        }
        json& slot = canonical_member(object, attribute.name);
        if (op == Op::replace || !slot.is_array()) {
            slot = json::array();
        }
        std::vector<std::size_t> written;
        for (auto& element : *coerced) {
            if (is_members(attribute)) {
                const json* id = find_member(element, "value");
                if (id == nullptr || !id->is_string() || id->get<std::string>().empty()) {
                    return error(ScimType::invalid_value, "members: each member needs a \"value\"");
                }
            }
            bool duplicate = false;
            for (std::size_t i = 0; i < slot.size(); ++i) {
                if (same_element(attribute, slot[i], element)) {
                    duplicate = true;
                    if (element.is_object()) {
                        for (auto it = element.begin(); it != element.end(); ++it) {
                            canonical_member(slot[i], it.key()) = *it;
                        }
                    }
                    written.push_back(i);
                    break;
                }
            }
            if (!duplicate) {
                slot.push_back(std::move(element));
                written.push_back(slot.size() - 1);
            }
        }
        keep_one_primary(slot, written);
        if (slot.empty()) {
            erase_member(object, attribute.name);
        }
        return {};
    }

    // add/replace of `attr.sub`.
    std::expected<void, ScimError> write_sub(const Target& target, const json& value) {
        const AttributeDef& attribute = *target.attribute;
        const AttributeDef& sub = *target.sub;
        if (sub.mutability == Mutability::read_only) {
            return error(ScimType::mutability, fmt::format("{} is read-only", target.label));
        }
        auto coerced = coerce_simple(sub, value, target.label);
        if (!coerced) {
            return std::unexpected(coerced.error());
        }
        json& object = *container(target, true);
        json& slot = canonical_member(object, attribute.name);
        if (!attribute.multi_valued) {
            if (!slot.is_object()) {
                slot = json::object();
            }
            json& field = canonical_member(slot, sub.name);
            if (auto ok = check_immutable(sub, &field, &*coerced); !ok) {
                return ok;
            }
            field = std::move(*coerced);
            return {};
        }
        // Every value's sub-attribute; a first value when there is none.
        if (!slot.is_array() || slot.empty()) {
            slot = json::array({json{{std::string(sub.name), std::move(*coerced)}}});
            return count_members(target, 1);
        }
        for (auto& element : slot) {
            if (!element.is_object()) {
                continue;
            }
            json& field = canonical_member(element, sub.name);
            if (auto ok = check_immutable(sub, &field, &*coerced); !ok) {
                return ok;
            }
            field = *coerced;
        }
        if (sub.name == "primary") {
            // Every value primary cannot be; RFC 7643 §2.4 allows one.
            std::vector<std::size_t> last{slot.size() - 1};
            keep_one_primary(slot, last);
        }
        return {};
    }

    // add/replace through `attr[filter]` or `attr[filter].sub`.
    std::expected<void, ScimError> write_filtered(const Target& target, const json& value) {
        const AttributeDef& attribute = *target.attribute;
        json replacement;
        if (target.filter_sub != nullptr) {
            if (target.filter_sub->mutability == Mutability::read_only) {
                return error(ScimType::mutability, fmt::format("{} is read-only", target.label));
            }
            auto coerced = coerce_simple(*target.filter_sub, value, target.label);
            if (!coerced) {
                return std::unexpected(coerced.error());
            }
            replacement = std::move(*coerced);
        } else {
            auto coerced = coerce_complex(attribute, value, attribute.name);
            if (!coerced) {
                return std::unexpected(coerced.error());
            }
            replacement = std::move(*coerced);
        }
        if (auto ok = count_members(target, 1); !ok) {
            return ok;
        }
        json& object = *container(target, true);
        json& slot = canonical_member(object, attribute.name);
        auto write_into = [&](json& element) -> std::expected<void, ScimError> {
            if (target.filter_sub != nullptr) {
                json& field = canonical_member(element, target.filter_sub->name);
                if (auto ok = check_immutable(*target.filter_sub, &field, &replacement); !ok) {
                    return ok;
                }
                field = replacement;
                return {};
            }
            for (auto it = replacement.begin(); it != replacement.end(); ++it) {
                json& field = canonical_member(element, it.key());
                if (const AttributeDef* sub = find_sub_attribute(attribute, it.key())) {
                    if (auto ok = check_immutable(*sub, &field, &*it); !ok) {
                        return ok;
                    }
                }
                field = *it;
            }
            return {};
        };
        if (!attribute.multi_valued) {
            if (slot.is_object() && matches_element(*target.filter, slot, &attribute)) {
                return write_into(slot);
            }
            if (slot.is_null()) {
                erase_member(object, attribute.name);
            }
            return error(ScimType::no_target,
                         fmt::format("no value of {} matches the filter", attribute.name));
        }
        if (!slot.is_array()) {
            slot = json::array();
        }
        std::vector<std::size_t> written;
        for (std::size_t i = 0; i < slot.size(); ++i) {
            if (slot[i].is_object() && matches_element(*target.filter, slot[i], &attribute)) {
                if (auto ok = write_into(slot[i]); !ok) {
                    return ok;
                }
                written.push_back(i);
            }
        }
        if (written.empty()) {
            // Entra ID adds `emails[type eq "work"].value` to a user without
            // a work address: build the value the filter describes.
            auto element = element_from_filter(attribute, *target.filter);
            if (!element) {
                if (slot.empty()) {
                    erase_member(object, attribute.name);
                }
                return error(ScimType::no_target,
                             fmt::format("no value of {} matches the filter", attribute.name));
            }
            if (auto ok = write_into(*element); !ok) {
                return ok;
            }
            slot.push_back(std::move(*element));
            written.push_back(slot.size() - 1);
        }
        keep_one_primary(slot, written);
        return {};
    }

    // remove (and add/replace of null, which unassigns). `listed`: the
    // values Entra ID names in a remove on a multi-valued attribute.
    std::expected<void, ScimError> remove(const Target& target, const json* listed) {
        const AttributeDef& attribute = *target.attribute;
        const bool whole = target.sub == nullptr && target.filter == nullptr;
        const bool selective =
            whole && attribute.multi_valued && listed != nullptr && !listed->is_null();
        if (whole && !selective && attribute.required) {
            return error(ScimType::invalid_value,
                         fmt::format("{} is required and cannot be removed", attribute.name));
        }
        if (target.sub != nullptr && target.sub->mutability == Mutability::read_only) {
            return error(ScimType::mutability, fmt::format("{} is read-only", target.label));
        }
        json* object = container(target, false);
        json* slot = object != nullptr ? find_member(*object, attribute.name) : nullptr;
        if (selective) {
            auto given = coerce_multi(attribute, *listed, attribute.name);
            if (!given) {
                return std::unexpected(given.error());
            }
            if (auto ok = count_members(target, given->size()); !ok) {
                return ok;
            }
            if (slot == nullptr || !slot->is_array()) {
                return {};
            }
            json kept = json::array();
            for (auto& element : *slot) {
                bool named = false;
                for (const auto& candidate : *given) {
                    named = named || same_element(attribute, element, candidate);
                }
                if (!named) {
                    kept.push_back(std::move(element));
                }
            }
            *slot = std::move(kept);
        } else if (slot == nullptr) {
            return {};
        } else if (whole) {
            erase_member(*object, attribute.name);
            tidy_extension(target);
            return {};
        } else if (target.filter == nullptr) {
            // attr.sub: from the single value, or from every value.
            auto strip_sub = [&](json& element) -> std::expected<void, ScimError> {
                if (!element.is_object()) {
                    return {};
                }
                if (auto ok = check_immutable(*target.sub, find_member(element, target.sub->name),
                                              nullptr);
                    !ok) {
                    return ok;
                }
                erase_member(element, target.sub->name);
                return {};
            };
            if (slot->is_array()) {
                for (auto& element : *slot) {
                    if (auto ok = strip_sub(element); !ok) {
                        return ok;
                    }
                }
            } else if (auto ok = strip_sub(*slot); !ok) {
                return ok;
            }
        } else {
            if (auto ok = count_members(target, 1); !ok) {
                return ok;
            }
            auto strip = [&](json& element) -> std::expected<bool, ScimError> {
                if (!element.is_object() || !matches_element(*target.filter, element, &attribute)) {
                    return false;  // kept as it is
                }
                if (target.filter_sub == nullptr) {
                    return true;  // dropped
                }
                if (target.filter_sub->mutability == Mutability::read_only) {
                    return error(ScimType::mutability,
                                 fmt::format("{} is read-only", target.label));
                }
                if (auto ok = check_immutable(
                        *target.filter_sub, find_member(element, target.filter_sub->name), nullptr);
                    !ok) {
                    return std::unexpected(ok.error());
                }
                erase_member(element, target.filter_sub->name);
                return false;
            };
            if (slot->is_object()) {
                auto drop = strip(*slot);
                if (!drop) {
                    return std::unexpected(drop.error());
                }
                if (*drop) {
                    *slot = nullptr;
                }
            } else if (slot->is_array()) {
                json kept = json::array();
                for (auto& element : *slot) {
                    auto drop = strip(element);
                    if (!drop) {
                        return std::unexpected(drop.error());
                    }
                    if (!*drop) {
                        kept.push_back(std::move(element));
                    }
                }
                *slot = std::move(kept);
            }
        }
        // A value left empty is unassigned (RFC 7644 §3.5.2.2).
        if (slot->is_array()) {
            json kept = json::array();
            for (auto& element : *slot) {
                if (non_empty(element)) {
                    kept.push_back(std::move(element));
                }
            }
            *slot = std::move(kept);
        }
        if (!non_empty(*slot)) {
            erase_member(*object, attribute.name);
        }
        tidy_extension(target);
        return {};
    }
};

}  // namespace

std::expected<json, ScimError> apply_patch(json resource, const json& request,
                                           const ResourceRules& rules, const PatchLimits& limits) {
    if (!request.is_object()) {
        return error(ScimType::invalid_syntax, "the request body must be a JSON object");
    }
    if (const json* schemas = find_member(request, "schemas"); schemas != nullptr) {
        bool patch_op = false;
        if (schemas->is_array()) {
            for (const auto& urn : *schemas) {
                patch_op = patch_op ||
                           (urn.is_string() && iequals(urn.get<std::string>(), k_patch_op_schema));
            }
        }
        if (!patch_op) {
            return error(ScimType::invalid_syntax,
                         fmt::format("\"schemas\" must list {}", k_patch_op_schema));
        }
    }
    const json* operations = find_member(request, "Operations");
    if (operations == nullptr || !operations->is_array() || operations->empty()) {
        return error(ScimType::invalid_syntax, "\"Operations\" must be a non-empty array");
    }
    if (operations->size() > limits.max_operations) {
        return error(ScimType::too_many,
                     fmt::format("more than {} operations in one request", limits.max_operations));
    }
    if (!resource.is_object()) {
        return error(ScimType::invalid_syntax, "the resource must be a JSON object");
    }
    Patcher patcher(resource, rules, limits);
    for (std::size_t i = 0; i < operations->size(); ++i) {
        if (auto ok = patcher.apply((*operations)[i], i); !ok) {
            return std::unexpected(ok.error());
        }
    }
    return resource;
}

}  // namespace orgsync::scim
