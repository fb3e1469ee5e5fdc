#include "daemon/config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace orgsync::daemon {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Messages in the error tests name this file; path tests use absolute names.
constexpr std::string_view k_file = "orgsyncd.toml";

// The errors parse_config reports for `text`, as the admin sees them.
std::vector<std::string> errors_of(std::string_view text) {
    const auto config = parse_config(text, k_file);
    std::vector<std::string> lines;
    if (!config) {
        for (const ConfigError& error : config.error()) {
            lines.push_back(error.to_string());
        }
    }
    return lines;
}

using Lines = std::vector<std::string>;

TEST(ConfigTest, FullConfigSetsEveryField) {
    const auto config = parse_config(R"toml(
[store]
path = "/srv/orgsync/state.db"

[http]
listen = "[::1]:9000"
api_token_file = "/run/creds/api-token"
tls_cert_file = "/etc/orgsync/tls.crt"
tls_key_file = "/run/creds/tls.key"

[mapping]
file = "/etc/orgsync/orgs.toml"

[log]
level = "debug"

[[source]]
name = "corp_dir-1"
type = "ldap"
flavor = "ad"
uri = ["ldap://dc1.example.com", "ldap://dc2.example.com:3268"]
start_tls = true
tls_verify = false
ca_file = "/etc/ssl/corp-ca.pem"
client_cert_file = "/etc/orgsync/ldap.crt"
client_key_file = "/run/creds/ldap.key"
bind_dn = "CN=orgsync,OU=Services,DC=example,DC=com"
bind_password_file = "/run/creds/ldap-password"
user_base = "OU=People,DC=example,DC=com"
user_filter = "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
group_base = "OU=Groups,DC=example,DC=com"
group_filter = "(objectClass=group)"
group_member_attribute = "memberOf"
email_attribute = "userPrincipalName"
interval = "1h30m"
timeout = "2m"
page_size = 500

[[source]]
name = "okta"
type = "scim"
org = "acme-labs"
token_file = "/run/creds/okta-token"

[webhook]
secret_file = "/run/creds/webhook-in"
max_attempts = 7
batch_size = 250
timeout = "30s"
retry_initial = "2s"
retry_max = "1h"

[[webhook.target]]
url = "https://platform.example.com/hooks/orgsync"
secret_file = "/run/creds/webhook-out-1"

[[webhook.target]]
url = "http://localhost:8080/events"
secret_file = "/run/creds/webhook-out-2"
)toml",
                                     "/etc/orgsync/orgsyncd.toml");
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();

    EXPECT_EQ(config->file, fs::path("/etc/orgsync/orgsyncd.toml"));
    EXPECT_EQ(config->store_path, fs::path("/srv/orgsync/state.db"));
    EXPECT_EQ(config->http_listen, "[::1]:9000");
    EXPECT_EQ(config->api_token_file, fs::path("/run/creds/api-token"));
    EXPECT_EQ(config->tls_cert_file, fs::path("/etc/orgsync/tls.crt"));
    EXPECT_EQ(config->tls_key_file, fs::path("/run/creds/tls.key"));
    EXPECT_EQ(config->mapping_file, fs::path("/etc/orgsync/orgs.toml"));
    EXPECT_EQ(config->log_level, "debug");
    EXPECT_EQ(config->webhook_secret_file, fs::path("/run/creds/webhook-in"));
    EXPECT_EQ(config->webhook_max_attempts, 7);
    EXPECT_EQ(config->webhook_batch_size, 250);
    EXPECT_EQ(config->webhook_timeout, 30s);
    EXPECT_EQ(config->webhook_retry_initial, 2s);
    EXPECT_EQ(config->webhook_retry_max, 1h);

    ASSERT_EQ(config->sources.size(), 2U);
    const SourceConfig& corp = config->sources[0];
    EXPECT_EQ(corp.name, "corp_dir-1");
    EXPECT_EQ(corp.type, "ldap");
    ASSERT_TRUE(std::holds_alternative<LdapSourceConfig>(corp.settings));
    const auto& ldap = std::get<LdapSourceConfig>(corp.settings);
    EXPECT_EQ(ldap.flavor, LdapFlavor::active_directory);
    EXPECT_EQ(ldap.uris,
              (std::vector<std::string>{"ldap://dc1.example.com", "ldap://dc2.example.com:3268"}));
    EXPECT_TRUE(ldap.start_tls);
    EXPECT_FALSE(ldap.tls_verify);
    EXPECT_EQ(ldap.ca_file, fs::path("/etc/ssl/corp-ca.pem"));
    EXPECT_EQ(ldap.client_cert_file, fs::path("/etc/orgsync/ldap.crt"));
    EXPECT_EQ(ldap.client_key_file, fs::path("/run/creds/ldap.key"));
    EXPECT_EQ(ldap.bind_dn, "CN=orgsync,OU=Services,DC=example,DC=com");
    EXPECT_EQ(ldap.bind_password_file, fs::path("/run/creds/ldap-password"));
    EXPECT_EQ(ldap.user_base, "OU=People,DC=example,DC=com");
    EXPECT_EQ(ldap.user_filter,
              "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))");
    EXPECT_EQ(ldap.group_base, "OU=Groups,DC=example,DC=com");
    EXPECT_EQ(ldap.group_filter, "(objectClass=group)");
    EXPECT_EQ(ldap.group_member_attribute, "memberOf");
    EXPECT_EQ(ldap.email_attribute, "userPrincipalName");
    EXPECT_EQ(ldap.interval, 90min);
    EXPECT_EQ(ldap.timeout, 2min);
    EXPECT_EQ(ldap.page_size, 500);

    const SourceConfig& okta = config->sources[1];
    EXPECT_EQ(okta.name, "okta");
    EXPECT_EQ(okta.type, "scim");
    ASSERT_TRUE(std::holds_alternative<ScimSourceConfig>(okta.settings));
    const auto& scim = std::get<ScimSourceConfig>(okta.settings);
    EXPECT_EQ(scim.org, "acme-labs");
    EXPECT_EQ(scim.token_file, fs::path("/run/creds/okta-token"));

    ASSERT_EQ(config->webhook_targets.size(), 2U);
    EXPECT_EQ(config->webhook_targets[0].url, "https://platform.example.com/hooks/orgsync");
    EXPECT_EQ(config->webhook_targets[0].secret_file, fs::path("/run/creds/webhook-out-1"));
    EXPECT_EQ(config->webhook_targets[1].url, "http://localhost:8080/events");
    EXPECT_EQ(config->webhook_targets[1].secret_file, fs::path("/run/creds/webhook-out-2"));

    EXPECT_EQ(config->find_source("okta"), &config->sources[1]);
    EXPECT_EQ(config->find_source("nope"), nullptr);
}

TEST(ConfigTest, EmptyFileGetsDefaults) {
    const auto config = parse_config("", "/etc/orgsync/orgsyncd.toml");
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
    EXPECT_EQ(config->store_path, fs::path("/var/lib/orgsync/orgsync.db"));
    EXPECT_EQ(config->http_listen, "127.0.0.1:8650");
    EXPECT_EQ(config->api_token_file, fs::path());
    EXPECT_EQ(config->tls_cert_file, fs::path());
    EXPECT_EQ(config->tls_key_file, fs::path());
    EXPECT_EQ(config->mapping_file, fs::path("/etc/orgsync/mapping.toml"));
    EXPECT_EQ(config->log_level, "info");
    EXPECT_TRUE(config->sources.empty());
    EXPECT_EQ(config->webhook_secret_file, fs::path());
    EXPECT_TRUE(config->webhook_targets.empty());
    EXPECT_EQ(config->webhook_max_attempts, 20);
    EXPECT_EQ(config->webhook_batch_size, 100);
    EXPECT_EQ(config->webhook_timeout, 10s);
    EXPECT_EQ(config->webhook_retry_initial, 1s);
    EXPECT_EQ(config->webhook_retry_max, 5min);

    // The option table's defaults are the ones the header documents.
    Config expected;
    expected.file = "/etc/orgsync/orgsyncd.toml";
    expected.mapping_file = "/etc/orgsync/mapping.toml";
    EXPECT_EQ(*config, expected);
}

TEST(ConfigTest, SourceDefaults) {
    const auto config = parse_config(R"(
[[source]]
name = "corp"
type = "ldap"
uri = "ldaps://ldap.example.com"
user_base = "ou=people,dc=example,dc=com"
)",
                                     "/etc/orgsync/orgsyncd.toml");
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
    ASSERT_EQ(config->sources.size(), 1U);
    const auto& ldap = std::get<LdapSourceConfig>(config->sources[0].settings);
    EXPECT_EQ(ldap.flavor, LdapFlavor::openldap);
    EXPECT_EQ(ldap.uris, std::vector<std::string>{"ldaps://ldap.example.com"});
    EXPECT_FALSE(ldap.start_tls);
    EXPECT_TRUE(ldap.tls_verify);
    EXPECT_EQ(ldap.ca_file, fs::path());
    EXPECT_EQ(ldap.bind_dn, "");
    EXPECT_EQ(ldap.bind_password_file, fs::path());
    EXPECT_EQ(ldap.user_filter, "(objectClass=inetOrgPerson)");
    EXPECT_EQ(ldap.group_base, "");
    EXPECT_EQ(ldap.group_filter, "(objectClass=groupOfNames)");
    EXPECT_EQ(ldap.group_member_attribute, "member");
    EXPECT_EQ(ldap.email_attribute, "mail");
    EXPECT_EQ(ldap.interval, 15min);
    EXPECT_EQ(ldap.timeout, 30s);
    EXPECT_EQ(ldap.page_size, 1000);

    // The option table's defaults are the ones the header documents.
    LdapSourceConfig expected;
    expected.uris = {"ldaps://ldap.example.com"};
    expected.user_base = "ou=people,dc=example,dc=com";
    EXPECT_EQ(ldap, expected);
}

TEST(ConfigTest, RelativePathsAreResolvedAgainstTheConfigDirectory) {
    const auto config = parse_config(R"(
[store]
path = "state/orgsync.db"
[http]
api_token_file = "../secrets/./api-token"
[[source]]
name = "okta"
type = "scim"
org = "acme"
token_file = "okta-token"
[[webhook.target]]
url = "https://example.com/hook"
secret_file = "/abs/secret"
)",
                                     "/srv/orgsync/conf/orgsyncd.toml");
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
    EXPECT_EQ(config->store_path, fs::path("/srv/orgsync/conf/state/orgsync.db"));
    EXPECT_EQ(config->api_token_file, fs::path("/srv/orgsync/secrets/api-token"));
    EXPECT_EQ(config->mapping_file, fs::path("/srv/orgsync/conf/mapping.toml"));
    EXPECT_EQ(std::get<ScimSourceConfig>(config->sources[0].settings).token_file,
              fs::path("/srv/orgsync/conf/okta-token"));
    EXPECT_EQ(config->webhook_targets[0].secret_file, fs::path("/abs/secret"));
}

TEST(ConfigTest, RelativeConfigFileResolvesAgainstWorkingDirectory) {
    const auto config = parse_config("[store]\npath = \"orgsync.db\"\n", "conf/orgsyncd.toml");
    ASSERT_TRUE(config.has_value());
    EXPECT_EQ(config->file, fs::path("conf/orgsyncd.toml"));
    EXPECT_EQ(config->store_path, (fs::current_path() / "conf/orgsync.db").lexically_normal());
}

// --- errors: exact text, as check-config prints it ---

TEST(ConfigErrorTest, UnknownTopLevelKey) {
    EXPECT_EQ(errors_of("stor_path = \"/x\"\n"),
              Lines{R"(orgsyncd.toml:1:1: unknown key "stor_path" at top level)"});
}

TEST(ConfigErrorTest, UnknownTable) {
    EXPECT_EQ(errors_of("[stores]\npath = \"/x\"\n[http.tls]\ncert = \"x\"\n"),
              (Lines{"orgsyncd.toml:1:2: unknown table [stores]",
                     "orgsyncd.toml:3:7: unknown table [http.tls]"}));
}

TEST(ConfigErrorTest, UnknownKeyInHttp) {
    EXPECT_EQ(errors_of("[http]\n\n\n\n\n\nlisen = \"127.0.0.1:8650\"\n"),
              Lines{R"(orgsyncd.toml:7:1: unknown key "lisen" in [http])"});
}

TEST(ConfigErrorTest, UnknownKeyInSource) {
    EXPECT_EQ(errors_of(R"([[source]]
name = "okta"
type = "scim"
org = "acme"
token_file = "t"
token = "s3cr3t"
)"),
              Lines{R"(orgsyncd.toml:6:1: unknown key "token" in [[source]] "okta")"});
}

TEST(ConfigErrorTest, UnknownKeyInWebhookTarget) {
    EXPECT_EQ(errors_of(R"([[webhook.target]]
url = "https://example.com/"
secret_file = "s"
secret = "abc"
)"),
              Lines{R"(orgsyncd.toml:4:1: unknown key "secret" in [[webhook.target]] #1)"});
}

TEST(ConfigErrorTest, WrongType) {
    EXPECT_EQ(
        errors_of("[store]\npath = 5\n"),
        Lines{R"(orgsyncd.toml:2:8: key "path" in [store]: expected a string, got an integer)"});
    EXPECT_EQ(
        errors_of("http = \"127.0.0.1:8650\"\n"),
        Lines{R"(orgsyncd.toml:1:8: key "http" at top level: expected a table, got a string)"});
    EXPECT_EQ(
        errors_of("[source]\nname = \"x\"\n"),
        Lines{
            R"(orgsyncd.toml:1:1: key "source" at top level: expected an array of tables, got a table)"});
}

TEST(ConfigErrorTest, BadEnumValue) {
    EXPECT_EQ(
        errors_of("[log]\nlevel = \"verbose\"\n"),
        Lines{
            R"(orgsyncd.toml:2:9: key "level" in [log]: must be one of: trace, debug, info, warn, error, critical, off)"});
}

constexpr std::string_view k_ldap_source = R"([[source]]
name = "corp"
type = "ldap"
uri = "ldap://ldap.example.com"
user_base = "dc=example,dc=com"
)";

TEST(ConfigErrorTest, BadDuration) {
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "interval = \"15 minutes\"\n"),
        Lines{
            R"(orgsyncd.toml:6:12: key "interval" in [[source]] "corp": must be a duration such as "30s", "15m" or "1h30m" (units d, h, m, s))"});
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "interval = \"5s\"\n"),
        Lines{
            R"(orgsyncd.toml:6:12: key "interval" in [[source]] "corp": must be between 10s and 7d)"});
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "interval = 900\n"),
        Lines{
            R"(orgsyncd.toml:6:12: key "interval" in [[source]] "corp": expected a duration string, got an integer)"});
}

// Filters and DNs are checked when the file is loaded, so a typo (or a value
// pasted unescaped) is reported by check-config, not by the server later.
TEST(ConfigErrorTest, LdapFiltersAndDns) {
    const auto error_of = [](std::string_view line) {
        auto errors = errors_of(std::string(k_ldap_source) + std::string(line));
        return errors.size() == 1 ? errors.front() : "(" + std::to_string(errors.size()) + ")";
    };
    EXPECT_EQ(error_of("user_filter = \"(uid=*)(|(uid=*)\"\n").substr(0, 75),
              R"(orgsyncd.toml:6:15: key "user_filter" in [[source]] "corp": must be an LDAP)");
    EXPECT_NE(error_of("group_filter = \"objectClass=group\"\n").find("RFC 4515"),
              std::string::npos);
    EXPECT_NE(error_of("group_base = \"groups\"\n").find("must be a distinguished name"),
              std::string::npos);
    EXPECT_NE(errors_of(std::string(k_ldap_source) + "bind_dn = \"cn=a,,dc=x\"\n")
                  .front()
                  .find("must be a distinguished name"),
              std::string::npos);
    EXPECT_NE(error_of("email_attribute = \"mail)(x\"\n").find("must be an attribute name"),
              std::string::npos);
    EXPECT_NE(error_of("flavor = \"ad\"\nlive = true\n").find("needs flavor \"openldap\""),
              std::string::npos);
    EXPECT_EQ(errors_of(std::string(k_ldap_source) +
                        "user_filter = \"(&(objectClass=person)(cn=a\\\\2ab))\"\n"
                        "full_sync_interval = \"6h\"\nnested_groups = false\n"),
              Lines{});
}

TEST(ConfigErrorTest, PageSizeOutOfRange) {
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "page_size = 0\n"),
        Lines{
            R"(orgsyncd.toml:6:13: key "page_size" in [[source]] "corp": must be between 1 and 100000)"});
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "page_size = 100001\n"),
        Lines{
            R"(orgsyncd.toml:6:13: key "page_size" in [[source]] "corp": must be between 1 and 100000)"});
}

TEST(ConfigErrorTest, MissingRequiredKey) {
    EXPECT_EQ(errors_of(R"([log]
level = "info"

[[source]]
name = "corp"
type = "ldap"
uri = "ldap://ldap.example.com"
)"),
              Lines{R"(orgsyncd.toml:4:1: missing required key "user_base" in [[source]] "corp")"});
    EXPECT_EQ(errors_of("[[source]]\ntype = \"scim\"\norg = \"acme\"\ntoken_file = \"t\"\n"),
              Lines{R"(orgsyncd.toml:1:1: missing required key "name" in [[source]] #1)"});
    EXPECT_EQ(
        errors_of("[[webhook.target]]\nurl = \"https://example.com/\"\n"),
        Lines{R"(orgsyncd.toml:1:1: missing required key "secret_file" in [[webhook.target]] #1)"});
}

TEST(ConfigErrorTest, DuplicateSourceName) {
    EXPECT_EQ(
        errors_of(R"([[source]]
name = "okta"
type = "scim"
org = "acme"
token_file = "a"

[[source]]
name = "okta"
type = "scim"
org = "globex"
token_file = "b"
)"),
        Lines{
            R"(orgsyncd.toml:8:8: key "name" in [[source]] #2: a source with this name is already defined on line 1)"});
}

TEST(ConfigErrorTest, InvalidSourceName) {
    EXPECT_EQ(
        errors_of(
            "[[source]]\nname = \"Corp\"\ntype = \"scim\"\norg = \"acme\"\ntoken_file = \"t\"\n"),
        Lines{
            R"(orgsyncd.toml:2:8: key "name" in [[source]] #1: must be 1 to 63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit)"});
}

TEST(ConfigErrorTest, KeyOfTheOtherSourceType) {
    EXPECT_EQ(
        errors_of(R"([[source]]
name = "okta"
type = "scim"
org = "acme"
token_file = "t"
user_base = "dc=example,dc=com"
)"),
        Lines{
            R"(orgsyncd.toml:6:1: key "user_base" in [[source]] "okta": not valid for a source of type "scim")"});
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "org = \"acme\"\n"),
        Lines{
            R"(orgsyncd.toml:6:1: key "org" in [[source]] "corp": not valid for a source of type "ldap")"});
}

TEST(ConfigErrorTest, UnknownSourceType) {
    EXPECT_EQ(
        errors_of("[[source]]\nname = \"x\"\ntype = \"okta\"\norg = \"acme\"\nfoo = 1\n"),
        (Lines{R"(orgsyncd.toml:3:8: key "type" in [[source]] "x": must be one of: ldap, scim)",
               R"(orgsyncd.toml:5:1: unknown key "foo" in [[source]] "x")"}));
}

TEST(ConfigErrorTest, ScimOrgMustBeASlug) {
    EXPECT_EQ(
        errors_of("[[source]]\nname = \"okta\"\ntype = \"scim\"\norg = \"Acme Corp\"\ntoken_file = "
                  "\"t\"\n"),
        Lines{
            R"(orgsyncd.toml:4:7: key "org" in [[source]] "okta": must be 1 to 63 characters of a-z, 0-9 and "-")"});
}

TEST(ConfigErrorTest, LdapUris) {
    EXPECT_EQ(
        errors_of(R"([[source]]
name = "corp"
type = "ldap"
uri = ["ldap://a.example.com", "https://b.example.com"]
user_base = "dc=example,dc=com"
)"),
        Lines{
            R"(orgsyncd.toml:4:32: key "uri" in [[source]] "corp": must be an ldap:// or ldaps:// URI)"});
    EXPECT_EQ(
        errors_of("[[source]]\nname = \"corp\"\ntype = \"ldap\"\nuri = []\nuser_base = \"dc=x\"\n"),
        Lines{R"(orgsyncd.toml:4:7: key "uri" in [[source]] "corp": must not be empty)"});
    EXPECT_EQ(
        errors_of("[[source]]\nname = \"corp\"\ntype = \"ldap\"\nuri = [\"ldap://a\", "
                  "2]\nuser_base = \"dc=x\"\n"),
        Lines{
            R"(orgsyncd.toml:4:20: key "uri" in [[source]] "corp": expected a string or an array of strings, got an array containing an integer)"});
}

TEST(ConfigErrorTest, LdapKeysThatGoTogether) {
    EXPECT_EQ(
        errors_of(std::string(k_ldap_source) + "bind_dn = \"cn=orgsync,dc=example,dc=com\"\n"),
        Lines{
            R"(orgsyncd.toml:6:1: key "bind_dn" in [[source]] "corp": must be set together with "bind_password_file")"});
    EXPECT_EQ(
        errors_of(R"([[source]]
name = "corp"
type = "ldap"
uri = "ldaps://ldap.example.com"
user_base = "dc=example,dc=com"
start_tls = true
)"),
        Lines{
            R"(orgsyncd.toml:6:1: key "start_tls" in [[source]] "corp": cannot be used with ldaps:// URIs, which are encrypted already)"});
}

TEST(ConfigErrorTest, TlsCertWithoutKey) {
    EXPECT_EQ(
        errors_of("[http]\ntls_cert_file = \"/etc/orgsync/tls.crt\"\n"),
        Lines{
            R"(orgsyncd.toml:2:1: key "tls_cert_file" in [http]: must be set together with "tls_key_file")"});
    EXPECT_EQ(
        errors_of("[http]\ntls_key_file = \"/etc/orgsync/tls.key\"\n"),
        Lines{
            R"(orgsyncd.toml:2:1: key "tls_key_file" in [http]: must be set together with "tls_cert_file")"});
}

TEST(ConfigErrorTest, BadListenAddress) {
    const std::string message =
        R"(key "listen" in [http]: must be "host:port" with a port from 0 to 65535 (0: any free port), e.g. "127.0.0.1:8650" or "[::1]:8650")";
    for (const char* listen : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", ":8650", "::1:8650",
                               "[::1]8650", "localhost:http", "[]:8650"}) {
        EXPECT_EQ(errors_of(std::string("[http]\nlisten = \"") + listen + "\"\n"),
                  Lines{"orgsyncd.toml:2:10: " + message})
            << listen;
    }
}

TEST(ConfigErrorTest, WebhookTargetUrl) {
    EXPECT_EQ(
        errors_of("[[webhook.target]]\nurl = \"ftp://example.com/\"\nsecret_file = \"s\"\n"),
        Lines{
            R"(orgsyncd.toml:2:7: key "url" in [[webhook.target]] #1: must be an http:// or https:// URL)"});
}

TEST(ConfigErrorTest, EmptyPath) {
    EXPECT_EQ(errors_of("[mapping]\nfile = \"\"\n"),
              Lines{R"(orgsyncd.toml:2:8: key "file" in [mapping]: must not be empty)"});
}

TEST(ConfigErrorTest, TomlSyntaxError) {
    const Lines errors = errors_of("[http]\nlisten = \"127.0.0.1:8650\n[log]\n");
    ASSERT_EQ(errors.size(), 1U);
    EXPECT_TRUE(errors[0].starts_with("orgsyncd.toml:2:")) << errors[0];
    EXPECT_NE(errors[0].find(": TOML syntax error: "), std::string::npos) << errors[0];

    const auto config = parse_config("a = 1\na = 2\n", k_file);
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().front().line, 2);
    EXPECT_GT(config.error().front().column, 0);
}

TEST(ConfigErrorTest, AllErrorsAreReportedInFileOrder) {
    EXPECT_EQ(
        errors_of(R"([store]
path = 1

[[source]]
name = "corp"
type = "ldap"
uri = "ldap://ldap.example.com"
page_size = 0

[http]
listen = "localhost"
tls_key_file = "k"

[log]
level = "loud"

[extra]
)"),
        (Lines{
            R"(orgsyncd.toml:2:8: key "path" in [store]: expected a string, got an integer)",
            R"(orgsyncd.toml:4:1: missing required key "user_base" in [[source]] "corp")",
            R"(orgsyncd.toml:8:13: key "page_size" in [[source]] "corp": must be between 1 and 100000)",
            R"(orgsyncd.toml:11:10: key "listen" in [http]: must be "host:port" with a port from 0 to 65535 (0: any free port), e.g. "127.0.0.1:8650" or "[::1]:8650")",
            R"(orgsyncd.toml:12:1: key "tls_key_file" in [http]: must be set together with "tls_cert_file")",
            R"(orgsyncd.toml:15:9: key "level" in [log]: must be one of: trace, debug, info, warn, error, critical, off)",
            R"(orgsyncd.toml:17:2: unknown table [extra])",
        }));
}

TEST(ConfigErrorTest, ValuesAreNeverEchoed) {
    const Lines errors =
        errors_of(std::string(k_ldap_source) + "bind_password = \"hunter2\"\nbind_dn = 42\n");
    ASSERT_EQ(errors.size(), 2U) << testing::PrintToString(errors);
    for (const std::string& error : errors) {
        EXPECT_EQ(error.find("hunter2"), std::string::npos) << error;
        EXPECT_EQ(error.find("42"), std::string::npos) << error;
    }
}

TEST(ConfigErrorTest, FormatWithoutPosition) {
    EXPECT_EQ((ConfigError{"a.toml", 3, 7, "bad"}.to_string()), "a.toml:3:7: bad");
    EXPECT_EQ((ConfigError{"a.toml", 0, 0, "cannot read"}.to_string()), "a.toml: cannot read");
}

// --- files ---

TEST(LoadConfigTest, ExampleConfigIsValid) {
    const fs::path example = fs::path(ORGSYNC_SOURCE_DIR) / "etc/orgsyncd.toml";
    const auto config = load_config(example);
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
    EXPECT_EQ(config->file, example);
    ASSERT_EQ(config->sources.size(), 2U);
    EXPECT_EQ(config->sources[0].type, "ldap");
    EXPECT_EQ(config->sources[1].type, "scim");
    EXPECT_EQ(config->webhook_targets.size(), 1U);
}

TEST(LoadConfigTest, ReadsTheFile) {
    const fs::path file = fs::path(testing::TempDir()) / "orgsync_config_test.toml";
    {
        std::ofstream out(file);
        out << "[store]\npath = \"db/orgsync.db\"\n";
    }
    const auto config = load_config(file);
    fs::remove(file);
    ASSERT_TRUE(config.has_value()) << config.error().front().to_string();
    EXPECT_EQ(config->store_path, (file.parent_path() / "db/orgsync.db").lexically_normal());
}

TEST(LoadConfigTest, MissingFile) {
    const auto config = load_config("/nonexistent/orgsyncd.toml");
    ASSERT_FALSE(config.has_value());
    ASSERT_EQ(config.error().size(), 1U);
    EXPECT_EQ(config.error()[0].to_string(),
              "/nonexistent/orgsyncd.toml: cannot read the file: No such file or directory");
}

TEST(LoadConfigTest, Directory) {
    const auto config = load_config("/");
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error()[0].to_string(), "/: cannot read the file: it is a directory");
}

// --- value parsers ---

TEST(ListenAddressTest, Parses) {
    const auto v4 = parse_listen_address("127.0.0.1:8650");
    ASSERT_TRUE(v4.has_value());
    EXPECT_EQ(v4->host, "127.0.0.1");
    EXPECT_EQ(v4->port, 8650);
    const auto v6 = parse_listen_address("[::1]:65535");
    ASSERT_TRUE(v6.has_value());
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->port, 65535);
    const auto name = parse_listen_address("orgsync.internal:1");
    ASSERT_TRUE(name.has_value());
    EXPECT_EQ(name->host, "orgsync.internal");
    EXPECT_EQ(name->port, 1);
    EXPECT_FALSE(parse_listen_address("127.0.0.1:08650x"));
    EXPECT_FALSE(parse_listen_address("127.0.0.1:"));
    EXPECT_FALSE(parse_listen_address("[::1"));
    EXPECT_FALSE(parse_listen_address("[::1]"));
}

TEST(DurationTest, Parses) {
    EXPECT_EQ(parse_duration("30s"), 30s);
    EXPECT_EQ(parse_duration("15m"), 15min);
    EXPECT_EQ(parse_duration("1h"), 1h);
    EXPECT_EQ(parse_duration("1h30m"), 90min);
    EXPECT_EQ(parse_duration("7d"), 168h);
    EXPECT_EQ(parse_duration("1d2h3m4s"), 26h + 3min + 4s);
    EXPECT_EQ(parse_duration("90s"), 90s);
    for (const char* bad :
         {"", "15", "m", "15x", "1m1h", "1h1h", "1.5h", " 15m", "15m ", "-1s", "99999999999d"}) {
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
    }
}

TEST(DurationTest, Formats) {
    EXPECT_EQ(format_duration(10s), "10s");
    EXPECT_EQ(format_duration(604800s), "7d");
    EXPECT_EQ(format_duration(5400s), "1h30m");
    EXPECT_EQ(format_duration(0s), "0s");
    EXPECT_EQ(parse_duration(format_duration(93784s)), 93784s);
}

TEST(LdapFlavorTest, RoundTrips) {
    for (const LdapFlavor flavor :
         {LdapFlavor::openldap, LdapFlavor::active_directory, LdapFlavor::ds389}) {
        EXPECT_EQ(parse_ldap_flavor(to_string(flavor)), flavor);
    }
    EXPECT_EQ(to_string(LdapFlavor::ds389), "389ds");
    EXPECT_FALSE(parse_ldap_flavor("AD"));
}

TEST(ConfigTest, WebhookDeliveryKeysAreRangeChecked) {
    EXPECT_EQ(
        errors_of("[webhook]\nmax_attempts = 0\n"),
        Lines{
            R"(orgsyncd.toml:2:16: key "max_attempts" in [webhook]: must be between 1 and 1000)"});
    EXPECT_EQ(
        errors_of("[webhook]\nbatch_size = 1001\n"),
        Lines{R"(orgsyncd.toml:2:14: key "batch_size" in [webhook]: must be between 1 and 1000)"});
    EXPECT_EQ(
        errors_of("[webhook]\ntimeout = \"10m\"\n"),
        Lines{R"(orgsyncd.toml:2:11: key "timeout" in [webhook]: must be between 1s and 5m)"});
    EXPECT_EQ(
        errors_of("[webhook]\nretry_initial = \"0s\"\n"),
        Lines{
            R"(orgsyncd.toml:2:17: key "retry_initial" in [webhook]: must be between 1s and 1h)"});
    EXPECT_EQ(
        errors_of("[webhook]\nretry_max = \"2d\"\n"),
        Lines{R"(orgsyncd.toml:2:13: key "retry_max" in [webhook]: must be between 1s and 1d)"});
    EXPECT_EQ(
        errors_of("[webhook]\nmax_attempts = \"5\"\n"),
        Lines{
            R"(orgsyncd.toml:2:16: key "max_attempts" in [webhook]: expected an integer, got a string)"});
}

TEST(ConfigTest, WebhookRetryMaxIsNotBelowRetryInitial) {
    EXPECT_EQ(
        errors_of("[webhook]\nretry_initial = \"1m\"\nretry_max = \"30s\"\n"),
        Lines{
            R"(orgsyncd.toml:3:1: key "retry_max" in [webhook]: must not be shorter than retry_initial)"});
    // Against the default retry_max of 5m.
    EXPECT_EQ(
        errors_of("[webhook]\nretry_initial = \"10m\"\n"),
        Lines{
            R"(orgsyncd.toml:2:1: key "retry_initial" in [webhook]: must not be longer than retry_max)"});
    EXPECT_TRUE(parse_config("[webhook]\nretry_initial = \"5m\"\nretry_max = \"5m\"\n", k_file));
}

TEST(ConfigTest, WebhookTargetUrlsAreUnique) {
    EXPECT_EQ(
        errors_of(R"([[webhook.target]]
url = "https://a.example/hooks"
secret_file = "one"

[[webhook.target]]
url = "https://a.example/hooks"
secret_file = "two"
)"),
        Lines{
            R"(orgsyncd.toml:6:7: key "url" in [[webhook.target]] #2: a target with this URL is already defined on line 1)"});
}

}  // namespace
}  // namespace orgsync::daemon
