#include "daemon/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/toml_schema.hpp"
#include "connectors/ldap/dn.hpp"
#include "directory/model.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using config::check_pairs;
using config::find_option;
using config::key_label;
using config::KeyPositions;
using config::Kind;
using config::Option;
using config::Pair;
using config::Problem;
using config::quote;
using config::read_array_of_tables;
using config::read_table;
using config::Reader;
using config::to_int;
using config::type_name;
using config::unknown_message;
using config::Where;

// ---------------------------------------------------------------------------
// Rules for single values. A check returns why a value is wrong, or nullopt.

bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_space_or_control(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7f;
}

Problem check_source_name(std::string_view value) {
    const bool valid = !value.empty() && value.size() <= 63 && is_lower_alnum(value.front()) &&
                       std::ranges::all_of(
                           value, [](char c) { return is_lower_alnum(c) || c == '-' || c == '_'; });
    if (valid) {
        return std::nullopt;
    }
    return R"(must be 1 to 63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit)";
}

// The slug rule of DESIGN §1.
Problem check_org_slug(std::string_view value) {
    if (directory::is_valid_slug(value)) {
        return std::nullopt;
    }
    return R"(must be 1 to 63 characters of a-z, 0-9 and "-")";
}

Problem check_listen(std::string_view value) {
    if (parse_listen_address(value)) {
        return std::nullopt;
    }
    return R"(must be "host:port" with a port from 0 to 65535 (0: any free port), e.g. "127.0.0.1:8650" or "[::1]:8650")";
}

// `scheme` followed by at least one character, without spaces or control characters.
bool is_url_with_scheme(std::string_view value, std::string_view scheme) {
    return value.size() > scheme.size() && value.starts_with(scheme) &&
           std::ranges::none_of(value, is_space_or_control);
}

Problem check_ldap_uri(std::string_view value) {
    if (is_url_with_scheme(value, "ldap://") || is_url_with_scheme(value, "ldaps://")) {
        return std::nullopt;
    }
    return "must be an ldap:// or ldaps:// URI";
}

Problem check_dn(std::string_view value) {
    if (ldap::normalize_dn(value)) {
        return std::nullopt;
    }
    return "must be a distinguished name (RFC 4514), e.g. \"ou=people,dc=example,dc=com\"";
}

Problem check_filter(std::string_view value) {
    if (ldap::is_valid_filter(value)) {
        return std::nullopt;
    }
    return "must be an LDAP search filter in parentheses (RFC 4515), e.g. "
           "\"(objectClass=inetOrgPerson)\"; escape *, (, ) and \\ in values as \\2a, \\28, "
           "\\29, \\5c";
}

Problem check_attribute_name(std::string_view value) {
    const bool ok = !value.empty() && value.size() <= 128 &&
                    std::isalpha(static_cast<unsigned char>(value.front())) &&
                    std::ranges::all_of(value, [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
                    });
    if (ok) {
        return std::nullopt;
    }
    return "must be an attribute name (a letter, then letters, digits and \"-\")";
}

Problem check_http_url(std::string_view value) {
    if (is_url_with_scheme(value, "http://") || is_url_with_scheme(value, "https://")) {
        return std::nullopt;
    }
    return "must be an http:// or https:// URL";
}

// ---------------------------------------------------------------------------
// The option tables: every key of the file is declared once below, with its
// type, default and allowed values or range.

constexpr std::string_view k_log_levels[] = {"trace", "debug",    "info", "warn",
                                             "error", "critical", "off"};
constexpr std::string_view k_source_types[] = {"ldap", "scim"};
constexpr std::string_view k_ldap_flavors[] = {"openldap", "ad", "389ds"};
constexpr std::string_view k_member_attributes[] = {"member", "uniqueMember", "memberUid",
                                                    "memberOf"};

constexpr Option<Config> k_store_options[] = {
    {.key = "path",
     .kind = Kind::path,
     .field = &Config::store_path,
     .fallback = "/var/lib/orgsync/orgsync.db"},
};

constexpr Option<Config> k_http_options[] = {
    {.key = "listen",
     .kind = Kind::string,
     .field = &Config::http_listen,
     .fallback = "127.0.0.1:8650",
     .check = check_listen},
    {.key = "api_token_file", .kind = Kind::path, .field = &Config::api_token_file},
    {.key = "tls_cert_file", .kind = Kind::path, .field = &Config::tls_cert_file},
    {.key = "tls_key_file", .kind = Kind::path, .field = &Config::tls_key_file},
    {.key = "request_timeout",
     .kind = Kind::duration,
     .field = &Config::http_request_timeout,
     .fallback = "30s",
     .limits = {.min = 1, .max = 10 * 60}},
};
constexpr Pair k_http_pairs[] = {{"tls_cert_file", "tls_key_file"}};

constexpr Option<Config> k_mapping_options[] = {
    {.key = "file", .kind = Kind::path, .field = &Config::mapping_file, .fallback = "mapping.toml"},
};

constexpr Option<Config> k_log_options[] = {
    {.key = "level",
     .kind = Kind::enumeration,
     .field = &Config::log_level,
     .fallback = "info",
     .choices = k_log_levels},
};

// [webhook] also holds the [[webhook.target]] array, read by read_targets.
constexpr Option<Config> k_webhook_options[] = {
    {.key = "secret_file", .kind = Kind::path, .field = &Config::webhook_secret_file},
    {.key = "max_attempts",
     .kind = Kind::integer,
     .field = &Config::webhook_max_attempts,
     .fallback = "20",
     .limits = {.min = 1, .max = 1000}},
    {.key = "batch_size",
     .kind = Kind::integer,
     .field = &Config::webhook_batch_size,
     .fallback = "100",
     .limits = {.min = 1, .max = 1000}},
    {.key = "timeout",
     .kind = Kind::duration,
     .field = &Config::webhook_timeout,
     .fallback = "10s",
     .limits = {.min = 1, .max = 5 * 60}},
    {.key = "retry_initial",
     .kind = Kind::duration,
     .field = &Config::webhook_retry_initial,
     .fallback = "1s",
     .limits = {.min = 1, .max = 3600}},
    {.key = "retry_max",
     .kind = Kind::duration,
     .field = &Config::webhook_retry_max,
     .fallback = "5m",
     .limits = {.min = 1, .max = 24 * 3600}},
};

constexpr Option<WebhookTarget> k_target_options[] = {
    {.key = "url",
     .kind = Kind::string,
     .field = &WebhookTarget::url,
     .required = true,
     .check = check_http_url},
    {.key = "secret_file",
     .kind = Kind::path,
     .field = &WebhookTarget::secret_file,
     .required = true},
};

// Keys of every [[source]]; the rest depend on `type`.
constexpr Option<SourceConfig> k_source_options[] = {
    {.key = "name",
     .kind = Kind::string,
     .field = &SourceConfig::name,
     .required = true,
     .check = check_source_name},
    {.key = "type",
     .kind = Kind::enumeration,
     .field = &SourceConfig::type,
     .required = true,
     .choices = k_source_types},
};

constexpr Option<LdapSourceConfig> k_ldap_options[] = {
    {.key = "flavor",
     .kind = Kind::enumeration,
     .field = config::parsed<&LdapSourceConfig::flavor, parse_ldap_flavor>(),
     .fallback = "openldap",
     .choices = k_ldap_flavors},
    {.key = "uri",
     .kind = Kind::string_list,
     .field = &LdapSourceConfig::uris,
     .required = true,
     .check = check_ldap_uri},
    {.key = "start_tls",
     .kind = Kind::boolean,
     .field = &LdapSourceConfig::start_tls,
     .fallback = "false"},
    {.key = "tls_verify",
     .kind = Kind::boolean,
     .field = &LdapSourceConfig::tls_verify,
     .fallback = "true"},
    {.key = "ca_file", .kind = Kind::path, .field = &LdapSourceConfig::ca_file},
    {.key = "client_cert_file", .kind = Kind::path, .field = &LdapSourceConfig::client_cert_file},
    {.key = "client_key_file", .kind = Kind::path, .field = &LdapSourceConfig::client_key_file},
    {.key = "bind_dn",
     .kind = Kind::string,
     .field = &LdapSourceConfig::bind_dn,
     .check = check_dn},
    {.key = "bind_password_file",
     .kind = Kind::path,
     .field = &LdapSourceConfig::bind_password_file},
    {.key = "user_base",
     .kind = Kind::string,
     .field = &LdapSourceConfig::user_base,
     .required = true,
     .check = check_dn},
    {.key = "user_filter",
     .kind = Kind::string,
     .field = &LdapSourceConfig::user_filter,
     .fallback = "(objectClass=inetOrgPerson)",
     .check = check_filter},
    {.key = "group_base",
     .kind = Kind::string,
     .field = &LdapSourceConfig::group_base,
     .check = check_dn},
    {.key = "group_filter",
     .kind = Kind::string,
     .field = &LdapSourceConfig::group_filter,
     .fallback = "(objectClass=groupOfNames)",
     .check = check_filter},
    {.key = "group_member_attribute",
     .kind = Kind::enumeration,
     .field = &LdapSourceConfig::group_member_attribute,
     .fallback = "member",
     .choices = k_member_attributes},
    {.key = "member_uid_attribute",
     .kind = Kind::string,
     .field = &LdapSourceConfig::member_uid_attribute,
     .fallback = "uid",
     .check = check_attribute_name},
    {.key = "email_attribute",
     .kind = Kind::string,
     .field = &LdapSourceConfig::email_attribute,
     .fallback = "mail",
     .check = check_attribute_name},
    {.key = "nested_groups",
     .kind = Kind::boolean,
     .field = &LdapSourceConfig::nested_groups,
     .fallback = "true"},
    {.key = "ignore_referrals",
     .kind = Kind::boolean,
     .field = &LdapSourceConfig::ignore_referrals,
     .fallback = "false"},
    {.key = "live", .kind = Kind::boolean, .field = &LdapSourceConfig::live, .fallback = "false"},
    {.key = "full_sync_interval",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::full_sync_interval,
     .fallback = "24h",
     .limits = {.min = 60, .max = 30 * 24 * 3600}},
    {.key = "clock_skew",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::clock_skew,
     .fallback = "5m",
     .limits = {.min = 0, .max = 3600}},
    {.key = "interval",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::interval,
     .fallback = "15m",
     .limits = {.min = 10, .max = 7 * 24 * 3600}},
    {.key = "retry_initial",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::retry_initial,
     .fallback = "30s",
     .limits = {.min = 1, .max = 3600}},
    {.key = "failure_threshold",
     .kind = Kind::integer,
     .field = &LdapSourceConfig::failure_threshold,
     .fallback = "3",
     .limits = {.min = 1, .max = 1000}},
    {.key = "timeout",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::timeout,
     .fallback = "30s",
     .limits = {.min = 1, .max = 10 * 60}},
    {.key = "page_size",
     .kind = Kind::integer,
     .field = &LdapSourceConfig::page_size,
     .fallback = "1000",
     .limits = {.min = 1, .max = 100000}},
};
constexpr Pair k_ldap_pairs[] = {{"client_cert_file", "client_key_file"},
                                 {"bind_dn", "bind_password_file"}};

constexpr Option<ScimSourceConfig> k_scim_options[] = {
    {.key = "org",
     .kind = Kind::string,
     .field = &ScimSourceConfig::org,
     .required = true,
     .check = check_org_slug},
    {.key = "token_file",
     .kind = Kind::path,
     .field = &ScimSourceConfig::token_file,
     .required = true},
};

struct Section {
    std::string_view name;
    std::span<const Option<Config>> options;
    std::span<const Pair> pairs = {};
};

constexpr Section k_sections[] = {
    {.name = "store", .options = k_store_options},
    {.name = "http", .options = k_http_options, .pairs = k_http_pairs},
    {.name = "mapping", .options = k_mapping_options},
    {.name = "log", .options = k_log_options},
    {.name = "webhook", .options = k_webhook_options},
};

void read_targets(Reader& reader, const toml::node& node, const Where& webhook, Config& config) {
    std::map<std::string, int, std::less<>> lines;  // line of the first target of each URL
    read_array_of_tables(
        reader, node, key_label("target", webhook),
        [&](const toml::table& table, std::size_t index) {
            const Where where{"in [[webhook.target]] #" + std::to_string(index), "webhook.target"};
            WebhookTarget target;
            read_table(reader, table, where, k_target_options, target, config::k_no_other_keys);
            // Delivery keeps its progress per URL (daemon/outbox_delivery.hpp).
            const auto* url = table.get_as<std::string>("url");
            if (url && !target.url.empty()) {
                if (const auto first = lines.find(target.url); first != lines.end()) {
                    reader.error(*url, key_label("url", where) +
                                           ": a target with this URL is already defined on line " +
                                           std::to_string(first->second));
                } else {
                    lines.emplace(target.url, to_int(table.source().begin.line));
                }
            }
            config.webhook_targets.push_back(std::move(target));
        });
}

// The backoff's cap cannot be below its first step. Reported at the key the
// file sets (retry_max when both are set).
void check_webhook(Reader& reader, const Config& config, const KeyPositions& positions,
                   const Where& where) {
    if (config.webhook_retry_max >= config.webhook_retry_initial) {
        return;
    }
    const bool at_max = positions.contains("retry_max");
    const std::string_view key = at_max ? "retry_max" : "retry_initial";
    const auto position = positions.find(key);
    if (position == positions.end()) {
        return;
    }
    reader.error(position->second, key_label(key, where) + ": " +
                                       (at_max ? "must not be shorter than retry_initial"
                                               : "must not be longer than retry_max"));
}

// The options of the other source type, for telling "wrong type" from "unknown".
template <typename Options>
auto keys_of_other_type(Reader& reader, const Options& other_options, std::string_view type,
                        const Where& where) {
    return [&reader, &other_options, type, &where](const toml::key& key, const toml::node&) {
        if (find_option(k_source_options, key.str())) {
            return true;
        }
        if (find_option(other_options, key.str())) {
            reader.error(key.source().begin, key_label(key.str(), where) +
                                                 ": not valid for a source of type " + quote(type));
            return true;
        }
        return false;
    };
}

void check_ldap(Reader& reader, const LdapSourceConfig& ldap, const KeyPositions& positions,
                const Where& where) {
    check_pairs(reader, positions, where, k_ldap_pairs);
    const bool any_ldaps = std::ranges::any_of(
        ldap.uris, [](const std::string& uri) { return uri.starts_with("ldaps://"); });
    if (ldap.start_tls && any_ldaps) {
        reader.error(positions.at("start_tls"),
                     key_label("start_tls", where) +
                         ": cannot be used with ldaps:// URIs, which are encrypted already");
    }
    if (ldap.live && ldap.flavor != LdapFlavor::openldap) {
        reader.error(positions.at("live"),
                     key_label("live", where) +
                         ": needs flavor \"openldap\" (RFC 4533 content synchronisation)");
    }
}

// Line of the first [[source]] of each name seen so far.
using SourceLines = std::map<std::string, int, std::less<>>;

void read_source(Reader& reader, const toml::table& table, std::size_t index, SourceLines& lines,
                 Config& config) {
    // Messages name the source once its name is known to be valid and unique.
    Where where{"in [[source]] #" + std::to_string(index), "source"};
    const auto* name_node = table.get_as<std::string>("name");
    const bool nameable =
        name_node && !check_source_name(name_node->get()) && !lines.contains(name_node->get());
    if (nameable) {
        where.text = "in [[source]] " + quote(name_node->get());
    }

    SourceConfig source;
    read_table(reader, table, where, k_source_options, source,
               [](const toml::key&, const toml::node&) { return true; });
    if (!source.name.empty()) {
        if (const auto first = lines.find(source.name); first != lines.end()) {
            reader.error(*name_node, key_label("name", where) +
                                         ": a source with this name is already defined on line " +
                                         std::to_string(first->second));
        } else {
            lines.emplace(source.name, to_int(table.source().begin.line));
        }
    }

    if (source.type == "ldap") {
        auto& ldap = source.settings.emplace<LdapSourceConfig>();
        const KeyPositions positions =
            read_table(reader, table, where, k_ldap_options, ldap,
                       keys_of_other_type(reader, k_scim_options, "ldap", where));
        check_ldap(reader, ldap, positions, where);
    } else if (source.type == "scim") {
        auto& scim = source.settings.emplace<ScimSourceConfig>();
        read_table(reader, table, where, k_scim_options, scim,
                   keys_of_other_type(reader, k_ldap_options, "scim", where));
    } else {
        // Without a valid type only keys that no source type declares can be judged.
        for (const auto& [key, node] : table) {
            const std::string_view name = key.str();
            if (!find_option(k_source_options, name) && !find_option(k_ldap_options, name) &&
                !find_option(k_scim_options, name)) {
                reader.error(key.source().begin, unknown_message(name, node, where));
            }
        }
    }
    config.sources.push_back(std::move(source));
}

Config read_config(Reader& reader, const toml::table& root, const fs::path& file) {
    Config config;
    config.file = file;
    const Where top{"at top level", ""};

    for (const auto& [key, node] : root) {
        const bool is_section = std::ranges::find(k_sections, key.str(), &Section::name) !=
                                std::ranges::end(k_sections);
        if (!is_section && key.str() != "source") {
            reader.error(key.source().begin, unknown_message(key.str(), node, top));
        }
    }

    const toml::table no_keys;
    for (const Section& section : k_sections) {
        const toml::node* node = root.get(section.name);
        if (node && !node->is_table()) {
            reader.error(*node, key_label(section.name, top) + ": expected a table, got " +
                                    std::string(type_name(*node)));
            continue;
        }
        const Where where{"in [" + std::string(section.name) + "]", std::string(section.name)};
        const toml::table& table = node ? *node->as_table() : no_keys;
        const KeyPositions positions =
            read_table(reader, table, where, section.options, config,
                       [&](const toml::key& key, const toml::node& value) {
                           if (section.name == "webhook" && key.str() == "target") {
                               read_targets(reader, value, where, config);
                               return true;
                           }
                           return false;
                       });
        check_pairs(reader, positions, where, section.pairs);
        if (section.name == "webhook") {
            check_webhook(reader, config, positions, where);
        }
    }

    if (const toml::node* sources = root.get("source")) {
        SourceLines lines;
        read_array_of_tables(reader, *sources, key_label("source", top),
                             [&](const toml::table& table, std::size_t index) {
                                 read_source(reader, table, index, lines, config);
                             });
    }
    return config;
}

}  // namespace

const SourceConfig* Config::find_source(std::string_view name) const {
    const auto it = std::ranges::find(sources, name, &SourceConfig::name);
    return it == sources.end() ? nullptr : &*it;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
    std::string_view host;
    std::string_view port;
    if (text.starts_with('[')) {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        const bool ipv6 =
            host.find(':') != std::string_view::npos && std::ranges::all_of(host, [](char c) {
                return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                       c == ':' || c == '.';
            });
        if (!ipv6) {
            return std::nullopt;
        }
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        const bool name_or_ipv4 = !host.empty() && std::ranges::all_of(host, [](char c) {
            return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' || c == '_';
        });
        if (!name_or_ipv4) {
            return std::nullopt;
        }
    }
    if (port.empty() || port.size() > 5 || !std::ranges::all_of(port, is_digit)) {
        return std::nullopt;
    }
    unsigned number = 0;
    std::from_chars(port.data(), port.data() + port.size(), number);
    if (number > 65535) {
        return std::nullopt;
    }
    return ListenAddress{std::string(host), static_cast<std::uint16_t>(number)};
}

std::expected<Config, std::vector<ConfigError>> parse_config(std::string_view text,
                                                             const fs::path& file) {
    Reader reader(file.string(), config::base_directory(file));
    const std::optional<toml::table> root = config::parse_toml(reader, text);
    if (!root) {
        return std::unexpected(reader.take_errors());
    }
    Config config = read_config(reader, *root, file);
    if (reader.failed()) {
        return std::unexpected(reader.take_errors());
    }
    return config;
}

std::expected<Config, std::vector<ConfigError>> load_config(const fs::path& file) {
    const auto text = config::read_text_file(file);
    if (!text) {
        return std::unexpected(std::vector{text.error()});
    }
    return parse_config(*text, file);
}

}  // namespace orgsync::daemon
