#pragma once

// What every command that works from the daemon configuration does first:
// load and validate the configuration and the mapping it names, printing
// each error as `path:line:column: message` to `err`, and list the
// configured sources as the sync pipeline knows them.

#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "mapping/mapping.hpp"
#include "sync/plan.hpp"

namespace orgsync::daemon {

// A secret from a file (a systemd credential): its content with one
// trailing newline ("\n" or "\r\n") dropped, or nullopt when the file cannot
// be read. Callers name the file in their errors, never the content.
std::optional<std::string> read_secret_file(const std::filesystem::path& file);

std::optional<Config> load_or_report(const std::filesystem::path& file, std::ostream& err);

std::optional<mapping::Mapping> load_mapping_or_report(const Config& config, std::ostream& err);

// The sources a plan or sync covers: the one named, or every configured
// source; with none configured, the mapping alone (orgs, projects,
// datasets). nullopt (after saying so) when `name` is not configured.
std::optional<std::vector<sync::SourceSpec>> select_sources(const Config& config,
                                                            const std::string& name,
                                                            std::ostream& err);

}  // namespace orgsync::daemon
