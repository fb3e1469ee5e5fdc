#include <algorithm>
#include <array>
#include <string_view>

#include "mapping/mapping.hpp"

namespace orgsync::mapping {
namespace {

// Free mailbox providers: anyone can get an address there, so owning one
// would let strangers join an org. Sorted, for binary search.
constexpr std::array<std::string_view, 72> k_public_mail_providers{
    "126.com",       "139.com",       "163.com",        "aim.com",       "aol.com",
    "att.net",       "bigpond.com",   "btinternet.com", "comcast.net",   "email.com",
    "fastmail.com",  "fastmail.fm",   "free.fr",        "gmail.com",     "gmx.at",
    "gmx.ch",        "gmx.com",       "gmx.de",         "gmx.net",       "googlemail.com",
    "hey.com",       "hotmail.co.jp", "hotmail.co.uk",  "hotmail.com",   "hotmail.de",
    "hotmail.es",    "hotmail.fr",    "hotmail.it",     "hushmail.com",  "icloud.com",
    "inbox.ru",      "laposte.net",   "libero.it",      "list.ru",       "live.co.uk",
    "live.com",      "live.de",       "live.fr",        "mac.com",       "mail.com",
    "mail.ru",       "me.com",        "msn.com",        "naver.com",     "orange.fr",
    "outlook.co.uk", "outlook.com",   "outlook.de",     "outlook.es",    "outlook.fr",
    "outlook.it",    "pm.me",         "proton.me",      "protonmail.ch", "protonmail.com",
    "qq.com",        "rambler.ru",    "rocketmail.com", "seznam.cz",     "t-online.de",
    "tutanota.com",  "tutanota.de",   "web.de",         "yahoo.co.jp",   "yahoo.co.uk",
    "yahoo.com",     "yahoo.de",      "yahoo.fr",       "yandex.com",    "yandex.ru",
    "ymail.com",     "zoho.com",
};
static_assert(std::ranges::is_sorted(k_public_mail_providers));
static_assert(std::ranges::adjacent_find(k_public_mail_providers) == k_public_mail_providers.end());

// `domain` without its first label ("a.b.example" → "b.example"), or empty.
std::string_view parent_domain(std::string_view domain) {
    const std::size_t dot = domain.find('.');
    return dot == std::string_view::npos ? std::string_view{} : domain.substr(dot + 1);
}

}  // namespace

std::optional<DomainMatch> resolve_domain(const Mapping& mapping, std::string_view domain) {
    // Rules are few (hundreds) and domain names unique across the mapping, so
    // one pass per candidate (the domain, then each parent) is enough.
    const auto find = [&](std::string_view name, bool parent) -> std::optional<DomainMatch> {
        for (const OrgMapping& org : mapping.orgs) {
            for (const DomainRule& rule : org.domains) {
                if (rule.name == name && (!parent || rule.include_subdomains)) {
                    return DomainMatch{&org, &rule};
                }
            }
        }
        return std::nullopt;
    };
    if (domain.empty()) {
        return std::nullopt;
    }
    if (auto exact = find(domain, false)) {
        return exact;
    }
    for (std::string_view parent = parent_domain(domain); !parent.empty();
         parent = parent_domain(parent)) {
        if (auto match = find(parent, true)) {
            return match;
        }
    }
    return std::nullopt;
}

bool is_public_mail_provider(std::string_view domain) {
    for (; !domain.empty(); domain = parent_domain(domain)) {
        if (std::ranges::binary_search(k_public_mail_providers, domain)) {
            return true;
        }
    }
    return false;
}

std::optional<std::string_view> public_mail_provider_under(std::string_view domain) {
    for (const std::string_view provider : k_public_mail_providers) {
        if (provider.size() > domain.size() && provider.ends_with(domain) &&
            provider[provider.size() - domain.size() - 1] == '.') {
            return provider;
        }
    }
    return std::nullopt;
}

}  // namespace orgsync::mapping
