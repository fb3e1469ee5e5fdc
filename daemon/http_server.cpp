#include "daemon/http_server.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <thread>

#include "daemon/request_deadline.hpp"

namespace orgsync::daemon {
namespace {

// A fixed pool of workers, each serving one connection at a time with the
// request deadline armed.
class DeadlineTaskQueue final : public httplib::TaskQueue {
  public:
    DeadlineTaskQueue(std::size_t threads, std::chrono::milliseconds limit, std::size_t head)
        : m_pool(threads), m_limit(limit), m_head(head) {}

    void enqueue(std::function<void()> connection) override {
        m_pool.enqueue([connection = std::move(connection), limit = m_limit, head = m_head] {
            request_deadline::arm(std::chrono::steady_clock::now() + limit);
            request_deadline::limit_bytes(head);
            connection();
            request_deadline::disarm();
        });
    }

    void shutdown() override { m_pool.shutdown(); }

  private:
    httplib::ThreadPool m_pool;
    std::chrono::milliseconds m_limit;
    std::size_t m_head;
};

}  // namespace

std::expected<std::unique_ptr<HttpServer>, std::string> HttpServer::start(
    const HttpSettings& settings, const std::function<void(httplib::Server&)>& routes,
    Logger logger) {
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
    const std::chrono::milliseconds limit = settings.request_timeout;
    const std::size_t head = settings.max_head;
    http.new_task_queue = [threads, limit, head] {
        return new DeadlineTaskQueue(threads, limit, head);
    };
    http.set_payload_max_length(settings.max_body);
    http.set_read_timeout(static_cast<time_t>(settings.read_timeout.count()));
    http.set_write_timeout(static_cast<time_t>(settings.write_timeout.count()));
    http.set_keep_alive_timeout(static_cast<time_t>(settings.keep_alive.count()));
    http.set_keep_alive_max_count(1000);
    http.set_tcp_nodelay(true);
    routes(http);
    // After each response: the next request on the connection gets a new
    // deadline.
    http.set_logger([logger = std::move(logger), limit, head](const httplib::Request& request,
                                                              const httplib::Response& response) {
        if (logger) {
            logger(request, response);
        }
        request_deadline::arm(std::chrono::steady_clock::now() + limit);
        // A connection whose request overran its budget reads no further
        // (what follows is the rest of that request): it is closed.
        if (request_deadline::overrun() == request_deadline::Overrun::none) {
            request_deadline::limit_bytes(head);
        }
    });
    // cpp-httplib listens with a queue of 5 connections (fixed in Debian's
    // build of the library): clients that connect together beyond that, an
    // IdP opening its connections or health checks, wait for their SYN
    // retransmission, 1 s and then 3 s. The listening socket is noted as it
    // is made, and its queue raised to the kernel's limit
    // (net.core.somaxconn) once it is bound.
    auto listening = std::make_shared<::socket_t>(INVALID_SOCKET);
    http.set_socket_options([listening](::socket_t sock) {
        httplib::default_socket_options(sock);
        *listening = sock;
    });
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
    if (*listening == INVALID_SOCKET || ::listen(*listening, SOMAXCONN) != 0) {
        return std::unexpected(
            fmt::format("cannot listen on {}:{} with a longer queue", settings.host, port));
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

bool HttpServer::head_read(const HttpSettings& settings, const httplib::Request& request,
                           httplib::Response& response) {
    if (request.headers.size() > settings.max_headers) {
        response.status = 431;
        response.set_content(R"({"error":"the request has too many header fields"})",
                             "application/json");
        request_deadline::refuse_more();
        return false;
    }
    request_deadline::allow_body(settings.max_body + settings.max_body / 2);
    return true;
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
