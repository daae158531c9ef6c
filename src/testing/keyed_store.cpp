#include "testing/keyed_store.h"

#include <chrono>
#include <future>
#include <thread>

#include "store/sqlite/sqlite_store.h"

namespace torii::testing {

Result<KeyedStore> open_keyed_store(const std::filesystem::path& dir, Random& random, const Clock& clock) {
  auto opened = store::sqlite::open_sqlite_store(dir / "torii.db");
  if (!opened) return tl::unexpected(opened.error());
  KeyedStore out;
  out.store = std::move(*opened);
  // The cheapest Argon2id cost: no test here is about key derivation.
  auto kek = keys::unlock_kek(*out.store, {config::KekSource::file, dir / "kek.key", nullptr, {1, 8u << 20}}, random);
  if (!kek) return tl::unexpected(kek.error());
  out.keys = std::make_unique<keys::KeyRing>(*out.store, std::move(kek->kek), random, clock);
  return out;
}

bool while_store_is_held(store::Store& store, const std::function<void()>& during) {
  std::promise<void> holding;
  std::promise<void> done;
  auto done_future = done.get_future();
  auto waited = std::future_status::timeout;
  bool started = false;
  bool held = false;
  std::thread holder([&] {
    held = store
               .transaction([&]() -> Status {
                 started = true;
                 holding.set_value();
                 waited = done_future.wait_for(std::chrono::minutes(1));
                 return ok();
               })
               .has_value();
    if (!started) holding.set_value();  // no transaction: the caller need not wait
  });
  holding.get_future().wait();
  during();
  done.set_value();
  holder.join();
  return held && waited == std::future_status::ready;
}

}  // namespace torii::testing
