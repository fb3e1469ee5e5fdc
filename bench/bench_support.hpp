#pragma once

// What the benchmarks share: parsing numeric flags, wall time, peak and
// current memory, seeded random choices and a fresh temporary directory for
// the store.

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace orgsync::bench {

using Clock = std::chrono::steady_clock;

// True when all of `text` is a number of type T, stored in `out`.
template <typename T>
bool parse_number(std::string_view text, T& out) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return ec == std::errc{} && ptr == end;
}

inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

inline double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// Resident memory now (/proc/self/statm), in MiB.
inline double current_rss_mib() {
    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0;
    std::size_t resident = 0;
    if (!(statm >> pages >> resident)) {
        return 0.0;
    }
    auto page_size = static_cast<double>(sysconf(_SC_PAGESIZE));
    return static_cast<double>(resident) * page_size / (1024.0 * 1024.0);
}

// Deterministic choices from a seed, so a data set is the same every run.
class Random {
  public:
    explicit Random(std::uint64_t seed) : m_engine(seed) {}

    std::size_t below(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(m_engine);
    }
    double unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(m_engine); }
    bool chance(double p) { return unit() < p; }
    // Skewed towards low indices: a few large groups, many small ones.
    std::size_t skewed_below(std::size_t n) {
        double u = unit();
        return std::min(n - 1, static_cast<std::size_t>(u * u * static_cast<double>(n)));
    }
    template <typename T>
    const T& pick(const std::vector<T>& values) {
        return values[below(values.size())];
    }

  private:
    std::mt19937_64 m_engine;
};

// A new, empty directory under the system's temporary directory.
inline std::filesystem::path make_temp_dir(std::string_view prefix) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    return pattern;
}

}  // namespace orgsync::bench
