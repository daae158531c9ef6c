// Test entry point: libsodium is initialised once, as main() does in production.
#include <gtest/gtest.h>

#include "crypto/sodium.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!torii::crypto::init()) return 2;
  return RUN_ALL_TESTS();
}
