#include "directory/email.hpp"

#include <gtest/gtest.h>

namespace orgsync::directory {
namespace {

TEST(CanonicalEmail, LowerCasesTheDomainOnly) {
    EXPECT_EQ(canonical_email("Ann.Lee@ACME.Com").value(), "Ann.Lee@acme.com");
}

TEST(CanonicalEmail, DropsTheTrailingDot) {
    EXPECT_EQ(canonical_email("ann@acme.com.").value(), "ann@acme.com");
}

TEST(CanonicalEmail, ConvertsUnicodeDomainsToALabels) {
    EXPECT_EQ(canonical_email("ann@Bücher.example").value(), "ann@xn--bcher-kva.example");
    EXPECT_EQ(canonical_email("ann@xn--bcher-kva.example").value(), "ann@xn--bcher-kva.example");
}

TEST(CanonicalEmail, RejectsMalformedAddresses) {
    for (const char* bad :
         {"", "ann", "ann@", "@acme.com", "ann@@acme.com", "a@b@acme.com", "ann @acme.com",
          "ann@acme .com", "ann@acme..com", "ann@-acme.com", "ann@acme-.com", "ann@localhost",
          "ann@acme_corp.com", "=?utf-8?q?ann?=@acme.com", "ann\n@acme.com", "ann@acme.com\r"}) {
        EXPECT_FALSE(canonical_email(bad).has_value()) << '"' << bad << '"';
    }
}

TEST(CanonicalEmail, RejectsOverlongParts) {
    EXPECT_FALSE(canonical_email(std::string(65, 'a') + "@acme.com").has_value());
    EXPECT_FALSE(canonical_email("ann@" + std::string(64, 'a') + ".com").has_value());
    EXPECT_TRUE(canonical_email("ann@" + std::string(63, 'a') + ".com").has_value());
}

TEST(CanonicalEmail, ExplainsWhy) {
    EXPECT_EQ(canonical_email("ann").error(), "email address has no '@'");
    EXPECT_EQ(canonical_email("a@b@c.com").error(), "email address has more than one '@'");
}

TEST(CanonicalDomain, SameRulesAsAddresses) {
    EXPECT_EQ(canonical_domain("Labelers.Example.").value(), "labelers.example");
    EXPECT_FALSE(canonical_domain("").has_value());
}

TEST(IsCanonicalEmail, AgreesWithCanonicalEmail) {
    for (const char* address :
         {"ann@acme.com", "Ann.Lee@acme.com", "ann@ACME.com", "ann@acme.com.", "ann@Bücher.example",
          "ann@xn--bcher-kva.example", "ann", "a@b@acme.com", "ann@acme..com", "ann @acme.com",
          "=?utf-8?q?ann?=@acme.com", "@acme.com", "ann@localhost"}) {
        auto canonical = canonical_email(address);
        bool same = canonical.has_value() && *canonical == address;
        if (is_canonical_email(address)) {
            EXPECT_TRUE(same) << address;
        }
    }
    EXPECT_TRUE(is_canonical_email("Ann.Lee@acme.com"));
    EXPECT_FALSE(is_canonical_email("ann@ACME.com"));
    EXPECT_FALSE(is_canonical_email("ann@acme.com."));
}

TEST(EmailDomain, IsThePartAfterTheAt) {
    EXPECT_EQ(email_domain("ann@acme.com"), "acme.com");
    EXPECT_EQ(email_domain("nobody"), "");
}

}  // namespace
}  // namespace orgsync::directory
