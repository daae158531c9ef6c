// Seam for randomness: secrets come from the operating system's CSPRNG in production
// (crypto::SystemRandom), and from a seeded fake in tests that need repeatable output.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace torii {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
};

// Serves many small random values (AEAD nonces) from blocks drawn from `source`: one call
// to the source (a system call, for the operating system's CSPRNG) per block instead of
// one per value. The bytes are the source's own, handed out once each. Not thread-safe;
// not for keys (a block waits in memory until used).
class BlockRandom final : public Random {
 public:
  explicit BlockRandom(Random& source) : source_(source) {}

  void fill(std::span<std::uint8_t> out) override {
    while (!out.empty()) {
      if (used_ == block_.size()) {
        source_.fill(block_);
        used_ = 0;
      }
      const std::size_t n = std::min(out.size(), block_.size() - used_);
      std::copy_n(block_.begin() + static_cast<std::ptrdiff_t>(used_), n, out.begin());
      std::fill_n(block_.begin() + static_cast<std::ptrdiff_t>(used_), n, std::uint8_t{0});
      used_ += n;
      out = out.subspan(n);
    }
  }

 private:
  Random& source_;
  std::array<std::uint8_t, 4096> block_{};
  std::size_t used_ = 4096;
};

}  // namespace torii
