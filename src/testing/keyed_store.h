// A fresh store with a key hierarchy, as a first start makes them, for tests of what sits on
// top (the CA, the device registry, accounts, the console): SQLite in `dir`, a KEK from a key
// file there. Both live as long as the caller keeps them; the ring refers to the store,
// random and clock, which must outlive it.
#pragma once

#include <filesystem>
#include <functional>
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

// Runs `during` on this thread while another thread holds the store in a transaction (as the
// gateway's group commit does), so that whatever needs the store meanwhile waits for it. True
// when `during` returned while the store was held; the holder lets go after a minute without
// (and then false), so a `during` that waits for the store ends instead of hanging.
[[nodiscard]] bool while_store_is_held(store::Store& store, const std::function<void()>& during);

}  // namespace torii::testing
