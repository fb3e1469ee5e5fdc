#include "daemon/daemon.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "connectors/scim/service.hpp"
#include "daemon/cli.hpp"
#include "daemon/http_server.hpp"
#include "daemon/setup.hpp"
#include "directory/store.hpp"
#include "sync/run.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A secret from a file (a systemd credential): its text without trailing
// whitespace. The error names the file, never its content.
std::expected<std::string, std::string> read_secret(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return std::unexpected(fmt::format("cannot read {}", file.string()));
    }
    std::stringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) {
        secret.pop_back();
    }
    if (secret.empty()) {
        return std::unexpected(fmt::format("{} is empty", file.string()));
    }
    return secret;
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

// Re-derives each source from its stored mirror with the current mapping.
void derive_from_mirrors(directory::Store& store, const mapping::Mapping& mapping,
                         const std::vector<sync::SourceSpec>& sources) {
    for (const auto& source : sources) {
        auto result = sync::run_sync(store, mapping, source, std::nullopt, sync::RunOptions{});
        if (!result) {
            spdlog::error("event=sync.failed source={} mode=mirror error=\"{}\"", source.name,
                          result.error().message);
            continue;
        }
        auto log = result->result == "applied" ? spdlog::level::info : spdlog::level::warn;
        spdlog::log(log, "event=sync.{} source={} mode=mirror changes={} held={}{}", result->result,
                    source.name, result->plan.changes.size(), result->plan.held.size(),
                    result->message.empty() ? "" : fmt::format(" reason=\"{}\"", result->message));
    }
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

}  // namespace

int run_daemon(const fs::path& config_file, std::ostream& err) {
    // Signals are taken by sigwait() below; every thread started from here
    // on inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto config = load_or_report(config_file, err);
    if (!config) {
        return k_exit_error;
    }
    auto loaded = load_mapping_or_report(*config, err);
    auto specs = select_sources(*config, "", err);
    if (!loaded || !specs) {
        return k_exit_error;
    }
    spdlog::set_level(spdlog::level::from_str(config->log_level));
    auto listen = parse_listen_address(config->http_listen);
    if (!listen) {
        err << "orgsyncd: [http] listen is not host:port\n";
        return k_exit_error;
    }
    auto sources = scim_sources(*config);
    if (!sources) {
        err << "orgsyncd: " << sources.error() << '\n';
        return k_exit_error;
    }
    auto store = directory::Store::open(config->store_path);
    if (!store) {
        err << fmt::format("orgsyncd: store {}: {}\n", config->store_path.string(),
                           store.error().message);
        return k_exit_error;
    }
    auto mapping = std::make_shared<const mapping::Mapping>(std::move(*loaded));
    derive_from_mirrors(**store, *mapping, *specs);

    scim::Service scim_service(**store, mapping, std::move(*sources));
    HttpSettings settings{.host = listen->host,
                          .port = listen->port,
                          .tls_cert_file = config->tls_cert_file,
                          .tls_key_file = config->tls_key_file};
    bool tls = !settings.tls_cert_file.empty();
    auto server = HttpServer::start(settings, [&](httplib::Server& http) {
        http.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
            json_reply(response, 200, {{"status", "ok"}});
        });
        http.Get("/readyz", [](const httplib::Request&, httplib::Response& response) {
            json_reply(response, 200, {{"status", "ready"}, {"failing", json::array()}});
        });
        auto scim = [&scim_service, tls](const httplib::Request& request,
                                         httplib::Response& response) {
            send(response, scim_service.handle(to_scim_request(request, tls)));
        };
        const std::string pattern = R"(/scim/v2(/.*)?)";
        http.Get(pattern, scim);
        http.Post(pattern, scim);
        http.Put(pattern, scim);
        http.Patch(pattern, scim);
        http.Delete(pattern, scim);
        http.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
            if (!response.body.empty()) {
                return;
            }
            std::string detail = response.status == 413   ? "the request body is too large"
                                 : response.status == 404 ? fmt::format("no route {}", request.path)
                                                          : fmt::format("HTTP {}", response.status);
            if (request.path.starts_with("/scim/v2")) {
                send(response, scim::Service::error_response(response.status, "", detail));
            } else {
                json_reply(response, response.status, {{"error", detail}});
            }
        });
        http.set_exception_handler([](const httplib::Request& request, httplib::Response& response,
                                      std::exception_ptr failure) {
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
    });
    if (!server) {
        err << "orgsyncd: " << server.error() << '\n';
        return k_exit_error;
    }
    spdlog::info("event=http.listening address={}:{} tls={}", listen->host, (*server)->port(), tls);
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s:%u", listen->host.c_str(),
               static_cast<unsigned>((*server)->port()));
    spdlog::info("event=daemon.ready sources={}", config->sources.size());

    // With WatchdogSec= set, systemd expects WATCHDOG=1 at least every
    // interval: ping at half of it between signals.
    std::uint64_t watchdog_usec = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
    for (;;) {
        int received = 0;
        if (watchdog) {
            const std::uint64_t half = watchdog_usec / 2;
            timespec wait{static_cast<time_t>(half / 1000000),
                          static_cast<long>((half % 1000000) * 1000)};
            received = sigtimedwait(&signals, nullptr, &wait);
            if (received < 0) {
                sd_notify(0, "WATCHDOG=1");
                continue;
            }
        } else if (sigwait(&signals, &received) != 0) {
            continue;
        }
        if (received == SIGHUP) {
            sd_notify(0, "RELOADING=1");
            std::ostringstream problems;
            auto next = load_or_report(config_file, problems);
            std::optional<mapping::Mapping> next_mapping;
            if (next) {
                next_mapping = load_mapping_or_report(*next, problems);
            }
            if (!next_mapping) {
                spdlog::error("event=reload.failed errors=\"{}\"", problems.str());
            } else {
                auto shared = std::make_shared<const mapping::Mapping>(std::move(*next_mapping));
                spdlog::set_level(spdlog::level::from_str(next->log_level));
                derive_from_mirrors(**store, *shared, *specs);
                scim_service.set_mapping(shared);
                mapping = std::move(shared);
                spdlog::info("event=reload.completed");
            }
            sd_notify(0, "READY=1");
            continue;
        }
        spdlog::info("event=daemon.stopping signal={}", received == SIGTERM ? "TERM" : "INT");
        sd_notify(0, "STOPPING=1");
        break;
    }
    (*server)->stop();
    spdlog::info("event=daemon.stopped");
    return k_exit_ok;
}

}  // namespace orgsync::daemon
