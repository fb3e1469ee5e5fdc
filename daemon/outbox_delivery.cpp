#include "daemon/outbox_delivery.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/setup.hpp"
#include "daemon/signature.hpp"

namespace orgsync::daemon {
namespace {

using nlohmann::json;
using SystemClock = std::chrono::system_clock;

std::int64_t unix_ms(SystemClock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

// scheme://host[:port]/path of a URL: no user info, query or fragment, which
// may carry credentials.
std::string loggable_url(std::string_view url) {
    const std::size_t scheme = url.find("://");
    const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
    std::size_t end = url.find_first_of("?#", start);
    end = end == std::string_view::npos ? url.size() : end;
    std::string_view authority_and_path = url.substr(start, end - start);
    const std::size_t slash = authority_and_path.find('/');
    const std::size_t at = authority_and_path.substr(0, slash).rfind('@');
    if (at != std::string_view::npos) {
        authority_and_path.remove_prefix(at + 1);
    }
    return fmt::format("{}{}", url.substr(0, start), authority_and_path);
}

// One request's worth of events, and where the target stands once they are
// acknowledged.
struct Batch {
    json events = json::array();
    directory::OutboxPosition next;
    std::int64_t first_row = 0;
    std::int64_t last_row = 0;
    bool full = false;  // batch_size reached
};

// The single-event shape: a row's payload with its id and time added.
json row_event(const directory::OutboxRow& row) {
    json event = json::parse(row.payload, nullptr, false);
    if (!event.is_object()) {
        // The store checks payloads are JSON; keep the event addressable anyway.
        event = json{{"type", row.kind}, {"org", row.org}};
    }
    event["id"] = row.event_id;
    event["created_at"] = row.created_at;
    return event;
}

Batch collect(const std::vector<directory::OutboxRow>& rows, directory::OutboxPosition from,
              std::int64_t batch_size) {
    Batch batch;
    batch.next = from;
    const auto limit = static_cast<std::size_t>(batch_size);
    for (const auto& row : rows) {
        if (batch.events.size() == limit) {
            batch.full = true;
            break;
        }
        const std::int64_t skip = row.id == from.row ? from.offset : 0;
        if (row.kind != "batch") {
            if (skip == 0) {
                batch.events.push_back(row_event(row));
                batch.first_row = batch.first_row == 0 ? row.id : batch.first_row;
                batch.last_row = row.id;
            }
            batch.next = {row.id + 1, 0};
            continue;
        }
        json payload = json::parse(row.payload, nullptr, false);
        json* events = payload.is_object() ? &payload["events"] : nullptr;
        const std::size_t count = events && events->is_array() ? events->size() : 0;
        std::size_t index = static_cast<std::size_t>(std::max<std::int64_t>(skip, 0));
        for (; index < count && batch.events.size() < limit; ++index) {
            json& event = (*events)[index];
            event["created_at"] = row.created_at;
            batch.events.push_back(std::move(event));
            batch.first_row = batch.first_row == 0 ? row.id : batch.first_row;
            batch.last_row = row.id;
        }
        if (index < count) {
            batch.next = {row.id, static_cast<std::int64_t>(index)};
            batch.full = true;
            break;
        }
        batch.next = {row.id + 1, 0};
    }
    batch.full = batch.full || batch.events.size() == limit;
    return batch;
}

std::size_t discard_body(char*, std::size_t size, std::size_t count, void*) {
    return size * count;
}

int abort_if_stopping(void* abort, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<std::atomic<bool>*>(abort)->load() ? 1 : 0;
}

struct CurlDeleter {
    void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct HeaderListDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

struct Delivery::Target {
    DeliveryTarget config;
    std::string log_name;
    std::unique_ptr<CURL, CurlDeleter> curl;  // reused: keeps the connection alive
};

std::expected<std::vector<DeliveryTarget>, std::string> load_delivery_targets(
    const Config& config) {
    std::vector<DeliveryTarget> targets;
    for (const WebhookTarget& target : config.webhook_targets) {
        auto secret = read_secret_file(target.secret_file);
        if (!secret) {
            return std::unexpected(
                fmt::format("cannot read the webhook secret file {}", target.secret_file.string()));
        }
        if (secret->empty()) {
            return std::unexpected(
                fmt::format("the webhook secret file {} is empty", target.secret_file.string()));
        }
        targets.push_back({target.url, std::move(*secret)});
    }
    return targets;
}

DeliveryOptions delivery_options(const Config& config) {
    DeliveryOptions options;
    options.max_attempts = config.webhook_max_attempts;
    options.batch_size = config.webhook_batch_size;
    options.timeout = config.webhook_timeout;
    options.retry_initial = config.webhook_retry_initial;
    options.retry_max = config.webhook_retry_max;
    return options;
}

std::chrono::milliseconds retry_delay(int attempts, const DeliveryOptions& options,
                                      std::mt19937_64& random) {
    std::chrono::milliseconds delay = options.retry_initial;
    for (int i = 1; i < attempts && delay < options.retry_max; ++i) {
        delay *= 2;
    }
    delay = std::min(delay, options.retry_max);
    std::uniform_int_distribution<std::int64_t> jitter(delay.count() / 2, delay.count());
    return std::chrono::milliseconds(jitter(random));
}

Delivery::Delivery(directory::Store& store, std::vector<DeliveryTarget> targets,
                   DeliveryOptions options)
    : m_store(store), m_options(options), m_random(std::random_device{}()) {
    static std::once_flag curl_initialised;
    std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    for (auto& config : targets) {
        auto target = std::make_unique<Target>();
        target->log_name = loggable_url(config.url);
        target->curl.reset(curl_easy_init());
        m_urls.push_back(config.url);
        target->config = std::move(config);
        m_targets.push_back(std::move(target));
    }
}

Delivery::~Delivery() {
    stop();
}

DeliveryStep Delivery::run_once(SystemClock::time_point now) {
    std::lock_guard lock(m_step_mutex);
    DeliveryStep step;
    for (auto& target : m_targets) {
        deliver(*target, now, step);
    }
    return step;
}

void Delivery::deliver(Target& target, SystemClock::time_point now, DeliveryStep& step) {
    const std::string& url = target.config.url;
    auto state = m_store.delivery_state(url);
    if (!state) {
        spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                      state.error().message);
        return;
    }
    if (state->attempts > 0 && unix_ms(now) < state->retry_at_ms) {
        const SystemClock::time_point due{std::chrono::milliseconds(state->retry_at_ms)};
        step.next_retry = step.next_retry ? std::min(*step.next_retry, due) : due;
        return;
    }
    auto rows = m_store.outbox_rows(state->next, m_options.batch_size);
    if (!rows) {
        spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                      rows.error().message);
        return;
    }
    Batch batch = collect(*rows, state->next, m_options.batch_size);
    const auto count = static_cast<std::int64_t>(batch.events.size());
    if (count == 0) {
        if (batch.next != state->next) {
            // Only rows without events (an empty batch): step past them.
            if (auto moved = m_store.advance_delivery(url, batch.next, 0, std::nullopt, m_urls);
                !moved) {
                spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                              moved.error().message);
            }
            step.more = true;
        }
        return;
    }

    const std::string first_id = batch.events.front().value("id", "");
    const std::string last_id = batch.events.back().value("id", "");
    const std::string body = json{{"events", std::move(batch.events)}}.dump();
    const std::string signature =
        sign(target.config.secret, body, std::chrono::time_point_cast<std::chrono::seconds>(now));

    std::unique_ptr<curl_slist, HeaderListDeleter> headers;
    for (const std::string& header :
         {std::string("Content-Type: application/json"), std::string("Expect:"),
          fmt::format("{}: {}", k_signature_header, signature)}) {
        headers.reset(curl_slist_append(headers.release(), header.c_str()));
    }
    CURL* curl = target.curl.get();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "orgsyncd");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_options.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(m_options.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_if_stopping);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &m_abort);

    const auto started = std::chrono::steady_clock::now();
    const CURLcode sent = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();

    if (sent == CURLE_OK && status >= 200 && status < 300) {
        if (auto moved = m_store.advance_delivery(url, batch.next, count, std::nullopt, m_urls);
            !moved) {
            // Sent again later: at least once.
            spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                          moved.error().message);
            return;
        }
        spdlog::debug("event=webhook.delivered target={} events={} status={} ms={}",
                      target.log_name, count, status, ms);
        step.delivered += count;
        step.more = step.more || batch.full;
        return;
    }

    if (sent == CURLE_ABORTED_BY_CALLBACK) {
        return;  // stopping: not an attempt the receiver could be blamed for
    }
    const std::string error = sent != CURLE_OK ? std::string(curl_easy_strerror(sent))
                                               : fmt::format("HTTP status {}", status);
    ++step.requests_failed;
    const int attempts = state->attempts + 1;
    if (attempts >= m_options.max_attempts) {
        directory::DeadLetter letter;
        letter.target = url;
        letter.attempts = attempts;
        letter.last_error = error;
        letter.events = count;
        letter.first_event_id = first_id;
        letter.last_event_id = last_id;
        letter.body = body;
        if (auto moved = m_store.advance_delivery(url, batch.next, count, letter, m_urls); !moved) {
            spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                          moved.error().message);
            return;
        }
        spdlog::error(
            "event=webhook.dead_lettered target={} events={} attempts={} first_event={} "
            "last_event={} error=\"{}\"",
            target.log_name, count, attempts, letter.first_event_id, letter.last_event_id, error);
        step.dead_lettered += count;
        step.more = true;
        return;
    }
    const auto delay = retry_delay(attempts, m_options, m_random);
    const SystemClock::time_point due = now + delay;
    if (auto failed = m_store.delivery_failed(url, attempts, unix_ms(due), error, batch.first_row,
                                              batch.last_row);
        !failed) {
        spdlog::error("event=webhook.store_failed target={} error=\"{}\"", target.log_name,
                      failed.error().message);
        return;
    }
    spdlog::warn("event=webhook.failed target={} events={} attempt={} retry_in_ms={} error=\"{}\"",
                 target.log_name, count, attempts, delay.count(), error);
    step.next_retry = step.next_retry ? std::min(*step.next_retry, due) : due;
}

void Delivery::start(Clock clock) {
    std::lock_guard lock(m_mutex);
    if (m_thread.joinable()) {
        return;
    }
    m_stopping = false;
    m_abort = false;
    m_thread = std::thread([this, clock = std::move(clock)] { loop(clock); });
}

void Delivery::notify() {
    {
        std::lock_guard lock(m_mutex);
        m_notified = true;
    }
    m_wake.notify_all();
}

void Delivery::stop() {
    std::thread thread;
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
        m_abort = true;
        thread = std::move(m_thread);
    }
    m_wake.notify_all();
    if (thread.joinable()) {
        thread.join();
    }
}

void Delivery::loop(Clock clock) {
    std::unique_lock lock(m_mutex);
    while (!m_stopping) {
        m_notified = false;
        lock.unlock();
        const DeliveryStep step = run_once(clock());
        lock.lock();
        if (step.more) {
            continue;
        }
        auto wait = m_options.poll_interval;
        if (step.next_retry) {
            const auto until =
                std::chrono::duration_cast<std::chrono::milliseconds>(*step.next_retry - clock());
            wait = std::clamp(until, std::chrono::milliseconds(0), wait);
        }
        m_wake.wait_for(lock, wait, [this] { return m_stopping || m_notified; });
    }
}

}  // namespace orgsync::daemon
