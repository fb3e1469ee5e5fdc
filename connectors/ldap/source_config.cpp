#include "connectors/ldap/source_config.hpp"

namespace orgsync::ldap {

std::string_view to_string(LdapFlavor flavor) {
    switch (flavor) {
        case LdapFlavor::openldap:
            return "openldap";
        case LdapFlavor::active_directory:
            return "ad";
        case LdapFlavor::ds389:
            return "389ds";
    }
    return "openldap";
}

std::optional<LdapFlavor> parse_ldap_flavor(std::string_view text) {
    for (const LdapFlavor flavor :
         {LdapFlavor::openldap, LdapFlavor::active_directory, LdapFlavor::ds389}) {
        if (to_string(flavor) == text) {
            return flavor;
        }
    }
    return std::nullopt;
}

}  // namespace orgsync::ldap
