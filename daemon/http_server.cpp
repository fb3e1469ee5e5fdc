#include "daemon/http_server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <thread>

namespace orgsync::daemon {

std::expected<std::unique_ptr<HttpServer>, std::string> HttpServer::start(
    const HttpSettings& settings, const std::function<void(httplib::Server&)>& routes) {
    std::unique_ptr<HttpServer> server(new HttpServer());
    if (!settings.tls_cert_file.empty()) {
        auto tls = std::make_unique<httplib::SSLServer>(settings.tls_cert_file.c_str(),
                                                        settings.tls_key_file.c_str());
        if (!tls->is_valid()) {
            return std::unexpected(fmt::format("cannot load the TLS certificate {} and key {}",
                                               settings.tls_cert_file.string(),
                                               settings.tls_key_file.string()));
        }
        server->m_server = std::move(tls);
        server->m_tls = true;
    } else {
        server->m_server = std::make_unique<httplib::Server>();
    }
    httplib::Server& http = *server->m_server;
    const std::size_t threads = settings.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_payload_max_length(settings.max_body);
    http.set_read_timeout(static_cast<time_t>(settings.read_timeout.count()));
    http.set_write_timeout(static_cast<time_t>(settings.write_timeout.count()));
    http.set_keep_alive_timeout(static_cast<time_t>(settings.keep_alive.count()));
    http.set_keep_alive_max_count(1000);
    http.set_tcp_nodelay(true);
    routes(http);
    int port = 0;
    if (settings.port == 0) {
        port = http.bind_to_any_port(settings.host);
    } else if (http.bind_to_port(settings.host, settings.port)) {
        port = settings.port;
    }
    if (port <= 0) {
        return std::unexpected(
            fmt::format("cannot listen on {}:{} (in use, or not an address "
                        "of this host)",
                        settings.host, settings.port));
    }
    server->m_port = static_cast<std::uint16_t>(port);
    server->m_thread = std::thread([&http] { http.listen_after_bind(); });
    // httplib's stop() does nothing until the accept loop runs: wait for
    // it, so that a stop right after start (SIGTERM during start-up) ends it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!http.is_running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return server;
}

HttpServer::~HttpServer() {
    stop();
}

void HttpServer::stop() {
    if (m_server) {
        m_server->stop();
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

}  // namespace orgsync::daemon
