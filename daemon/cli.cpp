#include "daemon/cli.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "daemon/config.hpp"
#include "directory/policy.hpp"
#include "directory/store.hpp"

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

std::optional<Config> load_or_report(const fs::path& file, std::ostream& err) {
    auto config = load_config(file);
    if (!config) {
        for (const auto& error : config.error()) {
            err << error.to_string() << '\n';
        }
        return std::nullopt;
    }
    return std::move(*config);
}

int check_config(const fs::path& file, std::ostream& out, std::ostream& err) {
    auto config = load_or_report(file, err);
    if (!config) {
        return k_exit_negative;
    }
    out << fmt::format("{}: OK ({} source{})\n", file.string(), config->sources.size(),
                       config->sources.size() == 1 ? "" : "s");
    return k_exit_ok;
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
        nlohmann::json body{{"allow", decision->allow}, {"reason", decision->reason}};
        body["role"] = decision->role ? nlohmann::json(directory::to_string(*decision->role))
                                      : nlohmann::json(nullptr);
        body["level"] = decision->level ? nlohmann::json(directory::to_string(*decision->level))
                                        : nlohmann::json(nullptr);
        out << body.dump() << '\n';
    } else {
        out << (decision->allow ? "allow" : "deny") << ": " << decision->reason << '\n';
    }
    return decision->allow ? k_exit_ok : k_exit_negative;
}

}  // namespace

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
    CLI::App app{"orgsyncd keeps organizations in step with identity systems", "orgsyncd"};
    app.require_subcommand(1);

    fs::path config_file;

    auto* version = app.add_subcommand("version", "Print the version");

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
    if (check->parsed()) {
        return check_config(config_file, out, err);
    }
    if (decide->parsed()) {
        return authorize(config_file, options, out, err);
    }
    return k_exit_error;
}

}  // namespace orgsync::daemon
