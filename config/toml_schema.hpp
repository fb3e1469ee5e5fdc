#pragma once

// Declarative reading of TOML configuration files, shared by every file
// orgsyncd reads. Each table's keys are declared once in an option table
// (key, kind, default, allowed values or range, and the member it fills);
// read_table reads a table against it and reports, with one wording for all
// files:
//
//   key "level" in [log]: must be one of: trace, debug, info, ...
//   key "path" in [store]: expected a string, got an integer
//   unknown key "lisen" in [http]
//   unknown table [http.tls]
//   missing required key "name" in [[source]] #1
//
// A `Where` supplies the "in [...]" part. Messages built here quote keys but
// never values; callers add values only where they cannot be secrets.

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "config/config_error.hpp"

namespace orgsync::config {

// ---------------------------------------------------------------------------
// Declaring options.

enum class Kind {
    string,       // non-empty string
    path,         // non-empty string, resolved against the file's directory
    enumeration,  // one of `choices`
    boolean,
    integer,       // within `limits`
    duration,      // parse_duration text, within `limits` (seconds)
    string_list,   // a string or a non-empty array of strings
    string_array,  // an array (possibly empty) of non-empty strings
};

// Inclusive range of an integer, or of a duration in seconds.
struct Limits {
    std::int64_t min = 0;
    std::int64_t max = 0;
};

// A rule for a single string value: why it is wrong, or nullopt.
using Problem = std::optional<std::string_view>;
using Check = Problem (*)(std::string_view value);

// Stores an accepted string into a member of another type (an enumeration).
template <typename T>
using Assign = void (*)(T& target, std::string_view text);

// The member of T an option fills.
template <typename T>
using Field = std::variant<std::string T::*, std::optional<std::string> T::*,
                           std::filesystem::path T::*, bool T::*, int T::*,
                           std::chrono::seconds T::*, std::vector<std::string> T::*, Assign<T>>;

namespace detail {
template <typename M>
struct MemberOf;
template <typename C, typename V>
struct MemberOf<V C::*> {
    using Class = C;
};
}  // namespace detail

// The field of an enumeration option whose member is not a string:
// `parsed<&LdapSourceConfig::flavor, parse_ldap_flavor>()`. `Parse` must
// accept every one of the option's `choices` (std::bad_optional_access
// otherwise, a bug in the table).
template <auto Member, auto Parse>
constexpr Assign<typename detail::MemberOf<decltype(Member)>::Class> parsed() {
    using Class = typename detail::MemberOf<decltype(Member)>::Class;
    return [](Class& target, std::string_view text) { target.*Member = Parse(text).value(); };
}

template <typename T>
struct Option {
    std::string_view key;
    Kind kind = Kind::string;
    Field<T> field;
    bool required = false;
    std::string_view fallback = {};  // the default, as an admin would write it; empty: none
    std::span<const std::string_view> choices = {};  // enumeration
    Limits limits = {};                              // integer, duration
    // string, enumeration, string_list and string_array (each element); runs
    // before `choices`, so it can explain a value the choices leave out.
    Check check = nullptr;
};

// Two keys of one table that are only meaningful together.
struct Pair {
    std::string_view first;
    std::string_view second;
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

inline constexpr std::size_t k_max_quoted = 64;

// Text from the file or the parser, safe to print on one line: quotes and
// backslashes escaped, control characters as \xNN, cut after `limit` bytes.
std::string printable(std::string_view text, std::size_t limit = k_max_quoted);
// `"` + printable(text) + `"`.
std::string quote(std::string_view text);
// "a string", "an integer", "a table", ...
std::string_view type_name(const toml::node& node);
// "a, b, c".
std::string join(std::span<const std::string_view> words);

// Which table a message is about.
struct Where {
    std::string text;        // "in [http]", "at top level", "in [[source]] \"corp\""
    std::string table_path;  // the table's dotted TOML name, "" at top level
};

// `key "name" in [http]`: the start of every message about one key's value.
std::string key_label(std::string_view key, const Where& where);
// `unknown key "x" in [http]`, or `unknown table [http.x]` when `value` is a table.
std::string unknown_message(std::string_view key, const toml::node& value, const Where& where);

// A toml++ line or column as a ConfigError one (saturating).
int to_int(toml::source_index index);

// ---------------------------------------------------------------------------
// Reading.

// Collects the errors of one file and resolves the paths it names.
class Reader {
  public:
    // `path` is used in messages; Kind::path values are resolved against
    // `base_directory` (see base_directory()).
    explicit Reader(std::string path, std::filesystem::path base_directory = {});

    void error(const toml::source_position& at, std::string message);
    void error(const toml::node& at, std::string message);
    // About the file as a whole (line 0).
    void file_error(std::string message);

    std::filesystem::path resolve(std::string_view path) const;

    bool failed() const { return !m_errors.empty(); }
    const std::string& path() const { return m_path; }

    // The errors in file order (stable: equal positions keep their order).
    std::vector<ConfigError> take_errors();

  private:
    std::string m_path;
    std::filesystem::path m_base_directory;
    std::vector<ConfigError> m_errors;
};

// A value read for an option, before it is stored in its field.
using Value = std::variant<std::string, std::filesystem::path, bool, std::int64_t,
                           std::chrono::seconds, std::vector<std::string>>;

// What reading a value needs of an option, whatever its table.
struct ValueRule {
    std::string_view key;
    Kind kind = Kind::string;
    std::string_view fallback;
    std::span<const std::string_view> choices;
    Limits limits;
    Check check = nullptr;
};

template <typename T>
ValueRule rule_of(const Option<T>& option) {
    return {option.key, option.kind, option.fallback, option.choices, option.limits, option.check};
}

// Reads `node` as a value of `rule`; reports (prefixed by `label`) and
// returns nullopt when it is not valid.
std::optional<Value> read_value(Reader& reader, const ValueRule& rule, const toml::node& node,
                                const std::string& label);

// The declared default of an option, converted like a value from the file.
// Throws std::logic_error when the declared default is not valid (a bug).
Value default_value(const Reader& reader, const ValueRule& rule);

namespace detail {
template <class... Fs>
struct Overloaded : Fs... {
    using Fs::operator()...;
};
// Aggregate deduction (C++20) without the guide is not in clang 16 (make fuzz).
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;
}  // namespace detail

// Stores a value converted for `field`'s kind; a mismatch between an
// option's kind and its field is a bug in the table (std::bad_variant_access).
template <typename T>
void store(T& target, const Field<T>& field, Value value) {
    std::visit(detail::Overloaded{
                   [&](std::string T::*member) {
                       target.*member = std::move(std::get<std::string>(value));
                   },
                   [&](std::optional<std::string> T::*member) {
                       target.*member = std::move(std::get<std::string>(value));
                   },
                   [&](std::filesystem::path T::*member) {
                       target.*member = std::move(std::get<std::filesystem::path>(value));
                   },
                   [&](bool T::*member) { target.*member = std::get<bool>(value); },
                   [&](int T::*member) {
                       target.*member = static_cast<int>(std::get<std::int64_t>(value));
                   },
                   [&](std::chrono::seconds T::*member) {
                       target.*member = std::get<std::chrono::seconds>(value);
                   },
                   [&](std::vector<std::string> T::*member) {
                       target.*member = std::move(std::get<std::vector<std::string>>(value));
                   },
                   [&](Assign<T> assign) { assign(target, std::get<std::string>(value)); },
               },
               field);
}

// Where each key whose value was valid sits in the file (so checks across
// keys do not pile onto an error already reported).
using KeyPositions = std::map<std::string, toml::source_position, std::less<>>;

// Reads the options of `table` into `target`, applies the defaults of the
// absent ones and reports absent required ones. A key the options do not
// declare goes to `other_key(key, node)`, which returns false when it is
// unknown (and then it is reported as such).
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
                read_value(reader, rule_of(*option), node, key_label(key.str(), where))) {
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
            store(target, option.field, default_value(reader, rule_of(option)));
        }
    }
    return positions;
}

// An `other_key` for tables that hold nothing but their options.
inline constexpr auto k_no_other_keys = [](const toml::key&, const toml::node&) { return false; };

// Reports each pair of which exactly one key is among `positions`.
void check_pairs(Reader& reader, const KeyPositions& positions, const Where& where,
                 std::span<const Pair> pairs);

// Calls `read(table, index)` for each table of the array of tables `node`
// (index counts from 1); reports `label: expected an array of tables, ...`
// for anything else.
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

// ---------------------------------------------------------------------------
// Files.

// The directory relative paths in `file` are resolved against: its parent,
// made absolute from the working directory.
std::filesystem::path base_directory(const std::filesystem::path& file);

// The whole text of a configuration file (at most 1 MiB), or a line-0 error
// "cannot read the file: why".
std::expected<std::string, ConfigError> read_text_file(const std::filesystem::path& file);

// Parses `text`; a TOML syntax error is reported to `reader` ("TOML syntax
// error: ...", at its position; parsing stops there) and nullopt returned.
std::optional<toml::table> parse_toml(Reader& reader, std::string_view text);

}  // namespace orgsync::config
