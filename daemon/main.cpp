// orgsyncd: the entry point stays thin; every command lives in cli.cpp.

#include <exception>
#include <iostream>

#include "daemon/cli.hpp"

int main(int argc, char** argv) {
    try {
        return orgsync::daemon::run_cli(argc, argv, std::cout, std::cerr);
    } catch (const std::exception& error) {
        std::cerr << "orgsyncd: fatal: " << error.what() << '\n';
    } catch (...) {
        std::cerr << "orgsyncd: fatal: unknown exception\n";
    }
    return orgsync::daemon::k_exit_error;
}
