#pragma once

// Durations as configuration files spell them ("30s", "15m", "1h30m", "7d").

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace orgsync::config {

// One or more <number><unit> groups, units d, h, m, s in that order, each at
// most once ("30s", "15m", "1h30m", "7d"). nullopt when malformed or above
// 100 years.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// The shortest spelling parse_duration accepts for `value` ("1h30m"; "0s").
std::string format_duration(std::chrono::seconds value);

}  // namespace orgsync::config
