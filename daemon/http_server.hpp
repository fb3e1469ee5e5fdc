#pragma once

// The daemon's one HTTP listener (DESIGN §3), on cpp-httplib: plain HTTP,
// or HTTPS when a certificate and key are configured. It bounds what a
// client can take: request bodies, read and write timeouts, keep-alive
// length, how long a request may take to arrive (request_deadline.hpp), and
// a fixed pool of worker threads. Routes are registered by the
// caller before the server starts accepting.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace orgsync::daemon {

// The largest request body any route takes.
inline constexpr std::size_t k_max_body = 1 << 20;

struct HttpSettings {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8650;            // 0: any free port (tests)
    std::filesystem::path tls_cert_file;  // both set: HTTPS
    std::filesystem::path tls_key_file;
    std::size_t max_body = k_max_body;  // larger bodies are answered 413 unread
    // A request's line and headers: more bytes, or more than max_headers
    // header fields, are answered 431 (request_deadline.hpp). A chunked
    // body is cut off (413) past max_body and half as much again of framing.
    std::size_t max_head = 64 << 10;
    std::size_t max_headers = 100;
    std::size_t threads = 16;
    std::chrono::seconds read_timeout{10};
    std::chrono::seconds write_timeout{10};
    std::chrono::seconds keep_alive{5};
    // Each request's headers and body must arrive within it
    // (request_deadline.hpp); a slower client is disconnected.
    std::chrono::seconds request_timeout{30};
};

class HttpServer {
  public:
    // Creates the server, lets `routes` register handlers, binds the
    // address and starts accepting on a thread of its own. An error says
    // why (a TLS file that does not load, an address in use).
    // `logger` is called after each response (the server's own logger).
    // A pre-routing handler that `routes` sets must call head_read() first
    // and answer when it returns false.
    using Logger = std::function<void(const httplib::Request&, const httplib::Response&)>;
    static std::expected<std::unique_ptr<HttpServer>, std::string> start(
        const HttpSettings& settings, const std::function<void(httplib::Server&)>& routes,
        Logger logger = {});

    ~HttpServer();  // stop()s
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // The request's head has been read: false (with a 431 answer filled
    // in) when it has more header fields than `settings` allow; otherwise
    // the byte budget grows by the body's.
    static bool head_read(const HttpSettings& settings, const httplib::Request& request,
                          httplib::Response& response);

    std::uint16_t port() const { return m_port; }
    bool tls() const { return m_tls; }

    // Stops accepting, lets requests in progress finish, and joins the
    // workers. Idempotent.
    void stop();

  private:
    HttpServer() = default;

    std::unique_ptr<httplib::Server> m_server;
    std::thread m_thread;
    std::uint16_t m_port = 0;
    bool m_tls = false;
};

}  // namespace orgsync::daemon
