// Shared by the fuzz harnesses: a violated property stops the fuzzer with a crash, which
// libFuzzer saves as a reproducer (and which fails the corpus replay in CTest).
#pragma once

namespace torii::fuzz {

inline void check(bool property) {
  if (!property) __builtin_trap();
}

}  // namespace torii::fuzz
