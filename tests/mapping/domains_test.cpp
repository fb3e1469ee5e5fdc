#include <gtest/gtest.h>

#include <string_view>

#include "mapping/mapping.hpp"

namespace orgsync::mapping {
namespace {

using directory::OrgRole;
using directory::UserType;

Mapping two_orgs() {
    Mapping mapping;
    OrgMapping acme{.slug = "acme", .name = "Acme", .owner = "ceo@acme.com"};
    acme.domains = {
        {.name = "acme.com", .include_subdomains = true},
        {.name = "acme.io", .include_subdomains = false},
        {.name = "partner.example", .user_type = UserType::external, .role = OrgRole::guest},
    };
    OrgMapping labs{.slug = "acme-labs", .name = "Acme Labs", .owner = "head@labs.acme.com"};
    labs.domains = {{.name = "labs.acme.com", .include_subdomains = false}};
    mapping.orgs = {acme, labs};
    return mapping;
}

// The slug of the org `domain` resolves to, or "" when none.
std::string_view org_of(const Mapping& mapping, std::string_view domain) {
    const auto match = resolve_domain(mapping, domain);
    return match ? std::string_view(match->org->slug) : std::string_view();
}

TEST(ResolveDomainTest, ExactMatch) {
    const Mapping mapping = two_orgs();
    const auto match = resolve_domain(mapping, "partner.example");
    ASSERT_TRUE(match.has_value());
    EXPECT_EQ(match->org, &mapping.orgs[0]);
    EXPECT_EQ(match->rule, &mapping.orgs[0].domains[2]);
    EXPECT_EQ(match->rule->user_type, UserType::external);
    EXPECT_EQ(org_of(mapping, "acme.io"), "acme");
    EXPECT_EQ(org_of(mapping, "labs.acme.com"), "acme-labs");
}

TEST(ResolveDomainTest, SubdomainsOnlyWhereTheRuleSaysSo) {
    const Mapping mapping = two_orgs();
    EXPECT_EQ(org_of(mapping, "eu.acme.com"), "acme");
    EXPECT_EQ(org_of(mapping, "a.b.eu.acme.com"), "acme");
    EXPECT_EQ(org_of(mapping, "eu.acme.io"), "");
    EXPECT_EQ(org_of(mapping, "x.partner.example"), "");
}

TEST(ResolveDomainTest, TheMoreSpecificDomainWins) {
    const Mapping mapping = two_orgs();
    EXPECT_EQ(org_of(mapping, "labs.acme.com"), "acme-labs");
    // labs.acme.com does not include its subdomains, so the walk goes on up to acme.com.
    EXPECT_EQ(org_of(mapping, "eu.labs.acme.com"), "acme");
}

TEST(ResolveDomainTest, LookAlikesNeverMatch) {
    const Mapping mapping = two_orgs();
    for (const std::string_view domain :
         {"evilacme.com", "acme.com.evil.example", "acme.co", "cme.com", "com", "xacme.io",
          "acme.io.evil.example", "notpartner.example", "", "example"}) {
        EXPECT_EQ(org_of(mapping, domain), "") << domain;
    }
}

TEST(ResolveDomainTest, EmptyMapping) {
    EXPECT_FALSE(resolve_domain(Mapping{}, "acme.com").has_value());
}

TEST(PublicMailProviderTest, KnownProviders) {
    for (const std::string_view domain :
         {"gmail.com",     "googlemail.com", "outlook.com",  "hotmail.com",    "live.com",
          "msn.com",       "yahoo.com",      "ymail.com",    "aol.com",        "icloud.com",
          "me.com",        "mac.com",        "proton.me",    "protonmail.com", "gmx.com",
          "gmx.net",       "gmx.de",         "web.de",       "mail.com",       "mail.ru",
          "yandex.ru",     "yandex.com",     "qq.com",       "163.com",        "126.com",
          "zoho.com",      "fastmail.com",   "tutanota.com", "hey.com",        "yahoo.co.uk",
          "hotmail.co.uk", "outlook.fr"}) {
        EXPECT_TRUE(is_public_mail_provider(domain)) << domain;
    }
}

TEST(PublicMailProviderTest, SubdomainsOfProvidersToo) {
    EXPECT_TRUE(is_public_mail_provider("eu.outlook.com"));
    EXPECT_TRUE(is_public_mail_provider("a.b.gmail.com"));
}

TEST(PublicMailProviderTest, OrgDomainsAndLookAlikes) {
    for (const std::string_view domain :
         {"acme.com", "notgmail.com", "gmail.com.evil.example", "gmail.co", "mail.acme.com",
          "outlook.acme.com", "com", "co.uk", "", "ail.com"}) {
        EXPECT_FALSE(is_public_mail_provider(domain)) << domain;
    }
}

TEST(PublicMailProviderTest, ProvidersUnderADomain) {
    EXPECT_EQ(public_mail_provider_under("co.uk"), "hotmail.co.uk");
    EXPECT_EQ(public_mail_provider_under("co.jp"), "hotmail.co.jp");
    EXPECT_EQ(public_mail_provider_under("acme.com"), std::nullopt);
    EXPECT_EQ(public_mail_provider_under("gmail.com"), std::nullopt);  // not strictly under
    EXPECT_EQ(public_mail_provider_under("o.uk"), std::nullopt);       // label boundaries only
}

}  // namespace
}  // namespace orgsync::mapping
