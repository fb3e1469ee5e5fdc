#pragma once

// A real OpenLDAP slapd (Debian's slapd package) for tests and benchmarks of
// the LDAP connector: one private instance per object, on 127.0.0.1, with a
// generated slapd.conf, an mdb database and its own temporary directory.
//
// Ports are reserved for the object's lifetime by a socket that is bound but
// never listens (slapd binds the same port with SO_REUSEADDR), so parallel
// tests never collide and restart() finds its port free. A connection to a
// reserved port that nothing listens on is refused at once.
//
// Not thread-safe: one thread owns the object. slapd is started with
// PR_SET_PDEATHSIG, so it dies with the thread that created it (also when a
// test aborts); create the object on a thread that outlives it.
//
// Access control: the rootdn (admin_dn) can do everything and is exempt from
// limits; the reader (reader_dn) can read everything, including memberOf and
// the other operational attributes, subject to size_limit; anonymous can read
// only the root DSE and the subschema entry.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::testing {

struct SlapdOptions {
    std::string suffix = "dc=example,dc=com";
    // 0: no size limit at all (slapd's default of 500 is lifted). Otherwise
    // the soft and hard size limit of every identity but the rootdn, with
    // size.prtotal=unlimited: a paged search with pages of at most
    // size_limit entries returns everything, an unpaged search (or a
    // syncrepl refresh) matching more entries fails with sizeLimitExceeded,
    // like Active Directory's MaxPageSize.
    int size_limit = 0;
    // With size_limit: 0 leaves paged searches unbounded in total (above);
    // otherwise a paged search may return at most this many entries in all
    // (size.prtotal) and fails with sizeLimitExceeded past it, whatever its
    // page size: a server-side limit that paging does not get around.
    int paged_total_limit = 0;
    // Generates a CA and a server certificate for 127.0.0.1 and localhost;
    // slapd then also listens on ldaps_uri() and offers StartTLS on uri().
    bool tls = false;
    // Loads the test schema: objectGUID (binary, single), userAccountControl
    // (integer, single), sAMAccountName, userPrincipalName (case-ignore
    // strings, single), nsUniqueId (case-ignore string, single), uSNChanged
    // (integer, single), and the AUXILIARY class orgsyncTestObject that MAY
    // carry them all, for AD-like and 389-ds-like entries.
    bool extra_schema = false;
    // memberof overlay: groupOfNames/member maintains the operational
    // attribute memberOf on members (users and nested groups; not
    // transitive). memberOf is returned only when asked for by name or "+",
    // and its changes leave the member's entryCSN and modifyTimestamp alone,
    // so syncrepl reports the group, not the member.
    bool memberof = true;
    // syncprov overlay with a session log, so RFC 4533 refreshOnly with a
    // cookie reports deletions (a syncIdSet with refreshDeletes=TRUE). The
    // contextCSN is stored after every write, so cookies stay valid across
    // kill() and restart(); the session log is not, so the first refresh
    // after a restart is a present phase (syncIdSet, refreshDeletes=FALSE).
    bool syncprov = true;
    // An LDIF file of entries below the suffix (not the suffix, ou=people,
    // ou=groups, ou=services or the reader, which are always there), loaded
    // with slapadd after the base entries and before slapd starts: much
    // faster than add() for large directories (benchmarks). Empty: none.
    // slapadd runs no overlays, so memberOf is not derived for these
    // entries (turn `memberof` off for a consistent directory); entryUUID,
    // entryCSN and the timestamps are generated, and with `syncprov` the
    // suffix's contextCSN is set to the newest entryCSN (slapadd -w).
    // The file is read, not kept.
    std::filesystem::path initial_ldif;
};

class Slapd {
  public:
    // Creates the directory, loads the base entries (the suffix; ou=people,
    // ou=groups, ou=services; the reader) and `initial_ldif`, starts slapd
    // and returns once it answers a search. Throws std::runtime_error, with the tail of slapd's
    // log or the failing tool's output, when any step fails.
    explicit Slapd(SlapdOptions options = {});
    // SIGKILL if still running, wait, remove the directory.
    ~Slapd();

    Slapd(const Slapd&) = delete;
    Slapd& operator=(const Slapd&) = delete;

    std::string uri() const;         // "ldap://127.0.0.1:PORT"
    std::string ldaps_uri() const;   // "ldaps://127.0.0.1:PORT" (tls only, else throws)
    std::string unused_uri() const;  // ldap:// on 127.0.0.1: connections are refused
    const std::string& suffix() const { return m_options.suffix; }
    std::string admin_dn() const;  // the rootdn
    std::filesystem::path admin_password_file() const;
    std::string reader_dn() const;  // cn=orgsync,ou=services,<suffix>
    // The password alone, no trailing newline (as ldapsearch -y wants it).
    std::filesystem::path reader_password_file() const;
    std::filesystem::path ca_file() const;        // tls: signed the server certificate
    std::filesystem::path wrong_ca_file() const;  // tls: an unrelated CA
    std::filesystem::path dir() const { return m_dir; }
    std::filesystem::path log_file() const;  // slapd's stderr (errors only)

    // ldapadd as the rootdn. Records are added in order and the first error
    // stops (earlier records stay); throws with the tool's output on error.
    void add(std::string_view ldif);
    // ldapmodify as the rootdn: changetype records (add, modify, delete,
    // modrdn). Same error behaviour as add().
    void modify(std::string_view ldif);

    void kill();     // SIGKILL and wait; no-op when not running
    void stop();     // SIGSTOP, returns once slapd has stopped: connections hang
    void resume();   // SIGCONT
    void restart();  // after kill(): start on the same ports and data, wait until it answers
    // New size limits (as the options of the same names), taken by the next
    // restart().
    void set_size_limits(int size_limit, int paged_total_limit);
    pid_t pid() const { return m_pid; }  // 0 when not running

  private:
    void write_files();
    void generate_certificates();
    void start();
    void wait_ready();
    void ldap_tool(const char* tool, std::string_view ldif);
    void cleanup() noexcept;
    std::string log_tail() const;

    SlapdOptions m_options;
    std::filesystem::path m_dir;
    int m_port = 0;
    int m_ldaps_port = 0;
    int m_unused_port = 0;
    std::vector<int> m_reservations;  // bound, never listening sockets
    pid_t m_pid = 0;
    unsigned m_ldif_count = 0;
};

// One LDIF line "attr: value", or "attr:: base64" when the value is not a
// SAFE-STRING of RFC 2849 (binary data, leading space, colon or '<',
// trailing space, non-ASCII, newlines).
std::string ldif_line(std::string_view attr, std::string_view value);

// Runs a command (argv[0] looked up in PATH) with `extra_env` ("NAME=value")
// added to the environment and standard input from /dev/null. `status` is
// the exit status, or -1 when it did not exit normally.
struct ToolResult {
    int status = -1;
    std::string out;
    std::string err;
};
ToolResult run_tool(const std::vector<std::string>& argv,
                    const std::vector<std::string>& extra_env = {});

}  // namespace orgsync::testing
