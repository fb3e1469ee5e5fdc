#include "daemon/signature.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orgsync::daemon {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view k_secret = "whsec-test";
constexpr std::string_view k_body = R"({"type":"sync.request","source":"corp"})";
const std::chrono::sys_seconds k_now{1700000000s};

// Computed independently:
//   printf '1700000000.{"type":"sync.request","source":"corp"}' |
//     openssl dgst -sha256 -hmac whsec-test
constexpr std::string_view k_known_mac =
    "088f06f7cbcb701c1ca2f9f65dd85d99295ed027e95b1cd8b3952b5d13711fee";

SignatureError error_of(std::string_view header, std::string_view body = k_body,
                        std::chrono::sys_seconds now = k_now) {
    const auto verified = verify(k_secret, header, body, now);
    EXPECT_FALSE(verified.has_value()) << header;
    return verified ? SignatureError{} : verified.error();
}

TEST(SignatureTest, SignsAsTheDesignSpells) {
    EXPECT_EQ(sign(k_secret, k_body, k_now), "t=1700000000,v1=" + std::string(k_known_mac));
}

TEST(SignatureTest, VerifiesWhatItSigns) {
    const std::string header = sign(k_secret, k_body, k_now);
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now));
}

TEST(SignatureTest, VerifiesAHeaderWrittenByHand) {
    const std::string header = "t=1700000000,v1=" + std::string(k_known_mac);
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now));
    // Upper-case hex and spaces after commas are accepted.
    std::string upper = "t=1700000000, v1=";
    for (char c : k_known_mac) {
        upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    EXPECT_TRUE(verify(k_secret, upper, k_body, k_now));
}

TEST(SignatureTest, EmptyBodySignsAndVerifies) {
    const std::string header = sign(k_secret, "", k_now);
    EXPECT_EQ(header,
              "t=1700000000,v1=70b977d08298e622e7e76b0fe7fced4909b9d0a83ac8d75d8be1a428baa02352");
    EXPECT_TRUE(verify(k_secret, header, "", k_now));
    EXPECT_EQ(error_of(header, "{}"), SignatureError::mismatch);
}

TEST(SignatureTest, WrongSecretBodyOrTimestampIsAMismatch) {
    const std::string header = sign(k_secret, k_body, k_now);
    EXPECT_EQ(verify("other-secret", header, k_body, k_now).error(), SignatureError::mismatch);
    EXPECT_EQ(error_of(header, R"({"type":"sync.request","source":"corq"})"),
              SignatureError::mismatch);
    // The timestamp is signed: moving it breaks the MAC even inside the window.
    EXPECT_EQ(error_of("t=1700000001,v1=" + std::string(k_known_mac)), SignatureError::mismatch);
    // One flipped hex digit.
    std::string flipped = header;
    flipped.back() = flipped.back() == '0' ? '1' : '0';
    EXPECT_EQ(error_of(flipped), SignatureError::mismatch);
}

TEST(SignatureTest, EmptySecretNeverVerifies) {
    const std::string header = sign("", k_body, k_now);
    EXPECT_EQ(verify("", header, k_body, k_now).error(), SignatureError::mismatch);
}

TEST(SignatureTest, ReplayedOutsideTheWindowIsStale) {
    const std::string header = sign(k_secret, k_body, k_now);
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now + 300s));
    EXPECT_EQ(error_of(header, k_body, k_now + 301s), SignatureError::stale);
    EXPECT_EQ(error_of(header, k_body, k_now + 24h), SignatureError::stale);
    // A narrower window is honoured.
    EXPECT_EQ(verify(k_secret, header, k_body, k_now + 11s, 10s).error(), SignatureError::stale);
}

TEST(SignatureTest, FromTooFarAheadIsFuture) {
    const std::string header = sign(k_secret, k_body, k_now);
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now - 300s));
    EXPECT_EQ(error_of(header, k_body, k_now - 301s), SignatureError::future);
}

TEST(SignatureTest, StaleHeadersWithAWrongMacAreMismatches) {
    // An unauthenticated request learns nothing about the clock.
    EXPECT_EQ(error_of("t=1000,v1=" + std::string(k_known_mac)), SignatureError::mismatch);
}

TEST(SignatureTest, MalformedHeadersAreRejected) {
    const std::string mac(k_known_mac);
    for (const std::string& header : std::vector<std::string>{
             "",
             "v1=" + mac,                            // no t
             "t=1700000000",                         // no v1
             "t=1700000000,v1=",                     // empty v1
             "t=1700000000,v1=" + mac.substr(2),     // short
             "t=1700000000,v1=" + mac + "00",        // long
             "t=1700000000,v1=zz" + mac.substr(2),   // not hex
             "t=-5,v1=" + mac,                       // signed
             "t=,v1=" + mac,                         // empty t
             "t=17e8,v1=" + mac,                     // not decimal
             "t=1700000000,t=1700000000,v1=" + mac,  // two t
             "t=99999999999999999999,v1=" + mac,     // overflows
             "t=1700000000;v1=" + mac,               // wrong separator
             "sha256=" + mac,                        // another scheme
         }) {
        EXPECT_EQ(error_of(header), SignatureError::malformed) << header;
    }
}

TEST(SignatureTest, AnyOfSeveralV1EntriesMayMatch) {
    const std::vector<std::string> secrets{"old-secret", std::string(k_secret)};
    const std::string header = sign(secrets, k_body, k_now);
    EXPECT_TRUE(header.starts_with("t=1700000000,v1="));
    EXPECT_TRUE(header.ends_with(",v1=" + std::string(k_known_mac)));
    EXPECT_TRUE(verify("old-secret", header, k_body, k_now));
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now));
    EXPECT_EQ(verify("third-secret", header, k_body, k_now).error(), SignatureError::mismatch);
}

TEST(SignatureTest, UnknownSchemesAreIgnored) {
    const std::string header =
        "t=1700000000,v0=abc,v1=" + std::string(k_known_mac) + ",v2=future-scheme";
    EXPECT_TRUE(verify(k_secret, header, k_body, k_now));
}

TEST(SignatureTest, ReasonsHaveNames) {
    EXPECT_EQ(to_string(SignatureError::malformed), "malformed");
    EXPECT_EQ(to_string(SignatureError::mismatch), "mismatch");
    EXPECT_EQ(to_string(SignatureError::stale), "stale");
    EXPECT_EQ(to_string(SignatureError::future), "future");
}

}  // namespace
}  // namespace orgsync::daemon
