// A fresh store with a key hierarchy, as a first start makes them, for tests of what sits on
// top (the CA, the device registry, accounts, the console): SQLite in `dir`, a KEK from a key
// file there. Both live as long as the caller keeps them; the ring refers to the store,
// random and clock, which must outlive it.
#pragma once

#include <filesystem>
#include <memory>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "keys/key_ring.h"
#include "store/store.h"

namespace torii::testing {

struct KeyedStore {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<keys::KeyRing> keys;
};

[[nodiscard]] Result<KeyedStore> open_keyed_store(const std::filesystem::path& dir, Random& random, const Clock& clock);

}  // namespace torii::testing
