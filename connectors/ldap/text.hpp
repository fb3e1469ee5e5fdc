#pragma once

// Small text helpers the LDAP connector shares: attribute names compare
// case-insensitively (ASCII), and binary values print as lowercase hex.

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace orgsync::ldap {

inline bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           std::ranges::equal(text.substr(0, prefix.size()), prefix, [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

inline bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && istarts_with(a, b);
}

// Appends the two lowercase hex digits of `byte`.
inline void append_hex_byte(std::string& out, unsigned char byte) {
    constexpr std::string_view k_digits = "0123456789abcdef";
    out.push_back(k_digits[byte >> 4]);
    out.push_back(k_digits[byte & 0xf]);
}

}  // namespace orgsync::ldap
