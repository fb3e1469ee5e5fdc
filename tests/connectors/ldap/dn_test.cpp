#include "connectors/ldap/dn.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "connectors/ldap/directory_reader.hpp"
#include "connectors/ldap/ldap_source.hpp"

namespace orgsync::ldap {
namespace {

TEST(NormalizeDn, CaseAndSpacingVariantsAreEqual) {
    const auto expected = normalize_dn("cn=alice smith,ou=people,dc=example,dc=com");
    ASSERT_TRUE(expected);
    EXPECT_EQ(*expected, "cn=alice smith,ou=people,dc=example,dc=com");
    for (const char* variant : {"CN=Alice Smith,OU=People,DC=Example,DC=COM",
                                "cn=Alice Smith, ou=people, dc=example, dc=com",
                                "cn = Alice Smith ,ou=People,dc=example,dc=com",
                                "Cn=alice\\20smith,ou=people,dc=example,dc=com"}) {
        EXPECT_EQ(normalize_dn(variant), expected) << variant;
    }
}

TEST(NormalizeDn, EscapesSpecialCharactersOneWay) {
    EXPECT_EQ(normalize_dn("cn=Smith\\, John,dc=example"), "cn=smith\\, john,dc=example");
    EXPECT_EQ(normalize_dn("cn=Smith\\2C John,dc=example"), "cn=smith\\, john,dc=example");
    EXPECT_EQ(normalize_dn("cn=a\\+b,dc=x"), "cn=a\\+b,dc=x");
    EXPECT_EQ(normalize_dn("cn=\\#hash,dc=x"), "cn=\\#hash,dc=x");
    EXPECT_EQ(normalize_dn("cn=\\ lead,dc=x"), "cn=\\ lead,dc=x");
}

TEST(NormalizeDn, SortsMultiValuedRdns) {
    EXPECT_EQ(normalize_dn("uid=a+cn=B,dc=x"), normalize_dn("CN=b+UID=a,dc=x"));
}

TEST(NormalizeDn, RejectsWhatIsNotADn) {
    EXPECT_FALSE(normalize_dn("not a dn"));
    EXPECT_FALSE(normalize_dn("cn=a,,dc=x"));
    EXPECT_FALSE(normalize_dn(std::string("cn=a\0b", 6)));
    EXPECT_EQ(normalize_dn(""), "");
}

// A '#' value is a hexstring (RFC 4514 §3): hex pairs and nothing else.
// libldap alone reads `cn=# abc,dc=x` and `cn=# xyz,dc=x` both as
// `cn=#,dc=x`, and `cnc=# sp\xe4` as `cnc=#`, which is not a DN. It skips
// tabs and line ends around a value as it does spaces.
TEST(NormalizeDn, HexStringValuesAreHexPairsOnly) {
    EXPECT_EQ(normalize_dn("CN=#04024869,DC=Example"), "cn=#04024869,dc=example");
    EXPECT_EQ(normalize_dn("cn= #4142 +uid=a,dc=x"), "cn=#4142+uid=a,dc=x");
    EXPECT_EQ(normalize_dn("cn=a#b,dc=x"), "cn=a#b,dc=x");
    EXPECT_EQ(normalize_dn("cn=\\#41 b,dc=x"), "cn=\\#41 b,dc=x");
    EXPECT_EQ(normalize_dn("cn=\r#4142\t,dc=x"), "cn=#4142,dc=x");
    for (const char* broken : {"cn=#,dc=x", "cn=# abc,dc=x", "cn=#41 b,dc=x", "cn=#41b,dc=x",
                               "cnc=# sp\xe4", "cn=#", "q=\r#\r", "cn=\t#41\tb,dc=x"}) {
        EXPECT_EQ(normalize_dn(broken), std::nullopt) << broken;
    }
}

// Plain DNs take a fast path that does not parse; a space after each
// separator sends the same DN through ldap_str2dn, which must agree.
TEST(NormalizeDn, PlainFastPathAgreesWithTheParser) {
    std::mt19937 random(7);
    const std::string alphabet = "abcXYZ019 -._@+#=";
    const std::vector<std::string> types{"cn", "uid", "OU", "dc", "x-Attr2", "2.5.4.3"};
    std::size_t plain = 0;
    std::string reused;
    for (int n = 0; n < 5000; ++n) {
        std::string dn;
        std::string spaced;
        const int rdns = 1 + static_cast<int>(random() % 4);
        for (int r = 0; r < rdns; ++r) {
            std::string value;
            const int length = 1 + static_cast<int>(random() % 8);
            for (int i = 0; i < length; ++i) {
                // Mostly letters and digits; the rest now and then.
                value += alphabet[random() % 4 == 0 ? random() % alphabet.size() : random() % 9U];
            }
            const std::string rdn = types[random() % types.size()] + "=" + value;
            dn += (r > 0 ? "," : "") + rdn;
            spaced += (r > 0 ? ", " : "") + rdn;
        }
        const auto fast = normalize_dn(dn);
        EXPECT_EQ(fast, normalize_dn(spaced)) << dn;
        // Into a buffer holding the previous DN (longer or shorter): the same.
        EXPECT_EQ(normalize_dn_into(dn, reused), fast.has_value()) << dn;
        if (fast) {
            EXPECT_EQ(reused, *fast) << dn;
        }
        EXPECT_EQ(normalize_dn_into(spaced, reused), fast.has_value()) << spaced;
        if (fast) {
            EXPECT_EQ(reused, *fast) << spaced;
        }
        if (fast && spaced.find_first_of("+#") == std::string::npos &&
            dn.find("2.5.4.3") == std::string::npos) {
            ++plain;
        }
    }
    EXPECT_GT(plain, 1000U);  // the fast path was exercised
}

TEST(NormalizeDn, PlainLookingStringsThatAreNotDnsAreStillRejected) {
    for (const char* text : {"=a", "cn=a,", ",cn=a", "cn", "cn=a,,dc=x", "cn=a b,dc"}) {
        EXPECT_FALSE(normalize_dn(text)) << text;
    }
    EXPECT_EQ(normalize_dn("CN=Alice Smith,DC=Example"), "cn=alice smith,dc=example");
    EXPECT_EQ(normalize_dn("cn= a,dc=x"), "cn=a,dc=x");
    EXPECT_EQ(normalize_dn("cn=a ,dc=x"), "cn=a,dc=x");
    EXPECT_EQ(normalize_dn("cn=,dc=x"), "cn=,dc=x");  // an empty value, as ldap_str2dn allows
    EXPECT_EQ(normalize_dn("cn=a=b,dc=x"), "cn=a\\=b,dc=x");
}

TEST(EscapeFilterValue, EscapesTheFilterMetacharacters) {
    EXPECT_EQ(escape_filter_value("a*b(c)d\\e"), "a\\2ab\\28c\\29d\\5ce");
    EXPECT_EQ(escape_filter_value(std::string("x\0y", 3)), "x\\00y");
    EXPECT_EQ(escape_filter_value("*)(uid=*))(|(uid=*"),
              "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a");
}

TEST(IsValidFilter, AcceptsRfc4515Filters) {
    for (const char* filter :
         {"(objectClass=inetOrgPerson)", "(&(objectClass=person)(!(uid=svc-*)))", "(|(cn=a)(cn=b))",
          "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)", "(cn=a\\2ab)",
          "(modifyTimestamp>=20260101000000Z)", "(cn~=abc)", "(mail=*)"}) {
        EXPECT_TRUE(is_valid_filter(filter)) << filter;
    }
}

TEST(IsValidFilter, RejectsBrokenFilters) {
    for (const char* filter : {"objectClass=person", "(objectClass=person", "(&)", "((cn=a))",
                               "(cn=a)(cn=b)", "(cn=a\\zz)", "(=a)", "(cn=a(b)", ""}) {
        EXPECT_FALSE(is_valid_filter(filter)) << filter;
    }
}

// A NUL would end the filter libldap is handed, so the server would get
// another filter than the one checked: it must be written \00.
TEST(IsValidFilter, RejectsAnUnescapedNul) {
    using namespace std::string_view_literals;
    for (const auto filter : {"(uid=a\0*)"sv, "(&(uid=x)(cn=a\0))"sv, "(uid=\0)"sv}) {
        EXPECT_FALSE(is_valid_filter(filter)) << filter.size();
    }
    EXPECT_TRUE(is_valid_filter("(uid=a\\00)"));
}

TEST(FormatGuid, PrintsTheFirstThreeFieldsLittleEndian) {
    const std::string bytes = {'\xe0', '\x04', '\x25', '\x3f', '\x89', '\x4f', '\xd3', '\x11',
                               '\x9a', '\x0c', '\x03', '\x05', '\xe8', '\x2c', '\x33', '\x01'};
    EXPECT_EQ(format_guid(bytes), "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    EXPECT_EQ(format_guid("\x01\xff"), "01ff");
}

TEST(NextRange, AsksForTheFollowingRange) {
    EXPECT_EQ(next_range("member;range=0-1499"), "member;range=1500-*");
    EXPECT_EQ(next_range("member;range=1500-2999"), "member;range=3000-*");
    EXPECT_EQ(next_range("member;range=3000-*"), "");
    EXPECT_EQ(next_range("member"), "");
}

TEST(Cursor, RoundTripsAndRejectsGarbage) {
    const Cursor cursor{.mode = "content_sync",
                        .users = "rid=000,csn=1#000000#000#000000",
                        .groups = "",
                        .full_at = 1'790'000'000};
    const auto parsed = Cursor::parse(cursor.to_text());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->mode, cursor.mode);
    EXPECT_EQ(parsed->users, cursor.users);
    EXPECT_EQ(parsed->full_at, cursor.full_at);
    EXPECT_FALSE(Cursor::parse("not json"));
    EXPECT_FALSE(Cursor::parse(R"({"mode":1})"));
}

}  // namespace
}  // namespace orgsync::ldap
