// Email and domain canonicalisation (directory/email.hpp, libidn2) on
// arbitrary bytes. Properties: canonicalising is idempotent, for addresses
// and domains; the fast check (is_canonical_email) never accepts what
// canonical_email would change; a canonical address's domain is the
// canonical domain of the address's domain, and its local part is kept.

#include "directory/email.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace orgsync::directory;
using orgsync::fuzz::require;

void check_domain(std::string_view domain) {
    const auto canonical = canonical_domain(domain);
    if (!canonical) {
        require(!canonical.error().empty(), "a refused domain says why");
        return;
    }
    const auto again = canonical_domain(*canonical);
    require(again && *again == *canonical, "canonical_domain is idempotent", *canonical);
    require(canonical->size() <= 253 && canonical->find('.') != std::string::npos,
            "a canonical domain is a fully qualified name", *canonical);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view address = orgsync::fuzz::as_text(data, size);
    check_domain(address);

    const auto canonical = canonical_email(address);
    if (is_canonical_email(address)) {
        require(canonical && *canonical == address, "what is_canonical_email accepts is canonical",
                std::string(address));
    }
    if (!canonical) {
        require(!canonical.error().empty(), "a refused address says why");
        return 0;
    }
    const auto again = canonical_email(*canonical);
    require(again && *again == *canonical, "canonical_email is idempotent", *canonical);

    const auto at = address.find('@');
    require(canonical->substr(0, canonical->find('@')) == address.substr(0, at),
            "the local part is kept as given", *canonical);
    const auto domain = canonical_domain(address.substr(at + 1));
    require(domain && *domain == email_domain(*canonical),
            "an address's domain is canonicalised as a bare domain", *canonical);
    check_domain(email_domain(*canonical));
    return 0;
}
