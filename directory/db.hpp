#pragma once

// Internal to directory/: one SQLite connection with a cache of prepared
// statements. Not thread-safe; the Store serialises every use under its mutex.
// SQLite failures surface as SQLite::Exception and are turned into
// ErrorCode::storage at the Store boundary.

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "directory/model.hpp"

namespace orgsync::directory {

class Db {
  public:
    explicit Db(SQLite::Database& database) : m_database(database) {}

    SQLite::Database& database() { return m_database; }

    // A prepared statement for `sql`, reset and with its bindings cleared.
    // Each caller must finish with it before preparing the same text again.
    // `sql` must have static storage (a string literal): statements are
    // cached by its address, so a lookup costs no copy and no hashing of the
    // text.
    template <typename... Args>
    SQLite::Statement& query(const char* sql, const Args&... args) {
        auto& slot = m_cache[sql];
        if (!slot) {
            slot = std::make_unique<SQLite::Statement>(m_database, sql);
        }
        slot->reset();
        slot->clearBindings();
        int index = 0;
        (bind_one(*slot, ++index, args), ...);
        return *slot;
    }

    // Runs a statement that returns no rows; returns the number of rows changed.
    template <typename... Args>
    int run(const char* sql, const Args&... args) {
        return query(sql, args...).exec();
    }

    std::int64_t last_insert_id() const { return m_database.getLastInsertRowid(); }

  private:
    static void bind_one(SQLite::Statement& statement, int index, std::string_view value) {
        statement.bind(index, std::string(value));
    }
    static void bind_one(SQLite::Statement& statement, int index, const std::string& value) {
        statement.bind(index, value);
    }
    static void bind_one(SQLite::Statement& statement, int index, const char* value) {
        statement.bind(index, value);
    }
    static void bind_one(SQLite::Statement& statement, int index, std::int64_t value) {
        statement.bind(index, value);
    }
    static void bind_one(SQLite::Statement& statement, int index, int value) {
        statement.bind(index, value);
    }
    static void bind_one(SQLite::Statement& statement, int index, bool value) {
        statement.bind(index, value ? 1 : 0);
    }
    template <typename E>
    requires std::is_enum_v<E>
    static void bind_one(SQLite::Statement& statement, int index, E value) {
        statement.bind(index, std::string(to_string(value)));
    }

    SQLite::Database& m_database;
    std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> m_cache;
};

}  // namespace orgsync::directory
