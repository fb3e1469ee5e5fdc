#include "tests/support/scim_writer.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace orgsync::test {
namespace {

using nlohmann::json;

constexpr const char* k_user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
constexpr const char* k_group_schema = "urn:ietf:params:scim:schemas:core:2.0:Group";
constexpr const char* k_patch_schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
constexpr const char* k_admin_group = "Acme Admins";
constexpr std::size_t k_kept_refusals = 10;

std::string lower(std::string text) {
    std::ranges::transform(text, text.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

json patch_body(json operations) {
    return {{"schemas", json::array({k_patch_schema})}, {"Operations", std::move(operations)}};
}

std::string describe(const ScimUserState& user) {
    return "{id " + (user.id.empty() ? std::string("?") : user.id) + ", displayName " +
           user.display_name + ", active " + (user.active ? "true" : "false") + "}";
}

std::string describe(const ScimGroupState& group) {
    std::string out = "{id " + (group.id.empty() ? std::string("?") : group.id) + ", members [";
    for (const auto& member : group.members) {
        out += member + " ";
    }
    return out + "]}";
}

// `found` against `expected`, where an expected empty id matches any id.
template <typename State>
bool same(const State& expected, const State& found) {
    State copy = expected;
    if (copy.id.empty()) {
        copy.id = found.id;
    }
    return copy == found;
}

template <typename State>
bool same(const std::map<std::string, State>& expected, const std::map<std::string, State>& found) {
    return std::ranges::equal(expected, found, [](const auto& left, const auto& right) {
        return left.first == right.first && same(left.second, right.second);
    });
}

template <typename State>
void differences(const std::string& what, const std::map<std::string, State>& expected,
                 const std::map<std::string, State>& found, std::vector<std::string>& out) {
    for (const auto& [name, state] : expected) {
        auto it = found.find(name);
        if (it == found.end()) {
            out.push_back(what + " " + name + " is missing; expected " + describe(state));
        } else if (!same(state, it->second)) {
            out.push_back(what + " " + name + " is " + describe(it->second) + "; expected " +
                          describe(state));
        }
    }
    for (const auto& [name, state] : found) {
        if (!expected.contains(name)) {
            out.push_back(what + " " + name + " " + describe(state) + " was never acknowledged");
        }
    }
}

}  // namespace

ScimMirror read_scim_mirror(const std::filesystem::path& store, const std::string& source) {
    SQLite::Database db(store.string(), SQLite::OPEN_READWRITE);
    db.setBusyTimeout(10000);
    ScimMirror mirror;
    SQLite::Statement users(
        db, "SELECT external_id, email, active, attributes FROM source_users WHERE source = ?");
    users.bind(1, source);
    while (users.executeStep()) {
        json attributes = json::parse(users.getColumn(3).getString(), nullptr, false);
        ScimMirror::User user;
        user.email = users.getColumn(1).getString();
        user.active = users.getColumn(2).getInt() != 0;
        if (attributes.is_object()) {
            user.user_name = attributes.value("userName", "");
            user.display_name = attributes.value("displayName", "");
        }
        mirror.users.emplace(users.getColumn(0).getString(), std::move(user));
    }
    SQLite::Statement groups(db,
                             "SELECT g.external_id, g.name, l.members FROM source_groups g "
                             "LEFT JOIN source_group_member_lists l "
                             "ON l.source = g.source AND l.external_id = g.external_id "
                             "WHERE g.source = ?");
    groups.bind(1, source);
    while (groups.executeStep()) {
        ScimMirror::Group group;
        group.name = groups.getColumn(1).getString();
        const auto members = groups.getColumn(2);
        const std::string packed(static_cast<const char*>(members.getBlob()),
                                 static_cast<std::size_t>(members.getBytes()));
        std::size_t start = 0;
        for (std::size_t end = packed.find('\0'); end != std::string::npos;
             end = packed.find('\0', start)) {
            group.member_ids.push_back(packed.substr(start, end - start));
            start = end + 1;
        }
        mirror.groups.emplace(groups.getColumn(0).getString(), std::move(group));
    }
    return mirror;
}

std::vector<std::string> check_scim_org(const std::filesystem::path& store,
                                        const std::string& source, const std::string& org,
                                        const std::string& admin_group) {
    const ScimMirror mirror = read_scim_mirror(store, source);
    std::vector<std::string> problems;
    std::set<std::string> admins;
    std::map<std::string, std::set<std::string>> expected_groups;  // name -> emails
    for (const auto& [id, group] : mirror.groups) {
        for (const auto& member : group.member_ids) {
            auto user = mirror.users.find(member);
            if (user == mirror.users.end()) {
                problems.push_back("group " + group.name + " lists " + member +
                                   ", no user of the mirror");
                continue;
            }
            expected_groups[group.name].insert(lower(user->second.email));
            if (group.name == admin_group) {
                admins.insert(lower(user->second.email));
            }
        }
    }
    // email -> (role, active)
    std::map<std::string, std::pair<std::string, bool>> expected;
    for (const auto& [id, user] : mirror.users) {
        const std::string email = lower(user.email);
        expected[email] = {admins.contains(email) ? "admin" : "member", user.active};
    }

    SQLite::Database db(store.string(), SQLite::OPEN_READWRITE);
    db.setBusyTimeout(10000);
    std::map<std::string, std::pair<std::string, bool>> asserted;
    SQLite::Statement members(db,
                              "SELECT u.email, a.role, u.active FROM membership_assertions a "
                              "JOIN users u ON u.id = a.user_id JOIN orgs o ON o.id = a.org_id "
                              "WHERE a.source = ? AND o.slug = ?");
    members.bind(1, source);
    members.bind(2, org);
    while (members.executeStep()) {
        asserted[lower(members.getColumn(0).getString())] = {members.getColumn(1).getString(),
                                                             members.getColumn(2).getInt() != 0};
    }
    auto text = [](const std::pair<std::string, bool>& state) {
        return state.first + (state.second ? "" : " (inactive)");
    };
    for (const auto& [email, state] : expected) {
        auto it = asserted.find(email);
        if (it == asserted.end()) {
            problems.push_back("mirrored user " + email + " is no member of " + org);
        } else if (it->second != state) {
            problems.push_back("member " + email + " of " + org + " is " + text(it->second) +
                               ", the mirror says " + text(state));
        }
    }
    for (const auto& [email, state] : asserted) {
        if (!expected.contains(email)) {
            problems.push_back(source + " asserts " + email + " in " + org +
                               ", whom its mirror does not have");
        }
    }

    std::map<std::string, std::set<std::string>> org_groups;
    SQLite::Statement grouped(db,
                              "SELECT g.name, u.email FROM group_members gm "
                              "JOIN groups g ON g.id = gm.group_id "
                              "JOIN orgs o ON o.id = g.org_id JOIN users u ON u.id = gm.user_id "
                              "WHERE gm.source = ? AND o.slug = ?");
    grouped.bind(1, source);
    grouped.bind(2, org);
    while (grouped.executeStep()) {
        org_groups[grouped.getColumn(0).getString()].insert(
            lower(grouped.getColumn(1).getString()));
    }
    if (org_groups != expected_groups) {
        problems.push_back("the org groups of " + org + " differ from " + source +
                           "'s mirrored groups (" + std::to_string(org_groups.size()) +
                           " groups with members in the org, " +
                           std::to_string(expected_groups.size()) + " in the mirror)");
    }
    return problems;
}

ScimWriter::ScimWriter(int client, std::uint64_t seed, std::string token)
    : m_client(client), m_token(std::move(token)), m_random(seed) {}

bool ScimWriter::owns_user(const std::string& user_name) const {
    return user_name.starts_with("c" + std::to_string(m_client) + "-");
}

bool ScimWriter::owns_group(const std::string& group_name) const {
    return group_name.starts_with("g" + std::to_string(m_client) + "-") ||
           (m_client == 0 && group_name == k_admin_group);
}

std::string ScimWriter::pending_description() const {
    return m_pending ? m_pending->description : std::string();
}

std::vector<std::string> ScimWriter::user_names() const {
    std::vector<std::string> names;
    names.reserve(m_model.users.size());
    for (const auto& [name, user] : m_model.users) {
        names.push_back(name);
    }
    return names;
}

std::vector<std::string> ScimWriter::group_names() const {
    std::vector<std::string> names;
    for (const auto& [name, group] : m_model.groups) {
        names.push_back(name);
    }
    return names;
}

std::string ScimWriter::pick_user(const std::vector<std::string>& names) {
    return names[std::uniform_int_distribution<std::size_t>(0, names.size() - 1)(m_random)];
}

ScimWriter::Answer ScimWriter::send(httplib::Client& http, const Request& request) {
    const httplib::Headers headers{{"Authorization", "Bearer " + m_token}};
    const char* type = "application/scim+json";
    const std::string path = "/scim/v2" + request.path;
    ++m_stats.sent;
    const auto started = std::chrono::steady_clock::now();
    httplib::Result result{nullptr, httplib::Error::Unknown};
    if (request.method == "POST") {
        result = http.Post(path, headers, request.body, type);
    } else if (request.method == "PATCH") {
        result = http.Patch(path, headers, request.body, type);
    } else {
        result = http.Delete(path, headers);
    }
    if (!result) {
        ++m_stats.no_answer;
        return {};
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    m_stats.latency_ms.push_back(ms);
    m_stats.latency_ms_by_kind[request.kind].push_back(ms);
    const std::string body = lower(result->body);
    if (body.find("locked") != std::string::npos || body.find("busy") != std::string::npos) {
        ++m_stats.busy;
    }
    return {true, result->status, result->body};
}

ScimWriter::Outcome ScimWriter::finish(const Request& request, const Answer& answer,
                                       ScimModel after) {
    if (!answer.answered) {
        m_pending = Pending{request.method + " " + request.path, std::move(after)};
        return Outcome::no_answer;
    }
    if (answer.status < 200 || answer.status >= 300) {
        (answer.status >= 500 ? m_stats.server_errors : m_stats.client_errors)++;
        if (m_stats.refusals.size() < k_kept_refusals) {
            m_stats.refusals.push_back(request.method + " " + request.path + ": " +
                                       std::to_string(answer.status) + " " + answer.body);
        }
        return Outcome::refused;
    }
    ++m_stats.acknowledged;
    ++m_stats.acknowledged_by_kind[request.kind];
    m_model = std::move(after);
    return Outcome::acknowledged;
}

ScimWriter::Outcome ScimWriter::write_one(httplib::Client& http) {
    const auto users = user_names();
    const auto groups = group_names();
    int roll = std::uniform_int_distribution<int>(0, 99)(m_random);
    if (users.size() < 3) {
        roll = 0;
    }
    ScimModel after = m_model;

    if (roll < 35) {  // create a user
        const std::string name =
            "c" + std::to_string(m_client) + "-" + std::to_string(m_next_user++) + "@acme.com";
        json body = {
            {"schemas", json::array({k_user_schema})},
            {"userName", name},
            {"displayName", "v0"},
            {"active", true},
            {"emails", json::array({{{"value", name}, {"type", "work"}, {"primary", true}}})}};
        Request request{"POST", "/Users", body.dump(), "POST /Users"};
        after.users[name] = ScimUserState{"", "v0", true};
        Answer answer = send(http, request);
        if (answer.answered && answer.status == 201) {
            after.users[name].id = json::parse(answer.body, nullptr, false).value("id", "");
        }
        return finish(request, answer, std::move(after));
    }
    if (roll < 55) {  // change a user
        const std::string name = pick_user(users);
        ScimUserState& user = after.users[name];
        json operation;
        if (std::uniform_int_distribution<int>(0, 9)(m_random) < 7) {
            user.display_name = "v" + std::to_string(++m_next_version);
            operation = {{"op", "replace"}, {"path", "displayName"}, {"value", user.display_name}};
        } else {
            user.active = !user.active;
            operation = {{"op", "replace"}, {"path", "active"}, {"value", user.active}};
        }
        Request request{"PATCH", "/Users/" + user.id, patch_body(json::array({operation})).dump(),
                        "PATCH /Users"};
        return finish(request, send(http, request), std::move(after));
    }
    if (roll < 63) {  // delete a user: it leaves its groups
        const std::string name = pick_user(users);
        Request request{"DELETE", "/Users/" + after.users[name].id, "", "DELETE /Users"};
        after.users.erase(name);
        for (auto& [group_name, group] : after.groups) {
            group.members.erase(name);
        }
        return finish(request, send(http, request), std::move(after));
    }
    if (roll < 71 || groups.empty()) {  // create a group with up to three members
        std::string name;
        if (m_client == 0 && !m_model.groups.contains(k_admin_group)) {
            name = k_admin_group;
        } else {
            name = "g" + std::to_string(m_client) + "-" + std::to_string(m_next_group++);
        }
        ScimGroupState group;
        json members = json::array();
        const int count = std::uniform_int_distribution<int>(0, 3)(m_random);
        for (int i = 0; i < count; ++i) {
            const std::string member = pick_user(users);
            if (group.members.insert(member).second) {
                members.push_back({{"value", m_model.users.at(member).id}});
            }
        }
        json body = {{"schemas", json::array({k_group_schema})},
                     {"displayName", name},
                     {"members", members}};
        Request request{"POST", "/Groups", body.dump(), "POST /Groups"};
        after.groups[name] = group;
        Answer answer = send(http, request);
        if (answer.answered && answer.status == 201) {
            after.groups[name].id = json::parse(answer.body, nullptr, false).value("id", "");
        }
        return finish(request, answer, std::move(after));
    }
    const std::string group_name =
        groups[std::uniform_int_distribution<std::size_t>(0, groups.size() - 1)(m_random)];
    ScimGroupState& group = after.groups[group_name];
    if (roll < 93) {  // add or remove a member
        std::vector<std::string> outside;
        for (const auto& name : users) {
            if (!group.members.contains(name)) {
                outside.push_back(name);
            }
        }
        const bool add =
            !outside.empty() &&
            (group.members.empty() || std::uniform_int_distribution<int>(0, 1)(m_random) == 0);
        json operation;
        if (add) {
            const std::string member = pick_user(outside);
            group.members.insert(member);
            operation = {{"op", "add"},
                         {"path", "members"},
                         {"value", json::array({{{"value", m_model.users.at(member).id}}})}};
        } else {
            const std::string member =
                pick_user(std::vector<std::string>(group.members.begin(), group.members.end()));
            group.members.erase(member);
            operation = {{"op", "remove"},
                         {"path", "members[value eq \"" + m_model.users.at(member).id + "\"]"}};
        }
        Request request{"PATCH", "/Groups/" + group.id, patch_body(json::array({operation})).dump(),
                        "PATCH /Groups"};
        return finish(request, send(http, request), std::move(after));
    }
    Request request{"DELETE", "/Groups/" + group.id, "", "DELETE /Groups"};
    after.groups.erase(group_name);
    return finish(request, send(http, request), std::move(after));
}

std::vector<std::string> ScimWriter::reconcile(const ScimMirror& mirror, bool* applied) {
    ScimModel found;
    for (const auto& [id, user] : mirror.users) {
        if (owns_user(user.user_name)) {
            found.users[user.user_name] = ScimUserState{id, user.display_name, user.active};
        }
    }
    for (const auto& [id, group] : mirror.groups) {
        if (!owns_group(group.name)) {
            continue;
        }
        ScimGroupState state{id, {}};
        for (const auto& member : group.member_ids) {
            auto user = mirror.users.find(member);
            state.members.insert(user == mirror.users.end() ? "(no user " + member + ")"
                                                            : user->second.user_name);
        }
        found.groups[group.name] = std::move(state);
    }

    auto matches = [&](const ScimModel& model) {
        return same(model.users, found.users) && same(model.groups, found.groups);
    };
    std::vector<std::string> problems;
    if (applied != nullptr) {
        *applied = false;
    }
    if (!matches(m_model)) {
        if (m_pending && matches(m_pending->after)) {
            if (applied != nullptr) {
                *applied = true;
            }
        } else {
            const std::string who = "client " + std::to_string(m_client) + ": ";
            std::vector<std::string> found_differences;
            differences("user", m_model.users, found.users, found_differences);
            differences("group", m_model.groups, found.groups, found_differences);
            if (m_pending) {
                problems.push_back(who +
                                   "the store is neither before nor after the write in "
                                   "flight, " +
                                   m_pending->description + "; against the state before it:");
            } else {
                problems.push_back(who + "the store differs from the acknowledged writes:");
            }
            for (const auto& difference : found_differences) {
                problems.push_back(who + difference);
            }
        }
    }
    m_model = std::move(found);
    m_pending.reset();
    return problems;
}

}  // namespace orgsync::test
