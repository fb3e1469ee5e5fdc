#include "config/duration.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <utility>

namespace orgsync::config {
namespace {

using std::chrono::seconds;

// Above this, a duration is a typo rather than an interval.
constexpr std::int64_t k_max_duration_seconds = std::int64_t{100} * 365 * 24 * 3600;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

}  // namespace

std::optional<seconds> parse_duration(std::string_view text) {
    struct Unit {
        char symbol;
        std::int64_t seconds;
    };
    static constexpr std::array<Unit, 4> k_units{{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};

    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    std::size_t next_unit = 0;  // units go from days to seconds, each at most once
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t digits_begin = at;
        while (at < text.size() && is_digit(text[at])) {
            ++at;
        }
        // Ten digits of days are already far above the limit; more would overflow.
        if (at == digits_begin || at - digits_begin > 10 || at == text.size()) {
            return std::nullopt;
        }
        std::int64_t number = 0;
        std::from_chars(text.data() + digits_begin, text.data() + at, number);
        const char symbol = text[at++];
        std::size_t unit = next_unit;
        while (unit < k_units.size() && k_units[unit].symbol != symbol) {
            ++unit;
        }
        if (unit == k_units.size()) {
            return std::nullopt;
        }
        next_unit = unit + 1;
        total += number * k_units[unit].seconds;
        if (total > k_max_duration_seconds) {
            return std::nullopt;
        }
    }
    return seconds(total);
}

std::string format_duration(seconds value) {
    std::int64_t rest = value.count();
    if (rest <= 0) {
        return std::to_string(rest) + "s";
    }
    std::string out;
    for (const auto& [symbol, unit] :
         {std::pair{'d', std::int64_t{86400}}, std::pair{'h', std::int64_t{3600}},
          std::pair{'m', std::int64_t{60}}, std::pair{'s', std::int64_t{1}}}) {
        if (rest >= unit) {
            out += std::to_string(rest / unit);
            out += symbol;
            rest %= unit;
        }
    }
    return out;
}

}  // namespace orgsync::config
