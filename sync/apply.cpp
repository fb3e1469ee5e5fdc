#include "sync/apply.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace orgsync::sync {
namespace {

using namespace directory;

template <typename Id>
Expected<Id> required(Expected<std::optional<Id>> found, std::string_view what) {
    if (!found) {
        return std::unexpected(found.error());
    }
    if (!*found) {
        return fail(ErrorCode::not_found, fmt::format("no {}", what));
    }
    return **found;
}

class Applier {
  public:
    Applier(Transaction& tx, const mapping::Mapping& mapping, std::string_view source)
        : m_tx(tx), m_mapping(mapping), m_source(source) {}

    Expected<void> apply(const Change& change) {
        switch (change.kind) {
            case ChangeKind::create_org: {
                const auto* org = m_mapping.find_org(change.org());
                auto created = m_tx.create_org(change.org(), change.display_name(),
                                               org != nullptr && org->workforce, change.email());
                return created ? Expected<void>{} : std::unexpected(created.error());
            }
            case ChangeKind::create_project:
            case ChangeKind::update_project:
                return apply_project(change);
            case ChangeKind::create_dataset: {
                auto org = org_id(change.org());
                if (!org) {
                    return std::unexpected(org.error());
                }
                auto created = m_tx.create_dataset(*org, change.dataset());
                return created ? Expected<void>{} : std::unexpected(created.error());
            }
            case ChangeKind::attach_dataset: {
                auto org = org_id(change.org());
                if (!org) {
                    return std::unexpected(org.error());
                }
                auto dataset =
                    required(m_tx.find_dataset_id(*org, change.dataset()),
                             fmt::format("dataset {}/{}", change.org(), change.dataset()));
                auto project =
                    required(m_tx.find_project_id(*org, change.project()),
                             fmt::format("project {}/{}", change.org(), change.project()));
                if (!dataset || !project) {
                    return std::unexpected(!dataset ? dataset.error() : project.error());
                }
                return m_tx.attach_dataset(*dataset, *project);
            }
            case ChangeKind::add_member:
            case ChangeKind::change_member: {
                auto org = org_id(change.org());
                if (!org) {
                    return std::unexpected(org.error());
                }
                auto user = m_tx.upsert_user(change.email(), change.display_name());
                if (!user) {
                    return std::unexpected(user.error());
                }
                if (!change.external_id().empty()) {
                    // An id still held by another user record (the new
                    // address was already someone's) stays there; the
                    // membership goes to the address the source states.
                    auto set = m_tx.set_external_id(
                        *user,
                        ExternalId{std::string(m_source), "id", std::string(change.external_id())});
                    if (!set && set.error().code != ErrorCode::already_exists) {
                        return set;
                    }
                }
                return m_tx.assert_membership(
                    *org, *user,
                    MembershipAssertion{std::string(m_source), change.user_type, change.role});
            }
            case ChangeKind::remove_member: {
                auto org = org_id(change.org());
                auto user = user_id(change.email());
                if (!org || !user) {
                    return std::unexpected(!org ? org.error() : user.error());
                }
                return m_tx.retract_membership(*org, *user, m_source);
            }
            case ChangeKind::create_group: {
                auto org = org_id(change.org());
                if (!org) {
                    return std::unexpected(org.error());
                }
                auto created = m_tx.create_group(*org, change.group());
                return created ? Expected<void>{} : std::unexpected(created.error());
            }
            case ChangeKind::add_group_member:
            case ChangeKind::remove_group_member: {
                auto group = group_id(change.org(), change.group());
                auto user = user_id(change.email());
                if (!group || !user) {
                    return std::unexpected(!group ? group.error() : user.error());
                }
                return change.kind == ChangeKind::add_group_member
                           ? m_tx.add_group_member(*group, *user, m_source)
                           : m_tx.remove_group_member(*group, *user, m_source);
            }
            case ChangeKind::add_grant:
            case ChangeKind::change_grant:
            case ChangeKind::remove_grant:
                return apply_grant(change);
            case ChangeKind::add_fallback_admin: {
                auto org = org_id(change.org());
                auto user = user_id(change.email());
                if (!org || !user) {
                    return std::unexpected(!org ? org.error() : user.error());
                }
                auto project =
                    required(m_tx.find_project_id(*org, change.project()),
                             fmt::format("project {}/{}", change.org(), change.project()));
                if (!project) {
                    return std::unexpected(project.error());
                }
                // Asserted manually: the fallback is the mapping's choice,
                // not something the source stated, so no sync undoes it.
                return m_tx.grant_project(*project, Principal{PrincipalKind::user, *user},
                                          Level::admin, k_manual_source, std::nullopt);
            }
            case ChangeKind::change_email: {
                auto user = user_id(change.previous_email());
                if (!user) {
                    return std::unexpected(user.error());
                }
                return m_tx.change_user_email(*user, change.email());
            }
            case ChangeKind::deactivate_user:
            case ChangeKind::reactivate_user: {
                auto user = user_id(change.email());
                if (!user) {
                    return std::unexpected(user.error());
                }
                return m_tx.set_user_active(*user, change.kind == ChangeKind::reactivate_user);
            }
        }
        return fail(ErrorCode::invalid_argument, "unknown change");
    }

    // A run of add_member changes of one org: one bulk call.
    Expected<void> add_members(std::string_view org_slug, std::vector<NewMember> members) {
        auto org = org_id(org_slug);
        if (!org) {
            return std::unexpected(org.error());
        }
        return m_tx.add_members(*org, m_source, members);
    }

    // A run of add_group_member changes of one group: one bulk call.
    Expected<void> add_group_members(std::string_view org, std::string_view group,
                                     const std::vector<std::string>& emails) {
        auto id = group_id(org, group);
        if (!id) {
            return std::unexpected(id.error());
        }
        return m_tx.add_group_members(*id, m_source, emails);
    }

  private:
    // Ids found once stay valid for the transaction: sync never deletes an
    // org or a group.
    Expected<OrgId> org_id(std::string_view slug) {
        if (auto cached = m_orgs.find(slug); cached != m_orgs.end()) {
            return cached->second;
        }
        auto found = required(m_tx.find_org_id(slug), fmt::format("org {}", slug));
        if (found) {
            m_orgs.emplace(std::string(slug), *found);
        }
        return found;
    }
    Expected<UserId> user_id(std::string_view email) {
        return required(m_tx.find_user_id(email), fmt::format("user {}", email));
    }
    Expected<GroupId> group_id(std::string_view org, std::string_view name) {
        auto id = org_id(org);
        if (!id) {
            return std::unexpected(id.error());
        }
        auto key = std::pair{*id, std::string(name)};
        if (auto cached = m_groups.find(key); cached != m_groups.end()) {
            return cached->second;
        }
        auto found =
            required(m_tx.find_group_id(*id, name), fmt::format("group {} in {}", name, org));
        if (found) {
            m_groups.emplace(std::move(key), *found);
        }
        return found;
    }

    Expected<void> apply_project(const Change& change) {
        const auto* org = m_mapping.find_org(change.org());
        const mapping::ProjectDecl* declared = nullptr;
        if (org != nullptr) {
            for (const auto& project : org->projects) {
                if (project.slug == change.project()) {
                    declared = &project;
                }
            }
        }
        if (declared == nullptr) {
            return fail(ErrorCode::not_found, fmt::format("project {}/{} is not in the mapping",
                                                          change.org(), change.project()));
        }
        auto id = org_id(change.org());
        if (!id) {
            return std::unexpected(id.error());
        }
        if (change.kind == ChangeKind::create_project) {
            auto admin = user_id(change.email());
            if (!admin) {
                return std::unexpected(admin.error());
            }
            auto created = m_tx.create_project(*id, change.project(), declared->visibility,
                                               declared->tags, *admin);
            return created ? Expected<void>{} : std::unexpected(created.error());
        }
        auto project = required(m_tx.find_project_id(*id, change.project()),
                                fmt::format("project {}/{}", change.org(), change.project()));
        if (!project) {
            return std::unexpected(project.error());
        }
        if (auto set = m_tx.set_project_visibility(*project, declared->visibility); !set) {
            return set;
        }
        return m_tx.set_project_tags(*project, declared->tags);
    }

    Expected<void> apply_grant(const Change& change) {
        auto group = group_id(change.org(), change.group());
        auto org = org_id(change.org());
        if (!group || !org) {
            return std::unexpected(!group ? group.error() : org.error());
        }
        Principal principal{PrincipalKind::group, *group};
        bool remove = change.kind == ChangeKind::remove_grant;
        if (!change.project().empty()) {
            auto project = required(m_tx.find_project_id(*org, change.project()),
                                    fmt::format("project {}/{}", change.org(), change.project()));
            if (!project) {
                return std::unexpected(project.error());
            }
            return remove ? m_tx.revoke_project(*project, principal, m_source)
                          : m_tx.grant_project(*project, principal, change.level, m_source,
                                               std::nullopt);
        }
        auto dataset = required(m_tx.find_dataset_id(*org, change.dataset()),
                                fmt::format("dataset {}/{}", change.org(), change.dataset()));
        if (!dataset) {
            return std::unexpected(dataset.error());
        }
        return remove ? m_tx.revoke_dataset(*dataset, principal, m_source)
                      : m_tx.grant_dataset(*dataset, principal,
                                           static_cast<DatasetAccess>(change.level), m_source,
                                           std::nullopt);
    }

    Transaction& m_tx;
    const mapping::Mapping& m_mapping;
    std::string_view m_source;
    std::map<std::string, OrgId, std::less<>> m_orgs;
    std::map<std::pair<OrgId, std::string>, GroupId> m_groups;
};

}  // namespace

Expected<void> apply_changes(Transaction& tx, const mapping::Mapping& mapping,
                             std::string_view source, const std::vector<Change>& changes) {
    Applier applier(tx, mapping, source);
    auto failed = [](Error error, const Change& change) {
        error.message = fmt::format("{} ({} {})", error.message, to_string(change.kind),
                                    change.email().empty() ? change.group() : change.email());
        return std::unexpected(std::move(error));
    };
    // Runs of new members of one org and of new members of one group (the
    // bulk of a first sync) go to the store's bulk calls.
    for (std::size_t i = 0; i < changes.size();) {
        const Change& change = changes[i];
        std::size_t end = i + 1;
        if (change.kind == ChangeKind::add_member) {
            std::vector<NewMember> members;
            for (end = i; end < changes.size() && changes[end].kind == ChangeKind::add_member &&
                          changes[end].org() == change.org();
                 ++end) {
                const Change& add = changes[end];
                members.push_back(NewMember{add.email(), add.display_name(), add.external_id(),
                                            add.user_type, add.role});
            }
            if (auto done = applier.add_members(change.org(), std::move(members)); !done) {
                return failed(done.error(), change);
            }
        } else if (change.kind == ChangeKind::add_group_member) {
            std::vector<std::string> emails;
            for (end = i;
                 end < changes.size() && changes[end].kind == ChangeKind::add_group_member &&
                 changes[end].org() == change.org() && changes[end].group() == change.group();
                 ++end) {
                emails.emplace_back(changes[end].email());
            }
            if (auto done = applier.add_group_members(change.org(), change.group(), emails);
                !done) {
                return failed(done.error(), change);
            }
        } else if (auto done = applier.apply(change); !done) {
            return failed(done.error(), change);
        }
        i = end;
    }
    return {};
}

}  // namespace orgsync::sync
