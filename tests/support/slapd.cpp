#include "tests/support/slapd.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ldap.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace orgsync::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* k_slapd = "/usr/sbin/slapd";
constexpr const char* k_slapadd = "/usr/sbin/slapadd";
constexpr const char* k_schema_dir = "/etc/ldap/schema";
constexpr const char* k_module_dir = "/usr/lib/ldap";
// Generous for loaded CI machines; a start normally takes a few tens of ms.
constexpr auto k_ready_timeout = 20s;
constexpr auto k_ready_poll = 5ms;

constexpr std::string_view k_test_schema =
    R"(# orgsync test schema: AD-like and 389-ds-like attributes.
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.3 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.4 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.5 NAME 'nsUniqueId'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.6 NAME 'uSNChanged'
  EQUALITY integerMatch ORDERING integerOrderingMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'orgsyncTestObject' AUXILIARY
  MAY ( objectGUID $ userAccountControl $ sAMAccountName $ userPrincipalName $
        nsUniqueId $ uSNChanged ) )
)";

// Extensions for the generated certificates; prompt=no so openssl never asks.
constexpr std::string_view k_openssl_config = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)";

void write_file(const fs::path& path, std::string_view text) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    if (!file.flush()) {
        throw std::runtime_error("slapd fixture: cannot write " + path.string());
    }
}

std::string read_file(const fs::path& path) {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

std::string random_password() {
    std::random_device random;
    std::string password;
    constexpr std::string_view k_alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < 20; ++i) {
        password += k_alphabet[random() % k_alphabet.size()];
    }
    return password;
}

// A socket bound to 127.0.0.1 on a free port, never listening: nobody else
// gets the port from the kernel while it is open, connections to it are
// refused, and slapd (SO_REUSEADDR too) can still bind and listen on it.
int reserve_port(int& port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "slapd fixture: socket");
    }
    int on = 1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        int error = errno;
        ::close(fd);
        throw std::system_error(error, std::generic_category(), "slapd fixture: reserve a port");
    }
    port = ntohs(address.sin_port);
    return fd;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    for (auto& s : strings) {
        pointers.push_back(s.data());
    }
    pointers.push_back(nullptr);
    return pointers;
}

std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        env.emplace_back(*entry);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

int wait_for(pid_t pid) {
    int raw = 0;
    while (::waitpid(pid, &raw, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

std::string quoted(const fs::path& path) {
    return "\"" + path.string() + "\"";
}

std::string base_ldif(const std::string& suffix, const std::string& reader_dn,
                      const std::string& reader_password) {
    auto equals = suffix.find('=');
    auto comma = suffix.find(',');
    if (equals == std::string::npos || (comma != std::string::npos && comma < equals)) {
        throw std::invalid_argument("slapd fixture: bad suffix " + suffix);
    }
    std::string attr = suffix.substr(0, equals);
    std::string value = suffix.substr(
        equals + 1, comma == std::string::npos ? std::string::npos : comma - equals - 1);
    std::string ldif = "dn: " + suffix + "\n";
    if (attr == "dc") {
        ldif += "objectClass: dcObject\nobjectClass: organization\n" + ldif_line("dc", value) +
                "\n" + ldif_line("o", value) + "\n";
    } else if (attr == "o") {
        ldif += "objectClass: organization\n" + ldif_line("o", value) + "\n";
    } else if (attr == "ou") {
        ldif += "objectClass: organizationalUnit\n" + ldif_line("ou", value) + "\n";
    } else {
        throw std::invalid_argument("slapd fixture: the suffix must start with dc=, o= or ou=");
    }
    for (const char* ou : {"people", "groups", "services"}) {
        ldif += std::string("\ndn: ou=") + ou + "," + suffix +
                "\nobjectClass: organizationalUnit\nou: " + ou + "\n";
    }
    ldif += "\ndn: " + reader_dn +
            "\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
            "cn: orgsync\n" +
            ldif_line("userPassword", reader_password) + "\n";
    return ldif;
}

std::string tool_failure(const std::string& what, const ToolResult& result) {
    return "slapd fixture: " + what + " failed (exit " + std::to_string(result.status) +
           "): " + result.err + result.out;
}

// The database's size limits (slapd's default is a soft limit of 500
// entries for everyone).
std::string size_limit_line(const SlapdOptions& options) {
    if (options.size_limit <= 0) {
        return "sizelimit unlimited\n";
    }
    const std::string limit = std::to_string(options.size_limit);
    const std::string total = options.paged_total_limit > 0
                                  ? std::to_string(options.paged_total_limit)
                                  : std::string("unlimited");
    return "sizelimit size.soft=" + limit + " size.hard=" + limit + " size.prtotal=" + total + "\n";
}

}  // namespace

ToolResult run_tool(const std::vector<std::string>& argv,
                    const std::vector<std::string>& extra_env) {
    if (argv.empty()) {
        throw std::invalid_argument("run_tool: empty argv");
    }
    std::vector<std::string> args = argv;
    std::vector<std::string> env = environment_with(extra_env);
    std::vector<char*> c_args = c_strings(args);
    std::vector<char*> c_env = c_strings(env);

    std::array<int, 2> out{};
    std::array<int, 2> err{};
    if (::pipe2(out.data(), O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "run_tool: pipe");
    }
    if (::pipe2(err.data(), O_CLOEXEC) != 0) {
        int error = errno;
        ::close(out[0]);
        ::close(out[1]);
        throw std::system_error(error, std::generic_category(), "run_tool: pipe");
    }
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
        ::execvpe(c_args[0], c_args.data(), c_env.data());
        ::_exit(127);
    }
    int fork_errno = errno;
    ::close(null);
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
        ::close(out[0]);
        ::close(err[0]);
        throw std::system_error(fork_errno, std::generic_category(), "run_tool: fork");
    }

    ToolResult result;
    std::array<pollfd, 2> fds{pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
    std::array<std::string*, 2> sinks{&result.out, &result.err};
    int open_fds = 2;
    std::array<char, 65536> buffer{};
    while (open_fds > 0) {
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            ssize_t n = ::read(fds[i].fd, buffer.data(), buffer.size());
            if (n > 0) {
                sinks[i]->append(buffer.data(), static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& fd : fds) {
        if (fd.fd >= 0) {
            ::close(fd.fd);
        }
    }
    result.status = wait_for(pid);
    return result;
}

std::string ldif_line(std::string_view attr, std::string_view value) {
    bool safe = value.empty() || (value.front() != ' ' && value.front() != ':' &&
                                  value.front() != '<' && value.back() != ' ');
    for (char c : value) {
        auto byte = static_cast<unsigned char>(c);
        if (byte == 0 || byte == '\n' || byte == '\r' || byte >= 0x80) {
            safe = false;
        }
    }
    std::string line(attr);
    if (safe) {
        return line.append(": ").append(value);
    }
    constexpr std::string_view k_base64 =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    line.append(":: ");
    std::size_t i = 0;
    for (; i + 2 < value.size(); i += 3) {
        unsigned bits = static_cast<unsigned>(static_cast<unsigned char>(value[i])) << 16 |
                        static_cast<unsigned>(static_cast<unsigned char>(value[i + 1])) << 8 |
                        static_cast<unsigned>(static_cast<unsigned char>(value[i + 2]));
        line += k_base64[bits >> 18 & 63];
        line += k_base64[bits >> 12 & 63];
        line += k_base64[bits >> 6 & 63];
        line += k_base64[bits & 63];
    }
    if (std::size_t rest = value.size() - i; rest > 0) {
        unsigned bits = static_cast<unsigned>(static_cast<unsigned char>(value[i])) << 16;
        if (rest == 2) {
            bits |= static_cast<unsigned>(static_cast<unsigned char>(value[i + 1])) << 8;
        }
        line += k_base64[bits >> 18 & 63];
        line += k_base64[bits >> 12 & 63];
        line += rest == 2 ? k_base64[bits >> 6 & 63] : '=';
        line += '=';
    }
    return line;
}

Slapd::Slapd(SlapdOptions options) : m_options(std::move(options)) {
    std::string pattern = (fs::temp_directory_path() / "orgsync-slapd-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "slapd fixture: mkdtemp");
    }
    m_dir = pattern;
    try {
        m_reservations.push_back(reserve_port(m_port));
        m_reservations.push_back(reserve_port(m_unused_port));
        if (m_options.tls) {
            m_reservations.push_back(reserve_port(m_ldaps_port));
            generate_certificates();
        }
        write_files();
        start();
    } catch (...) {
        cleanup();
        throw;
    }
}

Slapd::~Slapd() {
    cleanup();
}

void Slapd::cleanup() noexcept {
    kill();
    for (int fd : m_reservations) {
        ::close(fd);
    }
    m_reservations.clear();
    if (!m_dir.empty()) {
        std::error_code ignored;
        fs::remove_all(m_dir, ignored);
    }
}

std::string Slapd::uri() const {
    return "ldap://127.0.0.1:" + std::to_string(m_port);
}

std::string Slapd::ldaps_uri() const {
    if (!m_options.tls) {
        throw std::logic_error("slapd fixture: ldaps_uri() needs tls = true");
    }
    return "ldaps://127.0.0.1:" + std::to_string(m_ldaps_port);
}

std::string Slapd::unused_uri() const {
    return "ldap://127.0.0.1:" + std::to_string(m_unused_port);
}

std::string Slapd::admin_dn() const {
    return "cn=admin," + m_options.suffix;
}
fs::path Slapd::admin_password_file() const {
    return m_dir / "admin.pw";
}
std::string Slapd::reader_dn() const {
    return "cn=orgsync,ou=services," + m_options.suffix;
}
fs::path Slapd::reader_password_file() const {
    return m_dir / "reader.pw";
}
fs::path Slapd::ca_file() const {
    return m_dir / "ca.pem";
}
fs::path Slapd::wrong_ca_file() const {
    return m_dir / "wrong-ca.pem";
}
fs::path Slapd::log_file() const {
    return m_dir / "slapd.log";
}

void Slapd::generate_certificates() {
    fs::path config = m_dir / "openssl.cnf";
    write_file(config, k_openssl_config);
    auto openssl = [&](const std::string& subject, const std::string& name,
                       const std::string& extensions, bool signed_by_ca) {
        std::vector<std::string> args{"openssl",
                                      "req",
                                      "-x509",
                                      "-new",
                                      "-newkey",
                                      "ec",
                                      "-pkeyopt",
                                      "ec_paramgen_curve:prime256v1",
                                      "-nodes",
                                      "-days",
                                      "2",
                                      "-config",
                                      config.string(),
                                      "-extensions",
                                      extensions,
                                      "-subj",
                                      subject,
                                      "-keyout",
                                      (m_dir / (name + ".key")).string(),
                                      "-out",
                                      (m_dir / (name + ".pem")).string()};
        if (signed_by_ca) {
            args.insert(args.end(),
                        {"-CA", ca_file().string(), "-CAkey", (m_dir / "ca.key").string()});
        }
        ToolResult result = run_tool(args);
        if (result.status != 0) {
            throw std::runtime_error(tool_failure("openssl req for " + name, result));
        }
    };
    openssl("/CN=orgsync test CA", "ca", "ca", false);
    openssl("/CN=orgsync unrelated CA", "wrong-ca", "ca", false);
    openssl("/CN=localhost", "server", "server", true);
}

void Slapd::write_files() {
    std::string admin_password = random_password();
    std::string reader_password = random_password();
    // 0600, or ldapsearch -y warns on every call.
    for (const auto& [file, password] : {std::pair{admin_password_file(), admin_password},
                                         std::pair{reader_password_file(), reader_password}}) {
        write_file(file, password);
        fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    }
    fs::create_directory(m_dir / "data");

    std::string conf = "# Generated by the orgsync slapd test fixture.\n";
    for (const char* schema : {"core", "cosine", "inetorgperson", "nis"}) {
        conf +=
            "include " + quoted(fs::path(k_schema_dir) / (std::string(schema) + ".schema")) + "\n";
    }
    if (m_options.extra_schema) {
        write_file(m_dir / "orgsync-test.schema", k_test_schema);
        conf += "include " + quoted(m_dir / "orgsync-test.schema") + "\n";
    }
    conf += std::string("modulepath ") + k_module_dir + "\nmoduleload back_mdb\n";
    if (m_options.memberof) {
        conf += "moduleload memberof\n";
    }
    if (m_options.syncprov) {
        conf += "moduleload syncprov\n";
    }
    conf += "pidfile " + quoted(m_dir / "slapd.pid") + "\nargsfile " +
            quoted(m_dir / "slapd.args") + "\n";
    if (m_options.tls) {
        conf += "TLSCACertificateFile " + quoted(ca_file()) + "\nTLSCertificateFile " +
                quoted(m_dir / "server.pem") + "\nTLSCertificateKeyFile " +
                quoted(m_dir / "server.key") + "\nTLSVerifyClient never\n";
    }
    // Clients read the root DSE (controls, naming contexts) and the schema
    // anonymously, as against AD and 389-ds.
    conf +=
        "access to dn.base=\"\" by * read\n"
        "access to dn.base=\"cn=Subschema\" by * read\n\n";

    conf += "database mdb\nsuffix \"" + m_options.suffix + "\"\nrootdn \"" + admin_dn() +
            "\"\nrootpw " + admin_password + "\ndirectory " + quoted(m_dir / "data") +
            "\n"
            // Sparse; plenty for benchmarks. dbnosync: no fsync per write, the
            // data still survives a SIGKILL of slapd.
            "maxsize 1073741824\ndbnosync\n"
            "index objectClass eq\nindex entryUUID,entryCSN eq\nindex uid,cn,mail eq\n"
            "index member,uniqueMember,memberUid eq\n";
    if (m_options.extra_schema) {
        conf += "index objectGUID,nsUniqueId,sAMAccountName,userPrincipalName eq\n";
    }
    conf += size_limit_line(m_options);
    conf +=
        "access to attrs=userPassword by anonymous auth by * none\n"
        "access to * by dn.exact=\"" +
        reader_dn() + "\" read by * none\n";
    if (m_options.memberof) {
        conf +=
            "\noverlay memberof\nmemberof-group-oc groupOfNames\nmemberof-member-ad member\n"
            "memberof-memberof-ad memberOf\nmemberof-refint true\n";
    }
    if (m_options.syncprov) {
        // Checkpoint after every write: the contextCSN is otherwise only stored
        // every N writes or at a clean shutdown, and after kill() a restarted
        // slapd would answer a newer cookie with "consumer state is newer
        // than provider" (unwillingToPerform). The session log lives in
        // memory: after a restart, a cookie gets a present phase instead.
        conf += "\noverlay syncprov\nsyncprov-checkpoint 1 1\nsyncprov-sessionlog 100000\n";
    }
    write_file(m_dir / "slapd.conf", conf);

    write_file(m_dir / "base.ldif", base_ldif(m_options.suffix, reader_dn(), reader_password));
    ToolResult loaded = run_tool({k_slapadd, "-q", "-f", (m_dir / "slapd.conf").string(), "-b",
                                  m_options.suffix, "-l", (m_dir / "base.ldif").string()});
    if (loaded.status != 0) {
        throw std::runtime_error(tool_failure("slapadd of the base entries", loaded));
    }
    if (!m_options.initial_ldif.empty()) {
        std::vector<std::string> args{k_slapadd, "-q",
                                      "-f",      (m_dir / "slapd.conf").string(),
                                      "-b",      m_options.suffix,
                                      "-l",      m_options.initial_ldif.string()};
        if (m_options.syncprov) {
            args.emplace_back("-w");
        }
        ToolResult initial = run_tool(args);
        if (initial.status != 0) {
            throw std::runtime_error(
                tool_failure("slapadd of " + m_options.initial_ldif.string(), initial));
        }
    }
}

void Slapd::start() {
    std::string urls = uri() + "/";
    if (m_options.tls) {
        urls += " " + ldaps_uri() + "/";
    }
    std::vector<std::string> args{k_slapd, "-f", (m_dir / "slapd.conf").string(), "-h", urls,
                                  // Foreground; errors only, to stderr.
                                  "-d", "none"};
    std::vector<char*> c_args = c_strings(args);
    int log = ::open(log_file().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) {
        int error = errno;
        ::close(log);
        ::close(null);
        throw std::system_error(error, std::generic_category(), "slapd fixture: open the log");
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127);
        }
        ::dup2(null, STDIN_FILENO);
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
        ::execv(c_args[0], c_args.data());
        ::_exit(127);
    }
    int fork_errno = errno;
    ::close(log);
    ::close(null);
    if (pid < 0) {
        throw std::system_error(fork_errno, std::generic_category(), "slapd fixture: fork");
    }
    m_pid = pid;
    wait_ready();
}

void Slapd::wait_ready() {
    std::string url = uri();
    auto deadline = std::chrono::steady_clock::now() + k_ready_timeout;
    while (true) {
        int raw = 0;
        if (::waitpid(m_pid, &raw, WNOHANG) == m_pid) {
            m_pid = 0;
            throw std::runtime_error("slapd fixture: slapd exited during start-up (status " +
                                     std::to_string(raw) + "); log:\n" + log_tail());
        }
        LDAP* ld = nullptr;
        if (ldap_initialize(&ld, url.c_str()) == LDAP_SUCCESS) {
            int version = LDAP_VERSION3;
            timeval timeout{1, 0};
            ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
            ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout);
            std::array<char*, 2> attrs{const_cast<char*>(LDAP_NO_ATTRS), nullptr};
            LDAPMessage* result = nullptr;
            int rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs.data(), 0,
                                       nullptr, nullptr, &timeout, 1, &result);
            ldap_msgfree(result);
            ldap_unbind_ext_s(ld, nullptr, nullptr);
            if (rc == LDAP_SUCCESS) {
                return;
            }
        }
        if (std::chrono::steady_clock::now() > deadline) {
            kill();
            throw std::runtime_error("slapd fixture: slapd did not answer on " + url +
                                     " in time; log:\n" + log_tail());
        }
        std::this_thread::sleep_for(k_ready_poll);
    }
}

std::string Slapd::log_tail() const {
    std::string log = read_file(log_file());
    constexpr std::size_t k_tail = 4000;
    return log.size() > k_tail ? "..." + log.substr(log.size() - k_tail) : log;
}

void Slapd::ldap_tool(const char* tool, std::string_view ldif) {
    fs::path file = m_dir / ("change-" + std::to_string(++m_ldif_count) + ".ldif");
    write_file(file, ldif);
    // LDAPNOINIT: ignore ldap.conf, ~/.ldaprc and LDAP* variables.
    ToolResult result = run_tool({tool, "-x", "-H", uri(), "-D", admin_dn(), "-y",
                                  admin_password_file().string(), "-f", file.string()},
                                 {"LDAPNOINIT=1"});
    std::error_code ignored;
    fs::remove(file, ignored);
    if (result.status != 0) {
        throw std::runtime_error(tool_failure(tool, result));
    }
}

void Slapd::add(std::string_view ldif) {
    ldap_tool("ldapadd", ldif);
}

void Slapd::modify(std::string_view ldif) {
    ldap_tool("ldapmodify", ldif);
}

void Slapd::kill() {
    if (m_pid <= 0) {
        return;
    }
    ::kill(m_pid, SIGKILL);
    wait_for(m_pid);
    m_pid = 0;
}

void Slapd::stop() {
    if (m_pid <= 0) {
        return;
    }
    ::kill(m_pid, SIGSTOP);
    // Return only once every thread has stopped: until then a busy machine
    // may still let slapd answer.
    int raw = 0;
    while (::waitpid(m_pid, &raw, WUNTRACED) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(raw) || WIFSIGNALED(raw)) {
        m_pid = 0;
    }
}

void Slapd::resume() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGCONT);
    }
}

void Slapd::set_size_limits(int size_limit, int paged_total_limit) {
    m_options.size_limit = size_limit;
    m_options.paged_total_limit = paged_total_limit;
    std::istringstream lines(read_file(m_dir / "slapd.conf"));
    std::string conf;
    for (std::string line; std::getline(lines, line);) {
        conf += line.starts_with("sizelimit ") ? size_limit_line(m_options) : line + "\n";
    }
    write_file(m_dir / "slapd.conf", conf);
}

void Slapd::restart() {
    kill();
    start();
}

}  // namespace orgsync::testing
