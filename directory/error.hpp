#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace orgsync::directory {

// Why a store or policy call failed. The invariant codes name DESIGN §1's
// invariants; each failing call changes nothing.
enum class ErrorCode {
    invalid_argument,  // malformed email, slug, name or enum value
    not_found,         // a referenced org, user, group, project or dataset does not exist
    already_exists,    // a slug or name is taken
    owner_immutable,   // inv. 1: the owner is changed by transfer only, never removed or demoted
    role_requires_internal,  // inv. 2: owner/admin must be internal
    internal_elsewhere,      // inv. 3: a user is internal in at most one org
    admin_must_be_demoted,   // inv. 4: an admin is demoted before being removed (HTTP 409)
    last_project_admin,      // inv. 5: a project keeps at least one explicit admin
    not_a_member,            // the operation needs an org membership the user does not have
    storage,                 // SQLite failed (I/O, corruption, busy past the timeout)
    schema_too_new,          // the store file was written by a newer orgsync
};

std::string_view to_string(ErrorCode code);

struct Error {
    ErrorCode code = ErrorCode::invalid_argument;
    std::string message;  // for the admin: names the records involved, never a secret
    // What the error is about, for callers that act on it: "org/project" for
    // last_project_admin, the email for per-user invariants; may be empty.
    std::string subject;
};

template <typename T>
using Expected = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message, std::string subject = {}) {
    return std::unexpected(Error{code, std::move(message), std::move(subject)});
}

}  // namespace orgsync::directory
