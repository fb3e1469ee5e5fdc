#pragma once

// SCIM clients that write at random and remember what every acknowledged
// write left, for the crash test (tests/reliability/) and the load benchmark
// (bench/load_bench): each ScimWriter owns its own users ("c<client>-<n>@acme.com")
// and groups ("g<client>-<n>"; client 0's first group is "Acme Admins"), so
// what the store must hold for it follows from its own answers alone.
//
// A write answered 2xx updates the writer's model. A write that got no
// answer (the daemon was killed) is *pending*: it may or may not have been
// committed, and the writer sends nothing more until reconcile() has looked
// at the store. A write answered otherwise changes nothing in the model and
// is counted as refused.
//
// One thread drives one ScimWriter; nothing here is shared between writers.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

namespace orgsync::test {

struct ScimUserState {
    std::string id;  // empty: not known yet (a create that got no answer)
    std::string display_name;
    bool active = true;
    bool operator==(const ScimUserState&) const = default;
};

struct ScimGroupState {
    std::string id;
    std::set<std::string> members;  // userNames
    bool operator==(const ScimGroupState&) const = default;
};

// What one client's resources are: users by userName, groups by displayName.
struct ScimModel {
    std::map<std::string, ScimUserState> users;
    std::map<std::string, ScimGroupState> groups;
};

// A source's mirror as stored (read straight from the store file).
struct ScimMirror {
    struct User {
        std::string user_name;
        std::string email;
        std::string display_name;
        bool active = true;
    };
    struct Group {
        std::string name;
        std::vector<std::string> member_ids;
    };
    std::map<std::string, User> users;    // by id
    std::map<std::string, Group> groups;  // by id
};

// Reads `source`'s users and groups from the store file at `store` with
// SQLite. Throws (SQLite::Exception) when the file cannot be read.
ScimMirror read_scim_mirror(const std::filesystem::path& store, const std::string& source);

// Whether the org state `source` asserts in `org` is what its mirror
// derives (the pipeline writes both in one transaction): each mirrored user
// is a member asserted by the source, admin exactly when in the group named
// `admin_group`, with the mirror's active flag; no other member is asserted
// by it; each org group's members from the source are the mirrored group's
// members. Returns the differences, empty when none.
std::vector<std::string> check_scim_org(const std::filesystem::path& store,
                                        const std::string& source, const std::string& org,
                                        const std::string& admin_group);

struct ScimWriteStats {
    std::size_t sent = 0;
    std::size_t acknowledged = 0;   // 2xx
    std::size_t client_errors = 0;  // 4xx
    std::size_t server_errors = 0;  // 5xx
    std::size_t no_answer = 0;
    std::size_t busy = 0;  // an answer that speaks of a locked or busy database
    std::map<std::string, std::size_t> acknowledged_by_kind;  // "POST /Users", …
    std::vector<double> latency_ms;                           // of every answered request
    std::map<std::string, std::vector<double>> latency_ms_by_kind;
    std::vector<std::string> refusals;  // the first few non-2xx answers
};

class ScimWriter {
  public:
    enum class Outcome { acknowledged, refused, no_answer };

    ScimWriter(int client, std::uint64_t seed, std::string token);

    // One random write (create, change or delete a user or group) through
    // `http`. Must not be called while a write is pending.
    Outcome write_one(httplib::Client& http);

    bool pending() const { return m_pending.has_value(); }
    // The pending write, e.g. "PATCH /Groups/<id>"; empty when none.
    std::string pending_description() const;

    // Compares the writer's resources in `mirror` with the model: they must
    // equal it exactly, or, with a pending write, the model before or after
    // that write. The model then takes what was found (a pending create
    // learns its id) and nothing is pending any more. Returns the
    // differences (empty: consistent); `applied` says whether the pending
    // write was found committed.
    std::vector<std::string> reconcile(const ScimMirror& mirror, bool* applied = nullptr);

    // Whether `user_name` / `group_name` belongs to this writer.
    bool owns_user(const std::string& user_name) const;
    bool owns_group(const std::string& group_name) const;

    const ScimModel& model() const { return m_model; }
    ScimWriteStats& stats() { return m_stats; }
    const ScimWriteStats& stats() const { return m_stats; }

  private:
    struct Pending {
        std::string description;
        ScimModel after;  // the model had the write been committed
    };
    struct Request {
        std::string method;
        std::string path;
        std::string body;
        std::string kind;  // "POST /Users", …
    };
    struct Answer {
        bool answered = false;
        int status = 0;
        std::string body;
    };

    Answer send(httplib::Client& http, const Request& request);
    Outcome finish(const Request& request, const Answer& answer, ScimModel after);
    std::string pick_user(const std::vector<std::string>& names);
    std::vector<std::string> user_names() const;
    std::vector<std::string> group_names() const;

    int m_client;
    std::string m_token;
    std::mt19937_64 m_random;
    std::uint64_t m_next_user = 0;
    std::uint64_t m_next_group = 0;
    std::uint64_t m_next_version = 0;
    ScimModel m_model;
    std::optional<Pending> m_pending;
    ScimWriteStats m_stats;
};

}  // namespace orgsync::test
