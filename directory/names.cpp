#include "directory/names.hpp"

#include <algorithm>
#include <bit>
#include <functional>
#include <stdexcept>
#include <utility>

namespace orgsync::directory {
namespace {

constexpr std::size_t k_block_size = 64 * 1024;

std::uint32_t hash_of(std::string_view text) {
    std::size_t hash = std::hash<std::string_view>{}(text);
    return static_cast<std::uint32_t>(hash ^ (hash >> 32));
}

}  // namespace

std::size_t Names::slot_of(std::string_view text, std::uint32_t hash) const {
    std::size_t mask = m_slots.size() - 1;
    std::size_t i = hash & mask;
    while (m_slots[i].id != k_empty &&
           (m_slots[i].hash != hash || m_texts[m_slots[i].id] != text)) {
        i = (i + 1) & mask;
    }
    return i;
}

std::optional<Names::Id> Names::find(std::string_view text) const {
    if (m_slots.empty()) {
        return std::nullopt;
    }
    const Slot& slot = m_slots[slot_of(text, hash_of(text))];
    return slot.id == k_empty ? std::nullopt : std::optional<Id>(slot.id);
}

Names::Id Names::intern(std::string_view text) {
    if (2 * (m_texts.size() + 1) > m_slots.size()) {
        grow();
    }
    std::uint32_t hash = hash_of(text);
    Slot& slot = m_slots[slot_of(text, hash)];
    if (slot.id != k_empty) {
        return slot.id;
    }
    if (m_texts.size() >= k_empty) {
        throw std::length_error("too many names");
    }
    slot = Slot{hash, static_cast<Id>(m_texts.size())};
    m_texts.push_back(copy(text));
    return slot.id;
}

std::string_view Names::copy(std::string_view text) {
    if (text.size() > m_free_size) {
        std::size_t size = std::max(k_block_size, text.size());
        m_blocks.push_back(std::make_unique_for_overwrite<char[]>(size));
        m_free = m_blocks.back().get();
        m_free_size = size;
    }
    char* start = m_free;
    std::copy(text.begin(), text.end(), start);
    m_free += text.size();
    m_free_size -= text.size();
    return {start, text.size()};
}

void Names::grow() {
    std::size_t capacity = std::max<std::size_t>(16, 2 * m_slots.size());
    std::vector<Slot> old = std::exchange(m_slots, std::vector<Slot>(capacity));
    std::size_t mask = capacity - 1;
    for (const Slot& slot : old) {
        if (slot.id != k_empty) {
            std::size_t i = slot.hash & mask;
            while (m_slots[i].id != k_empty) {
                i = (i + 1) & mask;
            }
            m_slots[i] = slot;
        }
    }
}

}  // namespace orgsync::directory
