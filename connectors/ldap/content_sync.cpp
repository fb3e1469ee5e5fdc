#include "connectors/ldap/content_sync.hpp"

#include <fmt/format.h>
#include <lber.h>

#include <memory>

#include "connectors/ldap/text.hpp"

namespace orgsync::ldap {
namespace {

struct BerFree {
    void operator()(BerElement* ber) const { ber_free(ber, 1); }
};
using BerPtr = std::unique_ptr<BerElement, BerFree>;

struct ControlFree {
    void operator()(LDAPControl* control) const { ldap_control_free(control); }
};
using ControlPtr = std::unique_ptr<LDAPControl, ControlFree>;

struct MessageFree {
    void operator()(LDAPMessage* message) const { ldap_msgfree(message); }
};
using MessagePtr = std::unique_ptr<LDAPMessage, MessageFree>;

constexpr int k_sync_refresh_required = 0x1000;  // e-syncRefreshRequired

// syncRequestValue ::= SEQUENCE { mode ENUMERATED, cookie syncCookie OPTIONAL,
//                                 reloadHint BOOLEAN DEFAULT FALSE }
Result<ControlPtr> sync_request_control(int mode, const std::string& cookie) {
    BerPtr ber(ber_alloc_t(LBER_USE_DER));
    if (!ber) {
        return failure(FailureKind::local, "out of memory encoding the content sync control");
    }
    int rc = ber_printf(ber.get(), "{e", static_cast<ber_int_t>(mode));
    if (rc != -1 && !cookie.empty()) {
        berval value{static_cast<ber_len_t>(cookie.size()), const_cast<char*>(cookie.data())};
        rc = ber_printf(ber.get(), "O", &value);
    }
    if (rc != -1) {
        rc = ber_printf(ber.get(), "N}");
    }
    berval encoded{};
    if (rc == -1 || ber_flatten2(ber.get(), &encoded, 0) == -1) {
        return failure(FailureKind::local, "cannot encode the content sync control");
    }
    LDAPControl* control = nullptr;
    if (ldap_control_create(LDAP_CONTROL_SYNC, 1, &encoded, 1, &control) != LDAP_SUCCESS) {
        return failure(FailureKind::local, "cannot create the content sync control");
    }
    return ControlPtr(control);
}

std::string to_string(const berval& value) {
    return value.bv_val == nullptr ? std::string() : std::string(value.bv_val, value.bv_len);
}

// syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID syncUUID,
//                               cookie syncCookie OPTIONAL }
struct SyncState {
    int state = LDAP_SYNC_ADD;
    std::string uuid;
    std::string cookie;
};

std::optional<SyncState> parse_state(LDAPControl* control) {
    BerPtr ber(ber_init(&control->ldctl_value));
    if (!ber) {
        return std::nullopt;
    }
    ber_int_t state = 0;
    berval uuid{};
    if (ber_scanf(ber.get(), "{em", &state, &uuid) == LBER_ERROR) {
        return std::nullopt;
    }
    SyncState out{.state = static_cast<int>(state), .uuid = format_uuid(to_string(uuid))};
    ber_len_t length = 0;
    if (ber_peek_tag(ber.get(), &length) == LBER_OCTETSTRING) {
        berval cookie{};
        if (ber_scanf(ber.get(), "m", &cookie) != LBER_ERROR) {
            out.cookie = to_string(cookie);
        }
    }
    return out;
}

// syncDoneValue ::= SEQUENCE { cookie syncCookie OPTIONAL,
//                              refreshDeletes BOOLEAN DEFAULT FALSE }
// False when the value does not decode.
bool parse_done(LDAPControl* control, ContentChanges& changes) {
    BerPtr ber(ber_init(&control->ldctl_value));
    if (!ber || ber_scanf(ber.get(), "{") == LBER_ERROR) {
        return false;
    }
    ber_len_t length = 0;
    bool refresh_deletes = false;
    if (ber_peek_tag(ber.get(), &length) == LBER_OCTETSTRING) {
        berval cookie{};
        if (ber_scanf(ber.get(), "m", &cookie) == LBER_ERROR) {
            return false;
        }
        changes.cookie = to_string(cookie);
    }
    if (ber_peek_tag(ber.get(), &length) == LBER_BOOLEAN) {
        ber_int_t value = 0;
        if (ber_scanf(ber.get(), "b", &value) == LBER_ERROR) {
            return false;
        }
        refresh_deletes = value != 0;
    }
    // refreshDeletes FALSE: the refresh used the present phase, so whatever
    // was not reported present (or changed) is gone.
    changes.present_phase = changes.present_phase || !refresh_deletes;
    return true;
}

// syncInfoValue ::= CHOICE { newcookie [0], refreshDelete [1], refreshPresent [2],
//                            syncIdSet [3] }
// Whether the message ends the refresh stage (refreshDone), or nullopt when
// it does not decode: a lost syncIdSet would lose deletions, so a message
// that cannot be read fails the search.
std::optional<bool> parse_info(LDAP* ld, LDAPMessage* message, ContentChanges& changes) {
    char* oid = nullptr;
    berval* data = nullptr;
    if (ldap_parse_intermediate(ld, message, &oid, &data, nullptr, 0) != LDAP_SUCCESS) {
        return std::nullopt;
    }
    const std::unique_ptr<char, decltype(&ldap_memfree)> oid_owner(oid, &ldap_memfree);
    const std::unique_ptr<berval, decltype(&ber_bvfree)> data_owner(data, &ber_bvfree);
    if (oid == nullptr || std::string_view(oid) != LDAP_SYNC_INFO) {
        return false;  // another extension's message: not ours to read
    }
    BerPtr ber(data == nullptr ? nullptr : ber_init(data));
    if (!ber) {
        return std::nullopt;
    }
    const auto read_cookie = [&]() -> bool {
        ber_len_t length = 0;
        if (ber_peek_tag(ber.get(), &length) != LBER_OCTETSTRING) {
            return true;
        }
        berval cookie{};
        if (ber_scanf(ber.get(), "m", &cookie) == LBER_ERROR) {
            return false;
        }
        changes.cookie = to_string(cookie);
        return true;
    };
    const auto read_flag = [&](bool fallback) -> std::optional<bool> {
        ber_len_t length = 0;
        if (ber_peek_tag(ber.get(), &length) != LBER_BOOLEAN) {
            return fallback;
        }
        ber_int_t value = 0;
        if (ber_scanf(ber.get(), "b", &value) == LBER_ERROR) {
            return std::nullopt;
        }
        return value != 0;
    };
    ber_len_t length = 0;
    const ber_tag_t tag = ber_peek_tag(ber.get(), &length);
    switch (tag) {
        case LDAP_TAG_SYNC_NEW_COOKIE: {
            berval cookie{};
            if (ber_scanf(ber.get(), "m", &cookie) == LBER_ERROR) {
                return std::nullopt;
            }
            changes.cookie = to_string(cookie);
            return false;
        }
        case LDAP_TAG_SYNC_REFRESH_DELETE:
        case LDAP_TAG_SYNC_REFRESH_PRESENT: {
            if (ber_scanf(ber.get(), "{") == LBER_ERROR || !read_cookie()) {
                return std::nullopt;
            }
            const auto done = read_flag(true);  // refreshDone DEFAULT TRUE
            if (!done) {
                return std::nullopt;
            }
            if (tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
                changes.present_phase = true;
            }
            return *done;
        }
        case LDAP_TAG_SYNC_ID_SET: {
            if (ber_scanf(ber.get(), "{") == LBER_ERROR || !read_cookie()) {
                return std::nullopt;
            }
            const auto deletes = read_flag(false);  // refreshDeletes DEFAULT FALSE
            BerVarray uuids = nullptr;
            if (!deletes || ber_scanf(ber.get(), "[W]", &uuids) == LBER_ERROR) {
                return std::nullopt;
            }
            for (int i = 0; uuids != nullptr && uuids[i].bv_val != nullptr; ++i) {
                std::string uuid = format_uuid(to_string(uuids[i]));
                if (*deletes) {
                    changes.deleted.push_back(std::move(uuid));
                } else {
                    changes.present.insert(std::move(uuid));
                }
            }
            ber_bvarray_free(uuids);
            if (!*deletes) {
                changes.present_phase = true;
            }
            return false;
        }
        default:
            return std::nullopt;
    }
}

// Handles one message of a content sync search. Returns true when the
// search is over (its result arrived).
Result<bool> handle_message(Connection& connection, LDAPMessage* message, ContentChanges& changes,
                            bool& refreshed) {
    LDAP* ld = connection.handle();
    switch (ldap_msgtype(message)) {
        case LDAP_RES_SEARCH_ENTRY: {
            LDAPControl** controls = nullptr;
            ldap_get_entry_controls(ld, message, &controls);
            const std::unique_ptr<LDAPControl*, decltype(&ldap_controls_free)> owner(
                controls, &ldap_controls_free);
            LDAPControl* control =
                controls == nullptr ? nullptr
                                    : ldap_control_find(LDAP_CONTROL_SYNC_STATE, controls, nullptr);
            const auto state = control == nullptr ? std::nullopt : parse_state(control);
            if (!state) {
                return failure(
                    FailureKind::rejected,
                    fmt::format("{}: an entry came without a sync state", connection.uri()));
            }
            if (!state->cookie.empty()) {
                changes.cookie = state->cookie;
            }
            switch (state->state) {
                case LDAP_SYNC_PRESENT:
                    changes.present.insert(state->uuid);
                    break;
                case LDAP_SYNC_DELETE:
                    changes.deleted.push_back(state->uuid);
                    break;
                default:
                    changes.changed.push_back(connection.entry(message));
                    break;
            }
            return false;
        }
        case LDAP_RES_INTERMEDIATE: {
            const auto done = parse_info(ld, message, changes);
            if (!done) {
                return failure(FailureKind::rejected,
                               fmt::format("{}: a content sync message could not be decoded",
                                           connection.uri()));
            }
            refreshed = refreshed || *done;
            return false;
        }
        case LDAP_RES_SEARCH_REFERENCE:
            if (connection.ignores_referrals()) {
                ++changes.references;
                return false;
            }
            return failure(FailureKind::referral,
                           fmt::format("{}: the content sync search returned a referral, which "
                                       "orgsync does not follow",
                                       connection.uri()));
        case LDAP_RES_SEARCH_RESULT: {
            int code = LDAP_SUCCESS;
            LDAPControl** controls = nullptr;
            if (const int rc =
                    ldap_parse_result(ld, message, &code, nullptr, nullptr, nullptr, &controls, 0);
                rc != LDAP_SUCCESS) {
                return std::unexpected(connection.failure_for(rc, "content sync"));
            }
            const std::unique_ptr<LDAPControl*, decltype(&ldap_controls_free)> owner(
                controls, &ldap_controls_free);
            if (code == k_sync_refresh_required) {
                changes.refresh_required = true;
                return true;
            }
            if (code != LDAP_SUCCESS) {
                return std::unexpected(connection.failure_for(code, "content sync"));
            }
            LDAPControl* done = controls == nullptr
                                    ? nullptr
                                    : ldap_control_find(LDAP_CONTROL_SYNC_DONE, controls, nullptr);
            if (done == nullptr || !parse_done(done, changes)) {
                return failure(FailureKind::rejected,
                               fmt::format("{}: the content sync search ended without a readable "
                                           "sync done control",
                                           connection.uri()));
            }
            refreshed = true;
            return true;
        }
        default:
            return false;
    }
}

Result<int> start_search(Connection& connection, const SearchRequest& request, int mode,
                         const std::string& cookie) {
    auto control = sync_request_control(mode, cookie);
    if (!control) {
        return std::unexpected(control.error());
    }
    std::vector<char*> attrs;
    for (const auto& attribute : request.attributes) {
        attrs.push_back(const_cast<char*>(attribute.c_str()));
    }
    attrs.push_back(nullptr);
    LDAPControl* controls[] = {control->get(), nullptr};
    int msgid = 0;
    const int rc = ldap_search_ext(connection.handle(), request.base.c_str(), request.scope,
                                   request.filter.c_str(), attrs.data(), 0, controls, nullptr,
                                   nullptr, LDAP_NO_LIMIT, &msgid);
    if (rc != LDAP_SUCCESS) {
        return std::unexpected(connection.failure_for(rc, "content sync search"));
    }
    return msgid;
}

}  // namespace

std::string format_uuid(std::string_view bytes) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes.size() == 16 && (i == 4 || i == 6 || i == 8 || i == 10)) {
            out.push_back('-');
        }
        append_hex_byte(out, static_cast<unsigned char>(bytes[i]));
    }
    return out;
}

Result<ContentChanges> refresh_changes(Connection& connection, const SearchRequest& request,
                                       const std::string& cookie) {
    auto msgid = start_search(connection, request, LDAP_SYNC_REFRESH_ONLY, cookie);
    if (!msgid) {
        return std::unexpected(msgid.error());
    }
    ContentChanges changes;
    changes.cookie = cookie;
    bool refreshed = false;
    for (bool done = false; !done;) {
        auto next = connection.next_message(*msgid, connection.timeout());
        if (!next) {
            ldap_abandon_ext(connection.handle(), *msgid, nullptr, nullptr);
            return std::unexpected(next.error());
        }
        const MessagePtr message(*next);
        auto handled = handle_message(connection, message.get(), changes, refreshed);
        if (!handled) {
            ldap_abandon_ext(connection.handle(), *msgid, nullptr, nullptr);
            return std::unexpected(handled.error());
        }
        done = *handled;
    }
    return changes;
}

Result<PersistentSearch> PersistentSearch::start(Connection& connection,
                                                 const SearchRequest& request,
                                                 const std::string& cookie) {
    auto msgid = start_search(connection, request, LDAP_SYNC_REFRESH_AND_PERSIST, cookie);
    if (!msgid) {
        return std::unexpected(msgid.error());
    }
    return PersistentSearch(connection, *msgid);
}

Result<ContentChanges> PersistentSearch::poll(std::chrono::milliseconds wait) {
    ContentChanges changes;
    const auto until = std::chrono::steady_clock::now() + wait;
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return changes;
        }
        auto next = m_connection->next_message(m_msgid, left);
        if (!next) {
            if (next.error().kind == FailureKind::timeout) {
                return changes;  // nothing more within `wait`
            }
            return std::unexpected(next.error());
        }
        const MessagePtr message(*next);
        auto handled = handle_message(*m_connection, message.get(), changes, m_refreshed);
        if (!handled) {
            return std::unexpected(handled.error());
        }
        if (*handled) {
            if (changes.refresh_required) {
                return changes;
            }
            return failure(
                FailureKind::unreachable,
                fmt::format("{}: the server ended the persistent search", m_connection->uri()));
        }
    }
}

}  // namespace orgsync::ldap
