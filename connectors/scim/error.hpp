#pragma once

// The error every SCIM core function returns: the RFC 7644 §3.12 `scimType`
// the server puts in its 400 response, and a message for the IdP's admin
// (it names attributes and positions, never echoes whole values).

#include <cstdint>
#include <string>
#include <string_view>

namespace orgsync::scim {

enum class ScimType : std::uint8_t {
    invalid_filter,  // "invalidFilter": the filter does not parse or cannot be evaluated
    invalid_path,    // "invalidPath": a PATCH path does not parse or names no attribute
    invalid_value,   // "invalidValue": a value of the wrong type, or a required one missing
    no_target,       // "noTarget": a PATCH target that must exist does not
    mutability,      // "mutability": a write to a readOnly attribute (id, meta, groups)
    too_many,        // "tooMany": more operations or members than the server accepts
    invalid_syntax,  // "invalidSyntax": the request body is not a PatchOp message
};

// The RFC spelling, e.g. "invalidFilter".
std::string_view to_string(ScimType type);

struct ScimError {
    ScimType type;
    std::string message;

    bool operator==(const ScimError&) const = default;
};

}  // namespace orgsync::scim
