#pragma once

// What the fuzz targets share: a property check that reports the broken
// property and aborts, which libFuzzer records as a crash and saves the
// input for (build-fuzz/artifacts/).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace orgsync::fuzz {

[[noreturn]] inline void fail(std::string_view property, std::string_view detail = {}) {
    std::fprintf(stderr, "\nproperty violated: %.*s\n", static_cast<int>(property.size()),
                 property.data());
    if (!detail.empty()) {
        std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
    }
    std::abort();
}

inline void require(bool holds, std::string_view property, std::string_view detail = {}) {
    if (!holds) {
        fail(property, detail);
    }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// JSON for a failure report; invalid UTF-8 (fuzzed strings) is replaced
// rather than thrown about.
inline std::string dump(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace orgsync::fuzz
