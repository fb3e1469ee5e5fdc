#include "daemon/cli.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "connectors/ldap/ldap_source.hpp"
#include "daemon/api.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"
#include "daemon/setup.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"
#include "sync/run.hpp"

namespace orgsync::daemon {
namespace {

namespace fs = std::filesystem;
using directory::Store;

struct AuthorizeOptions {
    std::string user;
    std::string org;
    std::string project;
    std::string dataset;
    std::string action;
    bool json = false;
};

int check_config(const fs::path& file, std::ostream& out, std::ostream& err) {
    auto config = load_or_report(file, err);
    if (!config) {
        return k_exit_negative;
    }
    auto loaded = load_mapping_or_report(*config, err);
    if (!loaded) {
        return k_exit_negative;
    }
    out << fmt::format("{}: OK ({} source{})\n", file.string(), config->sources.size(),
                       config->sources.size() == 1 ? "" : "s");
    out << fmt::format("{}: OK ({} org{})\n", config->mapping_file.string(), loaded->orgs.size(),
                       loaded->orgs.size() == 1 ? "" : "s");
    return k_exit_ok;
}

struct SyncOptions {
    std::string source;
    bool json = false;
    bool force = false;
    bool full = false;
    bool from_mirror = false;  // re-derive from stored mirrors, contacting no source
};

// The LDAP settings of `source`, or nullptr for other types.
const ldap::LdapSourceConfig* ldap_settings(const Config& config, const std::string& source) {
    const SourceConfig* found = config.find_source(source);
    return found == nullptr ? nullptr : std::get_if<ldap::LdapSourceConfig>(&found->settings);
}

// What `plan` and `sync` work from: the daemon config, the mapping, and the
// sources selected.
struct SyncContext {
    Config config;
    mapping::Mapping mapping;
    std::vector<sync::SourceSpec> sources;
};

std::optional<SyncContext> load_sync_context(const fs::path& file, const std::string& source,
                                             std::ostream& err) {
    auto config = load_or_report(file, err);
    if (!config) {
        return std::nullopt;
    }
    auto loaded = load_mapping_or_report(*config, err);
    auto sources = select_sources(*config, source, err);
    if (!loaded || !sources) {
        return std::nullopt;
    }
    return SyncContext{std::move(*config), std::move(*loaded), std::move(*sources)};
}

// Plans read the store without creating it: before the first sync they are
// made against an empty in-memory store.
int plan(const fs::path& file, const SyncOptions& options, std::ostream& out, std::ostream& err) {
    auto context = load_sync_context(file, options.source, err);
    if (!context) {
        return k_exit_error;
    }
    std::error_code ignored;
    bool exists = fs::exists(context->config.store_path, ignored);
    auto store = Store::open(exists ? context->config.store_path : fs::path(":memory:"));
    if (!store) {
        err << "orgsyncd: " << store.error().message << '\n';
        return k_exit_error;
    }
    nlohmann::json plans = nlohmann::json::array();
    for (const auto& source : context->sources) {
        // A directory is read as it is now; other sources plan from their
        // stored mirror (what they pushed last).
        directory::Expected<sync::SourceData> mirror;
        const auto* ldap =
            options.from_mirror ? nullptr : ldap_settings(context->config, source.name);
        if (ldap != nullptr) {
            ldap::ReadStats stats;
            auto read = ldap::read_source(*ldap, source.name, stats);
            if (!read) {
                err << fmt::format("orgsyncd: {}: {}: {}\n", source.name,
                                   ldap::to_string(read.error().kind), read.error().message);
                return k_exit_negative;
            }
            mirror = std::move(*read);
        } else {
            mirror = sync::stored_mirror(**store, source.name);
        }
        if (!mirror) {
            err << "orgsyncd: " << mirror.error().message << '\n';
            return k_exit_error;
        }
        auto made = sync::prepare_plan(**store, context->mapping, source, *mirror);
        if (!made) {
            err << "orgsyncd: " << made.error().message << '\n';
            return k_exit_error;
        }
        auto blocked = sync::deletion_guard(*made, context->mapping);
        if (options.json) {
            nlohmann::json entry = sync::to_json(*made);
            entry["blocked"] = blocked ? nlohmann::json(*blocked) : nlohmann::json(nullptr);
            plans.push_back(std::move(entry));
        } else {
            out << sync::to_text(*made);
            if (blocked) {
                out << "  blocked: " << *blocked << '\n';
            }
        }
    }
    if (options.json) {
        out << plans.dump(2) << '\n';
    }
    return k_exit_ok;
}

int run_sync(const fs::path& file, const SyncOptions& options, std::ostream& out,
             std::ostream& err) {
    auto context = load_sync_context(file, options.source, err);
    if (!context) {
        return k_exit_error;
    }
    auto store = Store::open(context->config.store_path);
    if (!store) {
        err << "orgsyncd: " << store.error().message << '\n';
        return k_exit_error;
    }
    int status = k_exit_ok;
    for (const auto& source : context->sources) {
        // A directory is read (fully, or what changed since the last run);
        // other sources re-derive from their stored mirror.
        std::string mode;
        directory::Expected<sync::RunResult> result;
        const auto* ldap =
            options.from_mirror ? nullptr : ldap_settings(context->config, source.name);
        if (ldap != nullptr) {
            auto report = ldap::sync_ldap_source(
                **store, context->mapping, source, *ldap,
                ldap::LdapSyncOptions{.force = options.force, .full = options.full});
            if (report) {
                mode = fmt::format(" ({})", report->mode);
                result = std::move(report->run);
            } else {
                result = std::unexpected(report.error());
            }
        } else {
            result = sync::run_sync(**store, context->mapping, source, std::nullopt,
                                    sync::RunOptions{options.force});
        }
        if (!result) {
            err << "orgsyncd: " << source.name << ": " << result.error().message << '\n';
            return k_exit_error;
        }
        out << fmt::format("{}: {}{}, {} change{}, {} held", source.name, result->result, mode,
                           result->plan.changes.size(), result->plan.changes.size() == 1 ? "" : "s",
                           result->plan.held.size());
        if (!result->message.empty()) {
            out << ": " << result->message;
        }
        out << '\n';
        for (const auto& held : result->plan.held) {
            out << fmt::format(
                "  held: {} {} {}: {}\n", sync::to_string(held.change.kind), held.change.org(),
                held.change.email().empty() ? held.change.group() : held.change.email(),
                held.reason);
        }
        if (result->result != "applied") {
            status = k_exit_negative;
        }
    }
    return status;
}

// Decisions from the CLI are read from the store file of the daemon config;
// the store must already exist (a missing file is a wrong path, not an
// empty directory).
int authorize(const fs::path& file, const AuthorizeOptions& options, std::ostream& out,
              std::ostream& err) {
    auto config = load_or_report(file, err);
    if (!config) {
        return k_exit_error;
    }
    std::error_code ignored;
    if (!fs::exists(config->store_path, ignored)) {
        err << fmt::format("orgsyncd: store {} does not exist\n", config->store_path.string());
        return k_exit_error;
    }
    auto store = Store::open(config->store_path);
    if (!store) {
        err << "orgsyncd: " << store.error().message << '\n';
        return k_exit_error;
    }
    directory::Request request{options.user, options.org, std::nullopt, std::nullopt,
                               options.action};
    if (!options.project.empty()) {
        request.project = options.project;
    }
    if (!options.dataset.empty()) {
        request.dataset = options.dataset;
    }
    auto decision = directory::authorize(*(*store)->snapshot(), request);
    if (!decision) {
        err << "orgsyncd: " << decision.error().message << '\n';
        return k_exit_error;
    }
    if (options.json) {
        out << decision_json(*decision).dump() << '\n';
    } else {
        out << (decision->allow ? "allow" : "deny") << ": " << decision->reason << '\n';
    }
    return decision->allow ? k_exit_ok : k_exit_negative;
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
    // Log lines (`event=… key=value`) go to standard error; standard output
    // carries only the command's answer.
    setup_logging();
    CLI::App app{"orgsyncd keeps organizations in step with identity systems", "orgsyncd"};
    app.require_subcommand(1);

    fs::path config_file;

    auto* version = app.add_subcommand("version", "Print the version");

    auto* serve =
        app.add_subcommand("run", "Run the daemon in the foreground (systemd Type=notify)");
    serve->add_option("-c,--config", config_file, "Daemon configuration file")->required();

    auto* check = app.add_subcommand("check-config", "Validate the daemon configuration");
    check->add_option("-c,--config", config_file, "Daemon configuration file")->required();

    AuthorizeOptions options;
    auto* decide = app.add_subcommand("authorize", "Decide whether a user may do an action");
    decide->add_option("-c,--config", config_file, "Daemon configuration file")->required();
    decide->add_option("--user", options.user, "The user's email")->required();
    decide->add_option("--org", options.org, "Org slug")->required();
    decide->add_option("--project", options.project, "Project slug (project actions)");
    decide->add_option("--dataset", options.dataset, "Dataset slug (dataset actions)");
    decide->add_option("--action", options.action, "Action, e.g. project.resources.write")
        ->required();
    decide->add_flag("--json", options.json, "Print the decision as JSON");

    SyncOptions plan_options;
    auto* planned = app.add_subcommand("plan", "Show what a sync would change, changing nothing");
    planned->add_option("-c,--config", config_file, "Daemon configuration file")->required();
    planned->add_option("--source", plan_options.source, "Only this source");
    planned->add_flag("--from-mirror", plan_options.from_mirror,
                      "Plan from the stored mirrors without contacting any source");
    planned->add_flag("--json", plan_options.json, "Print the plan as JSON");

    SyncOptions sync_options;
    auto* synced = app.add_subcommand("sync", "Run one sync of every source (or one), then exit");
    synced->add_option("-c,--config", config_file, "Daemon configuration file")->required();
    synced->add_option("--source", sync_options.source, "Only this source");
    synced->add_flag("--from-mirror", sync_options.from_mirror,
                     "Re-derive from the stored mirrors without contacting any source (after a "
                     "mapping change)");
    synced->add_flag("--full", sync_options.full,
                     "Read directories in full even when only changes could be read");
    synced->add_flag("--force", sync_options.force, "Apply a plan the deletion guard blocks");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        if (error.get_exit_code() == 0) {  // --help
            return app.exit(error, out, err);
        }
        err << "orgsyncd: " << error.what() << '\n';
        err << "Run 'orgsyncd --help' for usage.\n";
        return k_exit_error;
    }

    if (version->parsed()) {
        out << "orgsyncd " << ORGSYNC_VERSION << '\n';
        return k_exit_ok;
    }
    if (serve->parsed()) {
        return run_daemon(config_file, err);
    }
    if (check->parsed()) {
        return check_config(config_file, out, err);
    }
    if (decide->parsed()) {
        return authorize(config_file, options, out, err);
    }
    if (planned->parsed()) {
        return plan(config_file, plan_options, out, err);
    }
    if (synced->parsed()) {
        return run_sync(config_file, sync_options, out, err);
    }
    return k_exit_error;
}

}  // namespace orgsync::daemon
