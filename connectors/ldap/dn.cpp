#include "connectors/ldap/dn.hpp"

#include <ldap.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

#include "connectors/ldap/text.hpp"

namespace orgsync::ldap {
namespace {

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), lower);
    return out;
}

// `\XX`: a byte escaped as a hex pair (RFC 4514 and RFC 4515 alike).
void append_hex(std::string& out, unsigned char byte) {
    out.push_back('\\');
    append_hex_byte(out, byte);
}

// RFC 4514 §2.4: the characters that must be escaped, one spelling for each.
std::string escape_dn_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        const bool leading = i == 0 && (c == ' ' || c == '#');
        const bool trailing = i + 1 == value.size() && c == ' ';
        if (c < 0x20 || c == 0x7f) {
            append_hex(out, c);
        } else if (leading || trailing || c == ',' || c == '+' || c == '"' || c == '\\' ||
                   c == '<' || c == '>' || c == ';' || c == '=') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

struct DnFree {
    void operator()(LDAPDN dn) const { ldap_dnfree(dn); }
};

struct Ava {
    std::string type;
    std::string value;  // already escaped
    auto operator<=>(const Ava&) const = default;
};

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Characters a value may hold for the fast path: nothing RFC 4514 escapes
// and nothing ldap_str2dn treats specially, and no bytes outside ASCII.
bool is_plain_value_char(char c) {
    return is_alpha(c) || is_digit(c) || c == ' ' || c == '-' || c == '.' || c == '_' || c == '@';
}

// The normal form of the DNs nearly every directory uses (single-valued
// RDNs, descriptor attribute types, values of letters, digits, inner
// spaces and `-._@`), without parsing: exactly what the full path below
// gives for them, since such a DN needs no escaping, has no spacing to drop
// and no multi-valued RDN to sort. False for anything else, which then
// takes the full path (which also decides whether it is a DN at all).
// Group member resolution normalises every member value, so this matters.
// Writes into `out`, whose storage a caller normalising many DNs reuses.
bool normalize_plain_dn(std::string_view dn, std::string& out) {
    if (dn.empty()) {
        return false;
    }
    out.resize(dn.size());
    std::size_t at = 0;
    while (true) {
        // Type: ALPHA *(ALPHA / DIGIT / "-").
        const std::size_t type_start = at;
        if (at >= dn.size() || !is_alpha(dn[at])) {
            return false;
        }
        while (at < dn.size() && (is_alpha(dn[at]) || is_digit(dn[at]) || dn[at] == '-')) {
            out[at] = lower(dn[at]);
            ++at;
        }
        if (at == type_start || at >= dn.size() || dn[at] != '=') {
            return false;
        }
        out[at] = '=';
        ++at;
        // Value: plain characters, not starting or ending with a space.
        const std::size_t value_start = at;
        while (at < dn.size() && dn[at] != ',') {
            if (!is_plain_value_char(dn[at])) {
                return false;
            }
            out[at] = lower(dn[at]);
            ++at;
        }
        if (at == value_start || dn[value_start] == ' ' || dn[at - 1] == ' ') {
            return false;
        }
        if (at == dn.size()) {
            return true;
        }
        out[at] = ',';
        ++at;  // past ','; an empty RDN after it fails the type check
    }
}

bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 4514 §3: a value starting with '#' is a hexstring, one or more hex
// pairs with nothing but spaces before the next separator. ldap_str2dn is
// laxer: it takes `cn=#,dc=x` as an empty binary value and stops reading a
// value at what follows the pairs (`cn=#41 b` as `cn=#41`), so distinct
// strings would share one normal form, which might not even be a DN.
// libldap skips these around a value as it does spaces.
bool is_dn_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool hexstrings_well_formed(std::string_view dn) {
    bool in_value = false;
    bool at_value_start = false;
    bool quoted = false;
    for (std::size_t i = 0; i < dn.size(); ++i) {
        const char c = dn[i];
        if (!in_value) {
            in_value = c == '=';
            at_value_start = in_value;
            continue;
        }
        if (at_value_start) {
            if (is_dn_space(c)) {
                continue;
            }
            at_value_start = false;
            if (c == '#') {
                std::size_t pairs = 0;
                ++i;
                while (i + 1 < dn.size() && is_hex(dn[i]) && is_hex(dn[i + 1])) {
                    i += 2;
                    ++pairs;
                }
                while (i < dn.size() && is_dn_space(dn[i])) {
                    ++i;
                }
                if (pairs == 0 || (i < dn.size() && dn[i] != ',' && dn[i] != ';' && dn[i] != '+')) {
                    return false;
                }
                in_value = false;  // dn[i] is the separator, or i is the end
                continue;
            }
        }
        if (c == '\\') {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if (!quoted && (c == ',' || c == ';' || c == '+')) {
            in_value = false;
        }
    }
    return true;
}

}  // namespace

bool normalize_dn_into(std::string_view dn, std::string& out) {
    if (normalize_plain_dn(dn, out)) {
        return true;
    }
    const std::string text(dn);
    if (text.find('\0') != std::string::npos ||
        (text.find('#') != std::string::npos && !hexstrings_well_formed(text))) {
        return false;
    }
    LDAPDN parsed = nullptr;
    if (ldap_str2dn(text.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) {
        return false;
    }
    out.clear();
    if (parsed == nullptr) {
        return true;
    }
    const std::unique_ptr<LDAPRDN, DnFree> owner(parsed);
    for (int r = 0; parsed[r] != nullptr; ++r) {
        std::vector<Ava> avas;
        for (int a = 0; parsed[r][a] != nullptr; ++a) {
            const LDAPAVA& ava = *parsed[r][a];
            const std::string_view type(ava.la_attr.bv_val, ava.la_attr.bv_len);
            const std::string_view value(ava.la_value.bv_val, ava.la_value.bv_len);
            if ((ava.la_flags & LDAP_AVA_BINARY) != 0) {
                if (value.empty()) {
                    return false;  // `#` and no pairs: not a hexstring
                }
                // A BER-encoded value (`cn=#04024869`): kept as its hex form.
                std::string hex = "#";
                for (const char c : value) {
                    append_hex_byte(hex, static_cast<unsigned char>(c));
                }
                avas.push_back({lowered(type), std::move(hex)});
            } else {
                avas.push_back({lowered(type), escape_dn_value(lowered(value))});
            }
        }
        std::ranges::sort(avas);
        if (r > 0) {
            out.push_back(',');
        }
        for (std::size_t a = 0; a < avas.size(); ++a) {
            if (a > 0) {
                out.push_back('+');
            }
            out += avas[a].type;
            out.push_back('=');
            out += avas[a].value;
        }
    }
    return true;
}

std::optional<std::string> normalize_dn(std::string_view dn) {
    std::string out;
    if (!normalize_dn_into(dn, out)) {
        return std::nullopt;
    }
    return out;
}

std::string escape_filter_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
            append_hex(out, static_cast<unsigned char>(c));
        } else {
            out.push_back(c);
        }
    }
    return out;
}

namespace {

// A small recursive-descent check of RFC 4515's grammar: enough to tell a
// typo (unbalanced parentheses, a missing operator) before the server does.
class FilterChecker {
  public:
    explicit FilterChecker(std::string_view text) : m_text(text) {}

    bool valid() { return filter() && m_pos == m_text.size(); }

  private:
    bool filter() {
        if (!take('(')) {
            return false;
        }
        if (m_pos >= m_text.size()) {
            return false;
        }
        const char op = m_text[m_pos];
        if (op == '&' || op == '|') {
            ++m_pos;
            int count = 0;
            while (m_pos < m_text.size() && m_text[m_pos] == '(') {
                if (!filter()) {
                    return false;
                }
                ++count;
            }
            return count > 0 && take(')');
        }
        if (op == '!') {
            ++m_pos;
            return filter() && take(')');
        }
        return item() && take(')');
    }

    bool item() {
        const std::size_t start = m_pos;
        while (m_pos < m_text.size() &&
               (std::isalnum(static_cast<unsigned char>(m_text[m_pos])) || m_text[m_pos] == '-' ||
                m_text[m_pos] == '.' || m_text[m_pos] == ';' || m_text[m_pos] == ':')) {
            ++m_pos;
        }
        if (m_pos == start || m_pos >= m_text.size()) {
            return false;
        }
        // The operator: = ~= >= <= (":=" of extensible matches ends the
        // attribute description above with ':').
        if (m_text[m_pos] == '~' || m_text[m_pos] == '>' || m_text[m_pos] == '<') {
            ++m_pos;
        }
        if (!take('=')) {
            return false;
        }
        // The value: anything but unescaped parentheses and NUL (which
        // would end the C string libldap is given); escapes are \XX.
        while (m_pos < m_text.size() && m_text[m_pos] != ')') {
            if (m_text[m_pos] == '(' || m_text[m_pos] == '\0') {
                return false;
            }
            if (m_text[m_pos] == '\\') {
                if (m_pos + 2 >= m_text.size() ||
                    !std::isxdigit(static_cast<unsigned char>(m_text[m_pos + 1])) ||
                    !std::isxdigit(static_cast<unsigned char>(m_text[m_pos + 2]))) {
                    return false;
                }
                m_pos += 3;
                continue;
            }
            ++m_pos;
        }
        return true;
    }

    bool take(char c) {
        if (m_pos < m_text.size() && m_text[m_pos] == c) {
            ++m_pos;
            return true;
        }
        return false;
    }

    std::string_view m_text;
    std::size_t m_pos = 0;
};

}  // namespace

bool is_valid_filter(std::string_view filter) {
    return FilterChecker(filter).valid();
}

}  // namespace orgsync::ldap
