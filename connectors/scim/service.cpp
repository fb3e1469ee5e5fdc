#include "connectors/scim/service.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "connectors/scim/group_commit.hpp"
#include "connectors/scim/resource.hpp"
#include "directory/email.hpp"
#include "sync/run.hpp"

namespace orgsync::scim {
namespace {

using nlohmann::json;
using MirrorKey = directory::Store::MirrorKey;
using directory::SourceGroup;
using directory::SourceUser;
using directory::Store;

constexpr std::string_view k_error_schema = "urn:ietf:params:scim:api:messages:2.0:Error";
constexpr std::string_view k_list_schema = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
constexpr std::size_t k_scan_page = 1000;

enum class Kind : std::uint8_t { user, group };

const ResourceRules& rules_of(Kind kind) {
    return kind == Kind::user ? user_rules() : group_rules();
}

std::string_view endpoint(Kind kind) {
    return kind == Kind::user ? "Users" : "Groups";
}

std::string now_iso() {
    auto now = std::chrono::system_clock::now();
    auto seconds = std::chrono::system_clock::to_time_t(now);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    return fmt::format("{}.{:03}Z", text, millis);
}

// A random (version 4) UUID: the ids this server gives resources.
std::string new_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        throw std::runtime_error("the system random source failed");
    }
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);
    std::string text;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            text += '-';
        }
        text += fmt::format("{:02x}", bytes[i]);
    }
    return text;
}

ScimResponse json_response(int status, const json& body) {
    ScimResponse response;
    response.status = status;
    response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    return response;
}

ScimResponse error(int status, std::string_view scim_type, std::string_view detail) {
    return Service::error_response(status, scim_type, detail);
}

ScimResponse scim_error(const ScimError& failure) {
    // tooMany and the rest are 400s (RFC 7644 §3.12).
    return error(400, to_string(failure.type), failure.message);
}

ScimResponse not_found(Kind kind, std::string_view id) {
    return error(404, "", fmt::format("no {} with id \"{}\"", rules_of(kind).name, id));
}

ScimResponse store_failure(const directory::Error& failure) {
    return error(500, "", fmt::format("the store failed: {}", failure.message));
}

std::string version_of(const json& resource) {
    auto meta = resource.find("meta");
    if (meta == resource.end() || !meta->is_object()) {
        return "";
    }
    auto version = meta->find("version");
    return version != meta->end() && version->is_string() ? version->get<std::string>() : "";
}

// meta for a resource written now: created kept from `previous`, version
// one past it.
void stamp(json& resource, Kind kind, const json* previous) {
    std::string now = now_iso();
    std::uint64_t number = 0;
    std::string created = now;
    if (previous != nullptr) {
        std::string version = version_of(*previous);
        // W/"<n>"
        if (version.size() > 3) {
            std::string_view digits(version.data() + 3, version.size() - 4);
            std::from_chars(digits.data(), digits.data() + digits.size(), number);
        }
        if (auto meta = previous->find("meta"); meta != previous->end() && meta->is_object()) {
            created = meta->value("created", now);
        }
    }
    resource["meta"] = {{"resourceType", rules_of(kind).name},
                        {"created", created},
                        {"lastModified", now},
                        {"version", fmt::format("W/\"{}\"", number + 1)}};
}

// The resource as returned: with meta.location.
json located(json resource, Kind kind, const std::string& base_url) {
    if (resource.contains("meta") && resource["meta"].is_object() && resource.contains("id")) {
        resource["meta"]["location"] =
            fmt::format("{}/{}/{}", base_url, endpoint(kind), resource["id"].get<std::string>());
    }
    return resource;
}

std::optional<std::int64_t> parse_integer(const std::map<std::string, std::string>& query,
                                          const char* name, bool& bad) {
    auto found = query.find(name);
    if (found == query.end() || found->second.empty()) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    const std::string& text = found->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        bad = true;
        return std::nullopt;
    }
    return value;
}

std::string query_value(const std::map<std::string, std::string>& query, const char* name) {
    auto found = query.find(name);
    return found == query.end() ? std::string() : found->second;
}

bool mentions(std::string_view text, std::string_view word) {
    return ascii_lower(text).find(word) != std::string::npos;
}

std::string_view type_name(AttributeType type) {
    switch (type) {
        case AttributeType::string:
            return "string";
        case AttributeType::boolean:
            return "boolean";
        case AttributeType::decimal:
            return "decimal";
        case AttributeType::integer:
            return "integer";
        case AttributeType::date_time:
            return "dateTime";
        case AttributeType::reference:
            return "reference";
        case AttributeType::complex:
            return "complex";
    }
    return "string";
}

std::string_view mutability_name(Mutability mutability) {
    switch (mutability) {
        case Mutability::read_only:
            return "readOnly";
        case Mutability::read_write:
            return "readWrite";
        case Mutability::immutable:
            return "immutable";
        case Mutability::write_only:
            return "writeOnly";
    }
    return "readWrite";
}

json attribute_schema(const AttributeDef& attribute) {
    json out = {{"name", attribute.name},
                {"type", type_name(attribute.type)},
                {"multiValued", attribute.multi_valued},
                {"required", attribute.required},
                {"caseExact", attribute.case_exact},
                {"mutability", mutability_name(attribute.mutability)},
                {"returned", attribute.name == "id"         ? "always"
                             : attribute.name == "password" ? "never"
                                                            : "default"},
                {"uniqueness", attribute.name == "userName" ? "server"
                               : attribute.name == "id"     ? "global"
                                                            : "none"}};
    if (attribute.type == AttributeType::complex) {
        json subs = json::array();
        for (const auto& sub : attribute.sub_attributes) {
            subs.push_back(attribute_schema(sub));
        }
        out["subAttributes"] = std::move(subs);
    }
    return out;
}

json schema_resource(const SchemaDef& schema, std::string_view name, const std::string& base_url) {
    json attributes = json::array();
    for (const auto& attribute : schema.attributes) {
        // The common attributes (RFC 7643 §3.1) are not part of a schema.
        if (attribute.name == "id" || attribute.name == "externalId" || attribute.name == "meta" ||
            attribute.name == "schemas") {
            continue;
        }
        attributes.push_back(attribute_schema(attribute));
    }
    return {{"schemas", json::array({"urn:ietf:params:scim:schemas:core:2.0:Schema"})},
            {"id", schema.urn},
            {"name", name},
            {"attributes", std::move(attributes)},
            {"meta",
             {{"resourceType", "Schema"},
              {"location", fmt::format("{}/Schemas/{}", base_url, schema.urn)}}}};
}

json list_response(json resources, std::size_t total, std::size_t start) {
    json out = {{"schemas", json::array({k_list_schema})},
                {"totalResults", total},
                {"startIndex", start},
                {"itemsPerPage", resources.size()}};
    out["Resources"] = std::move(resources);
    return out;
}

}  // namespace

TokenHash hash_token(std::string_view token) {
    // Fetched once: EVP_sha256() would look the algorithm up on every
    // request.
    static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    TokenHash hash{};
    unsigned int length = 0;
    if (sha256 == nullptr ||
        EVP_Digest(token.data(), token.size(), hash.data(), &length, sha256, nullptr) != 1 ||
        length != hash.size()) {
        throw std::runtime_error("SHA-256 is not available");
    }
    return hash;
}

ScimResponse Service::error_response(int status, std::string_view scim_type,
                                     std::string_view detail) {
    json body = {{"schemas", json::array({k_error_schema})},
                 {"status", std::to_string(status)},
                 {"detail", detail}};
    if (!scim_type.empty()) {
        body["scimType"] = scim_type;
    }
    return json_response(status, body);
}

struct Service::Impl {
    struct Source;
    ScimResponse route(Source& source, const ScimRequest& request);

    // A POST /Users on its way through a group commit (group_commit.hpp).
    struct PendingUser {
        json resource;      // normalized, with its id and meta
        SourceUser record;  // its mirror record
        // What it depends on: its folded userName (uniqueness) and its
        // canonical address (the plan merges users sharing one).
        std::vector<std::string> keys;
        bool committed = false;
        std::optional<ScimResponse> refused;  // why not, when it was not
    };

    struct Source {
        ScimSource config;
        std::mutex writes;  // one read-validate-write sequence at a time
        CommitQueue<PendingUser> creates;
    };

    Store& store;
    ServiceLimits limits;
    std::vector<std::unique_ptr<Source>> sources;
    std::mutex mapping_mutex;
    std::shared_ptr<const mapping::Mapping> mapping;  // guarded by mapping_mutex

    std::shared_ptr<const mapping::Mapping> current_mapping() {
        std::lock_guard lock(mapping_mutex);
        return mapping;
    }

    // The source whose token the request bears, comparing with every
    // configured hash in constant time.
    Source* authenticate(std::string_view authorization) {
        constexpr std::string_view scheme = "Bearer ";
        if (authorization.size() <= scheme.size() ||
            !iequals(authorization.substr(0, scheme.size()), scheme)) {
            return nullptr;
        }
        std::string_view token = authorization.substr(scheme.size());
        while (!token.empty() && token.front() == ' ') {
            token.remove_prefix(1);
        }
        const TokenHash presented = hash_token(token);
        Source* found = nullptr;
        for (auto& source : sources) {
            if (CRYPTO_memcmp(presented.data(), source->config.token_hash.data(),
                              presented.size()) == 0) {
                found = source.get();
            }
        }
        return found;
    }

    // Applies `delta` to the source's mirror and the org state in one
    // transaction; nullopt when it committed.
    std::optional<ScimResponse> commit(const Source& source, sync::SourceDelta delta) {
        delta.guard_counts = false;  // applied with force: nothing to weigh
        auto mapping_now = current_mapping();
        sync::SourceSpec spec{source.config.name, "scim", source.config.org};
        auto result =
            sync::run_sync_delta(store, *mapping_now, spec, delta,
                                 sync::RunOptions{.force = true, .record_applied = false});
        if (!result) {
            return store_failure(result.error());
        }
        if (result->result != "applied") {
            return error(409, "",
                         fmt::format("the write could not be applied: {}", result->message));
        }
        return std::nullopt;
    }

    // ---- users -------------------------------------------------------------

    // Each user's read-only `groups`, by user id, for those in any group.
    directory::Expected<std::unordered_map<std::string, json>> groups_of(
        const Source& source, const std::vector<std::string>& ids) {
        std::unordered_map<std::string, json> by_user;
        if (ids.empty()) {
            return by_user;
        }
        auto pairs = store.source_memberships_of(source.config.name, ids);
        if (!pairs) {
            return std::unexpected(pairs.error());
        }
        if (pairs->empty()) {
            return by_user;
        }
        std::vector<std::string> group_ids;
        for (const auto& [group, member] : *pairs) {
            group_ids.push_back(group);
        }
        auto groups = store.find_source_groups(source.config.name, group_ids, false);
        if (!groups) {
            return std::unexpected(groups.error());
        }
        std::unordered_map<std::string, std::string> names;
        for (const auto& group : *groups) {
            names.emplace(group.external_id, group.name);
        }
        for (const auto& [group, member] : *pairs) {
            by_user[member].push_back(
                {{"value", group}, {"display", names[group]}, {"type", "direct"}});
        }
        return by_user;
    }

    // Adds `groups` to each user resource (read-only, from the mirror).
    directory::Expected<void> attach_groups(const Source& source, std::vector<json>& users) {
        std::vector<std::string> ids;
        for (const auto& user : users) {
            ids.push_back(user.value("id", ""));
        }
        auto by_user = groups_of(source, ids);
        if (!by_user) {
            return std::unexpected(by_user.error());
        }
        for (auto& user : users) {
            auto found = by_user->find(user.value("id", ""));
            if (found != by_user->end()) {
                user["groups"] = std::move(found->second);
            }
        }
        return {};
    }

    directory::Expected<std::optional<SourceUser>> find_user(const Source& source,
                                                             const std::string& id) {
        auto found = store.find_source_users(source.config.name, {id});
        if (!found) {
            return std::unexpected(found.error());
        }
        if (found->empty()) {
            return std::nullopt;
        }
        return std::move(found->front());
    }

    directory::Expected<std::optional<SourceGroup>> find_group(const Source& source,
                                                               const std::string& id,
                                                               bool with_members) {
        auto found = store.find_source_groups(source.config.name, {id}, with_members);
        if (!found) {
            return std::unexpected(found.error());
        }
        if (found->empty()) {
            return std::nullopt;
        }
        return std::move(found->front());
    }

    // The users an indexed attribute (userName, externalId, id) has `lookup`'s
    // value for; nullopt for an attribute without an index.
    directory::Expected<std::optional<std::vector<SourceUser>>> indexed_users(
        const Source& source, const EqualityLookup& lookup) {
        const std::string& name = source.config.name;
        directory::Expected<std::vector<SourceUser>> users{};
        if (lookup.attribute == "userName") {
            users = store.find_source_users_by(name, MirrorKey::user_name, lookup.value);
        } else if (lookup.attribute == "externalId") {
            users = store.find_source_users_by(name, MirrorKey::client_id, lookup.value);
        } else if (lookup.attribute == "id") {
            users = store.find_source_users(name, {lookup.value});
        } else {
            return std::nullopt;
        }
        if (!users) {
            return std::unexpected(users.error());
        }
        return std::move(*users);
    }

    // The candidates a filter can match, found through an index when it is
    // a plain `attr eq "value"` on an indexed attribute; nullopt when the
    // whole mirror must be scanned.
    directory::Expected<std::optional<std::vector<json>>> indexed_candidates(const Source& source,
                                                                             Kind kind,
                                                                             const Filter& filter,
                                                                             bool with_members) {
        auto lookup = as_equality_lookup(filter, rules_of(kind));
        if (!lookup) {
            return std::nullopt;
        }
        const std::string& name = source.config.name;
        std::vector<json> candidates;
        if (kind == Kind::user) {
            auto users = indexed_users(source, *lookup);
            if (!users) {
                return std::unexpected(users.error());
            }
            if (!*users) {
                return std::nullopt;
            }
            for (const auto& user : **users) {
                candidates.push_back(user_resource(user));
            }
            return candidates;
        }
        directory::Expected<std::vector<SourceGroup>> groups{};
        if (lookup->attribute == "displayName") {
            groups = store.find_source_groups_by(name, MirrorKey::display_name, lookup->value,
                                                 with_members);
        } else if (lookup->attribute == "externalId") {
            groups = store.find_source_groups_by(name, MirrorKey::client_id, lookup->value,
                                                 with_members);
        } else if (lookup->attribute == "id") {
            groups = store.find_source_groups(name, {lookup->value}, with_members);
        } else {
            return std::nullopt;
        }
        if (!groups) {
            return std::unexpected(groups.error());
        }
        for (const auto& group : *groups) {
            candidates.push_back(group_resource(group, with_members));
        }
        return candidates;
    }

    // One page of the source's resources in id order.
    directory::Expected<std::vector<json>> page_of(const Source& source, Kind kind,
                                                   std::size_t offset, std::size_t limit,
                                                   bool with_members) {
        std::vector<json> resources;
        if (kind == Kind::user) {
            auto users = store.source_users_page(source.config.name, offset, limit);
            if (!users) {
                return std::unexpected(users.error());
            }
            for (const auto& user : *users) {
                resources.push_back(user_resource(user));
            }
            return resources;
        }
        auto groups = store.source_groups_page(source.config.name, offset, limit, with_members);
        if (!groups) {
            return std::unexpected(groups.error());
        }
        for (const auto& group : *groups) {
            resources.push_back(group_resource(group, with_members));
        }
        return resources;
    }

    // The answer to a users' filter that an index answers exactly (a
    // single `userName`, `externalId` or `id` eq) with every attribute
    // returned, written from the stored text without building a document
    // of each user (splice_stored). nullopt when the request is not such
    // a case, or a stored user cannot be spliced: list() then answers it.
    std::optional<ScimResponse> list_stored(const Source& source, Kind kind, const Filter& filter,
                                            const Projection& projection, bool with_groups,
                                            std::size_t offset, std::size_t page,
                                            const ScimRequest& request) {
        if (kind != Kind::user || !projection.attributes.empty() || !projection.excluded.empty()) {
            return std::nullopt;
        }
        auto lookup = as_equality_lookup(filter, rules_of(kind));
        if (!lookup) {
            return std::nullopt;
        }
        auto found_users = indexed_users(source, *lookup);
        if (!found_users) {
            return store_failure(found_users.error());
        }
        if (!*found_users) {
            return std::nullopt;
        }
        const std::vector<SourceUser>* users = &**found_users;
        std::vector<const SourceUser*> shown;
        for (std::size_t i = offset; i < users->size() && shown.size() < page; ++i) {
            shown.push_back(&(*users)[i]);
        }
        std::unordered_map<std::string, json> groups;
        if (with_groups) {
            std::vector<std::string> ids;
            for (const auto* user : shown) {
                ids.push_back(user->external_id);
            }
            auto found = groups_of(source, ids);
            if (!found) {
                return store_failure(found.error());
            }
            groups = std::move(*found);
        }
        std::string resources;
        for (const auto* user : shown) {
            const std::string location = fmt::format(
                "\"location\":{}",
                json(fmt::format("{}/{}/{}", request.base_url, endpoint(kind), user->external_id))
                    .dump());
            std::string member;
            if (auto found = groups.find(user->external_id); found != groups.end()) {
                member = "\"groups\":" + found->second.dump();
            }
            auto spliced = splice_stored(user->attributes, location, member, "groups");
            if (!spliced) {
                return std::nullopt;
            }
            resources += resources.empty() ? "" : ",";
            resources += *spliced;
        }
        ScimResponse response;
        response.status = 200;
        // The keys in the order json::dump writes them (sorted), as list()
        // answers.
        response.body = fmt::format(
            R"({{"Resources":[{}],"itemsPerPage":{},"schemas":["{}"],"startIndex":{},"totalResults":{}}})",
            resources, shown.size(), k_list_schema, offset + 1, users->size());
        return response;
    }

    ScimResponse list(const Source& source, Kind kind, const ScimRequest& request) {
        const ResourceRules& rules = rules_of(kind);
        bool bad = false;
        std::int64_t start = parse_integer(request.query, "startIndex", bad).value_or(1);
        std::int64_t count = parse_integer(request.query, "count", bad)
                                 .value_or(static_cast<std::int64_t>(limits.default_page));
        if (bad) {
            return error(400, "invalidValue", "startIndex and count must be integers");
        }
        start = std::max<std::int64_t>(start, 1);
        count = std::clamp<std::int64_t>(count, 0, static_cast<std::int64_t>(limits.max_page));
        const auto offset = static_cast<std::size_t>(start - 1);
        const auto page = static_cast<std::size_t>(count);
        Projection projection = Projection::parse(query_value(request.query, "attributes"),
                                                  query_value(request.query, "excludedAttributes"));
        const bool with_members = kind == Kind::group && projection.returns(rules, "members");
        const bool with_groups = kind == Kind::user && projection.returns(rules, "groups");
        const std::string filter_text = query_value(request.query, "filter");

        std::vector<json> resources;
        std::size_t total = 0;
        if (filter_text.empty()) {
            auto counted = kind == Kind::user ? store.source_user_count(source.config.name)
                                              : store.source_group_count(source.config.name);
            if (!counted) {
                return store_failure(counted.error());
            }
            total = *counted;
            if (page > 0) {
                auto read = page_of(source, kind, offset, page, with_members);
                if (!read) {
                    return store_failure(read.error());
                }
                resources = std::move(*read);
            }
        } else {
            auto filter = parse_filter(filter_text, limits.filter);
            if (!filter) {
                return scim_error(filter.error());
            }
            if (auto checked = check_filter(*filter, rules); !checked) {
                return scim_error(checked.error());
            }
            const bool filter_members = kind == Kind::group && mentions(filter_text, "members");
            const bool filter_groups = kind == Kind::user && mentions(filter_text, "groups");
            if (!filter_groups) {
                if (auto answered = list_stored(source, kind, *filter, projection, with_groups,
                                                offset, page, request)) {
                    return std::move(*answered);
                }
            }
            auto indexed =
                indexed_candidates(source, kind, *filter, with_members || filter_members);
            if (!indexed) {
                return store_failure(indexed.error());
            }
            std::vector<json> matched;
            auto consider = [&](std::vector<json> candidates) -> directory::Expected<void> {
                if (filter_groups) {
                    if (auto attached = attach_groups(source, candidates); !attached) {
                        return attached;
                    }
                }
                for (auto& candidate : candidates) {
                    if (matches(*filter, candidate, rules)) {
                        matched.push_back(std::move(candidate));
                    }
                }
                return {};
            };
            if (*indexed) {
                if (auto done = consider(std::move(**indexed)); !done) {
                    return store_failure(done.error());
                }
            } else {
                for (std::size_t from = 0;; from += k_scan_page) {
                    auto candidates = page_of(source, kind, from, k_scan_page, true);
                    if (!candidates) {
                        return store_failure(candidates.error());
                    }
                    const bool last = candidates->size() < k_scan_page;
                    if (auto done = consider(std::move(*candidates)); !done) {
                        return store_failure(done.error());
                    }
                    if (last) {
                        break;
                    }
                }
            }
            total = matched.size();
            for (std::size_t i = offset; i < matched.size() && resources.size() < page; ++i) {
                resources.push_back(std::move(matched[i]));
            }
            if (kind == Kind::group && !with_members) {
                for (auto& resource : resources) {
                    resource.erase("members");
                }
            }
        }
        if (with_groups) {
            for (auto& resource : resources) {
                resource.erase("groups");
            }
            if (auto attached = attach_groups(source, resources); !attached) {
                return store_failure(attached.error());
            }
        }
        json out = json::array();
        for (auto& resource : resources) {
            out.push_back(
                project(located(std::move(resource), kind, request.base_url), projection, rules));
        }
        return json_response(200,
                             list_response(std::move(out), total, static_cast<std::size_t>(start)));
    }

    // One resource as a response: located, with a User's groups, projected.
    ScimResponse single(const Source& source, Kind kind, json resource, int status,
                        const ScimRequest& request) {
        const ResourceRules& rules = rules_of(kind);
        Projection projection = Projection::parse(query_value(request.query, "attributes"),
                                                  query_value(request.query, "excludedAttributes"));
        if (kind == Kind::user && projection.returns(rules, "groups")) {
            std::vector<json> one{std::move(resource)};
            if (auto attached = attach_groups(source, one); !attached) {
                return store_failure(attached.error());
            }
            resource = std::move(one.front());
        }
        std::string etag = version_of(resource);
        ScimResponse response = json_response(
            status,
            project(located(std::move(resource), kind, request.base_url), projection, rules));
        response.etag = std::move(etag);
        return response;
    }

    ScimResponse get(const Source& source, Kind kind, const std::string& id,
                     const ScimRequest& request) {
        if (kind == Kind::user) {
            auto user = find_user(source, id);
            if (!user) {
                return store_failure(user.error());
            }
            if (!*user) {
                return not_found(kind, id);
            }
            return single(source, kind, user_resource(**user), 200, request);
        }
        Projection projection = Projection::parse(query_value(request.query, "attributes"),
                                                  query_value(request.query, "excludedAttributes"));
        const bool with_members = projection.returns(group_rules(), "members");
        auto group = find_group(source, id, with_members);
        if (!group) {
            return store_failure(group.error());
        }
        if (!*group) {
            return not_found(kind, id);
        }
        return single(source, kind, group_resource(**group, with_members), 200, request);
    }

    // 409 when another record of the source has the resource's userName
    // (users) or displayName (groups).
    std::optional<ScimResponse> check_unique(const Source& source, Kind kind, const json& resource,
                                             const std::string& own_id) {
        const std::string& name = source.config.name;
        std::vector<std::string> holders;
        if (kind == Kind::user) {
            auto users = store.find_source_users_by(name, MirrorKey::user_name,
                                                    resource.at("userName").get<std::string>());
            if (!users) {
                return store_failure(users.error());
            }
            for (const auto& user : *users) {
                holders.push_back(user.external_id);
            }
        } else {
            auto groups =
                store.find_source_groups_by(name, MirrorKey::display_name,
                                            resource.at("displayName").get<std::string>(), false);
            if (!groups) {
                return store_failure(groups.error());
            }
            for (const auto& group : *groups) {
                holders.push_back(group.external_id);
            }
        }
        if (std::any_of(holders.begin(), holders.end(),
                        [&](const std::string& holder) { return holder != own_id; })) {
            return error(409, "uniqueness",
                         kind == Kind::user ? "another user has this userName"
                                            : "another group has this displayName");
        }
        return std::nullopt;
    }

    // 400 when a group lists members that are not users of this source.
    std::optional<ScimResponse> check_members(const Source& source,
                                              const std::vector<std::string>& ids) {
        if (ids.empty()) {
            return std::nullopt;
        }
        auto found = store.find_source_users(source.config.name, ids);
        if (!found) {
            return store_failure(found.error());
        }
        if (found->size() == ids.size()) {
            return std::nullopt;
        }
        std::unordered_set<std::string> known;
        for (const auto& user : *found) {
            known.insert(user.external_id);
        }
        for (const auto& id : ids) {
            if (!known.contains(id)) {
                return error(400, "invalidValue",
                             fmt::format("members: no user with id \"{}\"", id));
            }
        }
        return std::nullopt;
    }

    static std::optional<ScimResponse> check_if_match(const ScimRequest& request,
                                                      const json& current) {
        if (request.if_match.empty() || request.if_match == "*") {
            return std::nullopt;
        }
        const std::string version = version_of(current);
        // A list of entity tags may be sent; weak comparison (RFC 9110 §13.1.1).
        auto strip = [](std::string_view tag) {
            while (!tag.empty() && tag.front() == ' ') {
                tag.remove_prefix(1);
            }
            while (!tag.empty() && tag.back() == ' ') {
                tag.remove_suffix(1);
            }
            if (tag.starts_with("W/")) {
                tag.remove_prefix(2);
            }
            return tag;
        };
        std::string_view tags = request.if_match;
        while (!tags.empty()) {
            auto comma = tags.find(',');
            if (strip(tags.substr(0, comma)) == strip(version)) {
                return std::nullopt;
            }
            if (comma == std::string_view::npos) {
                break;
            }
            tags.remove_prefix(comma + 1);
        }
        return error(412, "", "the resource has changed since the version in If-Match");
    }

    static std::expected<json, ScimResponse> parse_body(const ScimRequest& request) {
        json body = json::parse(request.body, nullptr, false);
        if (body.is_discarded()) {
            return std::unexpected(error(400, "invalidSyntax", "the body is not valid JSON"));
        }
        return body;
    }

    ScimResponse create(Source& source, Kind kind, const ScimRequest& request) {
        auto body = parse_body(request);
        if (!body) {
            return body.error();
        }
        auto resource = normalize_resource(*body, rules_of(kind), limits.patch);
        if (!resource) {
            return scim_error(resource.error());
        }
        if (kind == Kind::user) {
            return create_user(source, std::move(*resource), request);
        }
        std::lock_guard lock(source.writes);
        if (auto taken = check_unique(source, kind, *resource, "")) {
            return *taken;
        }
        if (auto bad = check_members(source, member_ids(*resource))) {
            return *bad;
        }
        std::string id = new_id();
        (*resource)["id"] = id;
        stamp(*resource, kind, nullptr);
        sync::SourceDelta delta;
        delta.upsert_groups.push_back(to_source_group(source.config.name, *resource));
        if (auto failed = commit(source, delta)) {
            return *failed;
        }
        ScimResponse response = single(source, kind, std::move(*resource), 201, request);
        response.location = fmt::format("{}/{}/{}", request.base_url, endpoint(kind), id);
        return response;
    }

    // POST /Users. Users created while a commit of the source is under way
    // are committed together by the next one (one transaction and one
    // fsync for all of them), each answered as if written alone: see
    // commit_together. The response is built once the user is committed.
    ScimResponse create_user(Source& source, json resource, const ScimRequest& request) {
        const std::string id = new_id();
        resource["id"] = id;
        stamp(resource, Kind::user, nullptr);
        PendingUser pending;
        pending.record = to_source_user(source.config.name, resource);
        pending.keys.push_back("userName:" +
                               ascii_lower(resource.at("userName").get<std::string>()));
        if (!pending.record.email.empty()) {
            auto address = directory::canonical_email(pending.record.email);
            pending.keys.push_back("address:" +
                                   (address ? *address : ascii_lower(pending.record.email)));
        }
        pending.resource = std::move(resource);
        source.creates.submit(
            pending, [&](std::span<PendingUser* const> batch) { create_users(source, batch); });
        if (!pending.committed) {
            return pending.refused.value_or(error(500, "", "the write did not complete"));
        }
        ScimResponse response =
            single(source, Kind::user, std::move(pending.resource), 201, request);
        response.location = fmt::format("{}/{}/{}", request.base_url, endpoint(Kind::user), id);
        return response;
    }

    // One batch of POST /Users, under the source's write lock.
    void create_users(Source& source, std::span<PendingUser* const> batch) {
        std::lock_guard lock(source.writes);
        commit_together(
            batch,
            [&](PendingUser& user) {
                if (auto taken = check_unique(source, Kind::user, user.resource, "")) {
                    user.refused = std::move(*taken);
                    return false;
                }
                return true;
            },
            [&](std::span<PendingUser* const> users) {
                sync::SourceDelta delta;
                for (const PendingUser* user : users) {
                    delta.upsert_users.push_back(user->record);
                }
                auto failed = commit(source, std::move(delta));
                if (!failed) {
                    for (PendingUser* user : users) {
                        user->committed = true;
                    }
                    return true;
                }
                if (users.size() == 1) {
                    users.front()->refused = std::move(*failed);
                }
                return false;
            });
    }

    // PUT (`replace`) and PATCH share the rest of the write: checks, stamp,
    // commit, response.
    ScimResponse update(Source& source, Kind kind, const std::string& id,
                        const ScimRequest& request, bool replace) {
        auto body = parse_body(request);
        if (!body) {
            return body.error();
        }
        std::lock_guard lock(source.writes);
        json current;
        std::vector<std::string> old_members;
        if (kind == Kind::user) {
            auto user = find_user(source, id);
            if (!user) {
                return store_failure(user.error());
            }
            if (!*user) {
                return not_found(kind, id);
            }
            current = user_resource(**user);
        } else {
            auto group = find_group(source, id, true);
            if (!group) {
                return store_failure(group.error());
            }
            if (!*group) {
                return not_found(kind, id);
            }
            old_members = (*group)->member_ids;
            current = group_resource(**group, true);
        }
        if (auto stale = check_if_match(request, current)) {
            return *stale;
        }
        std::expected<json, ScimError> next =
            replace ? normalize_resource(*body, rules_of(kind), limits.patch)
                    : apply_patch(current, *body, rules_of(kind), limits.patch);
        if (!next) {
            return scim_error(next.error());
        }
        if (auto checked = check_resource(*next, rules_of(kind)); !checked) {
            return scim_error(checked.error());
        }
        (*next)["id"] = id;
        if (replace) {
            if (current.contains("meta")) {
                (*next)["meta"] = current["meta"];
            }
        }
        if (*next == current) {
            // Nothing changes (IdPs resend what they sent): no write.
            return replace || kind == Kind::user
                       ? single(source, kind, std::move(current), 200, request)
                       : ScimResponse{.status = 204};
        }
        if (auto taken = check_unique(source, kind, *next, id)) {
            return *taken;
        }
        sync::SourceDelta delta;
        if (kind == Kind::group) {
            std::unordered_set<std::string> had(old_members.begin(), old_members.end());
            std::vector<std::string> added;
            for (const auto& member : member_ids(*next)) {
                if (!had.contains(member)) {
                    added.push_back(member);
                }
            }
            if (auto bad = check_members(source, added)) {
                return *bad;
            }
        }
        stamp(*next, kind, &current);
        if (kind == Kind::user) {
            delta.upsert_users.push_back(to_source_user(source.config.name, *next));
        } else {
            delta.upsert_groups.push_back(to_source_group(source.config.name, *next));
        }
        if (auto failed = commit(source, delta)) {
            return *failed;
        }
        if (kind == Kind::group && !replace) {
            // A group PATCH answers 204 (RFC 7644 §3.5.2): large groups are
            // not sent back for every member added.
            ScimResponse response{.status = 204};
            response.etag = version_of(*next);
            return response;
        }
        return single(source, kind, std::move(*next), 200, request);
    }

    ScimResponse remove(Source& source, Kind kind, const std::string& id,
                        const ScimRequest& request) {
        std::lock_guard lock(source.writes);
        sync::SourceDelta delta;
        if (kind == Kind::user) {
            auto user = find_user(source, id);
            if (!user) {
                return store_failure(user.error());
            }
            if (!*user) {
                return not_found(kind, id);
            }
            if (auto stale = check_if_match(request, user_resource(**user))) {
                return *stale;
            }
            // The user leaves every group of the source with them.
            auto pairs = store.source_memberships_of(source.config.name, {id});
            if (!pairs) {
                return store_failure(pairs.error());
            }
            std::vector<std::string> group_ids;
            for (const auto& [group, member] : *pairs) {
                group_ids.push_back(group);
            }
            auto groups = store.find_source_groups(source.config.name, group_ids, true);
            if (!groups) {
                return store_failure(groups.error());
            }
            for (auto& group : *groups) {
                json before = group_resource(group, false);
                std::erase(group.member_ids, id);
                json after = before;
                stamp(after, Kind::group, &before);
                group.attributes = after.dump();
                delta.upsert_groups.push_back(std::move(group));
            }
            delta.removed_user_ids.push_back(id);
        } else {
            auto group = find_group(source, id, false);
            if (!group) {
                return store_failure(group.error());
            }
            if (!*group) {
                return not_found(kind, id);
            }
            if (auto stale = check_if_match(request, group_resource(**group, false))) {
                return *stale;
            }
            delta.removed_group_ids.push_back(id);
        }
        if (auto failed = commit(source, delta)) {
            return *failed;
        }
        return ScimResponse{.status = 204};
    }

    // ---- discovery ---------------------------------------------------------

    json service_provider_config(const std::string& base_url) const {
        return {{"schemas",
                 json::array({"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"})},
                {"patch", {{"supported", true}}},
                {"bulk", {{"supported", false}, {"maxOperations", 0}, {"maxPayloadSize", 0}}},
                {"filter", {{"supported", true}, {"maxResults", limits.max_page}}},
                {"changePassword", {{"supported", false}}},
                {"sort", {{"supported", false}}},
                {"etag", {{"supported", true}}},
                {"authenticationSchemes",
                 json::array({{{"type", "oauthbearertoken"},
                               {"name", "OAuth Bearer Token"},
                               {"description", "A bearer token bound to one SCIM source"},
                               {"primary", true}}})},
                {"meta",
                 {{"resourceType", "ServiceProviderConfig"},
                  {"location", base_url + "/ServiceProviderConfig"}}}};
    }

    static std::vector<json> schemas(const std::string& base_url) {
        return {schema_resource(user_rules().core, "User", base_url),
                schema_resource(user_rules().extensions.front(), "EnterpriseUser", base_url),
                schema_resource(group_rules().core, "Group", base_url)};
    }

    static std::vector<json> resource_types(const std::string& base_url) {
        auto type = [&](std::string_view name, std::string_view path, std::string_view schema) {
            return json{
                {"schemas", json::array({"urn:ietf:params:scim:schemas:core:2.0:ResourceType"})},
                {"id", name},
                {"name", name},
                {"endpoint", path},
                {"schema", schema},
                {"meta",
                 {{"resourceType", "ResourceType"},
                  {"location", fmt::format("{}/ResourceTypes/{}", base_url, name)}}}};
        };
        json user = type("User", "/Users", k_user_schema);
        user["schemaExtensions"] =
            json::array({{{"schema", k_enterprise_user_schema}, {"required", false}}});
        return {user, type("Group", "/Groups", k_group_schema)};
    }

    // GET of a discovery endpoint: the list, or the one with `id`.
    static ScimResponse discovery(const std::vector<json>& all, const std::string& id) {
        if (id.empty()) {
            return json_response(200, list_response(json(all), all.size(), 1));
        }
        for (const auto& item : all) {
            if (item.value("id", "") == id) {
                return json_response(200, item);
            }
        }
        return error(404, "", fmt::format("no such resource \"{}\"", id));
    }
};

Service::Service(Store& store, std::shared_ptr<const mapping::Mapping> mapping,
                 std::vector<ScimSource> sources, ServiceLimits limits)
    : m_impl(std::make_unique<Impl>(store, limits)) {
    m_impl->mapping = std::move(mapping);
    for (auto& source : sources) {
        auto held = std::make_unique<Impl::Source>();
        held->config = std::move(source);
        m_impl->sources.push_back(std::move(held));
    }
}

Service::~Service() = default;

void Service::set_mapping(std::shared_ptr<const mapping::Mapping> mapping) {
    std::lock_guard lock(m_impl->mapping_mutex);
    m_impl->mapping = std::move(mapping);
}

ScimResponse Service::Impl::route(Source& source, const ScimRequest& request) {
    if (request.body.size() > limits.max_body) {
        return error(413, "", fmt::format("the body is larger than {} bytes", limits.max_body));
    }
    // "/Users/abc" -> {"Users", "abc"}
    std::vector<std::string> parts;
    std::string_view path = request.path;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        auto slash = path.find('/');
        parts.emplace_back(path.substr(0, slash));
        path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
    }
    const std::string& method = request.method;
    auto not_allowed = [&]() {
        return error(405, "", fmt::format("{} is not supported on {}", method, request.path));
    };
    if (parts.empty() || parts.size() > 2) {
        return error(404, "", fmt::format("no endpoint {}", request.path));
    }
    const std::string& top = parts[0];
    const std::string id = parts.size() == 2 ? parts[1] : std::string();
    if (top == "ServiceProviderConfig" || top == "Schemas" || top == "ResourceTypes") {
        if (method != "GET") {
            return not_allowed();
        }
        if (top == "ServiceProviderConfig") {
            return id.empty() ? json_response(200, service_provider_config(request.base_url))
                              : error(404, "", "no such resource");
        }
        return discovery(
            top == "Schemas" ? schemas(request.base_url) : resource_types(request.base_url), id);
    }
    Kind kind;
    if (top == "Users") {
        kind = Kind::user;
    } else if (top == "Groups") {
        kind = Kind::group;
    } else {
        return error(404, "", fmt::format("no endpoint {}", request.path));
    }
    if (id.empty()) {
        if (method == "GET") {
            return list(source, kind, request);
        }
        if (method == "POST") {
            return create(source, kind, request);
        }
        return not_allowed();
    }
    if (method == "GET") {
        return get(source, kind, id, request);
    }
    if (method == "PUT") {
        return update(source, kind, id, request, true);
    }
    if (method == "PATCH") {
        return update(source, kind, id, request, false);
    }
    if (method == "DELETE") {
        return remove(source, kind, id, request);
    }
    return not_allowed();
}

ScimResponse Service::handle(const ScimRequest& request) {
    Impl::Source* source = m_impl->authenticate(request.authorization);
    if (source == nullptr) {
        ScimResponse response = error(401, "", "a valid bearer token is required");
        response.unauthorized = true;
        return response;
    }
    ScimResponse response = m_impl->route(*source, request);
    response.source = source->config.name;
    return response;
}

void Service::exclusive(std::string_view source, const std::function<void()>& body) {
    for (auto& held : m_impl->sources) {
        if (held->config.name == source) {
            std::lock_guard lock(held->writes);
            body();
            return;
        }
    }
    body();
}

}  // namespace orgsync::scim
