#pragma once

// Webhook signatures (DESIGN §3), the same for inbound `POST /hooks/v1/events`
// and for outbound deliveries:
//
//   X-Orgsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// The timestamp is signed with the body, so a captured request cannot be
// replayed outside the window. A header may carry several `v1=` entries (a
// sender signing with both the old and the new secret while receivers
// rotate); it verifies when any of them matches. Entries with other keys
// (`v0=`, a future `v2=`) are ignored, so senders can add schemes without
// breaking receivers.
//
// No clock inside: callers pass the time, so tests need no sleeps.

#include <chrono>
#include <expected>
#include <span>
#include <string>
#include <string_view>

namespace orgsync::daemon {

inline constexpr std::string_view k_signature_header = "X-Orgsync-Signature";
inline constexpr std::chrono::seconds k_signature_window{300};

// Why a request's signature was refused. Never says which part of a MAC
// differed, and never echoes the header.
enum class SignatureError {
    malformed,  // no header, no t=, no v1=, a t= that is not a number, a v1= that is not 64 hex
    mismatch,   // no v1= entry is the MAC of this body at this t under the secret
    stale,      // t is more than the window before now (a replay, or a clock far behind)
    future,     // t is more than the window after now
};

std::string_view to_string(SignatureError error);

// The header value for `body` signed with `secret` at `now`: "t=…,v1=…",
// with one v1= entry per secret in the second form (in the order given).
// Secrets must not be empty.
std::string sign(std::string_view secret, std::string_view body, std::chrono::sys_seconds now);
std::string sign(std::span<const std::string> secrets, std::string_view body,
                 std::chrono::sys_seconds now);

// Accepts `header` for `body` when it is well formed, one of its v1= entries
// equals HMAC-SHA256(secret, t "." body) (compared in constant time), and t
// is at most `window` away from `now` in either direction. The MAC is
// checked before the time, so an answer of stale or future means the request
// was authentic. An empty secret never verifies (mismatch).
std::expected<void, SignatureError> verify(std::string_view secret, std::string_view header,
                                           std::string_view body, std::chrono::sys_seconds now,
                                           std::chrono::seconds window = k_signature_window);

}  // namespace orgsync::daemon
