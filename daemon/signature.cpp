#include "daemon/signature.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <vector>

namespace orgsync::daemon {
namespace {

using Digest = std::array<unsigned char, 32>;  // SHA-256

Digest mac(std::string_view secret, std::int64_t t, std::string_view body) {
    std::string message = fmt::format("{}.", t);
    message.append(body);
    Digest digest{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest.data(),
         &length);
    return digest;
}

std::string to_hex(const Digest& digest) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(digest.size() * 2);
    for (unsigned char byte : digest) {
        hex += k_digits[byte >> 4];
        hex += k_digits[byte & 0x0f];
    }
    return hex;
}

std::optional<unsigned char> hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return static_cast<unsigned char>(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return static_cast<unsigned char>(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return static_cast<unsigned char>(c - 'A' + 10);
    }
    return std::nullopt;
}

std::optional<Digest> from_hex(std::string_view hex) {
    Digest digest{};
    if (hex.size() != digest.size() * 2) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < digest.size(); ++i) {
        const auto high = hex_value(hex[2 * i]);
        const auto low = hex_value(hex[2 * i + 1]);
        if (!high || !low) {
            return std::nullopt;
        }
        digest[i] = static_cast<unsigned char>(*high << 4 | *low);
    }
    return digest;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

struct Parsed {
    std::int64_t t = 0;
    std::vector<Digest> v1;
};

std::optional<Parsed> parse(std::string_view header) {
    Parsed parsed;
    bool have_t = false;
    while (!header.empty()) {
        const std::size_t comma = header.find(',');
        const std::string_view item = trim(header.substr(0, comma));
        header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
        const std::size_t equals = item.find('=');
        if (equals == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view key = item.substr(0, equals);
        const std::string_view value = item.substr(equals + 1);
        if (key == "t") {
            const bool digits = !value.empty() && value.size() <= 18 &&
                                value.find_first_not_of("0123456789") == std::string_view::npos;
            if (have_t || !digits) {
                return std::nullopt;
            }
            std::from_chars(value.data(), value.data() + value.size(), parsed.t);
            have_t = true;
        } else if (key == "v1") {
            auto digest = from_hex(value);
            if (!digest) {
                return std::nullopt;
            }
            parsed.v1.push_back(*digest);
        }
    }
    if (!have_t || parsed.v1.empty()) {
        return std::nullopt;
    }
    return parsed;
}

}  // namespace

std::string_view to_string(SignatureError error) {
    switch (error) {
        case SignatureError::malformed:
            return "malformed";
        case SignatureError::mismatch:
            return "mismatch";
        case SignatureError::stale:
            return "stale";
        case SignatureError::future:
            return "future";
    }
    return "unknown";
}

std::string sign(std::string_view secret, std::string_view body, std::chrono::sys_seconds now) {
    const std::int64_t t = now.time_since_epoch().count();
    return fmt::format("t={},v1={}", t, to_hex(mac(secret, t, body)));
}

std::string sign(std::span<const std::string> secrets, std::string_view body,
                 std::chrono::sys_seconds now) {
    const std::int64_t t = now.time_since_epoch().count();
    std::string header = fmt::format("t={}", t);
    for (const std::string& secret : secrets) {
        header += ",v1=";
        header += to_hex(mac(secret, t, body));
    }
    return header;
}

std::expected<void, SignatureError> verify(std::string_view secret, std::string_view header,
                                           std::string_view body, std::chrono::sys_seconds now,
                                           std::chrono::seconds window) {
    const auto parsed = parse(header);
    if (!parsed) {
        return std::unexpected(SignatureError::malformed);
    }
    if (secret.empty()) {
        return std::unexpected(SignatureError::mismatch);
    }
    const Digest expected = mac(secret, parsed->t, body);
    bool matched = false;
    for (const Digest& candidate : parsed->v1) {
        // Every entry is compared, so the time taken does not say which matched.
        matched |= CRYPTO_memcmp(candidate.data(), expected.data(), expected.size()) == 0;
    }
    if (!matched) {
        return std::unexpected(SignatureError::mismatch);
    }
    const std::int64_t at = now.time_since_epoch().count();
    if (parsed->t < at - window.count()) {
        return std::unexpected(SignatureError::stale);
    }
    if (parsed->t > at + window.count()) {
        return std::unexpected(SignatureError::future);
    }
    return {};
}

}  // namespace orgsync::daemon
