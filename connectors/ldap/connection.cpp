#include "connectors/ldap/connection.hpp"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "connectors/ldap/text.hpp"

namespace orgsync::ldap {
namespace {

constexpr std::string_view k_paged_results_oid = LDAP_CONTROL_PAGEDRESULTS;
constexpr std::string_view k_content_sync_oid = LDAP_CONTROL_SYNC;

timeval to_timeval(std::chrono::milliseconds duration) {
    timeval value{};
    value.tv_sec = static_cast<time_t>(duration.count() / 1000);
    value.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
    return value;
}

// What the server said besides the code, for messages.
std::string diagnostic(LDAP* ld) {
    char* text = nullptr;
    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &text);
    std::string out = text != nullptr ? text : "";
    ldap_memfree(text);
    return out;
}

FailureKind kind_of(int code) {
    switch (code) {
        case LDAP_SERVER_DOWN:
        case LDAP_CONNECT_ERROR:
        case LDAP_UNAVAILABLE:
        case LDAP_BUSY:
            return FailureKind::unreachable;
        case LDAP_INVALID_CREDENTIALS:
        case LDAP_INAPPROPRIATE_AUTH:
        case LDAP_STRONG_AUTH_REQUIRED:
            return FailureKind::bind_failed;
        case LDAP_TIMEOUT:
            return FailureKind::timeout;
        case LDAP_SIZELIMIT_EXCEEDED:
            return FailureKind::size_limit;
        case LDAP_TIMELIMIT_EXCEEDED:
            return FailureKind::time_limit;
        case LDAP_PARTIAL_RESULTS:
        case LDAP_ADMINLIMIT_EXCEEDED:
            return FailureKind::partial_results;
        case LDAP_REFERRAL:
            return FailureKind::referral;
        case LDAP_NO_MEMORY:
        case LDAP_LOCAL_ERROR:
            return FailureKind::local;
        default:
            return FailureKind::rejected;
    }
}

struct MessageFree {
    void operator()(LDAPMessage* message) const { ldap_msgfree(message); }
};
using MessagePtr = std::unique_ptr<LDAPMessage, MessageFree>;

struct ControlsFree {
    void operator()(LDAPControl** controls) const { ldap_controls_free(controls); }
};
using ControlsPtr = std::unique_ptr<LDAPControl*, ControlsFree>;

struct ControlFree {
    void operator()(LDAPControl* control) const { ldap_control_free(control); }
};

// Sets the TLS options on `ld` and makes them take effect (a new TLS
// context per connection, so sources never share settings).
Result<void> configure_tls(LDAP* ld, const LdapSourceConfig& config, const std::string& uri) {
    const int require = config.tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
    if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require) != LDAP_OPT_SUCCESS) {
        return failure(FailureKind::tls, fmt::format("{}: cannot set certificate checking", uri));
    }
    const auto set_path = [&](int option, const std::filesystem::path& path,
                              std::string_view what) -> Result<void> {
        if (path.empty()) {
            return {};
        }
        const std::string text = path.string();
        if (ldap_set_option(ld, option, text.c_str()) != LDAP_OPT_SUCCESS) {
            return failure(FailureKind::tls, fmt::format("{}: cannot use {} {}", uri, what, text));
        }
        return {};
    };
    if (auto set = set_path(LDAP_OPT_X_TLS_CACERTFILE, config.ca_file, "CA file"); !set) {
        return set;
    }
    if (auto set = set_path(LDAP_OPT_X_TLS_CERTFILE, config.client_cert_file, "client certificate");
        !set) {
        return set;
    }
    if (auto set = set_path(LDAP_OPT_X_TLS_KEYFILE, config.client_key_file, "client key"); !set) {
        return set;
    }
    const int is_server = 0;
    if (const int rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server);
        rc != LDAP_OPT_SUCCESS) {
        return failure(FailureKind::tls,
                       fmt::format("{}: cannot set up TLS (CA file, client certificate or key "
                                   "unreadable or invalid): {}",
                                   uri, ldap_err2string(rc)));
    }
    return {};
}

ServerFeatures read_root_dse(LDAP* ld, std::chrono::seconds timeout) {
    ServerFeatures features;
    char supported[] = "supportedControl";
    char highest_usn[] = "highestCommittedUSN";
    char* attrs[] = {supported, highest_usn, nullptr};
    auto wait = to_timeval(timeout);
    LDAPMessage* raw = nullptr;
    const int rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, nullptr,
                                     nullptr, &wait, 1, &raw);
    const MessagePtr result(raw);
    if (rc != LDAP_SUCCESS) {
        // Some servers hide the root DSE from anonymous or limited accounts:
        // assume paging (nearly universal), not content sync.
        features.paged_results = true;
        return features;
    }
    for (LDAPMessage* entry = ldap_first_entry(ld, raw); entry != nullptr;
         entry = ldap_next_entry(ld, entry)) {
        berval** values = ldap_get_values_len(ld, entry, "supportedControl");
        for (int i = 0; values != nullptr && values[i] != nullptr; ++i) {
            const std::string_view oid(values[i]->bv_val, values[i]->bv_len);
            features.paged_results = features.paged_results || oid == k_paged_results_oid;
            features.content_sync = features.content_sync || oid == k_content_sync_oid;
        }
        ldap_value_free_len(values);
        values = ldap_get_values_len(ld, entry, "highestCommittedUSN");
        if (values != nullptr && values[0] != nullptr) {
            features.highest_committed_usn.assign(values[0]->bv_val, values[0]->bv_len);
        }
        ldap_value_free_len(values);
    }
    return features;
}

// Whether a TCP connection to the host and port of `uri` succeeds.
bool accepts_tcp(const std::string& uri, std::chrono::seconds timeout) {
    LDAPURLDesc* parsed = nullptr;
    if (ldap_url_parse(uri.c_str(), &parsed) != LDAP_URL_SUCCESS) {
        return false;
    }
    const std::string host = parsed->lud_host != nullptr ? parsed->lud_host : "";
    const std::string port = std::to_string(parsed->lud_port != 0 ? parsed->lud_port : 636);
    ldap_free_urldesc(parsed);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) {
        return false;
    }
    bool ok = false;
    for (addrinfo* at = found; at != nullptr && !ok; at = at->ai_next) {
        const int fd = socket(at->ai_family, at->ai_socktype | SOCK_NONBLOCK, at->ai_protocol);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, at->ai_addr, at->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            pollfd waiting{.fd = fd, .events = POLLOUT, .revents = 0};
            int error = 0;
            socklen_t length = sizeof error;
            ok = poll(&waiting, 1, static_cast<int>(timeout.count() * 1000)) == 1 &&
                 getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
        }
        close(fd);
    }
    freeaddrinfo(found);
    return ok;
}

}  // namespace

// Watches a connection while it is set up. libldap bounds connect() and
// result waits by its timeouts, but not the TLS handshake of ldaps://: a
// server that accepts and then says nothing would hang the run. The
// watchdog learns the socket from libldap's connect callback and shuts it
// down when setup outlasts its limit, which ends the handshake with an
// error. It also turns TCP keepalive on, so a persistent search whose peer
// vanished ends instead of waiting forever.
class SetupWatchdog {
  public:
    explicit SetupWatchdog(std::chrono::milliseconds limit)
        : m_callbacks{.lc_add = on_add, .lc_del = on_del, .lc_arg = this},
          m_thread([this, limit] { watch(limit); }) {}

    ~SetupWatchdog() { finish(); }
    SetupWatchdog(const SetupWatchdog&) = delete;
    SetupWatchdog& operator=(const SetupWatchdog&) = delete;

    ldap_conncb* callbacks() { return &m_callbacks; }

    // Ends the watch; true when it had already fired.
    bool finish() {
        {
            const std::lock_guard lock(m_mutex);
            m_finished = true;
        }
        m_wake.notify_all();
        if (m_thread.joinable()) {
            m_thread.join();
        }
        return m_fired;
    }

  private:
    void watch(std::chrono::milliseconds limit) {
        std::unique_lock lock(m_mutex);
        if (!m_wake.wait_for(lock, limit, [this] { return m_finished; }) && m_fd >= 0) {
            shutdown(m_fd, SHUT_RDWR);
            m_fired = true;
        }
    }

    static int on_add(LDAP* /*ld*/, Sockbuf* sb, LDAPURLDesc* /*server*/, sockaddr* /*address*/,
                      ldap_conncb* context) {
        auto* self = static_cast<SetupWatchdog*>(context->lc_arg);
        int fd = -1;
        if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0) {
            return 0;
        }
        const int on = 1;
        const int idle = 60;
        const int interval = 10;
        const int probes = 3;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
        const std::lock_guard lock(self->m_mutex);
        self->m_fd = fd;
        return 0;
    }

    // The socket is about to close: its number may be reused, so it is
    // never shut down after this.
    static void on_del(LDAP* /*ld*/, Sockbuf* /*sb*/, ldap_conncb* context) {
        auto* self = static_cast<SetupWatchdog*>(context->lc_arg);
        const std::lock_guard lock(self->m_mutex);
        self->m_fd = -1;
    }

    std::mutex m_mutex;
    std::condition_variable m_wake;
    int m_fd = -1;
    bool m_finished = false;
    bool m_fired = false;
    ldap_conncb m_callbacks;
    std::thread m_thread;
};

namespace {

// One attempt at one URI: initialise, TLS, bind.
Result<std::pair<LDAP*, std::unique_ptr<SetupWatchdog>>> connect_one(const std::string& uri,
                                                                     const LdapSourceConfig& config,
                                                                     std::string_view password) {
    // Declared before the handle's guard, so it outlives the handle's
    // close (libldap calls it then).
    auto watchdog = std::make_unique<SetupWatchdog>(2 * config.timeout + std::chrono::seconds(1));
    LDAP* ld = nullptr;
    if (const int rc = ldap_initialize(&ld, uri.c_str()); rc != LDAP_SUCCESS) {
        return failure(FailureKind::unreachable,
                       fmt::format("{}: invalid URI: {}", uri, ldap_err2string(rc)));
    }
    struct Guard {
        LDAP*& ld;
        bool keep = false;
        ~Guard() {
            if (!keep && ld != nullptr) {
                ldap_unbind_ext_s(ld, nullptr, nullptr);
            }
        }
    } guard{ld};

    const int version = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    const auto wait = to_timeval(config.timeout);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &wait);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &wait);
    ldap_set_option(ld, LDAP_OPT_CONNECT_CB, watchdog->callbacks());
    if (config.start_tls || uri.starts_with("ldaps://")) {
        if (auto tls = configure_tls(ld, config, uri); !tls) {
            return std::unexpected(tls.error());
        }
    }
    if (config.start_tls) {
        if (const int rc = ldap_start_tls_s(ld, nullptr, nullptr); rc != LDAP_SUCCESS) {
            if (watchdog->finish()) {
                return failure(FailureKind::timeout,
                               fmt::format("{}: StartTLS took longer than {}s", uri,
                                           (2 * config.timeout).count()));
            }
            const auto kind =
                rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT ? kind_of(rc) : FailureKind::tls;
            return failure(kind, fmt::format("{}: StartTLS failed: {} {}", uri, ldap_err2string(rc),
                                             diagnostic(ld)));
        }
    }
    // Anonymous when no bind DN is configured; otherwise a simple bind. An
    // ldaps:// connection is set up here, so TLS failures surface here too.
    berval credentials{};
    const std::string secret(password);
    if (!config.bind_dn.empty()) {
        credentials.bv_val = const_cast<char*>(secret.data());
        credentials.bv_len = secret.size();
    }
    const int rc = ldap_sasl_bind_s(ld, config.bind_dn.empty() ? "" : config.bind_dn.c_str(),
                                    LDAP_SASL_SIMPLE, &credentials, nullptr, nullptr, nullptr);
    if (watchdog->finish()) {
        return failure(FailureKind::timeout,
                       fmt::format("{}: connecting, TLS and bind took longer than {}s", uri,
                                   (2 * config.timeout + std::chrono::seconds(1)).count()));
    }
    if (rc != LDAP_SUCCESS) {
        FailureKind kind = kind_of(rc);
        std::string detail = diagnostic(ld);
        // libldap reports a failed TLS handshake on ldaps:// as "can't
        // contact": when the port does accept connections, the handshake
        // (most often the certificate check) is what failed.
        if (rc == LDAP_SERVER_DOWN && uri.starts_with("ldaps://") &&
            accepts_tcp(uri, config.timeout)) {
            kind = FailureKind::tls;
            if (detail.empty()) {
                detail =
                    "the server accepts connections but the TLS handshake failed (is its "
                    "certificate signed by a CA in ca_file?)";
            }
        }
        if (kind == FailureKind::rejected) {
            kind = FailureKind::bind_failed;
        }
        return failure(kind, fmt::format("{}: bind as {} failed: {}{}{}", uri,
                                         config.bind_dn.empty() ? "anonymous" : config.bind_dn,
                                         ldap_err2string(rc), detail.empty() ? "" : ": ", detail));
    }
    guard.keep = true;
    return std::pair{ld, std::move(watchdog)};
}

}  // namespace

std::string_view to_string(FailureKind kind) {
    switch (kind) {
        case FailureKind::unreachable:
            return "unreachable";
        case FailureKind::bind_failed:
            return "bind_failed";
        case FailureKind::timeout:
            return "timeout";
        case FailureKind::size_limit:
            return "size_limit";
        case FailureKind::time_limit:
            return "time_limit";
        case FailureKind::partial_results:
            return "partial_results";
        case FailureKind::referral:
            return "referral";
        case FailureKind::tls:
            return "tls";
        case FailureKind::rejected:
            return "rejected";
        case FailureKind::local:
            return "local";
    }
    return "unreachable";
}

const std::vector<std::string>* Entry::find(std::string_view name) const {
    for (const auto& [attribute, values] : attributes) {
        if (iequals(attribute, name)) {
            return &values;
        }
    }
    return nullptr;
}

std::string_view Entry::first(std::string_view name) const {
    const auto* values = find(name);
    return values == nullptr || values->empty() ? std::string_view() : values->front();
}

Result<std::string> read_secret_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string text;
    std::array<char, 4096> chunk{};
    while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
        text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (!in.eof()) {
        return failure(FailureKind::local, fmt::format("cannot read {}", file.string()));
    }
    if (text.ends_with("\r\n")) {
        text.resize(text.size() - 2);
    } else if (text.ends_with('\n')) {
        text.pop_back();
    }
    return text;
}

Result<Connection> Connection::open(const LdapSourceConfig& config, std::string_view bind_password,
                                    int rounds) {
    if (!config.tls_verify) {
        spdlog::warn(
            "event=ldap_tls_unverified uris={} message=\"tls_verify = false: the server "
            "certificate is not checked, so anyone on the path can read the bind password\"",
            fmt::join(config.uris, ","));
    }
    const bool cleartext =
        !config.start_tls && std::ranges::any_of(config.uris, [](const auto& uri) {
            return uri.starts_with("ldap://");
        });
    if (cleartext && !config.bind_dn.empty()) {
        spdlog::warn(
            "event=ldap_cleartext_bind uris={} message=\"the bind password crosses the network "
            "unencrypted: use ldaps:// or start_tls = true\"",
            fmt::join(config.uris, ","));
    }
    // A server that drops the connection must fail the read, not kill the
    // process: libldap writes to its sockets without MSG_NOSIGNAL.
    static std::once_flag ignore_sigpipe;
    std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
    Failure last{FailureKind::unreachable, "no URI configured"};
    auto backoff = std::chrono::milliseconds(250);
    for (int round = 0; round < std::max(rounds, 1); ++round) {
        if (round > 0) {
            std::this_thread::sleep_for(backoff);
            backoff *= 2;
        }
        for (const auto& uri : config.uris) {
            auto connected = connect_one(uri, config, bind_password);
            if (connected) {
                return Connection(connected->first, std::move(connected->second), uri, config);
            }
            last = connected.error();
            spdlog::warn("event=ldap_connect_failed uri={} kind={} message=\"{}\"", uri,
                         to_string(last.kind), last.message);
            // Wrong credentials or local files fail the same way on every
            // server.
            if (last.kind == FailureKind::bind_failed || last.kind == FailureKind::local) {
                return std::unexpected(last);
            }
        }
        if (last.kind == FailureKind::tls) {
            break;  // a certificate problem does not go away by waiting
        }
    }
    return std::unexpected(last);
}

Connection::Connection(LDAP* ld, std::unique_ptr<SetupWatchdog> watchdog, std::string uri,
                       const LdapSourceConfig& config)
    : m_ld(ld),
      m_watchdog(std::move(watchdog)),
      m_uri(std::move(uri)),
      m_timeout(config.timeout),
      m_page_size(config.page_size),
      m_ignore_referrals(config.ignore_referrals) {
    m_features = read_root_dse(m_ld, m_timeout);
}

Connection::Connection(Connection&& other) noexcept
    : m_ld(std::exchange(other.m_ld, nullptr)),
      m_watchdog(std::move(other.m_watchdog)),
      m_uri(std::move(other.m_uri)),
      m_features(other.m_features),
      m_timeout(other.m_timeout),
      m_page_size(other.m_page_size),
      m_ignore_referrals(other.m_ignore_referrals) {}

Connection& Connection::operator=(Connection&& other) noexcept {
    if (this != &other) {
        if (m_ld != nullptr) {
            ldap_unbind_ext_s(m_ld, nullptr, nullptr);
        }
        m_ld = std::exchange(other.m_ld, nullptr);
        m_watchdog = std::move(other.m_watchdog);
        m_uri = std::move(other.m_uri);
        m_features = other.m_features;
        m_timeout = other.m_timeout;
        m_page_size = other.m_page_size;
        m_ignore_referrals = other.m_ignore_referrals;
    }
    return *this;
}

Connection::~Connection() {
    if (m_ld != nullptr) {
        ldap_unbind_ext_s(m_ld, nullptr, nullptr);
    }
}

Failure Connection::failure_for(int code, std::string_view what) const {
    const std::string detail = diagnostic(m_ld);
    return Failure{kind_of(code), fmt::format("{}: {}: {}{}{}", m_uri, what, ldap_err2string(code),
                                              detail.empty() ? "" : ": ", detail)};
}

Result<LDAPMessage*> Connection::next_message(int msgid, std::chrono::milliseconds wait) {
    auto limit = to_timeval(wait);
    LDAPMessage* message = nullptr;
    const int rc = ldap_result(m_ld, msgid, LDAP_MSG_ONE, &limit, &message);
    if (rc == 0) {
        return failure(FailureKind::timeout,
                       fmt::format("{}: no answer within {} ms", m_uri, wait.count()));
    }
    if (rc < 0) {
        int code = LDAP_SERVER_DOWN;
        ldap_get_option(m_ld, LDAP_OPT_RESULT_CODE, &code);
        return std::unexpected(failure_for(code, "reading results"));
    }
    return message;
}

namespace {

// Fills `out` with the entry in `message`, reusing the strings and vectors
// `out` already holds (a search refills one Entry for every entry, so after
// the first few entries this allocates nothing but libldap's value arrays).
// Attribute names and values are read in place from the message
// (ldap_get_dn_ber, ldap_get_attribute_ber) and copied once, into `out`.
void fill_entry(LDAP* ld, LDAPMessage* message, Entry& out) {
    BerElement* ber = nullptr;
    berval dn{};
    std::size_t count = 0;
    if (ldap_get_dn_ber(ld, message, &ber, &dn) == LDAP_SUCCESS) {
        out.dn.assign(dn.bv_val != nullptr ? dn.bv_val : "", dn.bv_len);
        berval name{};
        berval* values = nullptr;
        for (int rc = ldap_get_attribute_ber(ld, message, ber, &name, &values);
             rc == LDAP_SUCCESS && name.bv_val != nullptr;
             rc = ldap_get_attribute_ber(ld, message, ber, &name, &values)) {
            if (count == out.attributes.size()) {
                out.attributes.emplace_back();
            }
            auto& [attribute, list] = out.attributes[count++];
            attribute.assign(name.bv_val, name.bv_len);
            std::size_t n = 0;
            for (; values != nullptr && values[n].bv_val != nullptr; ++n) {
                if (n == list.size()) {
                    list.emplace_back();
                }
                list[n].assign(values[n].bv_val, values[n].bv_len);
            }
            list.resize(n);
            ldap_memfree(values);
            values = nullptr;
        }
    } else {
        out.dn.clear();
    }
    out.attributes.resize(count);
    if (ber != nullptr) {
        ber_free(ber, 0);
    }
}

}  // namespace

Entry Connection::entry(LDAPMessage* message) const {
    Entry out;
    fill_entry(m_ld, message, out);
    return out;
}

Result<SearchOutcome> Connection::search(const SearchRequest& request,
                                         const std::function<Result<void>(Entry&&)>& on_entry) {
    SearchOutcome outcome;
    const bool paged = request.paged && m_features.paged_results && request.controls.empty();
    std::vector<char*> attrs;
    for (const auto& attribute : request.attributes) {
        attrs.push_back(const_cast<char*>(attribute.c_str()));
    }
    attrs.push_back(nullptr);
    const std::string what = fmt::format("search {} {}", request.base, request.filter);

    // Sends the search, or (paged) the request for the page after `from`.
    const auto start = [&](const std::string& from) -> Result<int> {
        std::vector<LDAPControl*> controls = request.controls;
        std::unique_ptr<LDAPControl, ControlFree> page_control;
        if (paged) {
            LDAPControl* created = nullptr;
            berval cookie{};
            cookie.bv_val = from.empty() ? nullptr : const_cast<char*>(from.data());
            cookie.bv_len = from.size();
            if (const int rc = ldap_create_page_control(m_ld, m_page_size, &cookie, 0, &created);
                rc != LDAP_SUCCESS) {
                return std::unexpected(failure_for(rc, "paged results control"));
            }
            page_control.reset(created);
            controls.push_back(created);
        }
        controls.push_back(nullptr);
        auto limit = to_timeval(m_timeout);
        int msgid = 0;
        if (const int rc =
                ldap_search_ext(m_ld, request.base.c_str(), request.scope, request.filter.c_str(),
                                attrs.data(), 0, controls.size() > 1 ? controls.data() : nullptr,
                                nullptr, &limit, LDAP_NO_LIMIT, &msgid);
            rc != LDAP_SUCCESS) {
            return std::unexpected(failure_for(rc, what));
        }
        ++outcome.pages;
        return msgid;
    };

    Entry scratch;  // refilled for every entry, so its storage is reused
    // An entry or a continuation reference.
    const auto handle = [&](LDAPMessage* message) -> Result<void> {
        switch (ldap_msgtype(message)) {
            case LDAP_RES_SEARCH_ENTRY:
                ++outcome.entries;
                fill_entry(m_ld, message, scratch);
                return on_entry(std::move(scratch));
            case LDAP_RES_SEARCH_REFERENCE:
                if (!m_ignore_referrals) {
                    return failure(FailureKind::referral,
                                   fmt::format("{}: {}: the server referred part of the search to "
                                               "another server, which orgsync does not follow "
                                               "(set ignore_referrals = true if that part holds "
                                               "no users)",
                                               m_uri, what));
                }
                ++outcome.references;
                return {};
            default:
                return {};  // intermediate responses of extensions the caller did not ask for
        }
    };

    auto started = start("");
    if (!started) {
        return std::unexpected(started.error());
    }
    // Paged, a page's messages are held until its result (which carries the
    // cookie) has come; the next page is asked for before they are handled,
    // so the server prepares it while this side parses (one page of messages
    // in memory). Unpaged, messages are handled as they arrive.
    for (int msgid = *started; msgid != 0;) {
        std::vector<MessagePtr> held;
        int following = 0;
        std::optional<Failure> failed;  // what the page's result said, after its entries
        for (bool done = false; !done;) {
            auto next = next_message(msgid, m_timeout);
            if (!next) {
                ldap_abandon_ext(m_ld, msgid, nullptr, nullptr);
                return std::unexpected(next.error());
            }
            MessagePtr message(*next);
            if (ldap_msgtype(message.get()) != LDAP_RES_SEARCH_RESULT) {
                if (paged) {
                    held.push_back(std::move(message));
                } else if (auto handled = handle(message.get()); !handled) {
                    ldap_abandon_ext(m_ld, msgid, nullptr, nullptr);
                    return std::unexpected(handled.error());
                }
                continue;
            }
            done = true;
            int code = LDAP_SUCCESS;
            LDAPControl** raw_controls = nullptr;
            if (const int rc = ldap_parse_result(m_ld, message.get(), &code, nullptr, nullptr,
                                                 nullptr, &raw_controls, 0);
                rc != LDAP_SUCCESS) {
                failed = failure_for(rc, what);
                break;
            }
            const ControlsPtr response_controls(raw_controls);
            if (code != LDAP_SUCCESS) {
                failed = failure_for(code, what);
                break;
            }
            std::string cookie_bytes;
            if (paged && raw_controls != nullptr) {
                if (LDAPControl* page =
                        ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, raw_controls, nullptr);
                    page != nullptr) {
                    ber_int_t estimate = 0;
                    berval next_cookie{};
                    // A page answer that cannot be read would end the read
                    // early, as if it were complete.
                    if (ldap_parse_pageresponse_control(m_ld, page, &estimate, &next_cookie) !=
                        LDAP_SUCCESS) {
                        failed = Failure{
                            FailureKind::partial_results,
                            fmt::format("{}: {}: unreadable paged results response", m_uri, what)};
                        break;
                    }
                    cookie_bytes.assign(next_cookie.bv_val == nullptr
                                            ? ""
                                            : std::string(next_cookie.bv_val, next_cookie.bv_len));
                    ber_memfree(next_cookie.bv_val);
                }
            }
            if (paged && !cookie_bytes.empty()) {
                auto requested = start(cookie_bytes);
                if (!requested) {
                    failed = requested.error();
                } else {
                    following = *requested;
                }
            }
        }
        for (const auto& message : held) {
            if (auto handled = handle(message.get()); !handled) {
                if (following != 0) {
                    ldap_abandon_ext(m_ld, following, nullptr, nullptr);
                }
                return std::unexpected(handled.error());
            }
        }
        if (failed) {
            return std::unexpected(std::move(*failed));
        }
        if (request.on_page) {
            request.on_page(outcome.entries);
        }
        msgid = following;
    }
    return outcome;
}

}  // namespace orgsync::ldap
