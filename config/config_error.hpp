#pragma once

// The error type of every configuration file orgsyncd reads (the daemon
// configuration, the mapping), so `check-config` prints them alike.

#include <string>

namespace orgsync::config {

// One problem found in a configuration file, written for the admin who edits
// it. `line` and `column` (1-based) point at the offending key or value; they
// are 0 when the problem is the file as a whole (it cannot be read, or it
// lacks something another file needs). Each loader states which values its
// messages may quote: never one that could be a secret.
struct ConfigError {
    std::string path;  // the configuration file, as given to the loader
    int line = 0;
    int column = 0;
    std::string message;

    // "path:line:column: message", or "path: message" when line is 0.
    std::string to_string() const;

    bool operator==(const ConfigError&) const = default;
};

}  // namespace orgsync::config
