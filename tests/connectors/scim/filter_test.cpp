#include "connectors/scim/filter.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace orgsync::scim {
namespace {

using nlohmann::json;

constexpr std::string_view k_ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

// RFC 7643 §8.2's full user, trimmed, with the enterprise extension; one
// unknown numeric attribute for number comparisons.
json sample_user() {
    return json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
      "id": "2819c223-7f76-453a-919d-413861904646",
      "externalId": "BJensen-Ext",
      "userName": "Bjensen@Example.com",
      "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen",
               "givenName": "Barbara"},
      "displayName": "Babs Jensen",
      "title": "",
      "userType": "Employee",
      "active": true,
      "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                 {"value": "babs@jensen.org", "type": "home"}],
      "phoneNumbers": [],
      "addresses": null,
      "loginCount": 5,
      "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z",
               "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff591\""},
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "employeeNumber": "701984", "department": "Tour Operations",
        "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
      }
    })");
}

json sample_group() {
    return json::parse(R"({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
      "displayName": "Tour Guides",
      "members": [
        {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen"},
        {"value": "902c246b-6245-4190-8e05-00816be7344a"}
      ]
    })");
}

Filter parsed(std::string_view text) {
    auto filter = parse_filter(text);
    EXPECT_TRUE(filter) << text << ": " << (filter ? "" : filter.error().message);
    return filter ? *filter : Filter{};
}

// ---- parsing ----

struct RoundTrip {
    std::string_view text;
    std::string_view canonical;
};

TEST(ParseFilter, PrintsCanonically) {
    const std::vector<RoundTrip> cases{
        {R"(userName eq "bjensen")", R"(userName eq "bjensen")"},
        {R"(USERNAME EQ "x")", R"(USERNAME eq "x")"},
        {R"(name.familyName co "O'Malley")", R"(name.familyName co "O'Malley")"},
        {R"(urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J")",
         R"(urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J")"},
        {"title pr", "title pr"},
        {"title PR", "title pr"},
        {R"(meta.lastModified gt "2011-05-13T04:42:34Z")",
         R"(meta.lastModified gt "2011-05-13T04:42:34Z")"},
        {R"(meta.lastModified ge "2011-05-13T04:42:34Z")",
         R"(meta.lastModified ge "2011-05-13T04:42:34Z")"},
        {R"(meta.lastModified lt "2011-05-13T04:42:34Z")",
         R"(meta.lastModified lt "2011-05-13T04:42:34Z")"},
        {R"(meta.lastModified le "2011-05-13T04:42:34Z")",
         R"(meta.lastModified le "2011-05-13T04:42:34Z")"},
        {R"(title ne "x")", R"(title ne "x")"},
        {R"(title ew "x")", R"(title ew "x")"},
        {R"(title pr and userType eq "Employee")", R"(title pr and userType eq "Employee")"},
        {R"(title pr AND userType eq "Employee")", R"(title pr and userType eq "Employee")"},
        {R"(title pr or userType eq "Intern")", R"(title pr or userType eq "Intern")"},
        {R"(userType eq "Employee" and (emails co "example.com" or emails.value co "example.org"))",
         R"(userType eq "Employee" and (emails co "example.com" or emails.value co "example.org"))"},
        {R"(userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org"))",
         R"(userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org"))"},
        {R"(userType eq "Employee" and emails[type eq "work" and value co "@example.com"])",
         R"(userType eq "Employee" and emails[type eq "work" and value co "@example.com"])"},
        {R"(emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"])",
         R"(emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"])"},
        {R"(emails[type eq "work"].value eq "x")", R"(emails[type eq "work"].value eq "x")"},
        {R"(emails[ type eq "work" ].value pr)", R"(emails[type eq "work"].value pr)"},
        {"a eq 1 and b eq 2 or c eq 3", "(a eq 1 and b eq 2) or c eq 3"},
        {"a eq 1 or b eq 2 and c eq 3", "a eq 1 or (b eq 2 and c eq 3)"},
        {"not (a pr) and b pr", "not (a pr) and b pr"},
        {"NOT(a pr)", "not (a pr)"},
        {"((a pr))", "a pr"},
        {"(a pr and b pr) and c pr", "(a pr and b pr) and c pr"},
        {R"(a eq "esc\"aped\\ \u00e9")", "a eq \"esc\\\"aped\\\\ \xc3\xa9\""},
        {"a eq -1.5e3", "a eq -1500.0"},
        {"a gt 10", "a gt 10"},
        {"a eq TRUE", "a eq true"},
        {"a ne False", "a ne false"},
        {"a eq null", "a eq null"},
        {R"(members[value eq "abc"])", R"(members[value eq "abc"])"},
        {R"(members[$ref pr])", R"(members[$ref pr])"},
        {R"(x.$ref eq "u")", R"(x.$ref eq "u")"},
        {"  a pr  ", "a pr"},
    };
    for (const auto& c : cases) {
        auto filter = parse_filter(c.text);
        ASSERT_TRUE(filter) << c.text << ": " << filter.error().message;
        EXPECT_EQ(to_string(*filter), c.canonical) << c.text;
    }
}

TEST(ParseFilter, PrecedenceIsNotThenAndThenOr) {
    const Filter f = parsed("a pr or b pr and not (c pr) and d pr or e pr");
    ASSERT_EQ(f.kind, Filter::Kind::logical_or);
    ASSERT_EQ(f.children.size(), 3U);
    EXPECT_EQ(f.children[0].kind, Filter::Kind::present);
    const Filter& conjunction = f.children[1];
    ASSERT_EQ(conjunction.kind, Filter::Kind::logical_and);
    ASSERT_EQ(conjunction.children.size(), 3U);
    EXPECT_EQ(conjunction.children[1].kind, Filter::Kind::logical_not);
    EXPECT_EQ(f.children[2].path.name, "e");
}

TEST(ParseFilter, SplitsUrnNameAndSubAttribute) {
    const Filter f = parsed(std::string(k_ent) + ":manager.value eq \"m\"");
    EXPECT_EQ(f.path.schema, k_ent);
    EXPECT_EQ(f.path.name, "manager");
    EXPECT_EQ(f.path.sub, "value");
    EXPECT_EQ(f.value, json("m"));
}

TEST(ParseFilter, EveryOperatorInAnyCase) {
    for (std::string_view op : {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}) {
        for (const std::string& spelling :
             {std::string(op), ascii_lower(op), std::string{static_cast<char>(op[0] - 32), op[1]},
              std::string{static_cast<char>(op[0] - 32), static_cast<char>(op[1] - 32)}}) {
            const std::string text = "title " + spelling + " \"x\"";
            auto f = parse_filter(text);
            ASSERT_TRUE(f) << text;
            EXPECT_EQ(to_string(f->op), op);
        }
    }
}

TEST(ParseFilter, RejectsInvalidFilters) {
    const std::vector<std::string> cases{
        "",
        "   ",
        "userName",
        "userName eq",
        "userName eq ",
        R"(userName eq "x)",
        R"((userName eq "x")",
        R"(userName eq "x"))",
        R"(userName xx "x")",
        R"(userName equals "x")",
        "userName eq x",
        "userName eq 'x'",
        R"(userName eq"x")",
        R"(userNameeq "x")",
        "userName co 1",
        "userName sw true",
        "userName ew null",
        "userName gt true",
        "userName lt null",
        R"(emails[type eq "work")",
        R"(emails[type eq "work"]])",
        R"(emails[types[x eq 1]])",
        R"(emails[urn:x:type eq "work"])",
        R"(emails[type.x eq "work"])",
        R"(emails[type eq "work"].value)",
        R"(emails[type eq "work"]value eq "x")",
        R"(name.givenName[x eq "y"])",
        R"(userName eq "x" and)",
        R"(and userName eq "x")",
        R"(userName eq "x" or)",
        R"(not userName eq "x")",
        "not ()",
        "()",
        "userName eq 1e999",
        "userName eq -",
        "userName eq 01",
        "userName eq 1.",
        R"(userName eq "\q")",
        R"(userName eq "a"b)",
        "userName eq \"tab\there\"",
        "userName eq \"\xff\"",
        "1abc eq 1",
        "name. eq 1",
        "name.given.x eq 1",
        ":name eq 1",
        "$ref eq 1",
        R"(userName eq "x" userName eq "y")",
        R"(a pr andb pr)",
    };
    for (const auto& text : cases) {
        auto f = parse_filter(text);
        ASSERT_FALSE(f) << text << " parsed as " << to_string(*f);
        EXPECT_EQ(f.error().type, ScimType::invalid_filter) << text;
        EXPECT_FALSE(f.error().message.empty());
    }
}

TEST(ParseFilter, ErrorsSayWhere) {
    auto f = parse_filter(R"(userName zz "x")");
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().message,
              "at offset 9: expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)");
}

TEST(ParseFilter, RejectsTooLong) {
    const FilterLimits limits{.max_length = 32};
    std::string text = "userName eq \"" + std::string(18, 'a') + "\"";
    EXPECT_TRUE(parse_filter(text, limits));
    text = "userName eq \"" + std::string(19, 'a') + "\"";
    auto f = parse_filter(text, limits);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().type, ScimType::invalid_filter);
    EXPECT_EQ(f.error().message, "longer than 32 bytes");
}

TEST(ParseFilter, RejectsTooDeep) {
    const FilterLimits limits{.max_length = 1 << 20, .max_depth = 4};
    EXPECT_TRUE(parse_filter("((((a pr))))", limits));
    EXPECT_FALSE(parse_filter("(((((a pr)))))", limits));
    EXPECT_TRUE(parse_filter("not (not (not (a[b pr])))", limits));
    EXPECT_FALSE(parse_filter("not (not (not (not (a[b pr]))))", limits));
    auto f = parse_filter("not (not (not (not (not (a pr)))))", limits);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().type, ScimType::invalid_filter);
    EXPECT_EQ(f.error().message, "at offset 24: nested deeper than 4 levels");
}

TEST(ParseFilter, HostileInputNeitherOverflowsNorCrashes) {
    const FilterLimits big{.max_length = 4 << 20};
    for (const std::string& text :
         {std::string(1 << 20, '('), std::string(1 << 20, '['), std::string(1 << 20, ')'), [] {
              std::string s;
              for (int i = 0; i < 200000; ++i) {
                  s += "not (";
              }
              return s;
          }()}) {
        auto f = parse_filter(text, big);
        ASSERT_FALSE(f);
        EXPECT_EQ(f.error().type, ScimType::invalid_filter);
    }
    // A long flat chain is one node, not a deep tree: evaluating, printing
    // and destroying it does not recurse per term.
    std::string chain = "a pr";
    for (int i = 0; i < 100000; ++i) {
        chain += " and a pr";
    }
    auto f = parse_filter(chain, big);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->children.size(), 100001U);
    EXPECT_FALSE(matches(*f, json::object(), user_rules()));
    EXPECT_EQ(to_string(*f).size(), chain.size());
}

// ---- evaluation ----

struct MatchCase {
    std::string_view filter;
    bool expected;
};

void expect_matches(const json& resource, const ResourceRules& rules,
                    const std::vector<MatchCase>& cases) {
    for (const auto& c : cases) {
        auto f = parse_filter(c.filter);
        ASSERT_TRUE(f) << c.filter << ": " << f.error().message;
        EXPECT_TRUE(check_filter(*f, rules)) << c.filter;
        EXPECT_EQ(matches(*f, resource, rules), c.expected) << c.filter;
    }
}

TEST(Matches, StringsFoldCaseUnlessCaseExact) {
    expect_matches(
        sample_user(), user_rules(),
        {
            {R"(userName eq "bjensen@example.com")", true},
            {R"(USERNAME Eq "BJENSEN@EXAMPLE.COM")", true},
            {R"(username eq "someone@example.com")", false},
            {R"(id eq "2819c223-7f76-453a-919d-413861904646")", true},
            {R"(id eq "2819C223-7F76-453A-919D-413861904646")", false},
            {R"(ID eq "2819c223-7f76-453a-919d-413861904646")", true},
            {R"(externalId eq "BJensen-Ext")", true},
            {R"(externalId eq "bjensen-ext")", false},
            {R"(meta.version eq "W/\"3694e05e9dff591\"")", true},
            {R"(meta.version eq "w/\"3694E05E9DFF591\"")", false},
            {R"(displayName eq "babs jensen")", true},
            {R"(displayName co "JENS")", true},
            {R"(displayName sw "babs")", true},
            {R"(displayName sw "Jensen")", false},
            {R"(displayName ew "JENSEN")", true},
            {R"(displayName ew "Babs")", false},
            {R"(displayName co "")", true},
            {R"(name.familyName eq "jensen")", true},
            {R"(NAME.FAMILYNAME eq "jensen")", true},
            {R"(emails.value eq "BJENSEN@example.com")", true},
            {R"(urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bjensen")", true},
            {R"(URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:userName sw "bjensen")", true},
        });
}

TEST(Matches, MultiValuedMatchesWhenAnyValueDoes) {
    expect_matches(
        sample_user(), user_rules(),
        {
            {R"(emails.value eq "babs@jensen.org")", true},
            {R"(emails.value eq "nobody@jensen.org")", false},
            {R"(emails eq "BABS@jensen.org")", true},
            {R"(emails co "@example.com")", true},
            {R"(emails.type eq "home")", true},
            {R"(emails.type ne "home")", false},
            {R"(emails.type ne "other")", true},
            {R"(emails[type eq "work"].value eq "bjensen@example.com")", true},
            {R"(emails[type eq "work"].value eq "babs@jensen.org")", false},
            {R"(emails[type eq "work" and primary eq true])", true},
            {R"(emails[type eq "home" and primary eq true])", false},
            {R"(emails[type eq "home" and not (primary eq true)])", true},
            {R"(emails[not (type eq "work")])", true},
            {R"(emails[type eq "other"])", false},
            {R"(emails[type eq "work"].primary eq true)", true},
            {R"(emails[type eq "home"].primary pr)", false},
            {R"(emails[value ew "jensen.org"] and emails[value ew "example.com"])", true},
            {R"(phoneNumbers[type eq "work"])", false},
        });
}

TEST(Matches, PresenceNeedsANonEmptyValue) {
    json user = sample_user();
    user["nested"] = {{"a", nullptr}, {"b", ""}, {"c", json::array()}};
    user["emptyObjects"] = json::array({json::object(), {{"value", ""}}});
    expect_matches(user, user_rules(),
                   {
                       {"userName pr", true},
                       {"title pr", false},
                       {"phoneNumbers pr", false},
                       {"addresses pr", false},
                       {"nickName pr", false},
                       {"name pr", true},
                       {"name.middleName pr", false},
                       {"emails pr", true},
                       {"emails.display pr", false},
                       {"active pr", true},
                       {"nested pr", false},
                       {"emptyObjects pr", false},
                       {"loginCount pr", true},
                       {"not (nickName pr)", true},
                   });
}

TEST(Matches, NullLiteralMeansUnassigned) {
    expect_matches(sample_user(), user_rules(),
                   {
                       {"nickName eq null", true},
                       {"title eq null", true},
                       {"userName eq null", false},
                       {"userName ne null", true},
                       {"nickName ne null", false},
                   });
}

TEST(Matches, NotEqualIsTheNegationOfEqual) {
    expect_matches(sample_user(), user_rules(),
                   {
                       {R"(nickName ne "x")", true},
                       {R"(userName ne "bjensen@example.com")", false},
                       {R"(userName ne "other")", true},
                       {R"(id ne "2819C223-7F76-453A-919D-413861904646")", true},
                   });
}

TEST(Matches, BooleansNumbersAndDates) {
    expect_matches(sample_user(), user_rules(),
                   {
                       {"active eq true", true},
                       {"active eq TRUE", true},
                       {"active eq false", false},
                       {"active ne false", true},
                       {R"(active eq "True")", true},
                       {R"(active eq "false")", false},
                       {R"(active eq "yes")", false},
                       {"active eq 1", false},
                       {R"(meta.lastModified gt "2011-05-13T04:42:33Z")", true},
                       {R"(meta.lastModified gt "2011-05-13T04:42:34Z")", false},
                       {R"(meta.lastModified ge "2011-05-13T04:42:34Z")", true},
                       {R"(meta.lastModified lt "2011-05-13T04:42:34Z")", false},
                       {R"(meta.lastModified le "2011-05-13T04:42:34Z")", true},
                       {R"(meta.created lt "2011-01-01T00:00:00Z")", true},
                       {R"(meta.created gt "2011-01-01T00:00:00Z")", false},
                       {R"(userName gt "a")", true},
                       {R"(userName gt "C")", false},
                       {R"(userName lt "C")", true},
                       {"loginCount gt 4", true},
                       {"loginCount gt 5", false},
                       {"loginCount ge 5.0", true},
                       {"loginCount eq 5.0", true},
                       {"loginCount lt 5.5", true},
                       {"loginCount le -1", false},
                       {R"(loginCount gt "4")", false},
                       {R"(loginCount eq "5")", false},
                       {R"(userName gt 4)", false},
                   });
}

TEST(Matches, EnterpriseExtensionWithAndWithoutUrn) {
    const std::string ent(k_ent);
    expect_matches(sample_user(), user_rules(),
                   {
                       {ent + R"(:employeeNumber eq "701984")", true},
                       {R"(employeeNumber eq "701984")", true},
                       {ent + R"(:employeeNumber eq "1")", false},
                       {ent + R"(:department co "tour")", true},
                       {ent + R"(:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d")", true},
                       {R"(manager[value eq "26118915-6090-4610-87e4-49d8ca9f808d"])", true},
                       {ent + R"(:manager[value eq "someone-else"])", false},
                       {ent + ":manager.displayName pr", true},
                       {ent + ":costCenter pr", false},
                       {R"(urn:example:unknown:2.0:User:userName pr)", false},
                       {R"(urn:ietf:params:scim:schemas:core:2.0:User:employeeNumber pr)", false},
                   });
}

TEST(Matches, PrecedenceDecidesTheResult) {
    expect_matches(sample_user(), user_rules(),
                   {
                       // T or (F and F): left-to-right evaluation would give F.
                       {R"(active eq true or active eq false and userName eq "nobody")", true},
                       // (F and F) or T: right-to-left would give F.
                       {R"(userName eq "nobody" and active eq false or active eq true)", true},
                       {R"(userName eq "nobody" and (active eq false or active eq true))", false},
                       {R"(not (userName eq "nobody") and active eq false)", false},
                       {R"(userName eq "nobody" or not (active eq false))", true},
                       {R"(not (userName eq "nobody" or active eq true))", false},
                   });
}

TEST(Matches, GroupsByNameAndMember) {
    expect_matches(
        sample_group(), group_rules(),
        {
            {R"(displayName eq "tour guides")", true},
            {R"(displayName eq "Tour")", false},
            {R"(members[value eq "902c246b-6245-4190-8e05-00816be7344a"])", true},
            {R"(members[value eq "00000000-0000-0000-0000-000000000000"])", false},
            {R"(members eq "902c246b-6245-4190-8e05-00816be7344a")", true},
            {R"(members.value eq "2819c223-7f76-453a-919d-413861904646")", true},
            {R"(id eq "e9e30dba-f08f-4109-8486-d5c6a331660a" and members[value eq "2819c223-7f76-453a-919d-413861904646"])",
             true},
            {R"(id eq "e9e30dba-f08f-4109-8486-d5c6a331660a" and members[value eq "nobody"])",
             false},
            {R"(members[display co "babs"])", true},
        });
}

// The filters Entra ID and Okta send when looking a resource up before
// creating it (their provisioning documentation), each on a match and a
// miss.
TEST(Matches, FiltersIdentityProvidersSend) {
    const json user = sample_user();
    const json group = sample_group();
    struct Case {
        std::string_view filter;
        const json& resource;
        const ResourceRules& rules;
        bool expected;
    };
    const std::vector<Case> cases{
        {R"(userName eq "bjensen@example.com")", user, user_rules(), true},
        {R"(userName eq "ryan3@example.com")", user, user_rules(), false},
        {R"(externalId eq "BJensen-Ext")", user, user_rules(), true},
        {R"(externalId eq "58342554-38d6-4ec8-948c-50044d0a33fd")", user, user_rules(), false},
        {R"(emails[type eq "work"].value eq "bjensen@example.com")", user, user_rules(), true},
        {R"(emails[type eq "work"].value eq "babs@jensen.org")", user, user_rules(), false},
        {R"(displayName eq "Tour Guides")", group, group_rules(), true},
        {R"(displayName eq "Group1DisplayName")", group, group_rules(), false},
        {R"(externalId eq "60b9e2a8-0e71-4e25-a6bb-0c2d1d3d5b1a")", group, group_rules(), false},
    };
    for (const auto& c : cases) {
        auto f = parse_filter(c.filter);
        ASSERT_TRUE(f) << c.filter;
        EXPECT_EQ(matches(*f, c.resource, c.rules), c.expected) << c.filter;
    }
}

TEST(Matches, KeysInTheResourceMatchInAnyCase) {
    const json user = json::parse(R"({"USERNAME": "a@b.c", "Emails": [{"Value": "x@y.z"}]})");
    expect_matches(user, user_rules(),
                   {{R"(userName eq "a@b.c")", true}, {R"(emails.value eq "x@y.z")", true}});
}

TEST(CheckFilter, RejectsWhatTheSchemaForbids) {
    for (std::string_view text : {
             R"(active gt "x")",
             R"(active co "t")",
             R"(emails[primary sw "t"])",
             R"(name eq "Barbara")",
             R"(urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m")",
             R"(userName eq "x" and not (active lt "y"))",
         }) {
        auto f = parse_filter(text);
        ASSERT_TRUE(f) << text;
        auto checked = check_filter(*f, user_rules());
        ASSERT_FALSE(checked) << text;
        EXPECT_EQ(checked.error().type, ScimType::invalid_filter) << text;
    }
    for (std::string_view text : {R"(active eq true)", R"(emails eq "x")", "name pr",
                                  R"(unknownThing gt "x")", R"(manager.value eq "m")"}) {
        auto f = parse_filter(text);
        ASSERT_TRUE(f) << text;
        EXPECT_TRUE(check_filter(*f, user_rules())) << text;
    }
}

// ---- index lookups ----

TEST(EqualityLookup, RecognisesTopLevelStringEquality) {
    struct Case {
        std::string_view filter;
        const ResourceRules& rules;
        std::optional<EqualityLookup> expected;
    };
    const std::string ent(k_ent);
    const std::vector<Case> cases{
        {R"(userName eq "Bjensen")", user_rules(), EqualityLookup{"userName", "Bjensen", false}},
        {R"(USERNAME EQ "x")", user_rules(), EqualityLookup{"userName", "x", false}},
        {R"(externalId eq "E1")", user_rules(), EqualityLookup{"externalId", "E1", true}},
        {R"(id eq "abc")", user_rules(), EqualityLookup{"id", "abc", true}},
        {R"(name.givenName eq "B")", user_rules(), EqualityLookup{"name.givenName", "B", false}},
        {R"(emails.value eq "a@b")", user_rules(), EqualityLookup{"emails.value", "a@b", false}},
        {R"(employeeNumber eq "7")", user_rules(),
         EqualityLookup{ent + ":employeeNumber", "7", false}},
        {R"(urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER eq "7")",
         user_rules(), EqualityLookup{ent + ":employeeNumber", "7", false}},
        {R"(displayName eq "Group")", group_rules(), EqualityLookup{"displayName", "Group", false}},
        {R"(externalId eq "g")", group_rules(), EqualityLookup{"externalId", "g", true}},
        {R"(emails[type eq "work"].value eq "x")", user_rules(), std::nullopt},
        {R"(userName eq "x" and active eq true)", user_rules(), std::nullopt},
        {R"(userName ne "x")", user_rules(), std::nullopt},
        {R"(userName co "x")", user_rules(), std::nullopt},
        {"userName pr", user_rules(), std::nullopt},
        {"active eq true", user_rules(), std::nullopt},
        {"id eq 5", user_rules(), std::nullopt},
        {R"(unknown eq "x")", user_rules(), std::nullopt},
        {R"(members eq "x")", group_rules(), std::nullopt},
        {R"(userName eq "x")", group_rules(), std::nullopt},
        {R"(not (userName eq "x"))", user_rules(), std::nullopt},
    };
    for (const auto& c : cases) {
        auto f = parse_filter(c.filter);
        ASSERT_TRUE(f) << c.filter;
        EXPECT_EQ(as_equality_lookup(*f, c.rules), c.expected) << c.filter;
    }
}

// ---- PATCH paths ----

TEST(ParsePatchPath, AcceptsTheRfcForms) {
    auto p = parse_patch_path("name.familyName");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->attribute, (AttrPath{.name = "name", .sub = "familyName"}));
    EXPECT_FALSE(p->filter);

    p = parse_patch_path(R"(members[value eq "2819c223"])");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->attribute.name, "members");
    ASSERT_TRUE(p->filter);
    EXPECT_EQ(to_string(*p->filter), R"(value eq "2819c223")");
    EXPECT_TRUE(p->sub_attribute.empty());

    p = parse_patch_path(R"(emails[type eq "work"].value)");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->sub_attribute, "value");

    p = parse_patch_path(std::string(k_ent) + ":manager");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->attribute, (AttrPath{.schema = std::string(k_ent), .name = "manager"}));

    p = parse_patch_path(std::string(k_ent));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->attribute.name, "User");
}

TEST(ParsePatchPath, RejectsWithInvalidPath) {
    for (std::string_view text :
         {"", "members[", R"(members[value eq "x")", "members[]", R"(members[value eq "x"]x)",
          R"(name.givenName[x eq "y"])", "name givenName", "a.b.c", R"(members[value eq "x"].)",
          "1x", R"(emails[type eq "work"].value eq "x")"}) {
        auto p = parse_patch_path(text);
        ASSERT_FALSE(p) << text;
        EXPECT_EQ(p.error().type, ScimType::invalid_path) << text;
    }
}

// ---- properties ----

class FilterGenerator {
  public:
    explicit FilterGenerator(std::uint32_t seed) : m_random(seed) {}

    Filter filter(int depth) {
        const int choice = pick(depth <= 0 ? 3 : 7);
        switch (choice) {
            case 0:
            case 1:
                return compare(path(true));
            case 2:
                return Filter{.kind = Filter::Kind::present, .path = path(true)};
            case 3:
            case 4: {
                Filter logical{.kind = pick(2) == 0 ? Filter::Kind::logical_and
                                                    : Filter::Kind::logical_or};
                const int n = 2 + pick(3);
                for (int i = 0; i < n; ++i) {
                    Filter child = filter(depth - 1);
                    // A same-kind chain is flattened by the parser only
                    // when it is not parenthesised; printing parenthesises.
                    logical.children.push_back(std::move(child));
                }
                return logical;
            }
            case 5: {
                Filter negation{.kind = Filter::Kind::logical_not};
                negation.children.push_back(filter(depth - 1));
                return negation;
            }
            default: {
                Filter value_path{.kind = Filter::Kind::value_path, .path = path(false)};
                value_path.path.sub.clear();
                value_path.children.push_back(inner(depth - 1));
                if (pick(2) == 0) {
                    value_path.children.push_back(compare(AttrPath{.name = name()}));
                }
                return value_path;
            }
        }
    }

  private:
    std::mt19937 m_random;

    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(m_random); }

    std::string name() {
        static const std::vector<std::string> names{
            "userName", "displayName", "emails", "type", "value", "primary", "active",
            "name",     "$ref",        "x-1",    "a_b",  "NOT",   "and",     "pr"};
        std::string n = names[static_cast<std::size_t>(pick(static_cast<int>(names.size())))];
        if (n.front() == '$' || !std::isalpha(static_cast<unsigned char>(n.front()))) {
            n = "attr";
        }
        return n;
    }

    AttrPath path(bool allow_sub) {
        AttrPath p{.name = name()};
        if (pick(4) == 0) {
            p.schema =
                pick(2) == 0 ? "urn:ietf:params:scim:schemas:core:2.0:User" : std::string(k_ent);
        }
        if (allow_sub && pick(3) == 0) {
            p.sub = pick(3) == 0 ? "$ref" : "familyName";
        }
        return p;
    }

    // Filters inside brackets: relative names, no brackets.
    Filter inner(int depth) {
        const int choice = pick(depth <= 0 ? 2 : 4);
        if (choice == 0) {
            return compare(AttrPath{.name = name()});
        }
        if (choice == 1) {
            return Filter{.kind = Filter::Kind::present, .path = AttrPath{.name = name()}};
        }
        if (choice == 2) {
            Filter logical{.kind =
                               pick(2) == 0 ? Filter::Kind::logical_and : Filter::Kind::logical_or};
            logical.children.push_back(inner(depth - 1));
            logical.children.push_back(inner(depth - 1));
            return logical;
        }
        Filter negation{.kind = Filter::Kind::logical_not};
        negation.children.push_back(inner(depth - 1));
        return negation;
    }

    json literal(CompareOp op) {
        const bool substring = op == CompareOp::co || op == CompareOp::sw || op == CompareOp::ew;
        const bool ordering = op == CompareOp::gt || op == CompareOp::ge || op == CompareOp::lt ||
                              op == CompareOp::le;
        const int kind = substring ? 0 : pick(ordering ? 3 : 6);
        switch (kind) {
            case 0: {
                static const std::vector<std::string> parts{
                    "a",   "Z",  " ", "\"", "\\", "/", "\n", "\t",  "\xc3\xa9", "\xe2\x82\xac",
                    "and", "or", ")", "]",  "[",  "(", "eq", "\x01"};
                std::string s;
                const int n = pick(6);
                for (int i = 0; i < n; ++i) {
                    s += parts[static_cast<std::size_t>(pick(static_cast<int>(parts.size())))];
                }
                return s;
            }
            case 1:
                return std::uniform_int_distribution<std::int64_t>(-1000000, 1000000)(m_random);
            case 2:
                return std::uniform_real_distribution<double>(-1e6, 1e6)(m_random);
            case 3:
                return true;
            case 4:
                return false;
            default:
                return nullptr;
        }
    }

    Filter compare(AttrPath p) {
        const auto op = static_cast<CompareOp>(pick(9));
        return Filter{
            .kind = Filter::Kind::compare, .path = std::move(p), .op = op, .value = literal(op)};
    }
};

TEST(FilterProperties, PrintedFiltersReparseToTheSameTree) {
    FilterGenerator generate(20261122);
    const std::vector<json> resources{sample_user(), sample_group(), json::object()};
    for (int i = 0; i < 3000; ++i) {
        const Filter original = generate.filter(4);
        const std::string text = to_string(original);
        auto reparsed = parse_filter(text, FilterLimits{.max_length = 1 << 20, .max_depth = 64});
        ASSERT_TRUE(reparsed) << text << ": " << reparsed.error().message;
        ASSERT_EQ(*reparsed, original) << text << "\nreprinted: " << to_string(*reparsed);
        EXPECT_EQ(to_string(*reparsed), text);
        for (const auto& resource : resources) {
            EXPECT_EQ(matches(*reparsed, resource, user_rules()),
                      matches(original, resource, user_rules()))
                << text;
        }
    }
}

TEST(FilterProperties, RandomBytesNeverCrashTheParser) {
    std::mt19937 random(7644);
    const std::string alphabet = R"(abcdeqnotrp AND OR ()[]."\:$-_01e+trueFALSEnull)";
    const json user = sample_user();
    int parsed_count = 0;
    for (int i = 0; i < 50000; ++i) {
        const int length = std::uniform_int_distribution<int>(0, 48)(random);
        const bool raw = i % 4 == 0;
        std::string text;
        for (int j = 0; j < length; ++j) {
            if (raw) {
                text += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
            } else {
                text += alphabet[std::uniform_int_distribution<std::size_t>(
                    0, alphabet.size() - 1)(random)];
            }
        }
        auto f = parse_filter(text);
        if (!f) {
            ASSERT_EQ(f.error().type, ScimType::invalid_filter);
            continue;
        }
        ++parsed_count;
        (void)matches(*f, user, user_rules());
        (void)check_filter(*f, user_rules());
        auto again = parse_filter(to_string(*f));
        ASSERT_TRUE(again) << text;
        EXPECT_EQ(*again, *f) << text;
        (void)parse_patch_path(text);
    }
    EXPECT_GT(parsed_count, 0);
}

}  // namespace
}  // namespace orgsync::scim
