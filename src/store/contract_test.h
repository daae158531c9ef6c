// The contract every Store backend must meet, as a value-parameterised GoogleTest suite.
//
// A backend adds contract_test.cpp to its test's SOURCES and instantiates the suite with
// one line, e.g.
//   INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest,
//                            ::testing::Values(StoreBackend{"postgres", &make_pg_store}), backend_name);
// The factory is called once per test and must return a fresh, empty, migrated store (or
// nullptr, which fails the test).
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "store/store.h"

namespace torii::store::testing {

using StoreFactory = std::function<std::unique_ptr<Store>()>;

struct StoreBackend {
  std::string name;  // test-name suffix: letters, digits and underscores only
  StoreFactory factory;
};

inline void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

// Name generator for INSTANTIATE_TEST_SUITE_P: the backend's name.
inline std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; }

class StoreContractTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    store_ = GetParam().factory();
    ASSERT_NE(store_, nullptr) << "the " << GetParam().name << " factory returned no store";
  }
  void TearDown() override { store_.reset(); }

  [[nodiscard]] Store& store() { return *store_; }

 private:
  std::unique_ptr<Store> store_;
};

}  // namespace torii::store::testing
