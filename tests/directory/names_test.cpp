#include "directory/names.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace orgsync::directory {
namespace {

TEST(NamesTest, AStringIsNamedOnceAndReadBack) {
    Names names;
    std::string text = "one@acme.com";
    Names::Id one = names.intern(text);
    text[0] = 'x';  // the names hold their own copy
    EXPECT_EQ(names[one], "one@acme.com");
    EXPECT_EQ(names.intern("one@acme.com"), one);
    EXPECT_NE(names.intern("One@acme.com"), one);
    EXPECT_EQ(names.find("one@acme.com"), one);
    EXPECT_EQ(names.find("two@acme.com"), std::nullopt);
    EXPECT_EQ(names.size(), 2U);
}

TEST(NamesTest, NamesStayDenseAndValidAsTheyGrowAndMove) {
    Names names;
    EXPECT_EQ(names.find(""), std::nullopt);
    Names::Id empty = names.intern("");
    const std::string big(100'000, 'b');  // larger than a block
    std::vector<std::string> texts;
    for (int i = 0; i < 50'000; ++i) {
        // texts[k] is named k + 1, after the empty string.
        texts.push_back(i == 20'000 ? big : "user" + std::to_string(i) + "@example.com");
        EXPECT_EQ(names.intern(texts.back()), texts.size());
    }
    Names moved = std::move(names);
    EXPECT_EQ(moved.size(), texts.size() + 1);
    EXPECT_EQ(moved[empty], "");
    EXPECT_EQ(moved.find(""), empty);
    for (std::size_t i = 0; i < texts.size(); ++i) {
        ASSERT_EQ(moved[static_cast<Names::Id>(i + 1)], texts[i]);
        ASSERT_EQ(moved.find(texts[i]), static_cast<Names::Id>(i + 1));
    }
    EXPECT_EQ(moved.intern(texts[123]), 124U);
    EXPECT_EQ(moved.size(), texts.size() + 1);
}

}  // namespace
}  // namespace orgsync::directory
