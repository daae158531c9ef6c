#include "testing/keyed_store.h"

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

}  // namespace torii::testing
