#include "daemon/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// A configuration file is a few kilobytes; anything this large was named by mistake.
constexpr std::size_t k_max_file_size = 1024 * 1024;
// Above this, a duration is a typo rather than an interval.
constexpr std::int64_t k_max_duration_seconds = std::int64_t{100} * 365 * 24 * 3600;
constexpr std::size_t k_max_quoted_key = 64;

// ---------------------------------------------------------------------------
// Rules for single values. A check returns why a value is wrong, or nullopt.

using Problem = std::optional<std::string_view>;
using Check = Problem (*)(std::string_view value);

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

// The org slug rule of DESIGN §1 (directory::is_valid_slug states the same).
Problem check_org_slug(std::string_view value) {
    const bool valid =
        !value.empty() && value.size() <= 63 &&
        std::ranges::all_of(value, [](char c) { return is_lower_alnum(c) || c == '-'; });
    if (valid) {
        return std::nullopt;
    }
    return R"(must be 1 to 63 characters of a-z, 0-9 and "-")";
}

Problem check_listen(std::string_view value) {
    if (parse_listen_address(value)) {
        return std::nullopt;
    }
    return R"(must be "host:port" with a port from 1 to 65535, e.g. "127.0.0.1:8650" or "[::1]:8650")";
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

Problem check_http_url(std::string_view value) {
    if (is_url_with_scheme(value, "http://") || is_url_with_scheme(value, "https://")) {
        return std::nullopt;
    }
    return "must be an http:// or https:// URL";
}

// ---------------------------------------------------------------------------
// The option tables: every key of the file is declared once below, with its
// type, default and allowed values or range.

enum class Kind {
    string,       // non-empty string
    path,         // non-empty string, resolved against the config file's directory
    enumeration,  // one of `choices`
    boolean,
    integer,      // within `limits`
    duration,     // parse_duration text, within `limits` (seconds)
    string_list,  // a string or a non-empty array of strings
};

template <typename T>
using Field = std::variant<std::string T::*, fs::path T::*, bool T::*, int T::*, seconds T::*,
                           std::vector<std::string> T::*, LdapFlavor T::*>;

struct Limits {
    std::int64_t min = 0;
    std::int64_t max = 0;
};

template <typename T>
struct Option {
    std::string_view key;
    Kind kind = Kind::string;
    Field<T> field;
    bool required = false;
    std::string_view fallback = {};  // the default, as an admin would write it; empty: none
    std::span<const std::string_view> choices = {};  // enumeration
    Limits limits = {};                              // integer, duration
    Check check = nullptr;                           // string, string_list (each element)
};

// Two keys of one table that are only meaningful together.
struct Pair {
    std::string_view first;
    std::string_view second;
};

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
     .field = &LdapSourceConfig::flavor,
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
    {.key = "bind_dn", .kind = Kind::string, .field = &LdapSourceConfig::bind_dn},
    {.key = "bind_password_file",
     .kind = Kind::path,
     .field = &LdapSourceConfig::bind_password_file},
    {.key = "user_base",
     .kind = Kind::string,
     .field = &LdapSourceConfig::user_base,
     .required = true},
    {.key = "user_filter",
     .kind = Kind::string,
     .field = &LdapSourceConfig::user_filter,
     .fallback = "(objectClass=inetOrgPerson)"},
    {.key = "group_base", .kind = Kind::string, .field = &LdapSourceConfig::group_base},
    {.key = "group_filter",
     .kind = Kind::string,
     .field = &LdapSourceConfig::group_filter,
     .fallback = "(objectClass=groupOfNames)"},
    {.key = "group_member_attribute",
     .kind = Kind::enumeration,
     .field = &LdapSourceConfig::group_member_attribute,
     .fallback = "member",
     .choices = k_member_attributes},
    {.key = "email_attribute",
     .kind = Kind::string,
     .field = &LdapSourceConfig::email_attribute,
     .fallback = "mail"},
    {.key = "interval",
     .kind = Kind::duration,
     .field = &LdapSourceConfig::interval,
     .fallback = "15m",
     .limits = {.min = 10, .max = 7 * 24 * 3600}},
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

// The option declared for `key` in an option table, or nullptr.
template <std::ranges::contiguous_range Options>
auto find_option(const Options& options, std::string_view key) {
    using Pointer = decltype(&*std::ranges::begin(options));
    const auto it = std::ranges::find(options, key, [](const auto& option) { return option.key; });
    return it == std::ranges::end(options) ? Pointer{} : &*it;
}

// ---------------------------------------------------------------------------
// Messages.

// Text from the file or the parser, safe to print on one line: control
// characters escaped, cut after `limit` bytes.
std::string printable(std::string_view text, std::size_t limit = k_max_quoted_key) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    for (const char c : text.substr(0, limit)) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7f) {
            out += "\\x";
            out += k_hex[byte >> 4];
            out += k_hex[byte & 0xf];
        } else {
            out += c;
        }
    }
    if (text.size() > limit) {
        out += "...";
    }
    return out;
}

std::string quote(std::string_view text) {
    return "\"" + printable(text) + "\"";
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

std::string_view expected_type(Kind kind) {
    switch (kind) {
        case Kind::string:
        case Kind::path:
        case Kind::enumeration:
            return "a string";
        case Kind::boolean:
            return "a boolean";
        case Kind::integer:
            return "an integer";
        case Kind::duration:
            return "a duration string";
        case Kind::string_list:
            return "a string or an array of strings";
    }
    return "a value";
}

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (const std::string_view word : words) {
        if (!out.empty()) {
            out += ", ";
        }
        out += word;
    }
    return out;
}

// Which table a message is about.
struct Where {
    std::string text;        // "in [http]", "at top level", "in [[source]] \"corp\""
    std::string table_path;  // the table's dotted TOML name, "" at top level
};

std::string key_label(std::string_view key, const Where& where) {
    return "key " + quote(key) + " " + where.text;
}

std::string unknown_message(std::string_view key, const toml::node& value, const Where& where) {
    if (value.is_table()) {
        const std::string name =
            where.table_path.empty() ? printable(key) : where.table_path + "." + printable(key);
        return "unknown table [" + name + "]";
    }
    return "unknown key " + quote(key) + " " + where.text;
}

// ---------------------------------------------------------------------------
// Reading.

int to_int(toml::source_index index) {
    return index > static_cast<toml::source_index>(std::numeric_limits<int>::max())
               ? std::numeric_limits<int>::max()
               : static_cast<int>(index);
}

// Collects the errors of one file and resolves the paths it names.
class Reader {
  public:
    Reader(std::string path, fs::path base_directory)
        : m_path(std::move(path)), m_base_directory(std::move(base_directory)) {}

    void error(const toml::source_position& at, std::string message) {
        m_errors.push_back(
            ConfigError{m_path, to_int(at.line), to_int(at.column), std::move(message)});
    }
    void error(const toml::node& at, std::string message) {
        error(at.source().begin, std::move(message));
    }

    fs::path resolve(std::string_view path) const {
        return (m_base_directory / fs::path(path)).lexically_normal();
    }

    bool failed() const { return !m_errors.empty(); }

    // The errors in file order.
    std::vector<ConfigError> take_errors() {
        std::ranges::stable_sort(m_errors, [](const ConfigError& a, const ConfigError& b) {
            return std::pair(a.line, a.column) < std::pair(b.line, b.column);
        });
        return std::move(m_errors);
    }

  private:
    std::string m_path;
    fs::path m_base_directory;
    std::vector<ConfigError> m_errors;
};

using Value =
    std::variant<std::string, fs::path, bool, std::int64_t, seconds, std::vector<std::string>>;

template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};

// Stores a value converted for `field`'s kind; a mismatch between an option's
// kind and its field is a bug in the tables above (std::bad_variant_access).
template <typename T>
void store(T& target, const Field<T>& field, Value value) {
    std::visit(
        Overloaded{
            [&](std::string T::*member) {
                target.*member = std::move(std::get<std::string>(value));
            },
            [&](fs::path T::*member) { target.*member = std::move(std::get<fs::path>(value)); },
            [&](bool T::*member) { target.*member = std::get<bool>(value); },
            [&](int T::*member) {
                target.*member = static_cast<int>(std::get<std::int64_t>(value));
            },
            [&](seconds T::*member) { target.*member = std::get<seconds>(value); },
            [&](std::vector<std::string> T::*member) {
                target.*member = std::move(std::get<std::vector<std::string>>(value));
            },
            [&](LdapFlavor T::*member) {
                target.*member = parse_ldap_flavor(std::get<std::string>(value)).value();
            },
        },
        field);
}

std::string range_message(Kind kind, Limits limits) {
    if (kind == Kind::duration) {
        return "must be between " + format_duration(seconds(limits.min)) + " and " +
               format_duration(seconds(limits.max));
    }
    return "must be between " + std::to_string(limits.min) + " and " + std::to_string(limits.max);
}

// Converts the text of a string-like option, or says what is wrong with it.
template <typename T>
std::expected<Value, std::string> convert_text(const Reader& reader, const Option<T>& option,
                                               std::string_view text) {
    if (text.empty()) {
        return std::unexpected("must not be empty");
    }
    switch (option.kind) {
        case Kind::enumeration:
            if (std::ranges::find(option.choices, text) == option.choices.end()) {
                return std::unexpected("must be one of: " + join(option.choices));
            }
            break;
        case Kind::duration: {
            const std::optional<seconds> duration = parse_duration(text);
            if (!duration) {
                return std::unexpected(
                    R"(must be a duration such as "30s", "15m" or "1h30m" (units d, h, m, s))");
            }
            if (duration->count() < option.limits.min || duration->count() > option.limits.max) {
                return std::unexpected(range_message(option.kind, option.limits));
            }
            return *duration;
        }
        case Kind::path:
            return reader.resolve(text);
        default:
            break;
    }
    if (option.check) {
        if (const Problem problem = option.check(text)) {
            return std::unexpected(std::string(*problem));
        }
    }
    return std::string(text);
}

// Reads `node` as the value of `option`; reports and returns nullopt when it is not valid.
template <typename T>
std::optional<Value> read_value(Reader& reader, const Option<T>& option, const toml::node& node,
                                const std::string& label) {
    switch (option.kind) {
        case Kind::boolean:
            if (const auto* value = node.as_boolean()) {
                return value->get();
            }
            break;
        case Kind::integer:
            if (const auto* value = node.as_integer()) {
                if (value->get() < option.limits.min || value->get() > option.limits.max) {
                    reader.error(node, label + ": " + range_message(option.kind, option.limits));
                    return std::nullopt;
                }
                return value->get();
            }
            break;
        case Kind::string_list:
            if (const auto* array = node.as_array()) {
                if (array->empty()) {
                    reader.error(node, label + ": must not be empty");
                    return std::nullopt;
                }
                std::vector<std::string> items;
                for (const toml::node& element : *array) {
                    const auto* text = element.as_string();
                    if (!text) {
                        reader.error(element, label + ": expected " +
                                                  std::string(expected_type(option.kind)) +
                                                  ", got an array containing " +
                                                  std::string(type_name(element)));
                        return std::nullopt;
                    }
                    auto item = convert_text(reader, option, text->get());
                    if (!item) {
                        reader.error(element, label + ": " + item.error());
                        return std::nullopt;
                    }
                    items.push_back(std::get<std::string>(std::move(*item)));
                }
                return items;
            }
            [[fallthrough]];
        default:
            if (const auto* text = node.as_string()) {
                auto value = convert_text(reader, option, text->get());
                if (!value) {
                    reader.error(node, label + ": " + value.error());
                    return std::nullopt;
                }
                if (option.kind == Kind::string_list) {
                    return std::vector<std::string>{std::get<std::string>(std::move(*value))};
                }
                return std::move(*value);
            }
            break;
    }
    reader.error(node, label + ": expected " + std::string(expected_type(option.kind)) + ", got " +
                           std::string(type_name(node)));
    return std::nullopt;
}

// The declared default of an option, converted like a value from the file.
template <typename T>
Value default_value(const Reader& reader, const Option<T>& option) {
    switch (option.kind) {
        case Kind::boolean:
            return option.fallback == "true";
        case Kind::integer: {
            std::int64_t number = 0;
            std::from_chars(option.fallback.data(), option.fallback.data() + option.fallback.size(),
                            number);
            return number;
        }
        default: {
            auto value = convert_text(reader, option, option.fallback);
            if (!value) {
                throw std::logic_error("invalid default for option " + std::string(option.key));
            }
            return std::move(*value);
        }
    }
}

// Where each key whose value was valid sits in the file (so checks across
// keys do not pile onto an error already reported).
using KeyPositions = std::map<std::string, toml::source_position, std::less<>>;

// Reads the options of `table` into `target`, applies the defaults of the
// absent ones and reports absent required ones. A key the options do not
// declare goes to `other_key`, which returns false when it is unknown.
template <typename T, typename OtherKey>
KeyPositions read_table(Reader& reader, const toml::table& table, const Where& where,
                        std::span<const Option<std::type_identity_t<T>>> options, T& target,
                        OtherKey&& other_key) {
    KeyPositions positions;
    for (const auto& [key, node] : table) {
        const Option<T>* option = find_option(options, key.str());
        if (!option) {
            if (!other_key(key, node)) {
                reader.error(key.source().begin, unknown_message(key.str(), node, where));
            }
            continue;
        }
        if (std::optional<Value> value =
                read_value(reader, *option, node, key_label(key.str(), where))) {
            store(target, option->field, std::move(*value));
            positions.emplace(key.str(), key.source().begin);
        }
    }
    for (const Option<T>& option : options) {
        if (table.contains(option.key)) {
            continue;
        }
        if (option.required) {
            reader.error(table.source().begin,
                         "missing required key " + quote(option.key) + " " + where.text);
        } else if (!option.fallback.empty()) {
            store(target, option.field, default_value(reader, option));
        }
    }
    return positions;
}

constexpr auto k_no_other_keys = [](const toml::key&, const toml::node&) { return false; };

void check_pairs(Reader& reader, const KeyPositions& positions, const Where& where,
                 std::span<const Pair> pairs) {
    for (const Pair& pair : pairs) {
        const auto first = positions.find(pair.first);
        const auto second = positions.find(pair.second);
        if (first != positions.end() && second == positions.end()) {
            reader.error(first->second, key_label(pair.first, where) +
                                            ": must be set together with " + quote(pair.second));
        } else if (first == positions.end() && second != positions.end()) {
            reader.error(second->second, key_label(pair.second, where) +
                                             ": must be set together with " + quote(pair.first));
        }
    }
}

// Calls `read(table, index)` for each table of the array of tables `node`
// (index counts from 1).
template <typename Read>
void read_array_of_tables(Reader& reader, const toml::node& node, const std::string& label,
                          Read&& read) {
    const toml::array* array = node.as_array();
    if (!array) {
        reader.error(node,
                     label + ": expected an array of tables, got " + std::string(type_name(node)));
        return;
    }
    std::size_t index = 0;
    for (const toml::node& element : *array) {
        ++index;
        if (const toml::table* table = element.as_table()) {
            read(*table, index);
        } else {
            reader.error(element, label +
                                      ": expected an array of tables, got an array containing " +
                                      std::string(type_name(element)));
        }
    }
}

void read_targets(Reader& reader, const toml::node& node, const Where& webhook, Config& config) {
    read_array_of_tables(
        reader, node, key_label("target", webhook),
        [&](const toml::table& table, std::size_t index) {
            const Where where{"in [[webhook.target]] #" + std::to_string(index), "webhook.target"};
            WebhookTarget target;
            read_table(reader, table, where, k_target_options, target, k_no_other_keys);
            config.webhook_targets.push_back(std::move(target));
        });
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

fs::path base_directory(const fs::path& file) {
    std::error_code error;
    const fs::path absolute = fs::absolute(file, error);
    return (error ? file : absolute).parent_path();
}

std::unexpected<std::vector<ConfigError>> file_error(const fs::path& file, std::string message) {
    return std::unexpected(std::vector{ConfigError{file.string(), 0, 0, std::move(message)}});
}

}  // namespace

std::string ConfigError::to_string() const {
    if (line <= 0) {
        return path + ": " + message;
    }
    return path + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

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
    if (number < 1 || number > 65535) {
        return std::nullopt;
    }
    return ListenAddress{std::string(host), static_cast<std::uint16_t>(number)};
}

std::optional<seconds> parse_duration(std::string_view text) {
    struct Unit {
        char symbol;
        std::int64_t seconds;
    };
    static constexpr std::array<Unit, 4> k_units{{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};

    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    std::size_t next_unit = 0;  // units go from days to seconds, each at most once
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t digits_begin = at;
        while (at < text.size() && is_digit(text[at])) {
            ++at;
        }
        // Ten digits of days are already far above the limit; more would overflow.
        if (at == digits_begin || at - digits_begin > 10 || at == text.size()) {
            return std::nullopt;
        }
        std::int64_t number = 0;
        std::from_chars(text.data() + digits_begin, text.data() + at, number);
        const char symbol = text[at++];
        std::size_t unit = next_unit;
        while (unit < k_units.size() && k_units[unit].symbol != symbol) {
            ++unit;
        }
        if (unit == k_units.size()) {
            return std::nullopt;
        }
        next_unit = unit + 1;
        total += number * k_units[unit].seconds;
        if (total > k_max_duration_seconds) {
            return std::nullopt;
        }
    }
    return seconds(total);
}

std::string format_duration(seconds value) {
    std::int64_t rest = value.count();
    if (rest <= 0) {
        return std::to_string(rest) + "s";
    }
    std::string out;
    for (const auto& [symbol, unit] :
         {std::pair{'d', std::int64_t{86400}}, std::pair{'h', std::int64_t{3600}},
          std::pair{'m', std::int64_t{60}}, std::pair{'s', std::int64_t{1}}}) {
        if (rest >= unit) {
            out += std::to_string(rest / unit);
            out += symbol;
            rest %= unit;
        }
    }
    return out;
}

std::expected<Config, std::vector<ConfigError>> parse_config(std::string_view text,
                                                             const fs::path& file) {
    Reader reader(file.string(), base_directory(file));
    toml::table root;
    try {
        const std::string path = file.string();
        root = toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error& error) {
        reader.error(error.source().begin,
                     "TOML syntax error: " + printable(error.description(), 512));
        return std::unexpected(reader.take_errors());
    }
    Config config = read_config(reader, root, file);
    if (reader.failed()) {
        return std::unexpected(reader.take_errors());
    }
    return config;
}

std::expected<Config, std::vector<ConfigError>> load_config(const fs::path& file) {
    std::error_code error;
    const fs::file_status status = fs::status(file, error);
    if (error) {
        return file_error(file, "cannot read the file: " + error.message());
    }
    if (fs::is_directory(status)) {
        return file_error(file, "cannot read the file: it is a directory");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return file_error(file, "cannot read the file: " + std::generic_category().message(errno));
    }
    std::string text;
    std::array<char, 64 * 1024> buffer{};
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
        text.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
        if (text.size() > k_max_file_size) {
            return file_error(file, "cannot read the file: it is larger than 1 MiB");
        }
    }
    if (in.bad()) {
        return file_error(file, "cannot read the file: read error");
    }
    return parse_config(text, file);
}

}  // namespace orgsync::daemon
