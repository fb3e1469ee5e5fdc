// The SCIM filter parser (connectors/scim/filter.hpp) on arbitrary text, as a
// client sends it in `GET /Users?filter=`. Properties: a parse error is an
// invalidFilter with a message; a parsed filter prints to text that parses
// back to an equal filter and prints the same; checking and evaluating it
// against a User and a Group terminate, `not` negates, and an equality an
// index would answer matches a resource holding exactly that value.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "connectors/scim/filter.hpp"
#include "connectors/scim/schema.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/scim_samples.hpp"

namespace {

using namespace orgsync::scim;
using nlohmann::json;
using orgsync::fuzz::require;

// The printed form adds parentheses and quotes: it may be longer and nest
// deeper than the limits the text had to fit.
constexpr FilterLimits k_printed_limits{.max_length = std::numeric_limits<std::size_t>::max(),
                                        .max_depth = 1000};

// A resource holding exactly what `lookup` asks for: `a.b` nested, an
// extension attribute under its URN.
json resource_for(const EqualityLookup& lookup) {
    std::string_view path = lookup.attribute;
    json resource = json::object();
    json* container = &resource;
    if (path.size() > 4 && iequals(path.substr(0, 4), "urn:")) {
        const auto colon = path.rfind(':');
        container = &resource[std::string(path.substr(0, colon))];
        path.remove_prefix(colon + 1);
    }
    if (const auto dot = path.find('.'); dot != std::string_view::npos) {
        container = &(*container)[std::string(path.substr(0, dot))];
        path.remove_prefix(dot + 1);
    }
    (*container)[std::string(path)] = lookup.value;
    return resource;
}

void evaluate(const Filter& filter, const std::string& printed, const ResourceRules& rules,
              const json& resource) {
    const bool matched = matches(filter, resource, rules);
    const Filter negated{.kind = Filter::Kind::logical_not, .children = {filter}};
    require(matches(negated, resource, rules) == !matched, "not(f) is the negation of f", printed);
    if (!check_filter(filter, rules)) {
        return;
    }
    if (auto lookup = as_equality_lookup(filter, rules)) {
        require(matches(filter, resource_for(*lookup), rules),
                "an equality lookup's filter matches a resource with that value",
                lookup->attribute + " = " + lookup->value);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = orgsync::fuzz::as_text(data, size);
    auto filter = parse_filter(text);
    if (!filter) {
        require(filter.error().type == ScimType::invalid_filter && !filter.error().message.empty(),
                "a filter that does not parse is an invalidFilter with a message");
        return 0;
    }
    const std::string printed = to_string(*filter);
    auto again = parse_filter(printed, k_printed_limits);
    require(again.has_value(), "the printed filter parses", printed);
    require(*again == *filter, "the printed filter parses to an equal filter", printed);
    require(to_string(*again) == printed, "printing is stable", printed);

    evaluate(*filter, printed, user_rules(), orgsync::fuzz::sample_user());
    evaluate(*filter, printed, group_rules(), orgsync::fuzz::sample_group());
    return 0;
}
