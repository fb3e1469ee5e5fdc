#include "daemon/daemon.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <array>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "connectors/scim/service.hpp"
#include "daemon/api.hpp"
#include "daemon/cli.hpp"
#include "daemon/http_server.hpp"
#include "daemon/metrics.hpp"
#include "daemon/outbox_delivery.hpp"
#include "daemon/request_deadline.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/service_metrics.hpp"
#include "daemon/setup.hpp"
#include "directory/store.hpp"
#include "sync/run.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::system_clock;

// A secret file's content, or why it cannot be used (naming the file,
// never the content).
std::expected<std::string, std::string> read_secret(const fs::path& file) {
    auto secret = read_secret_file(file);
    if (!secret) {
        return std::unexpected(fmt::format("cannot read {}", file.string()));
    }
    if (secret->empty()) {
        return std::unexpected(fmt::format("{} is empty", file.string()));
    }
    return std::move(*secret);
}

std::expected<std::vector<scim::ScimSource>, std::string> scim_sources(const Config& config) {
    std::vector<scim::ScimSource> sources;
    for (const auto& source : config.sources) {
        const auto* scim = std::get_if<ScimSourceConfig>(&source.settings);
        if (scim == nullptr) {
            continue;
        }
        auto token = read_secret(scim->token_file);
        if (!token) {
            return std::unexpected(
                fmt::format("source {}: token_file: {}", source.name, token.error()));
        }
        sources.push_back(scim::ScimSource{source.name, scim->org, scim::hash_token(*token)});
    }
    return sources;
}

std::expected<Credentials, std::string> load_credentials(const Config& config) {
    Credentials credentials;
    if (!config.api_token_file.empty()) {
        auto token = read_secret(config.api_token_file);
        if (!token) {
            return std::unexpected("[http] api_token_file: " + token.error());
        }
        credentials.api_token = scim::hash_token(*token);
    }
    if (!config.webhook_secret_file.empty()) {
        auto secret = read_secret(config.webhook_secret_file);
        if (!secret) {
            return std::unexpected("[webhook] secret_file: " + secret.error());
        }
        credentials.webhook_secret = std::move(*secret);
    }
    return credentials;
}

// Everything a (re)load reads and checks before any of it takes effect.
struct Loaded {
    Config config;
    std::shared_ptr<const mapping::Mapping> mapping;
    std::vector<SourceSettings> sources;
    std::vector<scim::ScimSource> scim;
    Credentials credentials;
    std::vector<DeliveryTarget> targets;
};

std::optional<Loaded> load_all(const fs::path& config_file, std::ostream& err) {
    auto config = load_or_report(config_file, err);
    if (!config) {
        return std::nullopt;
    }
    auto mapping = load_mapping_or_report(*config, err);
    auto specs = select_sources(*config, "", err);
    if (!mapping || !specs) {
        return std::nullopt;
    }
    if (!parse_listen_address(config->http_listen)) {
        err << "orgsyncd: [http] listen is not host:port\n";
        return std::nullopt;
    }
    auto scim = scim_sources(*config);
    auto credentials = load_credentials(*config);
    auto targets = load_delivery_targets(*config);
    for (const std::string* problem :
         {scim ? nullptr : &scim.error(), credentials ? nullptr : &credentials.error(),
          targets ? nullptr : &targets.error()}) {
        if (problem != nullptr) {
            err << "orgsyncd: " << *problem << '\n';
            return std::nullopt;
        }
    }
    Loaded loaded{std::move(*config),
                  std::make_shared<const mapping::Mapping>(std::move(*mapping)),
                  {},
                  std::move(*scim),
                  std::move(*credentials),
                  std::move(*targets)};
    for (auto& spec : *specs) {
        SourceSettings settings{std::move(spec), std::nullopt, loaded.mapping};
        if (const auto* source = loaded.config.find_source(settings.spec.name)) {
            if (const auto* ldap = std::get_if<ldap::LdapSourceConfig>(&source->settings)) {
                settings.ldap = *ldap;
            }
        }
        loaded.sources.push_back(std::move(settings));
    }
    return loaded;
}

// Re-derives each source from its stored mirror with the current mapping
// (at start, before the listener opens).
void derive_from_mirrors(directory::Store& store, const Loaded& loaded) {
    for (const auto& source : loaded.sources) {
        auto result =
            sync::run_sync(store, *loaded.mapping, source.spec, std::nullopt, sync::RunOptions{});
        if (!result) {
            spdlog::error("event=sync.failed source={} mode=mirror error=\"{}\"", source.spec.name,
                          result.error().message);
            continue;
        }
        auto log = result->result == "applied" ? spdlog::level::info : spdlog::level::warn;
        spdlog::log(log, "event=sync.{} source={} trigger=start mode=mirror changes={} held={}{}",
                    result->result, source.spec.name, result->plan.changes.size(),
                    result->plan.held.size(),
                    result->message.empty() ? "" : fmt::format(" reason=\"{}\"", result->message));
    }
}

// Writes per source in the last minute, for STATUS=.
class PushRate {
  public:
    void record(const std::string& source) {
        const auto second = now_seconds();
        std::lock_guard lock(m_mutex);
        auto& buckets = m_sources[source];
        auto& bucket = buckets[static_cast<std::size_t>(second % 60)];
        if (bucket.first != second) {
            bucket = {second, 0};
        }
        ++bucket.second;
    }

    std::int64_t per_minute(const std::string& source) const {
        const auto second = now_seconds();
        std::lock_guard lock(m_mutex);
        auto found = m_sources.find(source);
        if (found == m_sources.end()) {
            return 0;
        }
        std::int64_t total = 0;
        for (const auto& [at, count] : found->second) {
            if (second - at < 60) {
                total += count;
            }
        }
        return total;
    }

  private:
    static std::int64_t now_seconds() {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

    mutable std::mutex m_mutex;
    std::map<std::string, std::array<std::pair<std::int64_t, std::int64_t>, 60>> m_sources;
};

std::string ago(Clock::time_point at) {
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - at).count();
    if (seconds < 60) {
        return fmt::format("{}s ago", std::max<std::int64_t>(seconds, 0));
    }
    if (seconds < 3600) {
        return fmt::format("{}m ago", seconds / 60);
    }
    return fmt::format("{}h ago", seconds / 3600);
}

// "corp: synced 2m ago, 12034 users; okta: 3 pushes/min". Reads no store:
// the main thread calls it between watchdog pings, and a long write holds
// the store.
std::string status_text(const std::vector<SourceStatus>& sources, const PushRate& pushes) {
    std::vector<std::string> parts;
    for (const auto& source : sources) {
        if (source.type == "scim") {
            parts.push_back(
                fmt::format("{}: {} pushes/min", source.name, pushes.per_minute(source.name)));
            continue;
        }
        if (source.type != "ldap") {
            continue;
        }
        std::string state = source.running        ? "syncing"
                            : source.last_success ? "synced " + ago(*source.last_success)
                                                  : "not synced yet";
        if (source.consecutive_failures > 0) {
            state += fmt::format(", {} failed run{} in a row", source.consecutive_failures,
                                 source.consecutive_failures == 1 ? "" : "s");
        }
        if (source.users) {
            state += fmt::format(", {} users", *source.users);
        }
        parts.push_back(fmt::format("{}: {}", source.name, state));
    }
    return parts.empty() ? std::string("serving") : fmt::format("{}", fmt::join(parts, "; "));
}

scim::ScimRequest to_scim_request(const httplib::Request& request, bool tls) {
    scim::ScimRequest out;
    out.method = request.method;
    constexpr std::string_view prefix = "/scim/v2";
    out.path = request.path.substr(std::min(prefix.size(), request.path.size()));
    for (const auto& [name, value] : request.params) {
        out.query.emplace(name, value);
    }
    out.authorization = request.get_header_value("Authorization");
    out.if_match = request.get_header_value("If-Match");
    out.body = request.body;
    std::string host = request.get_header_value("Host");
    out.base_url =
        fmt::format("{}://{}{}", tls ? "https" : "http", host.empty() ? "localhost" : host, prefix);
    return out;
}

void send(httplib::Response& response, const scim::ScimResponse& answer) {
    response.status = answer.status;
    if (!answer.body.empty()) {
        response.set_content(answer.body, "application/scim+json");
    }
    if (!answer.etag.empty()) {
        response.set_header("ETag", answer.etag);
    }
    if (!answer.location.empty()) {
        response.set_header("Location", answer.location);
    }
    if (answer.unauthorized) {
        response.set_header("WWW-Authenticate", "Bearer realm=\"orgsync\"");
    }
}

void json_reply(httplib::Response& response, int status, const json& body) {
    response.status = status;
    response.set_content(body.dump(), "application/json");
}

// Outbound delivery, replaced when a reload changes the targets.
class Outbound {
  public:
    Outbound(directory::Store& store) : m_store(store) {}

    void configure(const std::vector<DeliveryTarget>& targets, const Config& config) {
        std::lock_guard lock(m_mutex);
        if (m_delivery && targets == m_targets) {
            return;
        }
        if (m_delivery) {
            m_delivery->stop();
            m_delivery.reset();
        }
        m_targets = targets;
        if (!targets.empty()) {
            m_delivery = std::make_unique<Delivery>(m_store, targets, delivery_options(config));
            m_delivery->start();
            spdlog::info("event=webhook.delivery_started targets={}", targets.size());
        }
    }

    void notify() {
        std::lock_guard lock(m_mutex);
        if (m_delivery) {
            m_delivery->notify();
        }
    }

    void stop() {
        std::lock_guard lock(m_mutex);
        if (m_delivery) {
            m_delivery->stop();
            m_delivery.reset();
        }
    }

  private:
    directory::Store& m_store;
    std::mutex m_mutex;
    std::vector<DeliveryTarget> m_targets;
    std::unique_ptr<Delivery> m_delivery;
};

// The start of the request this worker thread serves, for the latency metric.
thread_local std::chrono::steady_clock::time_point t_request_start{};

}  // namespace

int run_daemon(const fs::path& config_file, std::ostream& err) {
    // Signals are taken by sigtimedwait() below; every thread started from
    // here on inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto loaded = load_all(config_file, err);
    if (!loaded) {
        return k_exit_error;
    }
    spdlog::set_level(spdlog::level::from_str(loaded->config.log_level));
    const auto listen = *parse_listen_address(loaded->config.http_listen);
    auto opened = directory::Store::open(loaded->config.store_path);
    if (!opened) {
        err << fmt::format("orgsyncd: store {}: {}\n", loaded->config.store_path.string(),
                           opened.error().message);
        return k_exit_error;
    }
    directory::Store& store = **opened;
    derive_from_mirrors(store, *loaded);

    std::mutex mapping_mutex;
    std::shared_ptr<const mapping::Mapping> mapping = loaded->mapping;
    auto current_mapping = [&] {
        std::lock_guard lock(mapping_mutex);
        return mapping;
    };

    Registry registry;
    ServiceMetrics metrics(registry);
    PushRate pushes;
    Outbound outbound(store);
    outbound.configure(loaded->targets, loaded->config);
    scim::Service scim_service(store, loaded->mapping, loaded->scim);
    Scheduler scheduler(
        store,
        [&](std::string_view source, const std::function<void()>& body) {
            scim_service.exclusive(source, body);
        },
        [&](const RunRecord& record) {
            metrics.observe_run(record);
            if (record.applied()) {
                outbound.notify();
            }
            sd_notifyf(0, "STATUS=%s", status_text(scheduler.status(), pushes).c_str());
        });
    registry.on_collect([&] { metrics.collect(store, scheduler.status()); });
    Api api(Api::Context{store, scheduler, metrics, current_mapping, [&] { outbound.notify(); }},
            loaded->credentials);

    HttpSettings settings{.host = listen.host,
                          .port = listen.port,
                          .tls_cert_file = loaded->config.tls_cert_file,
                          .tls_key_file = loaded->config.tls_key_file,
                          .request_timeout = loaded->config.http_request_timeout};
    const bool tls = !settings.tls_cert_file.empty();
    auto observe = [&](const httplib::Request& request, const httplib::Response& response) {
        if (request.path.starts_with("/scim/v2")) {
            metrics.observe_scim(request.method, request.path, response.status);
        }
        if (t_request_start != std::chrono::steady_clock::time_point{}) {
            metrics.observe_request(
                request.method, request.path,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request_start)
                    .count());
            t_request_start = {};
        }
    };
    auto server = HttpServer::start(
        settings,
        [&](httplib::Server& http) {
            http.set_pre_routing_handler(
                [&settings](const httplib::Request& request, httplib::Response& response) {
                    t_request_start = std::chrono::steady_clock::now();
                    return HttpServer::head_read(settings, request, response)
                               ? httplib::Server::HandlerResponse::Unhandled
                               : httplib::Server::HandlerResponse::Handled;
                });
            http.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
                json_reply(response, 200, {{"status", "ok"}});
            });
            http.Get("/readyz", [&](const httplib::Request&, httplib::Response& response) {
                json failing = json::array();
                if (auto depth = store.outbox_depth(); !depth) {
                    failing.push_back({{"check", "store"}, {"reason", depth.error().message}});
                }
                for (const auto& source : scheduler.status()) {
                    if (source.failing()) {
                        failing.push_back(
                            {{"check", "source"},
                             {"source", source.name},
                             {"reason", fmt::format("{} failed runs in a row: {}",
                                                    source.consecutive_failures,
                                                    source.last ? source.last->message() : "")}});
                    }
                }
                const bool ready = failing.empty();
                json_reply(response, ready ? 200 : 503,
                           {{"status", ready ? "ready" : "unready"}, {"failing", failing}});
            });
            http.Get("/metrics", [&](const httplib::Request&, httplib::Response& response) {
                response.set_content(registry.expose(), "text/plain; version=0.0.4; charset=utf-8");
            });
            auto scim = [&](const httplib::Request& request, httplib::Response& response) {
                auto answer = scim_service.handle(to_scim_request(request, tls));
                if (request.method != "GET" && answer.status / 100 == 2) {
                    pushes.record(answer.source);
                    outbound.notify();
                }
                send(response, answer);
            };
            const std::string pattern = R"(/scim/v2(/.*)?)";
            http.Get(pattern, scim);
            http.Post(pattern, scim);
            http.Put(pattern, scim);
            http.Patch(pattern, scim);
            http.Delete(pattern, scim);
            api.routes(http);
            http.set_error_handler([](const httplib::Request& request,
                                      httplib::Response& response) {
                if (!response.body.empty()) {
                    return;
                }
                // A request cut off at its byte budget (request_deadline.hpp).
                if (response.status == 400) {
                    switch (request_deadline::overrun()) {
                        case request_deadline::Overrun::head:
                            response.status = 431;
                            break;
                        case request_deadline::Overrun::body:
                            response.status = 413;
                            break;
                        case request_deadline::Overrun::none:
                            break;
                    }
                }
                std::string detail = response.status == 431 ? "the request's headers are too large"
                                     : response.status == 413 ? "the request body is too large"
                                     : response.status == 404
                                         ? fmt::format("no route {}", request.path)
                                         : fmt::format("HTTP {}", response.status);
                if (request.path.starts_with("/scim/v2")) {
                    send(response, scim::Service::error_response(response.status, "", detail));
                } else {
                    json_reply(response, response.status, {{"error", detail}});
                }
            });
            http.set_exception_handler([](const httplib::Request& request,
                                          httplib::Response& response, std::exception_ptr failure) {
                std::string what = "unknown";
                try {
                    std::rethrow_exception(failure);
                } catch (const std::exception& caught) {
                    what = caught.what();
                } catch (...) {
                }
                spdlog::error("event=http.exception path={} error=\"{}\"", request.path, what);
                json_reply(response, 500, {{"error", "internal error"}});
            });
        },
        observe);
    if (!server) {
        err << "orgsyncd: " << server.error() << '\n';
        return k_exit_error;
    }
    spdlog::info("event=http.listening address={}:{} tls={}", listen.host, (*server)->port(), tls);
    scheduler.configure(loaded->sources);
    sd_notifyf(0, "READY=1\nSTATUS=%s", status_text(scheduler.status(), pushes).c_str());
    spdlog::info("event=daemon.ready sources={}", loaded->sources.size());

    // Reload (SIGHUP): everything is read and checked first; only then
    // does any of it take effect.
    auto reload = [&] {
        sd_notify(0, "RELOADING=1");
        std::ostringstream problems;
        auto next = load_all(config_file, problems);
        if (!next) {
            std::string text = problems.str();
            while (!text.empty() && text.back() == '\n') {
                text.pop_back();
            }
            spdlog::error("event=reload.failed errors=\"{}\"", text);
            sd_notify(0, "READY=1");
            return;
        }
        spdlog::set_level(spdlog::level::from_str(next->config.log_level));
        for (auto [key, changed] :
             {std::pair{"[store] path", next->config.store_path != loaded->config.store_path},
              std::pair{"[http] listen", next->config.http_listen != loaded->config.http_listen},
              std::pair{"[http] tls", next->config.tls_cert_file != loaded->config.tls_cert_file ||
                                          next->config.tls_key_file != loaded->config.tls_key_file},
              std::pair{"SCIM sources", !std::ranges::equal(next->scim, loaded->scim,
                                                            [](const auto&a, const auto&b) {
                                                                return a.name == b.name &&
                                                                       a.org == b.org &&
                                                                       a.token_hash == b.token_hash;
                                                            })}}) {
            if (changed) {
                spdlog::warn("event=reload.restart_required setting=\"{}\"", key);
            }
        }
        {
            std::lock_guard lock(mapping_mutex);
            mapping = next->mapping;
        }
        scim_service.set_mapping(next->mapping);
        api.set_credentials(next->credentials);
        outbound.configure(next->targets, next->config);
        scheduler.configure(next->sources);
        spdlog::info("event=reload.completed orgs={} sources={}", next->mapping->orgs.size(),
                     next->sources.size());
        // Settings that need a restart stay as they were started.
        next->config.store_path = loaded->config.store_path;
        next->config.http_listen = loaded->config.http_listen;
        next->config.tls_cert_file = loaded->config.tls_cert_file;
        next->config.tls_key_file = loaded->config.tls_key_file;
        next->scim = std::move(loaded->scim);
        *loaded = std::move(*next);
        sd_notifyf(0, "READY=1\nSTATUS=%s", status_text(scheduler.status(), pushes).c_str());
    };

    // Between signals: the watchdog (with WatchdogSec=, at least every half
    // of it) and STATUS= every 10 s.
    std::uint64_t watchdog_usec = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
    const auto tick =
        watchdog ? std::min<std::chrono::microseconds>(std::chrono::microseconds(watchdog_usec / 2),
                                                       std::chrono::seconds(10))
                 : std::chrono::microseconds(std::chrono::seconds(10));
    for (;;) {
        const timespec wait{static_cast<time_t>(tick.count() / 1000000),
                            static_cast<long>((tick.count() % 1000000) * 1000)};
        const int received = sigtimedwait(&signals, nullptr, &wait);
        if (received < 0) {
            if (watchdog) {
                sd_notify(0, "WATCHDOG=1");
            }
            sd_notifyf(0, "STATUS=%s", status_text(scheduler.status(), pushes).c_str());
            continue;
        }
        if (received == SIGHUP) {
            reload();
            continue;
        }
        spdlog::info("event=daemon.stopping signal={}", received == SIGTERM ? "TERM" : "INT");
        sd_notify(0, "STOPPING=1");
        break;
    }
    // No new requests; those in progress finish. Then running syncs finish
    // (each is one transaction) and delivery stops between requests.
    (*server)->stop();
    scheduler.stop();
    outbound.stop();
    spdlog::info("event=daemon.stopped");
    return k_exit_ok;
}

}  // namespace orgsync::daemon
