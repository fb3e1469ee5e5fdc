#include "connectors/scim/filter.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <utility>

namespace orgsync::scim {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<std::string_view, CompareOp>, 9> k_operators{{
    {"eq", CompareOp::eq},
    {"ne", CompareOp::ne},
    {"co", CompareOp::co},
    {"sw", CompareOp::sw},
    {"ew", CompareOp::ew},
    {"gt", CompareOp::gt},
    {"ge", CompareOp::ge},
    {"lt", CompareOp::lt},
    {"le", CompareOp::le},
}};

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_name_char(char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_';
}
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
// Characters of an attribute path token: names, URN separators, the dot
// before a sub-attribute and the `$` of `$ref`.
bool is_path_char(char c) {
    return is_name_char(c) || c == ':' || c == '.' || c == '$';
}

// ATTRNAME (RFC 7644 §3.10), and `$ref`, the one name starting with `$`.
bool is_attr_name(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    if (name.front() == '$') {
        name.remove_prefix(1);
        if (name.empty()) {
            return false;
        }
    }
    if (!is_alpha(name.front())) {
        return false;
    }
    for (char c : name) {
        if (!is_name_char(c)) {
            return false;
        }
    }
    return true;
}

bool is_logical(const Filter& f) {
    return f.kind == Filter::Kind::logical_and || f.kind == Filter::Kind::logical_or;
}

class Parser {
  public:
    Parser(std::string_view text, const FilterLimits& limits, ScimType error_type)
        : m_text(text), m_limits(limits), m_error_type(error_type) {}

    std::expected<Filter, ScimError> parse_whole_filter() {
        if (auto too_long = check_length(); !too_long) {
            return std::unexpected(too_long.error());
        }
        auto filter = parse_or(false);
        if (!filter) {
            return filter;
        }
        skip_space();
        if (!at_end()) {
            return fail("unexpected text after the filter");
        }
        return filter;
    }

    std::expected<PatchPath, ScimError> parse_whole_path() {
        if (auto too_long = check_length(); !too_long) {
            return std::unexpected(too_long.error());
        }
        skip_space();
        PatchPath path;
        auto attribute = parse_attr_path(false);
        if (!attribute) {
            return std::unexpected(attribute.error());
        }
        path.attribute = std::move(*attribute);
        if (peek() == '[') {
            if (!path.attribute.sub.empty()) {
                return fail("a sub-attribute cannot be followed by a value filter");
            }
            auto inner = parse_brackets();
            if (!inner) {
                return std::unexpected(inner.error());
            }
            path.filter = std::move(*inner);
            if (peek() == '.') {
                ++m_pos;
                auto sub = parse_name();
                if (!sub) {
                    return std::unexpected(sub.error());
                }
                path.sub_attribute = std::move(*sub);
            }
        }
        skip_space();
        if (!at_end()) {
            return fail("unexpected text after the path");
        }
        return path;
    }

  private:
    std::string_view m_text;
    std::size_t m_pos = 0;
    int m_depth = 0;
    FilterLimits m_limits;
    ScimType m_error_type;

    std::unexpected<ScimError> fail(std::string_view why) const {
        return std::unexpected(
            ScimError{m_error_type, fmt::format("at offset {}: {}", m_pos, why)});
    }

    std::expected<void, ScimError> check_length() const {
        if (m_text.size() > m_limits.max_length) {
            return std::unexpected(
                ScimError{m_error_type, fmt::format("longer than {} bytes", m_limits.max_length)});
        }
        return {};
    }

    bool at_end() const { return m_pos >= m_text.size(); }
    char peek() const { return at_end() ? '\0' : m_text[m_pos]; }
    void skip_space() {
        while (!at_end() && is_space(m_text[m_pos])) {
            ++m_pos;
        }
    }
    bool skip_required_space() {
        const std::size_t start = m_pos;
        skip_space();
        return m_pos > start;
    }

    // The run of name characters at the cursor, not consumed.
    std::string_view peek_word() const {
        std::size_t end = m_pos;
        while (end < m_text.size() && is_name_char(m_text[end])) {
            ++end;
        }
        return m_text.substr(m_pos, end - m_pos);
    }

    // `word` at the cursor as a keyword, followed by a space or `(`.
    bool at_keyword(std::string_view word) const {
        if (!iequals(peek_word(), word)) {
            return false;
        }
        const std::size_t after = m_pos + word.size();
        return after < m_text.size() && (is_space(m_text[after]) || m_text[after] == '(');
    }

    std::expected<void, ScimError> enter() {
        if (++m_depth > m_limits.max_depth) {
            return fail(fmt::format("nested deeper than {} levels", m_limits.max_depth));
        }
        return {};
    }

    std::expected<Filter, ScimError> parse_chain(bool in_brackets, Filter::Kind kind,
                                                 std::string_view keyword) {
        auto first = kind == Filter::Kind::logical_or
                         ? parse_chain(in_brackets, Filter::Kind::logical_and, "and")
                         : parse_term(in_brackets);
        if (!first) {
            return first;
        }
        Filter chain{.kind = kind};
        chain.children.push_back(std::move(*first));
        while (true) {
            const std::size_t before = m_pos;
            if (!skip_required_space() || !at_keyword(keyword)) {
                m_pos = before;
                break;
            }
            m_pos += keyword.size();
            skip_space();
            auto next = kind == Filter::Kind::logical_or
                            ? parse_chain(in_brackets, Filter::Kind::logical_and, "and")
                            : parse_term(in_brackets);
            if (!next) {
                return next;
            }
            chain.children.push_back(std::move(*next));
        }
        if (chain.children.size() == 1) {
            return std::move(chain.children.front());
        }
        return chain;
    }

    std::expected<Filter, ScimError> parse_or(bool in_brackets) {
        skip_space();
        return parse_chain(in_brackets, Filter::Kind::logical_or, "or");
    }

    std::expected<Filter, ScimError> parse_group(bool in_brackets) {
        // At '('.
        if (auto deeper = enter(); !deeper) {
            return std::unexpected(deeper.error());
        }
        ++m_pos;
        auto inner = parse_or(in_brackets);
        if (!inner) {
            return inner;
        }
        skip_space();
        if (peek() != ')') {
            return fail("expected ')'");
        }
        ++m_pos;
        --m_depth;
        return inner;
    }

    std::expected<Filter, ScimError> parse_term(bool in_brackets) {
        skip_space();
        if (at_end()) {
            return fail("expected an expression");
        }
        if (iequals(peek_word(), "not")) {
            const std::size_t before = m_pos;
            m_pos += 3;
            skip_space();
            if (peek() == '(') {
                auto inner = parse_group(in_brackets);
                if (!inner) {
                    return inner;
                }
                Filter negation{.kind = Filter::Kind::logical_not};
                negation.children.push_back(std::move(*inner));
                return negation;
            }
            m_pos = before;  // an attribute called "not"
        }
        if (peek() == '(') {
            return parse_group(in_brackets);
        }
        auto path = parse_attr_path(in_brackets);
        if (!path) {
            return std::unexpected(path.error());
        }
        if (peek() == '[') {
            if (in_brackets) {
                return fail("value filters do not nest");
            }
            if (!path->sub.empty()) {
                return fail("a sub-attribute cannot be followed by a value filter");
            }
            auto inner = parse_brackets();
            if (!inner) {
                return inner;
            }
            Filter value_path{.kind = Filter::Kind::value_path, .path = std::move(*path)};
            value_path.children.push_back(std::move(*inner));
            if (peek() == '.') {
                ++m_pos;
                auto sub = parse_name();
                if (!sub) {
                    return std::unexpected(sub.error());
                }
                auto tail = parse_operation(AttrPath{.name = std::move(*sub)});
                if (!tail) {
                    return tail;
                }
                value_path.children.push_back(std::move(*tail));
            }
            return value_path;
        }
        return parse_operation(std::move(*path));
    }

    // At '['; returns the bracket's filter and leaves the cursor after ']'.
    std::expected<Filter, ScimError> parse_brackets() {
        if (auto deeper = enter(); !deeper) {
            return std::unexpected(deeper.error());
        }
        ++m_pos;
        auto inner = parse_or(true);
        if (!inner) {
            return inner;
        }
        skip_space();
        if (peek() != ']') {
            return fail("expected ']'");
        }
        ++m_pos;
        --m_depth;
        return inner;
    }

    std::expected<std::string, ScimError> parse_name() {
        std::size_t end = m_pos;
        while (end < m_text.size() && (is_name_char(m_text[end]) || m_text[end] == '$')) {
            ++end;
        }
        std::string name(m_text.substr(m_pos, end - m_pos));
        if (!is_attr_name(name)) {
            return fail("expected an attribute name");
        }
        m_pos = end;
        return name;
    }

    std::expected<AttrPath, ScimError> parse_attr_path(bool relative) {
        std::size_t end = m_pos;
        while (end < m_text.size() && is_path_char(m_text[end])) {
            ++end;
        }
        const std::string_view token = m_text.substr(m_pos, end - m_pos);
        if (token.empty()) {
            return fail("expected an attribute path");
        }
        AttrPath path;
        std::string_view rest = token;
        if (const auto colon = token.rfind(':'); colon != std::string_view::npos) {
            path.schema = token.substr(0, colon);
            rest = token.substr(colon + 1);
            if (path.schema.empty() || !is_alpha(path.schema.front())) {
                return fail("expected a schema URN");
            }
        }
        if (const auto dot = rest.find('.'); dot != std::string_view::npos) {
            path.sub = rest.substr(dot + 1);
            rest = rest.substr(0, dot);
            if (!is_attr_name(path.sub)) {
                return fail("expected a sub-attribute name");
            }
        }
        path.name = rest;
        if (!is_attr_name(path.name)) {
            return fail("expected an attribute name");
        }
        if (!relative && path.name.front() == '$') {
            return fail("expected an attribute name");  // `$ref` names a sub-attribute only
        }
        if (relative && (!path.schema.empty() || !path.sub.empty())) {
            return fail("inside brackets, name a sub-attribute only");
        }
        m_pos = end;
        return path;
    }

    // After an attribute path: "pr", or an operator and a literal.
    std::expected<Filter, ScimError> parse_operation(AttrPath path) {
        if (!skip_required_space()) {
            return fail("expected a space and an operator after the attribute path");
        }
        const std::string_view word = peek_word();
        if (iequals(word, "pr")) {
            m_pos += word.size();
            return Filter{.kind = Filter::Kind::present, .path = std::move(path)};
        }
        std::optional<CompareOp> op;
        for (const auto& [spelling, candidate] : k_operators) {
            if (iequals(word, spelling)) {
                op = candidate;
            }
        }
        if (!op) {
            return fail("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)");
        }
        m_pos += word.size();
        if (!skip_required_space()) {
            return fail("expected a space and a value after the operator");
        }
        const std::size_t literal_at = m_pos;
        auto value = parse_literal();
        if (!value) {
            return std::unexpected(value.error());
        }
        const bool substring = *op == CompareOp::co || *op == CompareOp::sw || *op == CompareOp::ew;
        const bool ordering = *op == CompareOp::gt || *op == CompareOp::ge ||
                              *op == CompareOp::lt || *op == CompareOp::le;
        if ((substring && !value->is_string()) ||
            (ordering && !value->is_string() && !value->is_number())) {
            m_pos = literal_at;
            return fail(fmt::format("operator {} cannot take {}", to_string(*op),
                                    value->is_number() ? "a number" : value->dump()));
        }
        return Filter{.kind = Filter::Kind::compare,
                      .path = std::move(path),
                      .op = *op,
                      .value = std::move(*value)};
    }

    std::expected<json, ScimError> parse_literal() {
        const char c = peek();
        if (c == '"') {
            std::size_t end = m_pos + 1;
            while (end < m_text.size() && m_text[end] != '"') {
                end += m_text[end] == '\\' ? std::size_t{2} : std::size_t{1};
            }
            if (end >= m_text.size()) {
                return fail("unterminated string");
            }
            json value = json::parse(m_text.substr(m_pos, end + 1 - m_pos), nullptr, false);
            if (value.is_discarded() || !value.is_string()) {
                return fail("invalid string literal");
            }
            m_pos = end + 1;
            return value;
        }
        if (c == '-' || is_digit(c)) {
            std::size_t end = m_pos;
            while (end < m_text.size() &&
                   (is_digit(m_text[end]) || m_text[end] == '-' || m_text[end] == '+' ||
                    m_text[end] == '.' || m_text[end] == 'e' || m_text[end] == 'E')) {
                ++end;
            }
            json value = json::parse(m_text.substr(m_pos, end - m_pos), nullptr, false);
            if (value.is_discarded() || !value.is_number() ||
                (value.is_number_float() && !std::isfinite(value.get<double>()))) {
                return fail("invalid number");
            }
            m_pos = end;
            return value;
        }
        const std::string_view word = peek_word();
        json value;
        if (iequals(word, "true")) {
            value = true;
        } else if (iequals(word, "false")) {
            value = false;
        } else if (iequals(word, "null")) {
            value = nullptr;
        } else {
            return fail("expected a value: a string, number, true, false or null");
        }
        m_pos += word.size();
        return value;
    }
};

// ---- evaluation ----

const json* find_member(const json& object, std::string_view name) {
    if (!object.is_object()) {
        return nullptr;
    }
    if (auto exact = object.find(name); exact != object.end()) {
        return &*exact;
    }
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (iequals(it.key(), name)) {
            return &*it;
        }
    }
    return nullptr;
}

bool non_empty(const json& value) {
    switch (value.type()) {
        case json::value_t::null:
        case json::value_t::discarded:
            return false;
        case json::value_t::string:
            return !value.get_ref<const json::string_t&>().empty();
        case json::value_t::array:
        case json::value_t::object:
            for (const auto& part : value) {
                if (non_empty(part)) {
                    return true;
                }
            }
            return false;
        default:
            return true;
    }
}

// Where a path's values live in a scope: the resource (with its rules) or
// one element of a complex attribute (with that attribute's definition).
struct Scope {
    const json& object;
    const ResourceRules* rules = nullptr;
    const AttributeDef* parent = nullptr;
};

struct Values {
    std::vector<const json*> values;
    const AttributeDef* top = nullptr;   // the named attribute
    const AttributeDef* leaf = nullptr;  // what is compared: the sub-attribute when named
};

void flatten_into(const json& value, std::vector<const json*>& out) {
    if (value.is_array()) {
        for (const auto& element : value) {
            out.push_back(&element);
        }
    } else {
        out.push_back(&value);
    }
}

// The container object in `scope` that holds `path.name`, and the name's
// definition.
std::pair<const json*, const AttributeDef*> locate(const AttrPath& path, const Scope& scope) {
    if (scope.rules == nullptr) {
        const AttributeDef* def =
            scope.parent != nullptr ? find_sub_attribute(*scope.parent, path.name) : nullptr;
        return {&scope.object, def};
    }
    const ResolvedAttribute resolved = resolve_attribute(*scope.rules, path.schema, path.name);
    if (resolved.attribute != nullptr && resolved.in_extension) {
        return {find_member(scope.object, resolved.schema->urn), resolved.attribute};
    }
    if (!path.schema.empty() && !iequals(path.schema, scope.rules->core.urn)) {
        // An extension this resource type does not have, or an attribute it
        // does not define: look where the URN says.
        if (resolved.attribute == nullptr && find_extension(*scope.rules, path.schema) == nullptr) {
            return {nullptr, nullptr};
        }
        return {find_member(scope.object, path.schema), nullptr};
    }
    return {&scope.object, resolved.attribute};
}

Values values_at(const AttrPath& path, const Scope& scope) {
    Values out;
    auto [container, top] = locate(path, scope);
    out.top = top;
    out.leaf = top;
    if (container == nullptr) {
        return out;
    }
    const json* value = find_member(*container, path.name);
    if (value == nullptr) {
        return out;
    }
    if (path.sub.empty()) {
        flatten_into(*value, out.values);
        return out;
    }
    out.leaf = top != nullptr ? find_sub_attribute(*top, path.sub) : nullptr;
    std::vector<const json*> parents;
    flatten_into(*value, parents);
    for (const json* parent : parents) {
        if (const json* sub = find_member(*parent, path.sub)) {
            flatten_into(*sub, out.values);
        }
    }
    return out;
}

int three_way(std::string_view a, std::string_view b) {
    const int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int three_way(const json& a, const json& b) {
    if (a.is_number_integer() && b.is_number_integer()) {
        if (a.is_number_unsigned() || b.is_number_unsigned()) {
            // One is unsigned: a negative signed value is smaller.
            if (a.is_number_unsigned() && b.is_number_unsigned()) {
                const auto x = a.get<std::uint64_t>();
                const auto y = b.get<std::uint64_t>();
                return x < y ? -1 : (x > y ? 1 : 0);
            }
            if (a.is_number_unsigned()) {
                const auto y = b.get<std::int64_t>();
                return y < 0 ? 1 : -three_way(b, a);
            }
            const auto x = a.get<std::int64_t>();
            if (x < 0) {
                return -1;
            }
            const auto ux = static_cast<std::uint64_t>(x);
            const auto y = b.get<std::uint64_t>();
            return ux < y ? -1 : (ux > y ? 1 : 0);
        }
        const auto x = a.get<std::int64_t>();
        const auto y = b.get<std::int64_t>();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    const double x = a.get<double>();
    const double y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
}

bool ordered(int cmp, CompareOp op) {
    switch (op) {
        case CompareOp::eq:
            return cmp == 0;
        case CompareOp::ne:
            return cmp != 0;
        case CompareOp::gt:
            return cmp > 0;
        case CompareOp::ge:
            return cmp >= 0;
        case CompareOp::lt:
            return cmp < 0;
        case CompareOp::le:
            return cmp <= 0;
        default:
            return false;
    }
}

// One attribute value against the literal; `op` is never ne (evaluated as
// not eq) and the literal is never null.
bool compare_one(const json& value, CompareOp op, const json& literal, bool case_exact) {
    if (value.is_string() && literal.is_string()) {
        const auto& v = value.get_ref<const json::string_t&>();
        const auto& l = literal.get_ref<const json::string_t&>();
        const std::string folded_v = case_exact ? std::string() : ascii_lower(v);
        const std::string folded_l = case_exact ? std::string() : ascii_lower(l);
        const std::string_view a = case_exact ? std::string_view(v) : folded_v;
        const std::string_view b = case_exact ? std::string_view(l) : folded_l;
        switch (op) {
            case CompareOp::co:
                return a.find(b) != std::string_view::npos;
            case CompareOp::sw:
                return a.starts_with(b);
            case CompareOp::ew:
                return a.ends_with(b);
            default:
                return ordered(three_way(a, b), op);
        }
    }
    if (value.is_number() && literal.is_number()) {
        return ordered(three_way(value, literal), op);
    }
    if (value.is_boolean() && op == CompareOp::eq) {
        if (literal.is_boolean()) {
            return value.get<bool>() == literal.get<bool>();
        }
        if (literal.is_string()) {
            const auto& l = literal.get_ref<const json::string_t&>();
            return iequals(l, value.get<bool>() ? "true" : "false");
        }
    }
    return false;
}

bool evaluate(const Filter& filter, const Scope& scope);

bool evaluate_compare(const Filter& filter, const Scope& scope) {
    if (filter.op == CompareOp::ne) {
        Filter eq = filter;
        eq.op = CompareOp::eq;
        return !evaluate_compare(eq, scope);
    }
    const Values found = values_at(filter.path, scope);
    if (filter.value.is_null()) {
        // eq null: unassigned.
        for (const json* value : found.values) {
            if (non_empty(*value)) {
                return false;
            }
        }
        return true;
    }
    for (const json* value : found.values) {
        const json* compared = value;
        const AttributeDef* def = found.leaf;
        if (value->is_object()) {
            // A complex value without a sub-attribute compares its "value".
            compared = find_member(*value, "value");
            def = def != nullptr ? find_sub_attribute(*def, "value") : nullptr;
            if (compared == nullptr) {
                continue;
            }
        }
        if (compare_one(*compared, filter.op, filter.value, def != nullptr && def->case_exact)) {
            return true;
        }
    }
    return false;
}

bool evaluate(const Filter& filter, const Scope& scope) {
    switch (filter.kind) {
        case Filter::Kind::compare:
            return evaluate_compare(filter, scope);
        case Filter::Kind::present: {
            for (const json* value : values_at(filter.path, scope).values) {
                if (non_empty(*value)) {
                    return true;
                }
            }
            return false;
        }
        case Filter::Kind::logical_and:
            for (const auto& child : filter.children) {
                if (!evaluate(child, scope)) {
                    return false;
                }
            }
            return true;
        case Filter::Kind::logical_or:
            for (const auto& child : filter.children) {
                if (evaluate(child, scope)) {
                    return true;
                }
            }
            return false;
        case Filter::Kind::logical_not:
            return !evaluate(filter.children.front(), scope);
        case Filter::Kind::value_path: {
            auto [container, top] = locate(filter.path, scope);
            const json* value =
                container != nullptr ? find_member(*container, filter.path.name) : nullptr;
            if (value == nullptr) {
                return false;
            }
            std::vector<const json*> elements;
            flatten_into(*value, elements);
            for (const json* element : elements) {
                if (!element->is_object() ||
                    !matches_element(filter.children.front(), *element, top)) {
                    continue;
                }
                if (filter.children.size() < 2 ||
                    evaluate(filter.children[1], Scope{.object = *element, .parent = top})) {
                    return true;
                }
            }
            return false;
        }
    }
    return false;
}

std::expected<void, ScimError> check_node(const Filter& filter, const ResourceRules* rules,
                                          const AttributeDef* parent) {
    switch (filter.kind) {
        case Filter::Kind::compare: {
            const AttributeDef* leaf = nullptr;
            if (rules != nullptr) {
                const auto resolved = resolve_attribute(*rules, filter.path.schema,
                                                        filter.path.name, filter.path.sub);
                leaf =
                    resolved.sub_attribute != nullptr ? resolved.sub_attribute : resolved.attribute;
            } else if (parent != nullptr) {
                leaf = find_sub_attribute(*parent, filter.path.name);
            }
            if (leaf == nullptr) {
                return {};
            }
            const std::string name = to_string(filter.path);
            if (leaf->type == AttributeType::boolean && filter.op != CompareOp::eq &&
                filter.op != CompareOp::ne) {
                return std::unexpected(
                    ScimError{ScimType::invalid_filter,
                              fmt::format("{} is a boolean: only eq and ne compare it", name)});
            }
            if (leaf->type == AttributeType::complex && !leaf->multi_valued) {
                return std::unexpected(ScimError{
                    ScimType::invalid_filter,
                    fmt::format("{} is complex: compare one of its sub-attributes", name)});
            }
            return {};
        }
        case Filter::Kind::present:
            return {};
        case Filter::Kind::logical_and:
        case Filter::Kind::logical_or:
        case Filter::Kind::logical_not:
            for (const auto& child : filter.children) {
                if (auto ok = check_node(child, rules, parent); !ok) {
                    return ok;
                }
            }
            return {};
        case Filter::Kind::value_path: {
            const AttributeDef* top =
                rules != nullptr
                    ? resolve_attribute(*rules, filter.path.schema, filter.path.name).attribute
                    : nullptr;
            for (const auto& child : filter.children) {
                if (auto ok = check_node(child, nullptr, top); !ok) {
                    return ok;
                }
            }
            return {};
        }
    }
    return {};
}

void print(const Filter& filter, std::string& out) {
    switch (filter.kind) {
        case Filter::Kind::compare:
            out += to_string(filter.path);
            out += ' ';
            out += to_string(filter.op);
            out += ' ';
            out += filter.value.dump();
            return;
        case Filter::Kind::present:
            out += to_string(filter.path);
            out += " pr";
            return;
        case Filter::Kind::logical_and:
        case Filter::Kind::logical_or: {
            const std::string_view joiner =
                filter.kind == Filter::Kind::logical_and ? " and " : " or ";
            bool first = true;
            for (const auto& child : filter.children) {
                if (!first) {
                    out += joiner;
                }
                first = false;
                if (is_logical(child)) {
                    out += '(';
                    print(child, out);
                    out += ')';
                } else {
                    print(child, out);
                }
            }
            return;
        }
        case Filter::Kind::logical_not:
            out += "not (";
            print(filter.children.front(), out);
            out += ')';
            return;
        case Filter::Kind::value_path:
            out += to_string(filter.path);
            out += '[';
            print(filter.children.front(), out);
            out += ']';
            if (filter.children.size() > 1) {
                out += '.';
                print(filter.children[1], out);
            }
            return;
    }
}

}  // namespace

std::string_view to_string(CompareOp op) {
    for (const auto& [spelling, candidate] : k_operators) {
        if (candidate == op) {
            return spelling;
        }
    }
    return "eq";
}

std::string to_string(const AttrPath& path) {
    std::string out;
    if (!path.schema.empty()) {
        out += path.schema;
        out += ':';
    }
    out += path.name;
    if (!path.sub.empty()) {
        out += '.';
        out += path.sub;
    }
    return out;
}

bool Filter::operator==(const Filter& other) const {
    return kind == other.kind && path == other.path && op == other.op && value == other.value &&
           children == other.children;
}

std::string to_string(const Filter& filter) {
    std::string out;
    print(filter, out);
    return out;
}

std::expected<Filter, ScimError> parse_filter(std::string_view text, const FilterLimits& limits) {
    return Parser(text, limits, ScimType::invalid_filter).parse_whole_filter();
}

std::expected<PatchPath, ScimError> parse_patch_path(std::string_view text,
                                                     const FilterLimits& limits) {
    return Parser(text, limits, ScimType::invalid_path).parse_whole_path();
}

std::expected<void, ScimError> check_filter(const Filter& filter, const AttributeRules& rules) {
    return check_node(filter, &rules, nullptr);
}

bool matches(const Filter& filter, const json& resource, const AttributeRules& rules) {
    return evaluate(filter, Scope{.object = resource, .rules = &rules});
}

bool matches_element(const Filter& filter, const json& element, const AttributeDef* attribute) {
    return evaluate(filter, Scope{.object = element, .parent = attribute});
}

std::optional<EqualityLookup> as_equality_lookup(const Filter& filter,
                                                 const AttributeRules& rules) {
    if (filter.kind != Filter::Kind::compare || filter.op != CompareOp::eq ||
        !filter.value.is_string()) {
        return std::nullopt;
    }
    const auto resolved =
        resolve_attribute(rules, filter.path.schema, filter.path.name, filter.path.sub);
    if (resolved.attribute == nullptr) {
        return std::nullopt;
    }
    const AttributeDef* leaf =
        resolved.sub_attribute != nullptr ? resolved.sub_attribute : resolved.attribute;
    if (leaf->type == AttributeType::complex) {
        return std::nullopt;
    }
    EqualityLookup lookup{.value = filter.value.get<std::string>(), .case_exact = leaf->case_exact};
    if (resolved.in_extension) {
        lookup.attribute = fmt::format("{}:", resolved.schema->urn);
    }
    lookup.attribute += resolved.attribute->name;
    if (resolved.sub_attribute != nullptr) {
        lookup.attribute += '.';
        lookup.attribute += resolved.sub_attribute->name;
    }
    return lookup;
}

}  // namespace orgsync::scim
