#pragma once

// FNV-1a, 64 bits: a fingerprint of text that stays the same across runs
// and builds (unlike std::hash), for values that are stored and compared
// later (the mapping's digest, an LDAP cursor's settings and group marks).

#include <cstdint>
#include <string_view>

namespace orgsync::config {

inline constexpr std::uint64_t k_fnv_basis = 0xcbf29ce484222325ULL;

// `text` folded into `hash` (start from k_fnv_basis).
inline std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = k_fnv_basis) {
    for (const char c : text) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    }
    return hash;
}

}  // namespace orgsync::config
