// DN handling (connectors/ldap/dn.hpp) on arbitrary bytes: normalize_dn,
// which has a fast path for plain DNs and libldap's parser for the rest,
// and the search filter helpers. Properties: the normal form is a fixed
// point (so the fast path and the parser agree on it); DNs that differ only
// in ASCII case (as Active Directory and OpenLDAP spell the same entry)
// normalise alike; an escaped value always makes a valid filter; a valid
// filter stays valid inside `&` and `!`.

#include <cstddef>
#include <cstdint>
#include <string>

#include "connectors/ldap/dn.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace orgsync::ldap;
using orgsync::fuzz::require;

std::string ascii_upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text = orgsync::fuzz::as_text(data, size);

    if (const auto normal = normalize_dn(text)) {
        const auto again = normalize_dn(*normal);
        require(again && *again == *normal, "the normal form of a DN is its own normal form",
                *normal);
        const auto upper = normalize_dn(ascii_upper(text));
        require(upper && *upper == *normal, "DNs differing in ASCII case normalise alike", *normal);
    }

    const std::string escaped = escape_filter_value(text);
    require(is_valid_filter("(cn=" + escaped + ")"), "an escaped value makes a valid filter",
            escaped);
    if (is_valid_filter(text)) {
        const std::string inner(text);
        require(is_valid_filter("(&" + inner + "(objectClass=*))") &&
                    is_valid_filter("(!" + inner + ")"),
                "a valid filter is valid inside & and !", inner);
    }
    return 0;
}
