#pragma once

// The store's schema as an ordered list of migrations. The file's
// `PRAGMA user_version` is the number of the last migration applied; Store
// applies the rest at open, each in its own transaction. Never edit a
// released migration: append a new one.

#include <span>
#include <string_view>

namespace orgsync::directory::schema {

struct Migration {
    int version;
    std::string_view description;
    std::string_view sql;
};

std::span<const Migration> migrations();

}  // namespace orgsync::directory::schema
