#include "connectors/scim/schema.hpp"

#include <gtest/gtest.h>

#include "connectors/scim/error.hpp"

namespace orgsync::scim {
namespace {

const AttributeDef& attribute(const ResourceRules& rules, std::string_view urn,
                              std::string_view name, std::string_view sub = {}) {
    const ResolvedAttribute resolved = resolve_attribute(rules, urn, name, sub);
    EXPECT_NE(resolved.attribute, nullptr) << name << "." << sub;
    static const AttributeDef missing{.name = "<missing>"};
    if (resolved.attribute == nullptr) {
        return missing;
    }
    return resolved.sub_attribute != nullptr ? *resolved.sub_attribute : *resolved.attribute;
}

TEST(Schema, CaseExactAsRfc7643Says) {
    const auto& user = user_rules();
    EXPECT_TRUE(attribute(user, "", "id").case_exact);
    EXPECT_TRUE(attribute(user, "", "externalId").case_exact);
    EXPECT_TRUE(attribute(user, "", "meta", "version").case_exact);
    EXPECT_TRUE(attribute(user, "", "meta", "location").case_exact);
    EXPECT_FALSE(attribute(user, "", "userName").case_exact);
    EXPECT_FALSE(attribute(user, "", "displayName").case_exact);
    EXPECT_FALSE(attribute(user, "", "emails", "value").case_exact);
    EXPECT_FALSE(attribute(user, "", "name", "familyName").case_exact);
    EXPECT_TRUE(attribute(group_rules(), "", "externalId").case_exact);
    EXPECT_FALSE(attribute(group_rules(), "", "displayName").case_exact);
}

TEST(Schema, MutabilityAndShape) {
    const auto& user = user_rules();
    EXPECT_EQ(attribute(user, "", "id").mutability, Mutability::read_only);
    EXPECT_EQ(attribute(user, "", "meta").mutability, Mutability::read_only);
    EXPECT_EQ(attribute(user, "", "groups").mutability, Mutability::read_only);
    EXPECT_EQ(attribute(user, "", "userName").mutability, Mutability::read_write);
    EXPECT_TRUE(attribute(user, "", "userName").required);
    EXPECT_TRUE(attribute(user, "", "emails").multi_valued);
    EXPECT_FALSE(attribute(user, "", "name").multi_valued);
    EXPECT_EQ(attribute(user, "", "active").type, AttributeType::boolean);
    EXPECT_EQ(attribute(user, "", "meta", "lastModified").type, AttributeType::date_time);
    EXPECT_EQ(attribute(group_rules(), "", "members", "value").mutability, Mutability::immutable);
    EXPECT_TRUE(attribute(group_rules(), "", "members").multi_valued);
    EXPECT_TRUE(attribute(group_rules(), "", "displayName").required);
}

TEST(Schema, ResolvesNamesInAnyCaseToTheCanonicalSpelling) {
    const auto& user = user_rules();
    EXPECT_EQ(attribute(user, "", "USERNAME").name, "userName");
    EXPECT_EQ(attribute(user, "", "name", "GIVENNAME").name, "givenName");
    EXPECT_EQ(attribute(user, std::string(k_user_schema), "username").name, "userName");
    EXPECT_EQ(attribute(user, "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER", "username").name,
              "userName");
}

TEST(Schema, EnterpriseExtension) {
    const auto& user = user_rules();
    for (std::string_view urn : {std::string_view(k_enterprise_user_schema), std::string_view()}) {
        const ResolvedAttribute resolved = resolve_attribute(user, urn, "department");
        ASSERT_NE(resolved.attribute, nullptr);
        EXPECT_TRUE(resolved.in_extension);
        EXPECT_EQ(resolved.schema->urn, k_enterprise_user_schema);
    }
    EXPECT_EQ(attribute(user, std::string(k_enterprise_user_schema), "manager", "value").name,
              "value");
    EXPECT_EQ(
        attribute(user, std::string(k_enterprise_user_schema), "manager", "displayName").mutability,
        Mutability::read_only);
    for (std::string_view name :
         {"employeeNumber", "costCenter", "organization", "division", "department"}) {
        EXPECT_EQ(attribute(user, std::string(k_enterprise_user_schema), name).name, name);
    }
    // Groups have no enterprise extension; names from one schema are
    // unknown in another.
    EXPECT_EQ(resolve_attribute(group_rules(), "", "department").attribute, nullptr);
    EXPECT_EQ(resolve_attribute(user, std::string(k_group_schema), "members").attribute, nullptr);
    EXPECT_EQ(resolve_attribute(user, std::string(k_user_schema), "department").attribute, nullptr);
    EXPECT_EQ(resolve_attribute(user, "", "name", "nickName").attribute, nullptr);
    EXPECT_EQ(resolve_attribute(user, "urn:example:other", "userName").attribute, nullptr);
}

TEST(Schema, ScimTypeSpellings) {
    EXPECT_EQ(to_string(ScimType::invalid_filter), "invalidFilter");
    EXPECT_EQ(to_string(ScimType::invalid_path), "invalidPath");
    EXPECT_EQ(to_string(ScimType::invalid_value), "invalidValue");
    EXPECT_EQ(to_string(ScimType::no_target), "noTarget");
    EXPECT_EQ(to_string(ScimType::mutability), "mutability");
    EXPECT_EQ(to_string(ScimType::too_many), "tooMany");
    EXPECT_EQ(to_string(ScimType::invalid_syntax), "invalidSyntax");
}

}  // namespace
}  // namespace orgsync::scim
