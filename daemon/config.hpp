#pragma once

// The daemon configuration (DESIGN §3, `orgsyncd.toml`): where the store and
// the mapping live, how to listen, and how to reach each directory source.
//
// Loading is parsing plus validation of syntax, types and ranges. The loader
// never opens the files the configuration names (secrets, certificates, the
// mapping, the store): it only checks that each is named sensibly and resolves
// relative names against the configuration file's directory. Whether those
// files exist is for the component that opens them to report.
//
// Every option is declared once, in config.cpp, with its key, type, default
// and allowed values or range (read by config/toml_schema.hpp, shared with
// the mapping); the defaults below are the same values.

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config_error.hpp"
#include "config/duration.hpp"
#include "connectors/ldap/source_config.hpp"

namespace orgsync::daemon {

// Messages name keys and state the rule; they never quote values (except a
// source's validated name), so a secret pasted into the wrong key is not
// echoed back.
using config::ConfigError;

using ldap::LdapFlavor;
using ldap::LdapSourceConfig;
using ldap::parse_ldap_flavor;
using ldap::to_string;

// A `[[source]]` with `type = "scim"`: an identity provider pushing to
// /scim/v2, bound to one org; the SCIM component reads its bearer token from
// token_file.
struct ScimSourceConfig {
    std::string org;  // org slug, [a-z0-9-]{1,63}
    std::filesystem::path token_file;

    bool operator==(const ScimSourceConfig&) const = default;
};

struct SourceConfig {
    std::string name;  // unique, [a-z0-9][a-z0-9_-]{0,62}
    std::string type;  // "ldap" | "scim"; says which alternative `settings` holds
    std::variant<LdapSourceConfig, ScimSourceConfig> settings;

    bool operator==(const SourceConfig&) const = default;
};

// An outbound webhook receiver (`[[webhook.target]]`).
struct WebhookTarget {
    std::string url;  // http:// or https://
    std::filesystem::path secret_file;

    bool operator==(const WebhookTarget&) const = default;
};

// All paths are absolute after loading (relative ones are resolved against
// the configuration file's directory); an empty optional path means "not set".
struct Config {
    std::filesystem::path file;  // the config file itself, as given to the loader
    std::filesystem::path store_path = "/var/lib/orgsync/orgsync.db";  // [store] path
    std::string http_listen = "127.0.0.1:8650";  // [http] listen, see parse_listen_address
    std::filesystem::path api_token_file;        // [http]
    std::filesystem::path tls_cert_file;         // [http]; set together with tls_key_file
    std::filesystem::path tls_key_file;
    // [http] request_timeout: a request (headers and body) must arrive whole
    // within it, so slow clients cannot hold the workers. 1s..10m
    std::chrono::seconds http_request_timeout = std::chrono::seconds(30);
    std::filesystem::path mapping_file;  // [mapping] file, default "mapping.toml" next to this file
    std::string log_level = "info";      // trace|debug|info|warn|error|critical|off
    std::vector<SourceConfig> sources;   // in file order
    std::filesystem::path webhook_secret_file;  // [webhook] secret_file: inbound signatures
    std::vector<WebhookTarget> webhook_targets;
    // Outbound delivery ([webhook], daemon/outbox_delivery.hpp). A request
    // that failed max_attempts times in a row is dead-lettered; the wait
    // before retry n is retry_initial * 2^(n-1), capped at retry_max, with
    // jitter.
    int webhook_max_attempts = 20;  // max_attempts, 1..1000
    int webhook_batch_size = 100;   // batch_size: events per request, 1..1000
    // timeout: per request, connecting included, 1s..5m
    std::chrono::seconds webhook_timeout = std::chrono::seconds(10);
    // retry_initial 1s..1h; retry_max 1s..1d and at least retry_initial
    std::chrono::seconds webhook_retry_initial = std::chrono::seconds(1);
    std::chrono::seconds webhook_retry_max = std::chrono::minutes(5);

    // The source called `name`, or nullptr.
    const SourceConfig* find_source(std::string_view name) const;

    bool operator==(const Config&) const = default;
};

// Parses and validates the file. On failure returns every error found (not
// just the first), sorted by line then column; a TOML syntax error stops
// parsing, so it is reported alone.
std::expected<Config, std::vector<ConfigError>> load_config(const std::filesystem::path& file);

// Same, from text; `file` is used only in messages and to resolve relative
// paths (against its directory, made absolute from the working directory).
std::expected<Config, std::vector<ConfigError>> parse_config(std::string_view text,
                                                             const std::filesystem::path& file);

// "host:port" or "[ipv6]:port" with a port in 0..65535 (0: the daemon takes any free port and logs
// it). The host is returned without brackets. No name resolution happens here.
struct ListenAddress {
    std::string host;
    std::uint16_t port = 0;
};
std::optional<ListenAddress> parse_listen_address(std::string_view text);

// Durations as the configuration spells them ("30s", "15m", "1h30m", "7d").
using config::format_duration;
using config::parse_duration;

}  // namespace orgsync::daemon
