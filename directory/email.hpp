#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace orgsync::directory {

// Canonical email (DESIGN §1): the local part as given, the domain lower-cased,
// IDNA-normalised to its A-label form (libidn2, UTS #46 non-transitional) and
// without a trailing dot. Rejected with a message: no '@' or several, an empty
// local part or domain, RFC 2047 encoded words, control characters or spaces,
// and domains whose labels are not valid (empty, longer than 63, leading or
// trailing '-', not convertible by IDNA).
std::expected<std::string, std::string> canonical_email(std::string_view address);

// True when `address` is already canonical and valid, decided without
// allocating; a false answer only means canonical_email must decide
// (upper case, Unicode or A-label domains, trailing dot, or invalid).
bool is_canonical_email(std::string_view address);

// The canonical form of a bare domain, by the same rules as an address's domain.
std::expected<std::string, std::string> canonical_domain(std::string_view domain);

// The domain part of a canonical email (everything after the '@').
std::string_view email_domain(std::string_view canonical);

}  // namespace orgsync::directory
