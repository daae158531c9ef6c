// Seam for randomness: secrets come from the operating system's CSPRNG in production
// (crypto::SystemRandom), and from a seeded fake in tests that need repeatable output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace torii {

class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
};

}  // namespace torii
