#include "daemon/api.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <httplib.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "daemon/http_server.hpp"
#include "daemon/signature.hpp"
#include "sync/auto_join.hpp"

namespace orgsync::daemon {
namespace {

using directory::ErrorCode;
using nlohmann::json;

void reply(httplib::Response& response, int status, const json& body) {
    response.status = status;
    response.set_content(body.dump(), "application/json");
}

void fail(httplib::Response& response, int status, std::string_view message) {
    reply(response, status, {{"error", message}});
}

// The HTTP library holds a body sent with a length to k_max_body; a
// chunked one can come out larger (its framing counts towards the limit on
// the wire), so every route that reads a body checks it too.
bool too_large(const httplib::Request& request, httplib::Response& response) {
    if (request.body.size() <= k_max_body) {
        return false;
    }
    fail(response, 413, fmt::format("the body is larger than {} bytes", k_max_body));
    return true;
}

int status_of(const directory::Error& error) {
    switch (error.code) {
        case ErrorCode::invalid_argument:
            return 400;
        case ErrorCode::not_found:
            return 404;
        case ErrorCode::storage:
        case ErrorCode::schema_too_new:
            return 500;
        default:
            return 409;  // already_exists and the invariants: the store refused it
    }
}

std::string iso_time(std::chrono::system_clock::time_point at) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(at));
}

json optional_time(const std::optional<std::chrono::system_clock::time_point>& at) {
    return at ? json(iso_time(*at)) : json(nullptr);
}

// A string member of `body`, or nullopt when absent or null; throws
// std::invalid_argument naming the key when it has another type.
std::optional<std::string> string_field(const json& body, const char* key) {
    auto found = body.find(key);
    if (found == body.end() || found->is_null()) {
        return std::nullopt;
    }
    if (!found->is_string()) {
        throw std::invalid_argument(fmt::format("\"{}\" must be a string", key));
    }
    return found->get<std::string>();
}

std::string required_string(const json& body, const char* key) {
    auto value = string_field(body, key);
    if (!value || value->empty()) {
        throw std::invalid_argument(fmt::format("\"{}\" is required", key));
    }
    return *value;
}

// The body as a JSON object; throws std::invalid_argument when it is not one.
json parse_object(const std::string& body) {
    json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
        throw std::invalid_argument("the body must be a JSON object");
    }
    return parsed;
}

json run_json(const RunRecord& record) {
    json out{{"trigger", record.trigger},
             {"mode", record.mode},
             {"result", record.run ? record.run->result : "failed"},
             {"message", record.message()},
             {"finished_at", iso_time(record.finished)},
             {"seconds", record.duration.count()}};
    if (record.run) {
        const auto& plan = record.run->plan;
        out["changes"] = plan.changes.size();
        json held = json::array();
        for (const auto& change : plan.held) {
            held.push_back({{"kind", sync::to_string(change.change.kind)},
                            {"org", change.change.org()},
                            {"subject", change.change.email().empty() ? change.change.group()
                                                                      : change.change.email()},
                            {"reason", change.reason}});
        }
        out["held"] = std::move(held);
    }
    return out;
}

json status_json(const SourceStatus& status, const directory::Store& store) {
    json out{{"name", status.name},
             {"type", status.type},
             {"running", status.running},
             {"runs", status.runs},
             {"consecutive_failures", status.consecutive_failures},
             {"failing", status.failing()},
             {"last_success_at", optional_time(status.last_success)},
             {"next_run_at", optional_time(status.next_run)},
             {"last_run", status.last ? run_json(*status.last) : json(nullptr)}};
    if (auto users = store.source_user_count(status.name); users) {
        out["users"] = *users;
    }
    if (auto groups = store.source_group_count(status.name); groups) {
        out["groups"] = *groups;
    }
    // The last run recorded in the store, also from before this start.
    if (auto runs = store.sync_runs(status.name, 1); runs && !runs->empty()) {
        const auto& run = runs->front();
        json summary = json::parse(run.summary, nullptr, false);
        out["last_recorded_run"] = {{"started_at", run.started_at},
                                    {"finished_at", run.finished_at},
                                    {"kind", run.kind},
                                    {"result", run.result},
                                    {"message", run.message},
                                    {"summary", summary.is_discarded() ? json(nullptr) : summary}};
    }
    return out;
}

}  // namespace

json decision_json(const directory::Decision& decision) {
    return {
        {"allow", decision.allow},
        {"reason", decision.reason},
        {"role", decision.role ? json(directory::to_string(*decision.role)) : json(nullptr)},
        {"level", decision.level ? json(directory::to_string(*decision.level)) : json(nullptr)}};
}

bool ReplayGuard::first_use(const std::string& signature, std::chrono::sys_seconds now) {
    std::lock_guard lock(m_mutex);
    // Both directions of the window: a signature stays valid while its t is
    // within it of now, so keep each for twice the window.
    const auto horizon = now - 2 * k_signature_window;
    while (!m_by_time.empty() && m_by_time.begin()->first < horizon) {
        m_seen.erase(m_by_time.begin()->second);
        m_by_time.erase(m_by_time.begin());
    }
    if (!m_seen.emplace(signature, now).second) {
        return false;
    }
    m_by_time.emplace(now, signature);
    return true;
}

Api::Api(Context context, Credentials credentials)
    : m_context(std::move(context)), m_credentials(std::move(credentials)) {}

void Api::set_credentials(Credentials credentials) {
    std::lock_guard lock(m_mutex);
    m_credentials = std::move(credentials);
}

Credentials Api::credentials() const {
    std::lock_guard lock(m_mutex);
    return m_credentials;
}

void Api::routes(httplib::Server& server) {
    using httplib::Request;
    using httplib::Response;
    auto& store = m_context.store;

    // Wraps a /v1 handler: the API token first, then bad input as 400.
    auto guarded = [this](auto handler) {
        return [this, handler](const Request& request, Response& response) {
            const auto held = credentials();
            const std::string authorization = request.get_header_value("Authorization");
            constexpr std::string_view scheme = "Bearer ";
            bool ok = false;
            if (held.api_token && authorization.size() > scheme.size() &&
                std::string_view(authorization).substr(0, scheme.size()) == scheme) {
                const auto presented = scim::hash_token(authorization.substr(scheme.size()));
                ok = CRYPTO_memcmp(presented.data(), held.api_token->data(), presented.size()) == 0;
            }
            if (!ok) {
                response.set_header("WWW-Authenticate", "Bearer realm=\"orgsync\"");
                fail(response, 401,
                     held.api_token ? "a valid API token is required"
                                    : "the API is disabled: [http] api_token_file is not set");
                return;
            }
            if (too_large(request, response)) {
                return;
            }
            try {
                handler(request, response);
            } catch (const std::invalid_argument& bad) {
                fail(response, 400, bad.what());
            }
        };
    };

    server.Post(
        "/v1/authorize", guarded([this, &store](const Request& request, Response& response) {
            const json body = parse_object(request.body);
            directory::Request question{required_string(body, "user"), required_string(body, "org"),
                                        string_field(body, "project"),
                                        string_field(body, "dataset"),
                                        required_string(body, "action")};
            auto decision = directory::authorize(*store.snapshot(), question);
            if (!decision) {
                m_context.metrics.observe_decision("error");
                fail(response, status_of(decision.error()), decision.error().message);
                return;
            }
            m_context.metrics.observe_decision(decision->allow ? "allow" : "deny");
            reply(response, 200, decision_json(*decision));
        }));

    server.Get("/v1/orgs", guarded([&store](const Request&, Response& response) {
                   auto orgs = store.list_orgs();
                   if (!orgs) {
                       fail(response, 500, orgs.error().message);
                       return;
                   }
                   json out = json::array();
                   for (const auto& org : *orgs) {
                       out.push_back({{"slug", org.slug},
                                      {"name", org.name},
                                      {"workforce", org.workforce},
                                      {"owner", org.owner_email}});
                   }
                   reply(response, 200, {{"orgs", out}});
               }));

    // The org named in the path, or an answer saying why there is none.
    auto find_org = [&store](const std::string& slug,
                             Response& response) -> std::optional<directory::Org> {
        auto org = store.find_org(slug);
        if (!org) {
            fail(response, 500, org.error().message);
            return std::nullopt;
        }
        if (!*org) {
            fail(response, 404, fmt::format("no org {}", slug));
            return std::nullopt;
        }
        return **org;
    };

    server.Get(R"(/v1/orgs/([^/]+)/members)",
               guarded([&store, find_org](const Request& request, Response& response) {
                   auto org = find_org(request.matches[1], response);
                   if (!org) {
                       return;
                   }
                   auto members = store.list_members(org->id);
                   if (!members) {
                       fail(response, 500, members.error().message);
                       return;
                   }
                   json out = json::array();
                   for (const auto& member : *members) {
                       json sources = json::array();
                       for (const auto& assertion : member.assertions) {
                           sources.push_back({{"source", assertion.source},
                                              {"type", directory::to_string(assertion.user_type)},
                                              {"role", directory::to_string(assertion.role)}});
                       }
                       out.push_back({{"email", member.email},
                                      {"type", directory::to_string(member.user_type)},
                                      {"role", directory::to_string(member.role)},
                                      {"asserted_by", sources}});
                   }
                   reply(response, 200, {{"org", org->slug}, {"members", out}});
               }));

    server.Get(R"(/v1/orgs/([^/]+)/groups)",
               guarded([&store, find_org](const Request& request, Response& response) {
                   auto org = find_org(request.matches[1], response);
                   if (!org) {
                       return;
                   }
                   auto groups = store.list_groups(org->id);
                   if (!groups) {
                       fail(response, 500, groups.error().message);
                       return;
                   }
                   json out = json::array();
                   for (const auto& group : *groups) {
                       auto members = store.group_members(group.id);
                       if (!members) {
                           fail(response, 500, members.error().message);
                           return;
                       }
                       out.push_back({{"name", group.name}, {"members", *members}});
                   }
                   reply(response, 200, {{"org", org->slug}, {"groups", out}});
               }));

    server.Get(R"(/v1/orgs/([^/]+)/projects/([^/]+)/grants)",
               guarded([&store, find_org](const Request& request, Response& response) {
                   auto org = find_org(request.matches[1], response);
                   if (!org) {
                       return;
                   }
                   const std::string slug = request.matches[2];
                   auto project = store.find_project(org->id, slug);
                   if (!project) {
                       fail(response, 500, project.error().message);
                       return;
                   }
                   if (!*project) {
                       fail(response, 404, fmt::format("no project {} in org {}", slug, org->slug));
                       return;
                   }
                   auto grants = store.list_project_grants((*project)->id);
                   if (!grants) {
                       fail(response, 500, grants.error().message);
                       return;
                   }
                   json out = json::array();
                   for (const auto& grant : *grants) {
                       out.push_back({{"principal", directory::to_string(grant.principal.kind)},
                                      {"name", grant.principal_name},
                                      {"level", directory::to_string(grant.level)},
                                      {"sources", grant.sources}});
                   }
                   reply(response, 200, {{"org", org->slug}, {"project", slug}, {"grants", out}});
               }));

    server.Get("/v1/status", guarded([this, &store](const Request&, Response& response) {
                   json sources = json::array();
                   for (const auto& status : m_context.scheduler.status()) {
                       sources.push_back(status_json(status, store));
                   }
                   json outbox{{"depth", nullptr}, {"targets", json::array()}};
                   if (auto depth = store.outbox_depth(); depth) {
                       outbox["depth"] = *depth;
                   }
                   if (auto states = store.delivery_states(); states) {
                       for (const auto& state : *states) {
                           outbox["targets"].push_back({{"url", state.target},
                                                        {"delivered", state.delivered},
                                                        {"dead_lettered", state.dead_lettered},
                                                        {"failing_attempts", state.attempts},
                                                        {"last_error", state.last_error}});
                       }
                   }
                   reply(response, 200, {{"sources", sources}, {"outbox", outbox}});
               }));

    server.Post(
        R"(/v1/sync/([^/]+))", guarded([this, &store](const Request& request, Response& response) {
            const std::string source = request.matches[1];
            const bool force = request.get_param_value("force") == "true";
            const bool wait = request.get_param_value("wait") == "true";
            auto ticket = m_context.scheduler.request(source, force);
            if (!ticket) {
                fail(response, 404, fmt::format("no source {}", source));
                return;
            }
            spdlog::info("event=sync.requested source={} force={} via=api", source, force);
            if (!wait) {
                reply(response, 202, {{"source", source}, {"accepted", true}});
                return;
            }
            auto status = m_context.scheduler.wait(source, *ticket, std::chrono::minutes(10));
            if (!status) {
                fail(response, 404, fmt::format("no source {}", source));
                return;
            }
            reply(response, 200, status_json(*status, store));
        }));

    server.Post("/hooks/v1/events", [this](const Request& request, Response& response) {
        if (too_large(request, response)) {
            return;
        }
        const auto held = credentials();
        if (held.webhook_secret.empty()) {
            fail(response, 404, "inbound webhooks are disabled: [webhook] secret_file is not set");
            return;
        }
        const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
        const std::string header = request.get_header_value(std::string(k_signature_header));
        if (auto verified = verify(held.webhook_secret, header, request.body, now); !verified) {
            m_context.metrics.observe_hook("", "unauthorized");
            spdlog::warn("event=hook.refused reason={}", to_string(verified.error()));
            fail(response, 401, fmt::format("signature {}", to_string(verified.error())));
            return;
        }
        if (!m_replays.first_use(header, now)) {
            m_context.metrics.observe_hook("", "unauthorized");
            spdlog::warn("event=hook.refused reason=replayed");
            fail(response, 401, "signature replayed");
            return;
        }
        std::string type;
        try {
            const json body = parse_object(request.body);
            type = required_string(body, "type");
            if (type == "sync.request") {
                const std::string source = required_string(body, "source");
                const bool force = body.value("force", false);
                if (!m_context.scheduler.request(source, force)) {
                    m_context.metrics.observe_hook(type, "rejected");
                    fail(response, 404, fmt::format("no source {}", source));
                    return;
                }
                spdlog::info("event=sync.requested source={} force={} via=hook", source, force);
                m_context.metrics.observe_hook(type, "accepted");
                reply(response, 202, {{"source", source}, {"accepted", true}});
                return;
            }
            if (type != "user.signup" && type != "user.email_changed") {
                throw std::invalid_argument(fmt::format(
                    "unknown event type {}: expected user.signup, user.email_changed or "
                    "sync.request",
                    json(type).dump()));
            }
            sync::AddressEvent event;
            event.email = required_string(body, "email");
            auto verified = body.find("email_verified");
            if (verified != body.end() && !verified->is_boolean()) {
                throw std::invalid_argument("\"email_verified\" must be true or false");
            }
            event.email_verified = verified != body.end() && verified->get<bool>();
            event.name = string_field(body, "name").value_or("");
            if (type == "user.email_changed") {
                event.previous_email = required_string(body, "previous_email");
            }
            auto result = sync::apply_address(m_context.store, *m_context.mapping(), event);
            if (!result) {
                m_context.metrics.observe_hook(type, "rejected");
                spdlog::warn("event=hook.rejected type={} error=\"{}\"", type,
                             result.error().message);
                fail(response, status_of(result.error()), result.error().message);
                return;
            }
            m_context.committed();
            m_context.metrics.observe_hook(type, "applied");
            spdlog::info("event=hook.applied type={} email={} joined={} left={} reason=\"{}\"",
                         type, result->email, fmt::join(result->joined, ","),
                         fmt::join(result->left, ","), result->reason);
            reply(response, 200,
                  {{"email", result->email},
                   {"joined", result->joined},
                   {"left", result->left},
                   {"reason", result->reason}});
        } catch (const std::invalid_argument& bad) {
            m_context.metrics.observe_hook(type, "invalid");
            fail(response, 400, bad.what());
        }
    });
}

}  // namespace orgsync::daemon
