#pragma once

// The daemon's own HTTP routes besides SCIM (DESIGN §3):
//
// - the `/v1` admin API, every route behind the API token
//   (`Authorization: Bearer …`, [http] api_token_file; kept as its SHA-256,
//   compared in constant time; with no token configured the API answers
//   401 to everyone):
//     POST /v1/authorize                       a decision with its reason
//     GET  /v1/orgs                            every org
//     GET  /v1/orgs/{org}/members              members: type, role, asserting sources
//     GET  /v1/orgs/{org}/groups               groups and their members
//     GET  /v1/orgs/{org}/projects/{p}/grants  a project's user and group grants
//     GET  /v1/status                          each source's runs, the outbox
//     POST /v1/sync/{source}[?force=true][&wait=true]
//          a run now: 202 at once, or with wait=true 200 once it finished
// - `POST /hooks/v1/events`, signed with the [webhook] secret
//   (signature.hpp): `user.signup` and `user.email_changed` run email-domain
//   auto-join (sync/auto_join.hpp) and answer what was joined and left;
//   `sync.request` starts a run like POST /v1/sync. A signature that is
//   wrong, more than 300 s away, or seen before within that window (a
//   replay) is refused with 401 and changes nothing.
//
// Answers are JSON; errors are {"error": "…"} with the HTTP status saying
// what kind (400 bad input, 401 credentials, 404 unknown org/project/source,
// 409 the store refused the change, 500 storage).

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "connectors/scim/service.hpp"
#include "daemon/scheduler.hpp"
#include "daemon/service_metrics.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"

namespace httplib {
class Server;
}

namespace orgsync::daemon {

// Secrets the routes check, replaced whole on reload.
struct Credentials {
    std::optional<scim::TokenHash> api_token;  // scim::hash_token of it; none: /v1 refuses all
    std::string webhook_secret;                // empty: inbound hooks are refused
};

// A decision as /v1/authorize and `orgsyncd authorize --json` print it.
nlohmann::json decision_json(const directory::Decision& decision);

// Remembers the signatures accepted within the replay window, so the same
// signed request is taken once.
class ReplayGuard {
  public:
    // True the first time `signature` is seen (and records it); entries
    // older than the window are forgotten.
    bool first_use(const std::string& signature, std::chrono::sys_seconds now);

  private:
    std::mutex m_mutex;
    std::multimap<std::chrono::sys_seconds, std::string> m_by_time;
    std::map<std::string, std::chrono::sys_seconds> m_seen;
};

class Api {
  public:
    struct Context {
        directory::Store& store;
        Scheduler& scheduler;
        ServiceMetrics& metrics;
        std::function<std::shared_ptr<const mapping::Mapping>()> mapping;
        std::function<void()> committed;  // after a hook changed the store
    };

    Api(Context context, Credentials credentials);

    void set_credentials(Credentials credentials);
    // Registers the /v1 and /hooks routes.
    void routes(httplib::Server& server);

  private:
    Credentials credentials() const;

    Context m_context;
    mutable std::mutex m_mutex;  // guards m_credentials
    Credentials m_credentials;
    ReplayGuard m_replays;
};

}  // namespace orgsync::daemon
