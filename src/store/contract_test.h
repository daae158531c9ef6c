// The contract every Store backend must meet, as a value-parameterised GoogleTest suite.
//
// A backend adds contract_test.cpp and people_contract_test.cpp to its test's SOURCES and
// instantiates the suite with one line, e.g.
//   INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest,
//                            ::testing::Values(StoreBackend{"postgres", &make_pg_store}), backend_name);
// The factory is called once per test and must return a fresh, empty, migrated store (or
// nullptr, which fails the test).
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

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

// Quotes, a NUL in the middle, SQL syntax: survives only if values are bound, not pasted.
inline constexpr char kTrickyText[] = "O'Brien\0x\"; DROP TABLE meta; --";
inline const std::string kTricky(kTrickyText, sizeof(kTrickyText) - 1);
inline constexpr UnixMillis kNow = 1'790'000'000'000;

template <class T>
::testing::AssertionResult is_ok(const tl::expected<T, Error>& r) {
  if (r) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "error " << r.error().code.message() << ": " << r.error().message;
}

template <class T>
::testing::AssertionResult fails_with(const tl::expected<T, Error>& r, Errc expected) {
  if (r) return ::testing::AssertionFailure() << "succeeded, expected " << make_error_code(expected).message();
  if (r.error().is(expected)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "failed with " << r.error().code.message() << " (" << r.error().message
                                       << "), expected " << make_error_code(expected).message();
}

// Error messages go to logs: they may name tables and columns, never stored values.
inline ::testing::AssertionResult does_not_quote(const Error& error, std::string_view value) {
  if (error.message.find(value) == std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the message quotes a stored value: " << error.message;
}

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
