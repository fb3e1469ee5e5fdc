#include "daemon/setup.hpp"

#include <fmt/format.h>

#include <array>
#include <fstream>
#include <ostream>

namespace orgsync::daemon {

namespace fs = std::filesystem;

std::optional<std::string> read_secret_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::string text;
    std::array<char, 4096> chunk{};
    while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
        text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (!in.eof()) {
        return std::nullopt;
    }
    if (text.ends_with("\r\n")) {
        text.resize(text.size() - 2);
    } else if (text.ends_with('\n')) {
        text.pop_back();
    }
    return text;
}

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

namespace {

std::vector<mapping::SourceRef> source_refs(const Config& config) {
    std::vector<mapping::SourceRef> refs;
    for (const auto& source : config.sources) {
        mapping::SourceRef ref{.name = source.name, .type = source.type};
        if (const auto* scim = std::get_if<ScimSourceConfig>(&source.settings)) {
            ref.org = scim->org;
        }
        refs.push_back(std::move(ref));
    }
    return refs;
}

}  // namespace

std::optional<mapping::Mapping> load_mapping_or_report(const Config& config, std::ostream& err) {
    auto loaded = mapping::load_mapping(config.mapping_file, source_refs(config));
    if (!loaded) {
        for (const auto& error : loaded.error()) {
            err << error.to_string() << '\n';
        }
        return std::nullopt;
    }
    return std::move(*loaded);
}

std::optional<std::vector<sync::SourceSpec>> select_sources(const Config& config,
                                                            const std::string& name,
                                                            std::ostream& err) {
    std::vector<sync::SourceSpec> specs;
    for (const auto& source : config.sources) {
        if (!name.empty() && source.name != name) {
            continue;
        }
        sync::SourceSpec spec{source.name, source.type, ""};
        if (const auto* scim = std::get_if<ScimSourceConfig>(&source.settings)) {
            spec.org = scim->org;
        }
        specs.push_back(std::move(spec));
    }
    if (!name.empty() && specs.empty()) {
        err << fmt::format("orgsyncd: no source named {} in {}\n", name, config.file.string());
        return std::nullopt;
    }
    if (specs.empty()) {
        specs.push_back(sync::SourceSpec{"mapping", "mapping", ""});
    }
    return specs;
}

}  // namespace orgsync::daemon
