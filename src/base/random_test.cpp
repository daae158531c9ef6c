#include "base/random.h"

#include <gtest/gtest.h>

#include <vector>

namespace torii {
namespace {

// Counts its calls and hands out 0, 1, 2, ... so that every byte's origin is visible.
class CountingRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override {
    ++calls;
    for (auto& b : out) b = static_cast<std::uint8_t>(next++);
  }
  int calls = 0;
  unsigned next = 0;
};

TEST(BlockRandom, HandsOutTheSourcesBytesInOrderEachOnceAndDrawsPerBlock) {
  CountingRandom source;
  BlockRandom block(source);
  std::vector<std::uint8_t> seen;
  for (int i = 0; i < 200; ++i) {  // 200 nonces of 24 bytes: 4800 bytes, two blocks
    std::array<std::uint8_t, 24> nonce{};
    block.fill(nonce);
    seen.insert(seen.end(), nonce.begin(), nonce.end());
  }
  EXPECT_EQ(source.calls, 2);
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], static_cast<std::uint8_t>(i)) << i;
}

TEST(BlockRandom, ARequestLargerThanABlockSpansBlocks) {
  CountingRandom source;
  BlockRandom block(source);
  std::vector<std::uint8_t> big(10000);
  block.fill(big);
  EXPECT_EQ(source.calls, 3);
  for (std::size_t i = 0; i < big.size(); ++i) ASSERT_EQ(big[i], static_cast<std::uint8_t>(i)) << i;
}

}  // namespace
}  // namespace torii
