#include "daemon/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace orgsync::daemon {
namespace {

// `%*`: the syslog priority of the line's level, as sd-daemon(3) prefixes.
class JournalPriority final : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& message, const std::tm&,
                spdlog::memory_buf_t& out) override {
        char digit = '6';
        switch (message.level) {
            case spdlog::level::trace:
            case spdlog::level::debug:
                digit = '7';
                break;
            case spdlog::level::info:
                digit = '6';
                break;
            case spdlog::level::warn:
                digit = '4';
                break;
            case spdlog::level::err:
                digit = '3';
                break;
            case spdlog::level::critical:
                digit = '2';
                break;
            default:
                break;
        }
        const char prefix[] = {'<', digit, '>'};
        out.append(prefix, prefix + sizeof prefix);
    }

    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<JournalPriority>();
    }
};

}  // namespace

bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) {
        return false;
    }
    struct stat info {};
    if (::fstat(2, &info) != 0) {
        return false;
    }
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
        return false;
    }
    return device == static_cast<unsigned long long>(info.st_dev) &&
           inode == static_cast<unsigned long long>(info.st_ino);
}

void setup_logging() {
    static const bool done = [] {
        auto logger = spdlog::stderr_logger_mt("orgsyncd");
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        if (stderr_is_journal()) {
            formatter->add_flag<JournalPriority>('*').set_pattern("%*%v");
        } else {
            formatter->set_pattern("%Y-%m-%dT%H:%M:%S%z %l %v");
        }
        logger->set_formatter(std::move(formatter));
        spdlog::set_default_logger(logger);
        return true;
    }();
    (void)done;
}

}  // namespace orgsync::daemon
