#include "config/toml_schema.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "config/duration.hpp"

namespace orgsync::config {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// A configuration file is a few kilobytes; anything this large was named by mistake.
constexpr std::size_t k_max_file_size = 1024 * 1024;

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
        case Kind::string_array:
            return "an array of strings";
    }
    return "a value";
}

std::string range_message(Kind kind, Limits limits) {
    if (kind == Kind::duration) {
        return "must be between " + format_duration(seconds(limits.min)) + " and " +
               format_duration(seconds(limits.max));
    }
    return "must be between " + std::to_string(limits.min) + " and " + std::to_string(limits.max);
}

// Converts the text of a string-like value, or says what is wrong with it.
std::expected<Value, std::string> convert_text(const Reader& reader, const ValueRule& rule,
                                               std::string_view text) {
    if (text.empty()) {
        return std::unexpected("must not be empty");
    }
    if (rule.check && rule.kind != Kind::path && rule.kind != Kind::duration) {
        if (const Problem problem = rule.check(text)) {
            return std::unexpected(std::string(*problem));
        }
    }
    switch (rule.kind) {
        case Kind::enumeration:
            if (std::ranges::find(rule.choices, text) == rule.choices.end()) {
                return std::unexpected("must be one of: " + join(rule.choices));
            }
            break;
        case Kind::duration: {
            const std::optional<seconds> duration = parse_duration(text);
            if (!duration) {
                return std::unexpected(
                    R"(must be a duration such as "30s", "15m" or "1h30m" (units d, h, m, s))");
            }
            if (duration->count() < rule.limits.min || duration->count() > rule.limits.max) {
                return std::unexpected(range_message(rule.kind, rule.limits));
            }
            return *duration;
        }
        case Kind::path:
            return reader.resolve(text);
        default:
            break;
    }
    return std::string(text);
}

// The elements of an array of strings, each converted; nullopt after reporting.
std::optional<std::vector<std::string>> read_strings(Reader& reader, const ValueRule& rule,
                                                     const toml::array& array,
                                                     const std::string& label) {
    std::vector<std::string> items;
    for (const toml::node& element : array) {
        const auto* text = element.as_string();
        if (!text) {
            reader.error(element, label + ": expected " + std::string(expected_type(rule.kind)) +
                                      ", got an array containing " +
                                      std::string(type_name(element)));
            return std::nullopt;
        }
        auto item = convert_text(reader, rule, text->get());
        if (!item) {
            reader.error(element, label + ": " + item.error());
            return std::nullopt;
        }
        items.push_back(std::get<std::string>(std::move(*item)));
    }
    return items;
}

}  // namespace

// ---------------------------------------------------------------------------
// Messages.

std::string printable(std::string_view text, std::size_t limit) {
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

int to_int(toml::source_index index) {
    return index > static_cast<toml::source_index>(std::numeric_limits<int>::max())
               ? std::numeric_limits<int>::max()
               : static_cast<int>(index);
}

// ---------------------------------------------------------------------------
// Reading.

Reader::Reader(std::string path, fs::path base_directory)
    : m_path(std::move(path)), m_base_directory(std::move(base_directory)) {}

void Reader::error(const toml::source_position& at, std::string message) {
    m_errors.push_back(ConfigError{m_path, to_int(at.line), to_int(at.column), std::move(message)});
}

void Reader::error(const toml::node& at, std::string message) {
    error(at.source().begin, std::move(message));
}

void Reader::file_error(std::string message) {
    m_errors.push_back(ConfigError{m_path, 0, 0, std::move(message)});
}

fs::path Reader::resolve(std::string_view path) const {
    return (m_base_directory / fs::path(path)).lexically_normal();
}

std::vector<ConfigError> Reader::take_errors() {
    std::ranges::stable_sort(m_errors, [](const ConfigError& a, const ConfigError& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return std::move(m_errors);
}

std::optional<Value> read_value(Reader& reader, const ValueRule& rule, const toml::node& node,
                                const std::string& label) {
    switch (rule.kind) {
        case Kind::boolean:
            if (const auto* value = node.as_boolean()) {
                return value->get();
            }
            break;
        case Kind::integer:
            if (const auto* value = node.as_integer()) {
                if (value->get() < rule.limits.min || value->get() > rule.limits.max) {
                    reader.error(node, label + ": " + range_message(rule.kind, rule.limits));
                    return std::nullopt;
                }
                return value->get();
            }
            break;
        case Kind::string_array:
            if (const auto* array = node.as_array()) {
                return read_strings(reader, rule, *array, label);
            }
            break;
        case Kind::string_list:
            if (const auto* array = node.as_array()) {
                if (array->empty()) {
                    reader.error(node, label + ": must not be empty");
                    return std::nullopt;
                }
                return read_strings(reader, rule, *array, label);
            }
            [[fallthrough]];
        default:
            if (const auto* text = node.as_string()) {
                auto value = convert_text(reader, rule, text->get());
                if (!value) {
                    reader.error(node, label + ": " + value.error());
                    return std::nullopt;
                }
                if (rule.kind == Kind::string_list) {
                    return std::vector<std::string>{std::get<std::string>(std::move(*value))};
                }
                return std::move(*value);
            }
            break;
    }
    reader.error(node, label + ": expected " + std::string(expected_type(rule.kind)) + ", got " +
                           std::string(type_name(node)));
    return std::nullopt;
}

Value default_value(const Reader& reader, const ValueRule& rule) {
    switch (rule.kind) {
        case Kind::boolean:
            return rule.fallback == "true";
        case Kind::integer: {
            std::int64_t number = 0;
            std::from_chars(rule.fallback.data(), rule.fallback.data() + rule.fallback.size(),
                            number);
            return number;
        }
        default: {
            auto value = convert_text(reader, rule, rule.fallback);
            if (!value) {
                throw std::logic_error("invalid default for option " + std::string(rule.key));
            }
            if (rule.kind == Kind::string_list || rule.kind == Kind::string_array) {
                return std::vector<std::string>{std::get<std::string>(std::move(*value))};
            }
            return std::move(*value);
        }
    }
}

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

// ---------------------------------------------------------------------------
// Files.

fs::path base_directory(const fs::path& file) {
    std::error_code error;
    const fs::path absolute = fs::absolute(file, error);
    return (error ? file : absolute).parent_path();
}

std::expected<std::string, ConfigError> read_text_file(const fs::path& file) {
    const auto fail = [&](std::string why) {
        return std::unexpected(ConfigError{file.string(), 0, 0, "cannot read the file: " + why});
    };
    std::error_code error;
    const fs::file_status status = fs::status(file, error);
    if (error) {
        return fail(error.message());
    }
    if (fs::is_directory(status)) {
        return fail("it is a directory");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return fail(std::generic_category().message(errno));
    }
    std::string text;
    std::array<char, 64 * 1024> buffer{};
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
        text.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
        if (text.size() > k_max_file_size) {
            return fail("it is larger than 1 MiB");
        }
    }
    if (in.bad()) {
        return fail("read error");
    }
    return text;
}

std::optional<toml::table> parse_toml(Reader& reader, std::string_view text) {
    try {
        return toml::parse(text, std::string_view(reader.path()));
    } catch (const toml::parse_error& error) {
        reader.error(error.source().begin,
                     "TOML syntax error: " + printable(error.description(), 512));
        return std::nullopt;
    }
}

}  // namespace orgsync::config
