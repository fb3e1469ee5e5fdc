#pragma once

// Runs the real orgsyncd binary for the process-level tests: its exit
// status, standard output and standard error.

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace orgsync::daemon::test {

struct Result {
    int status = -1;
    std::string out;
    std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

inline std::string shell_quote(const std::string& arg) {
    std::string quoted = "'";
    for (char c : arg) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return quoted + "'";
}

// Runs ORGSYNCD_BINARY with `args`; `scratch` holds the captured output.
inline Result run_orgsyncd(const std::vector<std::string>& args,
                           const std::filesystem::path& scratch) {
    std::string command = ORGSYNCD_BINARY;
    for (const auto& arg : args) {
        command += " " + shell_quote(arg);
    }
    command += " >" + shell_quote((scratch / "out").string()) + " 2>" +
               shell_quote((scratch / "err").string());
    int raw = std::system(command.c_str());
    return Result{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(scratch / "out"),
                  slurp(scratch / "err")};
}

}  // namespace orgsync::daemon::test
