#include "sync/run.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "sync/apply.hpp"

namespace orgsync::sync {
namespace {

using namespace directory;

// Upper bound on hold/fallback rounds: each round settles one project.
constexpr int k_max_hold_rounds = 1000;

std::string now_utc() {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

// Moves to `plan.held` every change that lowers the explicit admins of
// `project`: removing or lowering its admin group grants, removing members
// of those groups, and removing members who are its admins (with the
// demotion step before such a removal). Returns how many were moved.
Expected<std::size_t> hold_admin_removals(const Store& store, Plan& plan, const std::string& org,
                                          const std::string& project_slug) {
    auto org_row = store.find_org(org);
    if (!org_row || !*org_row) {
        return org_row ? fail(ErrorCode::not_found, "no org " + org)
                       : std::unexpected(org_row.error());
    }
    auto project = store.find_project((*org_row)->id, project_slug);
    if (!project || !*project) {
        return project ? fail(ErrorCode::not_found, "no project " + project_slug)
                       : std::unexpected(project.error());
    }
    auto grants = store.list_project_grants((*project)->id);
    if (!grants) {
        return std::unexpected(grants.error());
    }
    std::set<std::string, std::less<>> admin_groups;
    std::set<std::string, std::less<>> admins;
    for (const auto& grant : *grants) {
        if (grant.level != Level::admin) {
            continue;
        }
        if (grant.principal.kind == PrincipalKind::user) {
            admins.insert(grant.principal_name);
            continue;
        }
        admin_groups.insert(grant.principal_name);
        auto members = store.group_members(grant.principal.id);
        if (!members) {
            return std::unexpected(members.error());
        }
        admins.insert(members->begin(), members->end());
    }
    std::string reason = fmt::format(
        "would leave project {}/{} without an admin; grant admin to a replacement or set "
        "project_admin_fallback for org {} in the mapping",
        org, project_slug, org);
    auto lowers_admins = [&](const Change& change) {
        if (change.org() != org) {
            return false;
        }
        switch (change.kind) {
            case ChangeKind::remove_grant:
            case ChangeKind::change_grant:
                return change.project() == project_slug && change.from_level == Level::admin;
            case ChangeKind::remove_group_member:
                return admin_groups.contains(change.group());
            case ChangeKind::remove_member:
                return admins.contains(change.email());
            case ChangeKind::change_member:
                return change.before_removal && admins.contains(change.email());
            default:
                return false;
        }
    };
    std::size_t moved = 0;
    std::vector<Change> kept;
    for (auto& change : plan.changes) {
        if (lowers_admins(change)) {
            plan.held.push_back(HeldChange{std::move(change), reason});
            ++moved;
        } else {
            kept.push_back(std::move(change));
        }
    }
    plan.changes = std::move(kept);
    return moved;
}

// Makes the stored mirror (`old`) equal to `data`, writing only what
// differs. Called again when the first apply is retried, so `old` stays
// as it is.
Expected<void> replace_mirror(Transaction& tx, std::string_view source, const StoredDigests& old,
                              const SourceData& data) {
    std::unordered_set<std::string_view> kept;
    kept.reserve(data.users.size());
    for (const auto& user : data.users) {
        kept.insert(user.external_id);
        auto found = old.users.find(user.external_id);
        if (found != old.users.end() && found->second == mirror_digest(user)) {
            continue;
        }
        SourceUser stored = user;
        stored.source = std::string(source);
        if (auto put = tx.put_source_user(stored); !put) {
            return put;
        }
    }
    for (const auto& [id, digest] : old.users) {
        if (!kept.contains(id)) {
            if (auto gone = tx.delete_source_user(source, id); !gone) {
                return gone;
            }
        }
    }
    kept.clear();
    for (const auto& group : data.groups) {
        kept.insert(group.external_id);
        auto found = old.groups.find(group.external_id);
        if (found != old.groups.end() && found->second == mirror_digest(group)) {
            continue;
        }
        SourceGroup stored = group;
        stored.source = std::string(source);
        if (auto put = tx.put_source_group(stored); !put) {
            return put;
        }
    }
    for (const auto& [id, digest] : old.groups) {
        if (!kept.contains(id)) {
            if (auto gone = tx.delete_source_group(source, id); !gone) {
                return gone;
            }
        }
    }
    return {};
}

// Raise when a change to the planner can give another plan for the same
// mirror, mapping and store: every settled source is then planned again.
constexpr int k_planner_revision = 1;

// The key a settled source is recorded under (Transaction::mark_settled):
// the mapping file's fingerprint, the source and the planner's revision.
// Empty, so that nothing is settled, for a mapping without a fingerprint
// (one built in code).
std::string settle_key(const mapping::Mapping& mapping, const SourceSpec& source) {
    if (mapping.digest.empty()) {
        return {};
    }
    return fmt::format("mapping {} source {} type {} org {} planner {}", mapping.digest,
                       source.name, source.type, source.org, k_planner_revision);
}

// Where a full run may record its plan as settled: the key and the store's
// generation read before anything the plan was made from.
struct Settle {
    std::string key;
    std::int64_t generation = 0;
    std::string mirror;  // mirror_text of what was planned
};

// The digest of a source's records (a fetch or the stored mirror) as a
// settled source records it.
std::string mirror_text(const SourceData& data) {
    const MirrorDigest digest = mirror_set_digest(data.users, data.groups);
    return fmt::format("{:016x}{:016x}", digest.low, digest.high);
}

// What a settled source records: the digest of the records its plan was
// made from (the fetch, now the mirror, or the stored mirror), the counts
// of that plan that depend only on the mirror and the mapping, and the
// memberships the source asserts once it is applied (so that a settled run
// need not count them again).
std::string settled_summary_text(const PlanSummary& summary, const std::string& mirror,
                                 const std::map<std::string, std::size_t>& members_by_org) {
    return nlohmann::json{{"mirror", mirror},
                          {"mapped_users", summary.mapped_users},
                          {"unmapped_users", summary.unmapped_users},
                          {"invalid_emails", summary.invalid_emails},
                          {"source_members_by_org", members_by_org}}
        .dump();
}

// The empty plan of a settled source whose record `summary_text` was made
// from records with the digest `mirror`, with the counts recorded then;
// nullopt when the record was made from other records (or is not one this
// version wrote).
std::optional<Plan> settled_plan(const SourceSpec& source, const SourceData& data,
                                 const std::string& summary_text, const std::string& mirror) {
    const auto summary = nlohmann::json::parse(summary_text, nullptr, false);
    if (!summary.is_object() || summary.value("mirror", std::string()) != mirror) {
        return std::nullopt;
    }
    const auto members = summary.find("source_members_by_org");
    if (members == summary.end() || !members->is_object()) {
        return std::nullopt;
    }
    Plan plan;
    plan.source = source.name;
    plan.summary.mirror_users = data.users.size();
    plan.summary.mapped_users = summary.value("mapped_users", std::size_t{0});
    plan.summary.unmapped_users = summary.value("unmapped_users", std::size_t{0});
    plan.summary.invalid_emails = summary.value("invalid_emails", std::size_t{0});
    for (const auto& [org, count] : members->items()) {
        if (!count.is_number_unsigned()) {
            return std::nullopt;
        }
        plan.summary.source_members += count.get<std::size_t>();
        plan.summary.source_members_by_org.emplace(org, count.get<std::size_t>());
    }
    return plan;
}

nlohmann::json summary_json(const Plan& plan) {
    std::map<std::string, int> by_kind;
    for (const auto& change : plan.changes) {
        ++by_kind[std::string(to_string(change.kind))];
    }
    return nlohmann::json{{"changes", plan.changes.size()},
                          {"held", plan.held.size()},
                          {"by_kind", by_kind},
                          {"mirror_users", plan.summary.mirror_users},
                          {"mapped_users", plan.summary.mapped_users},
                          {"unmapped_users", plan.summary.unmapped_users},
                          {"invalid_emails", plan.summary.invalid_emails}};
}

// The run as recorded: counts, every held change, and the first changes
// (a first sync can have hundreds of thousands; the audit log has them all).
constexpr std::size_t k_recorded_changes = 1000;

SyncRun record(const Plan& plan, const std::string& started, const std::string& result,
               const std::string& message, std::string_view kind) {
    Plan shown;
    shown.source = plan.source;
    shown.held = plan.held;
    shown.summary = plan.summary;
    shown.problem = plan.problem;
    auto count = std::min(plan.changes.size(), k_recorded_changes);
    shown.changes.assign(plan.changes.begin(),
                         plan.changes.begin() + static_cast<std::ptrdiff_t>(count));
    nlohmann::json recorded = to_json(shown);
    recorded["changes_total"] = plan.changes.size();
    return SyncRun{0,
                   plan.source,
                   started,
                   "",
                   result,
                   message,
                   summary_json(plan).dump(),
                   recorded.dump(),
                   std::string(kind)};
}

}  // namespace

Expected<SourceData> stored_mirror(const Store& store, std::string_view source) {
    auto users = store.list_source_users(source);
    auto groups = store.list_source_groups(source);
    if (!users || !groups) {
        return std::unexpected(!users ? users.error() : groups.error());
    }
    return SourceData{std::move(*users), std::move(*groups)};
}

namespace {

// Settles every project the plan would leave without an admin: the mapping's
// fallback gets admin, or else the changes that remove its admins are held.
// `error` is the store's answer to the plan as it stands, when known; each
// further round asks again with a dry run.
Expected<void> resolve_holds(Store& store, const mapping::Mapping& mapping,
                             const SourceSpec& source, Plan& plan, std::optional<Error> error) {
    std::set<std::string> fallback_used;
    for (int round = 0; round < k_max_hold_rounds; ++round) {
        if (!error) {
            auto checked = store.check_write(source.name, [&](Transaction& tx) {
                return apply_changes(tx, mapping, source.name, plan.changes);
            });
            if (checked) {
                return {};
            }
            error = checked.error();
        }
        auto slash = error->subject.find('/');
        if (error->code != ErrorCode::last_project_admin || slash == std::string::npos) {
            plan.problem = error->message;
            return {};
        }
        std::string org = error->subject.substr(0, slash);
        std::string project = error->subject.substr(slash + 1);
        const auto* declared = mapping.find_org(org);
        if (declared != nullptr && declared->project_admin_fallback &&
            fallback_used.insert(error->subject).second) {
            plan.changes.push_back(Change({.kind = ChangeKind::add_fallback_admin,
                                           .org = org,
                                           .email = *declared->project_admin_fallback,
                                           .project = project,
                                           .why = "project_admin_fallback in the mapping"}));
        } else {
            auto moved = hold_admin_removals(store, plan, org, project);
            if (!moved) {
                return std::unexpected(moved.error());
            }
            if (*moved == 0) {
                plan.problem = error->message;
                return {};
            }
        }
        error.reset();
    }
    plan.problem = "too many projects would lose their last admin";
    return {};
}

// The plan with every project that would lose its last admin settled.
Expected<Plan> settle(Store& store, const mapping::Mapping& mapping, const SourceSpec& source,
                      Expected<Plan> plan) {
    if (!plan) {
        return plan;
    }
    // Only removals can take away a project's last admin; a plan without
    // them needs no dry run.
    bool removes = std::any_of(plan->changes.begin(), plan->changes.end(), [](const Change& c) {
        return c.kind == ChangeKind::remove_member || c.kind == ChangeKind::remove_group_member ||
               ((c.kind == ChangeKind::remove_grant || c.kind == ChangeKind::change_grant) &&
                c.from_level == Level::admin);
    });
    if (!removes) {
        return plan;
    }
    if (auto resolved = resolve_holds(store, mapping, source, *plan, std::nullopt); !resolved) {
        return std::unexpected(resolved.error());
    }
    return plan;
}

using MirrorWrite = std::function<Expected<void>(Transaction&)>;

// Guards and applies `plan`: the deletion guard, then one transaction that
// runs `write_mirror` (when set), applies the changes and records the run;
// when the store refuses because a project would lose its last admin, the
// plan is settled with dry runs and applied again. Blocked and failed runs
// are recorded and change nothing else.
// With `settle`, a plan applied as made, without held changes, is
// recorded as settled (its changes applied, the same plan would be empty).
Expected<RunResult> execute(Store& store, const mapping::Mapping& mapping, const SourceSpec& source,
                            Plan plan, const std::string& started, std::string_view kind,
                            const MirrorWrite& write_mirror, const RunOptions& options,
                            const std::optional<Settle>& settle = std::nullopt) {
    auto finish = [&](RunResult result) -> Expected<RunResult> {
        auto recorded = store.write(source.name, [&](Transaction& tx) {
            return tx.record_sync_run(
                record(result.plan, started, result.result, result.message, kind));
        });
        if (!recorded) {
            return std::unexpected(recorded.error());
        }
        return result;
    };
    // Only a plan applied as made is recorded as settled: one the store
    // refused and that was settled with holds or fallback admins is planned
    // again next time.
    auto apply = [&](bool as_planned) {
        return store.write(source.name, [&](Transaction& tx) -> Expected<void> {
            if (write_mirror) {
                if (auto written = write_mirror(tx); !written) {
                    return written;
                }
            }
            if (auto done = apply_changes(tx, mapping, source.name, plan.changes); !done) {
                return done;
            }
            if (options.record_applied) {
                if (auto recorded = tx.record_sync_run(record(plan, started, "applied", "", kind));
                    !recorded) {
                    return recorded;
                }
            }
            if (settle && as_planned && plan.held.empty()) {
                auto members = tx.source_member_counts(source.name);
                if (!members) {
                    return std::unexpected(members.error());
                }
                return tx.mark_settled(
                    source.name, settle->key, settle->generation,
                    settled_summary_text(plan.summary, settle->mirror, *members));
            }
            return {};
        });
    };
    std::optional<Error> refused;
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (attempt == 1) {
            if (auto resolved = resolve_holds(store, mapping, source, plan, refused); !resolved) {
                return std::unexpected(resolved.error());
            }
            if (!plan.problem.empty()) {
                return finish(RunResult{"failed", plan.problem, std::move(plan)});
            }
        }
        if (auto blocked = deletion_guard(plan, mapping); blocked && !options.force) {
            return finish(RunResult{"blocked", *blocked, std::move(plan)});
        }
        auto applied = apply(attempt == 0);
        if (applied) {
            return RunResult{"applied", "", std::move(plan)};
        }
        refused = applied.error();
        if (refused->code != ErrorCode::last_project_admin) {
            break;
        }
    }
    return finish(RunResult{"failed", refused->message, std::move(plan)});
}

// Makes the stored mirror match `delta` and stores its cursor.
Expected<void> patch_mirror(Transaction& tx, const std::string& source, const SourceDelta& delta) {
    for (const auto& user : delta.upsert_users) {
        SourceUser stored = user;
        stored.source = source;
        if (auto put = tx.put_source_user(stored); !put) {
            return put;
        }
    }
    for (const auto& id : delta.removed_user_ids) {
        if (auto gone = tx.delete_source_user(source, id); !gone) {
            return gone;
        }
    }
    for (const auto& group : delta.upsert_groups) {
        SourceGroup stored = group;
        stored.source = source;
        if (auto put = tx.put_source_group(stored); !put) {
            return put;
        }
    }
    for (const auto& id : delta.removed_group_ids) {
        if (auto gone = tx.delete_source_group(source, id); !gone) {
            return gone;
        }
    }
    if (delta.cursor) {
        return tx.set_source_cursor(source, *delta.cursor);
    }
    return {};
}

}  // namespace

Expected<Plan> prepare_plan(Store& store, const mapping::Mapping& mapping, const SourceSpec& source,
                            const SourceData& data) {
    return settle(store, mapping, source, make_plan(store, mapping, source, data));
}

Expected<Plan> prepare_delta_plan(Store& store, const mapping::Mapping& mapping,
                                  const SourceSpec& source, const SourceDelta& delta) {
    return settle(store, mapping, source, make_delta_plan(store, mapping, source, delta));
}

Expected<RunResult> run_sync_delta(Store& store, const mapping::Mapping& mapping,
                                   const SourceSpec& source, const SourceDelta& delta,
                                   const RunOptions& options) {
    std::string started = now_utc();
    if (!delta.incomplete.empty()) {
        Plan plan;
        plan.source = source.name;
        RunResult result{"failed",
                         fmt::format("{} returned an incomplete delta ({}); nothing was changed",
                                     source.name, delta.incomplete),
                         std::move(plan)};
        auto recorded = store.write(source.name, [&](Transaction& tx) {
            return tx.record_sync_run(
                record(result.plan, started, result.result, result.message, "delta"));
        });
        if (!recorded) {
            return std::unexpected(recorded.error());
        }
        return result;
    }
    auto plan = make_delta_plan(store, mapping, source, delta);
    if (!plan) {
        return std::unexpected(plan.error());
    }
    return execute(
        store, mapping, source, std::move(*plan), started, "delta",
        [&](Transaction& tx) { return patch_mirror(tx, source.name, delta); }, options);
}

std::optional<std::string> deletion_guard(const Plan& plan, const mapping::Mapping& mapping) {
    using Counts = std::map<std::string, std::size_t>;
    Counts removed;
    for (const auto& change : plan.changes) {
        if (change.kind == ChangeKind::remove_member) {
            ++removed[std::string(change.org())];
        }
    }
    auto count_in = [](const Counts& counts, const std::string& org) {
        auto found = counts.find(org);
        return found == counts.end() ? std::size_t{0} : found->second;
    };
    // Every org the source asserts members in, whether or not the mapping
    // still declares it (a mapping mistake is what the guard is for); an org
    // the mapping dropped gets the default limits.
    std::set<std::string> orgs;
    const std::array<const Counts*, 3> all{&removed, &plan.summary.source_members_by_org,
                                           &plan.summary.deactivations_by_org};
    for (const Counts* counts : all) {
        for (const auto& [slug, count] : *counts) {
            orgs.insert(slug);
        }
    }
    for (const auto& slug : orgs) {
        const auto* declared = mapping.find_org(slug);
        const mapping::GuardSettings guard = declared ? declared->guard : mapping::GuardSettings{};
        std::size_t total = count_in(plan.summary.source_members_by_org, slug);
        std::size_t gone =
            count_in(removed, slug) + count_in(plan.summary.deactivations_by_org, slug);
        if (gone == 0) {
            continue;
        }
        auto percent = static_cast<std::size_t>(guard.max_delete_percent);
        if (gone * 100 > total * percent) {
            return fmt::format(
                "would remove or deactivate {} of the {} users {} asserts in org {} (more than "
                "{}%); review the plan and run with --force to apply it",
                gone, total, plan.source, slug, percent);
        }
        if (gone > static_cast<std::size_t>(guard.max_delete_count)) {
            return fmt::format(
                "would remove or deactivate {} users {} asserts in org {} (more than {}); review "
                "the plan and run with --force to apply it",
                gone, plan.source, slug, guard.max_delete_count);
        }
    }
    return std::nullopt;
}

Expected<StoredDigests> read_stored_digests(const Store& store, std::string_view source) {
    auto generation = store.generation();
    if (!generation) {
        return std::unexpected(generation.error());
    }
    auto users = store.source_user_digests(source);
    auto groups = store.source_group_digests(source);
    if (!users || !groups) {
        return std::unexpected(!users ? users.error() : groups.error());
    }
    return StoredDigests{*generation, std::move(*users), std::move(*groups)};
}

Expected<bool> source_settled(const Store& store, const mapping::Mapping& mapping,
                              const SourceSpec& source) {
    const std::string key = settle_key(mapping, source);
    if (key.empty()) {
        return false;
    }
    auto generation = store.generation();
    if (!generation) {
        return std::unexpected(generation.error());
    }
    auto summary = store.settled_summary(source.name, key, *generation);
    if (!summary) {
        return std::unexpected(summary.error());
    }
    return summary->has_value();
}

namespace {

// A full run: of `fetched`, compared with `pre_read` when it is still
// current, or of the stored mirror when `fetched` is null.
Expected<RunResult> run_full(Store& store, const mapping::Mapping& mapping,
                             const SourceSpec& source, const SourceData* fetched,
                             std::optional<StoredDigests> pre_read, const RunOptions& options) {
    std::string started = now_utc();
    // Read before anything the plan is made from: the run can be recorded
    // as settled only if nothing was committed since.
    auto generation = store.generation();
    if (!generation) {
        return std::unexpected(generation.error());
    }
    const std::string key = settle_key(mapping, source);
    // A run without a fetch plans the stored mirror.
    std::optional<SourceData> mirror;
    if (!fetched) {
        auto read = stored_mirror(store, source.name);
        if (!read) {
            return std::unexpected(read.error());
        }
        mirror = std::move(*read);
    }
    const SourceData& data = fetched ? *fetched : *mirror;

    auto finish = [&](RunResult result) -> Expected<RunResult> {
        auto recorded = store.write(source.name, [&](Transaction& tx) {
            return tx.record_sync_run(
                record(result.plan, started, result.result, result.message, "full"));
        });
        if (!recorded) {
            return std::unexpected(recorded.error());
        }
        return result;
    };

    if (fetched && !fetched->incomplete.empty()) {
        Plan plan;
        plan.source = source.name;
        return finish(RunResult{"failed",
                                fmt::format("{} returned incomplete data ({}); nothing was changed",
                                            source.name, fetched->incomplete),
                                std::move(plan)});
    }
    if (fetched && fetched->users.empty()) {
        auto mirrored = store.source_user_count(source.name);
        if (!mirrored) {
            return std::unexpected(mirrored.error());
        }
        if (*mirrored > 0) {
            Plan plan;
            plan.source = source.name;
            return finish(RunResult{"failed",
                                    fmt::format("{} returned no users while its mirror has {}; "
                                                "nothing was changed",
                                                source.name, *mirrored),
                                    std::move(plan)});
        }
    }

    // Settled: the fetch has the digest of the one a plan under the same
    // key was made from and applied (so the mirror holds it), and the store
    // has not changed since, so planning again would give nothing. The run
    // stores the cursor and is recorded as an applied run without changes.
    // A run of the stored mirror records its digest too, so that a later
    // fetch of the same records is settled.
    const std::string data_mirror = key.empty() ? std::string() : mirror_text(data);
    if (fetched && !data_mirror.empty()) {
        auto summary = store.settled_summary(source.name, key, *generation);
        if (!summary) {
            return std::unexpected(summary.error());
        }
        std::optional<Plan> plan;
        if (*summary) {
            plan = settled_plan(source, *fetched, **summary, data_mirror);
        }
        if (plan) {
            auto written = store.write(source.name, [&](Transaction& tx) -> Expected<void> {
                if (auto cursor = tx.set_source_cursor(source.name, fetched->cursor); !cursor) {
                    return cursor;
                }
                if (options.record_applied) {
                    if (auto recorded =
                            tx.record_sync_run(record(*plan, started, "applied", "", "full"));
                        !recorded) {
                        return recorded;
                    }
                }
                return tx.mark_settled(source.name, key, *generation, **summary);
            });
            if (!written) {
                return std::unexpected(written.error());
            }
            return RunResult{"applied", "", std::move(*plan)};
        }
    }

    // A fetch is written over the stored mirror record by record: the
    // stored records' digests say which it changes.
    StoredDigests stored;
    if (fetched) {
        if (pre_read && pre_read->generation == *generation) {
            stored = std::move(*pre_read);
        } else {
            auto read = read_stored_digests(store, source.name);
            if (!read) {
                return std::unexpected(read.error());
            }
            stored = std::move(*read);
            generation = stored.generation;
        }
    }

    // Applied as planned in the common case; only when the store refuses
    // (a project would lose its last admin) is the plan settled with dry
    // runs and applied again.
    auto plan = make_plan(store, mapping, source, data);
    if (!plan) {
        return std::unexpected(plan.error());
    }
    MirrorWrite write_mirror;
    if (fetched) {
        write_mirror = [&](Transaction& tx) -> Expected<void> {
            if (auto replaced = replace_mirror(tx, source.name, stored, *fetched); !replaced) {
                return replaced;
            }
            // A full read without a resume point invalidates the old one.
            return tx.set_source_cursor(source.name, fetched->cursor);
        };
    }
    std::optional<Settle> settle;
    if (!data_mirror.empty()) {
        settle = Settle{key, *generation, data_mirror};
    }
    return execute(store, mapping, source, std::move(*plan), started, "full", write_mirror, options,
                   settle);
}

}  // namespace

Expected<RunResult> run_sync(Store& store, const mapping::Mapping& mapping,
                             const SourceSpec& source, const std::optional<SourceData>& fetched,
                             const RunOptions& options) {
    return run_full(store, mapping, source, fetched ? &*fetched : nullptr, std::nullopt, options);
}

Expected<RunResult> run_sync(Store& store, const mapping::Mapping& mapping,
                             const SourceSpec& source, const SourceData& fetched,
                             std::optional<StoredDigests> stored, const RunOptions& options) {
    return run_full(store, mapping, source, &fetched, std::move(stored), options);
}

}  // namespace orgsync::sync
