// The installation's settings changed through the console (PATCH /api/v1/settings): what the
// console and the server share of them. The overrides are stored (store::SettingOverrideRecord)
// and layered over the configuration file with the file's own checks (config::apply_overrides);
// docs/configuration.md lists the keys and says which take effect at once.
#pragma once

#include "base/error.h"
#include "config/config.h"
#include "identity/accounts.h"
#include "store/store.h"

namespace torii::console {

// The configuration in force: `file` (the configuration file as loaded) with every stored
// override applied. problems name the override's key with the file's message; an error when
// the store cannot be read.
[[nodiscard]] Result<config::ParseResult> settings_in_force(const config::Config& file, store::Store& store);

// The accounts options the configuration asks for (hash cost, lockout, sessions, failure
// bursts); the rest keep AccountsOptions' defaults.
[[nodiscard]] identity::AccountsOptions accounts_options(const config::AccountsConfig& accounts);

}  // namespace torii::console
