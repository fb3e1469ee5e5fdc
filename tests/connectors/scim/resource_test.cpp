// splice_stored: a stored resource as returned, written from its text, is
// the same document as the one built by parsing it and adding the members.

#include "connectors/scim/resource.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

namespace orgsync::scim {
namespace {

using nlohmann::json;

const std::string k_location = R"("location":"https://h/scim/v2/Users/u1")";
const std::string k_groups = R"("groups":[{"display":"Admins","type":"direct","value":"g1"}])";

// What the document path returns for the same stored text.
json expected_of(const json& stored, bool with_groups) {
    json out = stored;
    out["meta"]["location"] = "https://h/scim/v2/Users/u1";
    if (with_groups) {
        out["groups"] = json::array({{{"display", "Admins"}, {"type", "direct"}, {"value", "g1"}}});
    }
    return out;
}

TEST(SpliceStored, AddsLocationAndGroupsAsTheDocumentPathDoes) {
    const json users[] = {
        json{{"id", "u1"},
             {"userName", "alice@acme.com"},
             {"meta", {{"resourceType", "User"}, {"version", "W/\"1\""}}}},
        // Strings that look like structure: quotes, braces, a "meta" key,
        // backslashes at the end of a string, non-ASCII text.
        json{{"id", "u1"},
             {"displayName", "a \"meta\":{\"x\":1}} ] [ \\"},
             {"nickName", "\\\\"},
             {"title", "Ingénieur \u00e9 \u4e2d \U0001F600"},
             {"meta", {{"created", "2026-11-22T00:00:00Z"}, {"version", "W/\"2\""}}},
             {"zzz", "}"}},
        // A nested object with its own "meta" key comes before the real one.
        json{{"id", "u1"},
             {"a", {{"meta", {{"deep", true}}}}},
             {"emails", json::array({{{"value", "x@y"}, {"meta", json::object()}}})},
             {"meta", {{"resourceType", "User"}}}},
        // An empty meta object.
        json{{"id", "u1"}, {"meta", json::object()}},
    };
    for (const auto& user : users) {
        for (const bool with_groups : {false, true}) {
            auto spliced =
                splice_stored(user.dump(), k_location, with_groups ? k_groups : "", "groups");
            ASSERT_TRUE(spliced) << user.dump();
            EXPECT_EQ(json::parse(*spliced), expected_of(user, with_groups)) << *spliced;
        }
    }
    // Text with whitespace, as a document not written by dump() could be.
    auto spaced = splice_stored(R"( { "id" : "u1" , "meta" : { } , "x" : [ 1 , { } ] } )",
                                k_location, k_groups, "groups");
    ASSERT_TRUE(spaced);
    EXPECT_EQ(json::parse(*spaced), expected_of(json{{"id", "u1"},
                                                     {"meta", json::object()},
                                                     {"x", json::array({1, json::object()})}},
                                                true));
}

TEST(SpliceStored, RefusesWhatItCannotSpliceSafely) {
    // No top-level meta object, or meta of another type.
    EXPECT_FALSE(splice_stored(R"({"id":"u1"})", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored(R"({"id":"u1","meta":"x"})", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored(R"({"id":"u1","meta":[]})", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored(R"({"a":{"meta":{}}})", k_location, "", "groups"));
    // Already holding the member the caller adds.
    EXPECT_FALSE(splice_stored(R"({"groups":[],"meta":{}})", k_location, k_groups, "groups"));
    // Not an object, or not whole.
    EXPECT_FALSE(splice_stored(R"([{"meta":{}}])", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored(R"({"meta":{})", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored(R"({"meta":{"a":"})", k_location, "", "groups"));
    EXPECT_FALSE(splice_stored("", k_location, "", "groups"));
}

}  // namespace
}  // namespace orgsync::scim
