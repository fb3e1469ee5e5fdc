// SCIM PATCH paths (connectors/scim/filter.hpp, parse_patch_path) on
// arbitrary text, as the `path` of an operation, then PATCH operations
// through that path (connectors/scim/patch.hpp) on a stored User and Group.
// Properties: a parse error is an invalidPath; a parsed path printed back
// (attribute, bracket filter, sub-attribute) parses to an equal path; a
// PATCH either fails with a message or leaves `id` and `meta` as they were
// and writes the attribute names in their canonical spelling.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "connectors/scim/filter.hpp"
#include "connectors/scim/patch.hpp"
#include "connectors/scim/schema.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/scim_samples.hpp"

namespace {

using namespace orgsync::scim;
using nlohmann::json;
using orgsync::fuzz::dump;
using orgsync::fuzz::require;

constexpr FilterLimits k_printed_limits{.max_length = std::numeric_limits<std::size_t>::max(),
                                        .max_depth = 1000};

std::string print(const PatchPath& path) {
    std::string text = to_string(path.attribute);
    if (path.filter) {
        text += '[' + to_string(*path.filter) + ']';
    }
    if (!path.sub_attribute.empty()) {
        text += '.' + path.sub_attribute;
    }
    return text;
}

// The values an IdP writes through a path: a string, an Entra-style list of
// complex values, an object, a boolean spelt as a string, null.
const json& values() {
    static const json all = json::array(
        {"x",
         json::array({{{"value", "902c246b-6245-4190-8e05-00816be7344a"}, {"type", "work"}}}),
         {{"value", "y"}, {"primary", true}},
         "False",
         nullptr});
    return all;
}

void patch(const json& resource, const ResourceRules& rules, std::string_view path) {
    for (const char* op : {"add", "Replace", "remove"}) {
        for (const json& value : values()) {
            json operation = {{"op", op}, {"path", path}, {"value", value}};
            if (std::string_view(op) == "remove") {
                operation.erase("value");
            }
            const json request = {{"schemas", json::array({k_patch_op_schema})},
                                  {"Operations", json::array({operation})}};
            auto patched = apply_patch(resource, request, rules);
            if (!patched) {
                require(!patched.error().message.empty(), "a refused PATCH says why");
            } else {
                if (patched->at("id") != resource.at("id") ||
                    patched->at("meta") != resource.at("meta")) {
                    orgsync::fuzz::fail("PATCH never changes id or meta", dump(request));
                }
                for (const auto& [key, item] : patched->items()) {
                    if (resource.contains(key) || key.starts_with("urn:")) {
                        continue;
                    }
                    const auto resolved = resolve_attribute(rules, "", key);
                    if (resolved.attribute == nullptr || resolved.attribute->name != key) {
                        orgsync::fuzz::fail(
                            "PATCH adds only attributes of the schema, canonically spelt",
                            dump(request) + " -> " + key);
                    }
                }
            }
            if (std::string_view(op) == "remove") {
                break;
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = orgsync::fuzz::as_text(data, size);
    auto path = parse_patch_path(text);
    if (!path) {
        require(path.error().type == ScimType::invalid_path && !path.error().message.empty(),
                "a path that does not parse is an invalidPath with a message");
    } else {
        const std::string printed = print(*path);
        auto again = parse_patch_path(printed, k_printed_limits);
        require(again.has_value(), "the printed path parses", printed);
        require(*again == *path, "the printed path parses to an equal path", printed);
    }
    // A PATCH must cope with whatever the path is, parsed or not.
    if (text.size() <= 512) {
        patch(orgsync::fuzz::sample_user(), user_rules(), text);
        patch(orgsync::fuzz::sample_group(), group_rules(), text);
    }
    return 0;
}
