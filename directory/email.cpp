#include "directory/email.hpp"

#include <idn2.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace orgsync::directory {
namespace {

constexpr std::size_t k_max_local_part = 64;
constexpr std::size_t k_max_domain = 253;
constexpr std::size_t k_max_label = 63;

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool has_control_or_space(std::string_view text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        auto byte = static_cast<unsigned char>(c);
        return byte <= 0x20 || byte == 0x7f;
    });
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

std::expected<void, std::string> check_labels(std::string_view domain) {
    if (domain.size() > k_max_domain) {
        return std::unexpected("domain is longer than 253 characters");
    }
    if (domain.find('.') == std::string_view::npos) {
        return std::unexpected("domain \"" + std::string(domain) + "\" is not fully qualified");
    }
    std::size_t start = 0;
    while (start <= domain.size()) {
        std::size_t end = domain.find('.', start);
        if (end == std::string_view::npos) {
            end = domain.size();
        }
        std::string_view label = domain.substr(start, end - start);
        if (label.empty()) {
            return std::unexpected("domain \"" + std::string(domain) + "\" has an empty label");
        }
        if (label.size() > k_max_label) {
            return std::unexpected("domain label \"" + std::string(label) +
                                   "\" is longer than 63 characters");
        }
        if (label.front() == '-' || label.back() == '-') {
            return std::unexpected("domain label \"" + std::string(label) +
                                   "\" starts or ends with '-'");
        }
        bool valid = std::all_of(label.begin(), label.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        });
        if (!valid) {
            return std::unexpected("domain label \"" + std::string(label) +
                                   "\" has characters other than letters, digits and '-'");
        }
        start = end + 1;
    }
    return {};
}

}  // namespace

std::expected<std::string, std::string> canonical_domain(std::string_view domain) {
    if (domain.empty()) {
        return std::unexpected("domain is empty");
    }
    if (has_control_or_space(domain)) {
        return std::unexpected("domain contains spaces or control characters");
    }
    if (domain.back() == '.') {
        domain.remove_suffix(1);
    }
    std::string lowered = ascii_lower(domain);
    bool needs_idna = !is_ascii(lowered) || lowered.starts_with("xn--") ||
                      lowered.find(".xn--") != std::string::npos;
    if (needs_idna) {
        char* converted = nullptr;
        int rc =
            idn2_to_ascii_8z(lowered.c_str(), &converted, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        std::unique_ptr<char, decltype(&std::free)> owner(converted, &std::free);
        if (rc != IDN2_OK) {
            return std::unexpected("domain \"" + lowered +
                                   "\" is not a valid internationalised name (" +
                                   idn2_strerror(rc) + ")");
        }
        lowered = ascii_lower(converted);
    }
    if (auto valid = check_labels(lowered); !valid) {
        return std::unexpected(valid.error());
    }
    return lowered;
}

std::expected<std::string, std::string> canonical_email(std::string_view address) {
    if (address.empty()) {
        return std::unexpected("email address is empty");
    }
    if (has_control_or_space(address)) {
        return std::unexpected("email address contains spaces or control characters");
    }
    if (address.find("=?") != std::string_view::npos &&
        address.find("?=") != std::string_view::npos) {
        return std::unexpected("email address contains an encoded word (=?charset?...?=)");
    }
    std::size_t at = address.find('@');
    if (at == std::string_view::npos) {
        return std::unexpected("email address has no '@'");
    }
    if (address.find('@', at + 1) != std::string_view::npos) {
        return std::unexpected("email address has more than one '@'");
    }
    std::string_view local = address.substr(0, at);
    std::string_view domain = address.substr(at + 1);
    if (local.empty()) {
        return std::unexpected("email address has an empty local part");
    }
    if (local.size() > k_max_local_part) {
        return std::unexpected("email local part is longer than 64 characters");
    }
    if (domain.empty()) {
        return std::unexpected("email address has an empty domain");
    }
    auto canonical = canonical_domain(domain);
    if (!canonical) {
        return std::unexpected(canonical.error());
    }
    return std::string(local) + "@" + *canonical;
}

bool is_canonical_email(std::string_view address) {
    std::size_t at = address.find('@');
    if (at == 0 || at == std::string_view::npos || at > k_max_local_part ||
        address.find('@', at + 1) != std::string_view::npos || has_control_or_space(address) ||
        (address.find("=?") != std::string_view::npos &&
         address.find("?=") != std::string_view::npos)) {
        return false;
    }
    std::string_view domain = address.substr(at + 1);
    if (domain.starts_with("xn--") || domain.find(".xn--") != std::string_view::npos) {
        return false;  // A-labels are validated by IDNA in canonical_email
    }
    return !domain.empty() && domain.back() != '.' && check_labels(domain).has_value();
}

std::string_view email_domain(std::string_view canonical) {
    std::size_t at = canonical.rfind('@');
    return at == std::string_view::npos ? std::string_view{} : canonical.substr(at + 1);
}

}  // namespace orgsync::directory
