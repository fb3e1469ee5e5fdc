#pragma once

// The sync plan (DESIGN §2): from what one source states (its mirror) and the
// mapping, derive the org state that source should assert, diff it against
// what the source asserts in the store now, and list the typed changes that
// would close the gap. Making a plan changes nothing.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "directory/error.hpp"
#include "directory/model.hpp"
#include "directory/store.hpp"
#include "mapping/mapping.hpp"

namespace orgsync::sync {

// A configured source as the pipeline needs it.
using SourceSpec = mapping::SourceRef;

// What a source states: its users and groups, as stored in its mirror.
struct SourceData {
    std::vector<directory::SourceUser> users;
    std::vector<directory::SourceGroup> groups;
    // Set by a connector whose read was cut short (size or time limit,
    // partial results, an unreachable referral): why. Such data is never
    // applied, since what is missing would read as deleted.
    std::string incomplete;
    // The connector's resume point after this read (a syncrepl cookie, a
    // highest uSNChanged). Stored with the mirror only when the run is
    // applied, in the same transaction; a blocked or failed run leaves the
    // stored cursor as it was. An applied full read without one clears the
    // stored cursor (it no longer describes the mirror).
    std::optional<std::string> cursor;
};

// What changed in a source since its stored cursor: records that are new or
// changed (each replaces the mirrored record with its external id, a group
// with its whole member list) and the external ids of records that are
// gone. An id may not be both upserted and removed.
struct SourceDelta {
    std::vector<directory::SourceUser> upsert_users;
    std::vector<std::string> removed_user_ids;
    std::vector<directory::SourceGroup> upsert_groups;
    std::vector<std::string> removed_group_ids;
    // The resume point after this delta; stored with the patched mirror when
    // the run is applied. nullopt keeps the stored cursor.
    std::optional<std::string> cursor;
    // As SourceData::incomplete: set when the read was cut short; the run
    // then fails and changes nothing.
    std::string incomplete;
    // Whether the plan's summary counts the source's members per org and
    // its mirror's users (what the deletion guard weighs removals
    // against). Counting reads every membership of the source; a caller
    // that applies with force, like a SCIM push, skips it, and the
    // summary then has no per-org counts and mirror_users 0.
    bool guard_counts = true;
};

enum class ChangeKind : std::uint8_t {
    create_org,
    create_project,
    update_project,  // visibility or tags
    create_dataset,
    attach_dataset,
    add_member,
    change_member,  // type or role asserted by the source changes
    remove_member,
    create_group,
    add_group_member,
    remove_group_member,
    add_grant,  // a group's project level or dataset access
    change_grant,
    remove_grant,
    deactivate_user,
    reactivate_user,
    add_fallback_admin,  // the mapping's project_admin_fallback replaces a last admin
    change_email,        // the source states a new address for a user it knows by id
};

std::string_view to_string(ChangeKind kind);

// One typed change. A first sync plans hundreds of thousands, so the text
// fields share one buffer and are read through accessors; made from
// `Change::Fields` (designated initializers, the fields a kind uses).
class Change {
  public:
    struct Fields {
        ChangeKind kind = ChangeKind::add_member;
        std::string_view org;
        std::string_view email;    // member changes, group members, user (de)activation
        std::string_view group;    // group changes and grants
        std::string_view project;  // project changes and project grants
        std::string_view dataset;  // dataset changes and dataset grants
        directory::UserType user_type = directory::UserType::external;  // target
        directory::OrgRole role = directory::OrgRole::guest;            // target
        directory::UserType from_type = directory::UserType::external;  // change_member
        directory::OrgRole from_role = directory::OrgRole::guest;       // change_member
        directory::Level level = directory::Level::none;       // grant target (dataset: read/write)
        directory::Level from_level = directory::Level::none;  // change/remove grant
        std::string_view external_id;     // add_member: the source's id for the user
        std::string_view previous_email;  // change_email
        std::string_view display_name;
        std::string_view why;         // what in the mapping or the source causes it
        bool before_removal = false;  // change_member: the demotion that precedes removing an admin
    };

    Change() = default;
    explicit Change(const Fields& fields);

    std::string_view org() const { return text(Text::org); }
    std::string_view email() const { return text(Text::email); }
    std::string_view group() const { return text(Text::group); }
    std::string_view project() const { return text(Text::project); }
    std::string_view dataset() const { return text(Text::dataset); }
    std::string_view external_id() const { return text(Text::external_id); }
    std::string_view previous_email() const { return text(Text::previous_email); }
    std::string_view display_name() const { return text(Text::display_name); }
    std::string_view why() const { return text(Text::why); }

    ChangeKind kind = ChangeKind::add_member;
    directory::UserType user_type = directory::UserType::external;
    directory::OrgRole role = directory::OrgRole::guest;
    directory::UserType from_type = directory::UserType::external;
    directory::OrgRole from_role = directory::OrgRole::guest;
    directory::Level level = directory::Level::none;
    directory::Level from_level = directory::Level::none;
    bool before_removal = false;

  private:
    enum class Text : std::uint8_t {
        org,
        email,
        group,
        project,
        dataset,
        external_id,
        previous_email,
        display_name,
        why,
        count
    };
    static constexpr std::size_t k_texts = static_cast<std::size_t>(Text::count);

    // The text fields one after another in one exact allocation, each
    // ending at its `end`; a copy copies the text.
    struct Texts {
        std::unique_ptr<char[]> bytes;
        std::array<std::uint32_t, k_texts> end{};

        Texts() = default;
        explicit Texts(const std::array<std::string_view, k_texts>& fields);
        Texts(const Texts& other);
        Texts& operator=(const Texts& other);
        Texts(Texts&& other) noexcept;  // leaves `other` empty
        Texts& operator=(Texts&& other) noexcept;
        ~Texts() = default;
    };

    std::string_view text(Text field) const {
        const auto index = static_cast<std::size_t>(field);
        const std::uint32_t begin = index == 0 ? 0 : m_texts.end[index - 1];
        return {m_texts.bytes.get() + begin, m_texts.end[index] - begin};
    }

    Texts m_texts;
};

// A change the plan will not apply, and why (e.g. it would remove a
// project's last admin and the mapping names no fallback).
struct HeldChange {
    Change change;
    std::string reason;
};

struct PlanSummary {
    std::size_t mirror_users = 0;
    std::size_t mapped_users = 0;    // users that join at least one org
    std::size_t unmapped_users = 0;  // valid addresses that match no org
    std::size_t invalid_emails = 0;  // mirrored users whose address is not valid
    std::size_t source_members = 0;  // memberships the source asserts now
    std::map<std::string, std::size_t> source_members_by_org;
    std::map<std::string, std::size_t> deactivations_by_org;  // of users the source has there
};

struct Plan {
    std::string source;
    std::vector<Change> changes;  // in apply order
    std::vector<HeldChange> held;
    PlanSummary summary;
    std::string problem;  // set when the changes cannot be applied as they are, and why

    bool empty() const { return changes.empty() && held.empty(); }
};

// The plan for `source` from `data`. Reads the store; writes nothing.
directory::Expected<Plan> make_plan(const directory::Store& store, const mapping::Mapping& mapping,
                                    const SourceSpec& source, const SourceData& data);

// The plan for the source's stored mirror patched with `delta`: the changes
// make_plan would give for that whole mirror, computed only for the records
// the delta affects (its users, the old and new members of its groups, the
// users who share an address with those) and read from the store for those
// records only, so it costs time in proportion to the delta. It equals the
// full plan when the store is as the last run of this source left it and
// the mapping has not changed since; after a mapping change, run a full
// sync. The summary's mapped/unmapped/invalid counts are of the affected
// users; mirror_users is the patched mirror's size. invalid_argument when
// an id is both upserted and removed, or empty.
directory::Expected<Plan> make_delta_plan(const directory::Store& store,
                                          const mapping::Mapping& mapping, const SourceSpec& source,
                                          const SourceDelta& delta);

// The plan as an admin reads it: one line per change, then held changes
// with their reasons, then counts.
std::string to_text(const Plan& plan);
nlohmann::json to_json(const Plan& plan);
nlohmann::json to_json(const Change& change);

}  // namespace orgsync::sync
