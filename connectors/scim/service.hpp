#pragma once

// The SCIM 2.0 service (RFC 7643/7644) behind /scim/v2, independent of the
// HTTP library: the daemon's listener turns each request into a
// ScimRequest and sends back the ScimResponse.
//
// Every bearer token belongs to one configured SCIM source, bound to one org
// (DESIGN §3): a request sees and changes that source's mirror only, so a
// token for one org can never read or change another. Tokens are kept as
// SHA-256 hashes and compared in constant time.
//
// Each write replaces records in the source's mirror and re-derives the
// affected users' org state through the sync pipeline
// (sync::run_sync_delta) in one store transaction, committed before the
// response is built: a 2xx means the write is durable. Writes of one source
// are serialised (a read-validate-write sequence per request); reads run
// concurrently. POST /Users requests that arrive while a write of their
// source is being committed are committed together, in one transaction
// (group_commit.hpp), each answered as if it had been written alone.
//
// Thread-safe: handle() may be called from any number of threads.

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/scim/filter.hpp"
#include "connectors/scim/patch.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"

namespace orgsync::scim {

using TokenHash = std::array<unsigned char, 32>;

// SHA-256 of a bearer token, as the service keeps it.
TokenHash hash_token(std::string_view token);

struct ScimSource {
    std::string name;  // the configured source: its mirror and its audit events
    std::string org;   // the org it provisions into
    TokenHash token_hash{};
};

struct ServiceLimits {
    std::size_t max_body = 1 << 20;  // bytes; the listener enforces it first
    std::size_t default_page = 100;
    std::size_t max_page = 1000;  // `count` above this is lowered to it (RFC 7644 §3.4.2.4)
    FilterLimits filter;
    PatchLimits patch;
};

struct ScimRequest {
    std::string method;                        // GET, POST, PUT, PATCH, DELETE
    std::string path;                          // below /scim/v2, e.g. "/Users/2819c223"
    std::map<std::string, std::string> query;  // decoded parameters
    std::string authorization;                 // the Authorization header
    std::string if_match;                      // the If-Match header, when sent
    std::string body;
    std::string base_url;  // e.g. "https://orgsync.example.com/scim/v2", for meta.location
};

struct ScimResponse {
    int status = 200;
    std::string body;           // application/scim+json, empty for 204
    std::string etag;           // ETag header, when a single resource is returned
    std::string location;       // Location header on 201
    bool unauthorized = false;  // send WWW-Authenticate
    std::string source;         // the source the token belongs to; empty when none did
};

class Service {
  public:
    Service(directory::Store& store, std::shared_ptr<const mapping::Mapping> mapping,
            std::vector<ScimSource> sources, ServiceLimits limits = {});
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    ScimResponse handle(const ScimRequest& request);

    // The mapping later writes derive with (a reload); requests already
    // running finish with the one they started with.
    void set_mapping(std::shared_ptr<const mapping::Mapping> mapping);

    // Runs `body` while no write of `source` is in progress (a re-derive of
    // its mirror after a mapping change, which must not interleave with a
    // push). A source that is not a SCIM source of this service: `body` runs
    // at once.
    void exclusive(std::string_view source, const std::function<void()>& body);

    // A SCIM error response (RFC 7644 §3.12); `scim_type` may be empty.
    static ScimResponse error_response(int status, std::string_view scim_type,
                                       std::string_view detail);

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace orgsync::scim
