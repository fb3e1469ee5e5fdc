#pragma once

// Internal to directory/: one SQLite connection with a cache of prepared
// statements. Not thread-safe: the Store's writer connection is used under
// its mutex, and each reader connection by one thread at a time.
// SQLite failures surface as SQLite::Exception and are turned into
// ErrorCode::storage at the Store boundary.

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "directory/model.hpp"

namespace orgsync::directory {

class Db {
  public:
    // `track_use`: remember the statements query() hands out, so that
    // reset_used() can end a read transaction that a statement left open by
    // not stepping to its last row (reader connections).
    explicit Db(SQLite::Database& database, bool track_use = false)
        : m_database(database), m_track_use(track_use) {}

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
        if (m_track_use) {
            m_used.push_back(slot.get());
        }
        return *slot;
    }

    // Resets every statement query() handed out since the last call.
    void reset_used() {
        for (auto* statement : m_used) {
            statement->tryReset();
        }
        m_used.clear();
    }

    // Runs a statement that returns no rows; returns the number of rows changed.
    // The arguments outlive the statement's execution, so text is bound
    // without a copy (the bulk paths of a sync run this a million times).
    template <typename... Args>
    int run(const char* sql, const Args&... args) {
        return run_with(sql, [&]([[maybe_unused]] sqlite3_stmt* statement) {
            int index = 0;
            (bind_view(statement, ++index, args), ...);
        });
    }

    // run() with the parameters bound by `bind(statement)`, for statements
    // whose parameter count is not known at compile time (multi-row
    // inserts). `sql` must have static storage, as for query().
    template <typename Bind>
    int run_with(const char* sql, Bind&& bind) {
        sqlite3* handle = m_database.getHandle();
        auto& slot = m_writes[sql];
        if (!slot) {
            sqlite3_stmt* prepared = nullptr;
            if (int rc = sqlite3_prepare_v3(handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &prepared,
                                            nullptr);
                rc != SQLITE_OK) {
                throw SQLite::Exception(handle, rc);
            }
            slot.reset(prepared);
        }
        sqlite3_stmt* statement = slot.get();
        sqlite3_reset(statement);
        sqlite3_clear_bindings(statement);
        bind(statement);
        int rc = sqlite3_step(statement);
        while (rc == SQLITE_ROW) {
            rc = sqlite3_step(statement);
        }
        if (rc != SQLITE_DONE) {
            SQLite::Exception error(handle, rc);
            sqlite3_reset(statement);
            throw error;
        }
        return sqlite3_changes(handle);
    }

    std::int64_t last_insert_id() const { return m_database.getLastInsertRowid(); }

    static void bind_view(sqlite3_stmt* statement, int index, std::string_view value) {
        sqlite3_bind_text(statement, index, value.data(), static_cast<int>(value.size()),
                          SQLITE_STATIC);
    }
    static void bind_view(sqlite3_stmt* statement, int index, const std::string& value) {
        bind_view(statement, index, std::string_view(value));
    }
    static void bind_view(sqlite3_stmt* statement, int index, const char* value) {
        bind_view(statement, index, std::string_view(value));
    }
    static void bind_view(sqlite3_stmt* statement, int index, std::int64_t value) {
        sqlite3_bind_int64(statement, index, value);
    }
    static void bind_view(sqlite3_stmt* statement, int index, int value) {
        sqlite3_bind_int(statement, index, value);
    }
    static void bind_view(sqlite3_stmt* statement, int index, bool value) {
        sqlite3_bind_int(statement, index, value ? 1 : 0);
    }
    // The spellings of enums are string literals.
    template <typename E>
    requires std::is_enum_v<E>
    static void bind_view(sqlite3_stmt* statement, int index, E value) {
        bind_view(statement, index, to_string(value));
    }

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

    struct Finalize {
        void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
    };

    SQLite::Database& m_database;
    bool m_track_use = false;
    std::vector<SQLite::Statement*> m_used;
    // run()'s raw statements (query()'s are SQLiteCpp's); finalized with
    // the Db, which the Store destroys before the connection.
    std::unordered_map<const char*, std::unique_ptr<sqlite3_stmt, Finalize>> m_writes;
    std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> m_cache;
};

}  // namespace orgsync::directory
