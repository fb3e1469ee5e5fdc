// SCIM request bodies (connectors/scim/resource.hpp, patch.hpp) as the
// service handles them: the input is parsed as JSON and taken as a POST or
// PUT body of a User and of a Group (normalize_resource), and as a PatchOp
// request on a stored User and Group (apply_patch); what is accepted goes on
// to the mirror records the store keeps (to_source_user, to_source_group)
// and back (user_resource, group_resource).
//
// Properties: nothing throws; a normalized resource passes check_resource,
// holds no id, meta or password, and normalizes to itself when sent again;
// a PATCH keeps id and meta; a resource the service would store reads back
// from its mirror record unchanged (a group's members as member ids).

#include <cstddef>
#include <cstdint>
#include <string>

#include "connectors/scim/patch.hpp"
#include "connectors/scim/resource.hpp"
#include "connectors/scim/schema.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/scim_samples.hpp"

namespace {

using namespace orgsync::scim;
using nlohmann::json;
using orgsync::fuzz::dump;
using orgsync::fuzz::fail;
using orgsync::fuzz::require;

bool is_user(const ResourceRules& rules) {
    return rules.name == "User";
}

// What the service does with a resource it accepted (id and meta set):
// the mirror record, and the resource read back from it.
void store_and_read_back(const json& resource, const ResourceRules& rules) {
    if (is_user(rules)) {
        const auto record = to_source_user("okta", resource);
        require(record.external_id == resource.at("id").get<std::string>(),
                "the record's id is the resource's");
        if (user_resource(record) != resource) {
            fail("a User reads back from its record unchanged", dump(resource));
        }
        return;
    }
    const auto record = to_source_group("okta", resource);
    require(record.member_ids == member_ids(resource), "a Group's record lists its members");
    json without_members = resource;
    without_members.erase("members");
    if (group_resource(record, false) != without_members) {
        fail("a Group reads back from its record unchanged", dump(resource));
    }
    const json with_members = group_resource(record, true);
    require(member_ids(with_members) == record.member_ids, "members read back in order");
}

void post(const json& body, const ResourceRules& rules) {
    auto resource = normalize_resource(body, rules, {});
    if (!resource) {
        require(!resource.error().message.empty(), "a refused body says why");
        return;
    }
    require(check_resource(*resource, rules).has_value(), "a normalized resource can be stored",
            dump(*resource));
    for (const char* key : {"id", "meta", "password", "groups"}) {
        if (resource->contains(key) && (std::string_view(key) != "groups" || is_user(rules))) {
            fail("a normalized resource holds no read-only or write-only attribute",
                 dump(*resource));
        }
    }
    auto again = normalize_resource(*resource, rules, {});
    if (!again || *again != *resource) {
        fail("a normalized resource normalizes to itself",
             dump(*resource) + " -> " + (again ? dump(*again) : again.error().message));
    }
    json stored = std::move(*resource);
    stored["id"] = "8f9d3c1e-0000-4000-8000-000000000001";
    stored["meta"] = {{"resourceType", rules.name}, {"version", "W/\"1\""}};
    store_and_read_back(stored, rules);
}

void patch(const json& resource, const json& request, const ResourceRules& rules) {
    auto patched = apply_patch(resource, request, rules);
    if (!patched) {
        require(!patched.error().message.empty(), "a refused PATCH says why");
        return;
    }
    if (patched->at("id") != resource.at("id") || patched->at("meta") != resource.at("meta")) {
        fail("PATCH never changes id or meta", dump(request));
    }
    if (check_resource(*patched, rules)) {
        store_and_read_back(*patched, rules);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const json body = json::parse(data, data + size, nullptr, false);
    if (body.is_discarded()) {
        return 0;  // the service answers invalidSyntax before any of this
    }
    post(body, user_rules());
    post(body, group_rules());
    patch(orgsync::fuzz::sample_user(), body, user_rules());
    patch(orgsync::fuzz::sample_group(), body, group_rules());
    return 0;
}
