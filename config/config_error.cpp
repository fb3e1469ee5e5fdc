#include "config/config_error.hpp"

namespace orgsync::config {

std::string ConfigError::to_string() const {
    if (line <= 0) {
        return path + ": " + message;
    }
    return path + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

}  // namespace orgsync::config
