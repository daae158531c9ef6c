// A test fixture with a fresh store and key hierarchy (open_keyed_store) in a temporary
// directory of its own.
#pragma once

#include <memory>

#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "keys/key_ring.h"
#include "store/store.h"
#include "testing/fakes.h"
#include "testing/keyed_store.h"
#include "testing/temp_dir.h"

namespace torii::testing {

// Opened by SetUp. A fixture built on it calls KeyedStoreTest::SetUp() first and returns
// if that failed (HasFatalFailure()).
class KeyedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = open_keyed_store(dir_.path(), random_, clock_);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(opened->store);
    keys_ = std::move(opened->keys);
  }

  TempDir dir_;
  crypto::SystemRandom random_;
  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<keys::KeyRing> keys_;
};

}  // namespace torii::testing
