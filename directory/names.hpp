#pragma once

// Each distinct string once, named by a dense four-byte index. The records a
// plan compares repeat a few org slugs and group names and hold a hundred
// thousand addresses; holding names instead of strings keeps them small and
// lets the diff compare them as integers.

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace orgsync::directory {

class Names {
  public:
    using Id = std::uint32_t;

    Names() = default;
    // The views point into blocks the object owns: moving keeps them valid,
    // copying could not.
    Names(const Names&) = delete;
    Names& operator=(const Names&) = delete;
    Names(Names&&) noexcept = default;
    Names& operator=(Names&&) noexcept = default;
    ~Names() = default;

    // The name of `text`, copying it in the first time it is seen.
    Id intern(std::string_view text);
    std::optional<Id> find(std::string_view text) const;
    std::string_view operator[](Id id) const { return m_texts[id]; }
    std::size_t size() const { return m_texts.size(); }

  private:
    struct Slot {
        std::uint32_t hash = 0;
        Id id = k_empty;
    };
    static constexpr Id k_empty = ~Id{0};

    std::size_t slot_of(std::string_view text, std::uint32_t hash) const;
    std::string_view copy(std::string_view text);
    void grow();

    std::vector<std::unique_ptr<char[]>> m_blocks;
    char* m_free = nullptr;  // in the last block
    std::size_t m_free_size = 0;
    std::vector<std::string_view> m_texts;  // by id
    std::vector<Slot> m_slots;              // a power of two, at most half full
};

}  // namespace orgsync::directory
