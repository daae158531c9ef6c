// The notification channels each organisation keeps (JPCERT VIII-2, I-10):
// checked like every definition (channel.h), stored with the definition sealed, and opened
// again for whoever delivers.
//
//   id            what people and rules call a channel: 1..64 of A-Z, a-z, 0-9 and _.:- (the
//                 rule "notify" action's check), unique within its organisation; another
//                 organisation's channel of the same id is another channel
//   min_severity  "info", "warning" or "critical": every alert of the organisation at or
//                 above it goes to the channel; "none" (the default): only rules that name it
//   sealed        the whole definition, webhook secret included, is sealed under the
//                 installation's data key kChannelKeyId ("notify"), bound to its row by
//                 channel_associated_data; the store holds no secret in clear
//   secret        a webhook secret torii generated is handed back once, in the outcome of the
//                 create (or replace) that made it; every other view is to_json's, redacted
//   replace       a webhook definition without "secret" keeps the stored webhook's secret (a
//                 receiver keeps verifying across an edit of the URL); one with "secret" sets
//                 it; a channel that was not a webhook before gets a generated one, shown once
//
// Every change (create, replace, set_enabled, remove) that took effect calls Changed with the
// organisation and channel id, after the store has it, on the caller's thread: the server
// reloads that channel. Thread-safe as far as the store, the key ring and random are.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"
#include "base/random.h"
#include "keys/key_ring.h"
#include "notify/channel.h"
#include "store/store.h"

namespace torii::notify {

inline constexpr std::string_view kChannelKeyId = "notify";
inline constexpr std::string_view kDefaultMinSeverity = "none";

// 1..64 of A-Z, a-z, 0-9 and _.:- (what a rule's "notify" action accepts).
[[nodiscard]] bool valid_channel_id(std::string_view id);
// "info", "warning", "critical" or "none".
[[nodiscard]] bool valid_min_severity(std::string_view min_severity);
// Whether an alert of `severity` goes to a channel of `min_severity` without a rule naming it.
[[nodiscard]] bool severity_reaches(std::string_view severity, std::string_view min_severity);
// "notification_channel:<organisation>:<id>": what definition_sealed is bound to.
[[nodiscard]] std::string channel_associated_data(std::string_view organisation_id, std::string_view id);

// A channel as stored and as opened.
struct StoredChannel {
  store::NotificationChannelRecord record;
  Channel channel;
};

// What create and replace did: `stored` when the channel was kept, otherwise every problem
// with its path: "id", "min_severity", or the definition's own ("url", "to[1]"; "" for the
// whole definition), as parse_channel reports them.
struct ChannelOutcome {
  std::optional<StoredChannel> stored;
  std::vector<Problem> problems;
  // The webhook secret torii generated for this change; never available again.
  std::optional<std::string> secret_shown_once;
};

class ChannelBook {
 public:
  using Changed = std::function<void(const std::string& organisation_id, const std::string& channel_id)>;

  // Borrows store, keys, clock and random: they must outlive the book.
  ChannelBook(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random, Changed changed = {});

  // Checks and stores a new channel; `definition_json` is channel.h's text, `min_severity`
  // empty means kDefaultMinSeverity, `actor` is "user:<id>" or "admin-cli:<login>". A taken id
  // is the problem "id". Store and key ring failures are errors.
  [[nodiscard]] Result<ChannelOutcome> create(std::string_view organisation_id, std::string_view id,
                                              std::string_view definition_json, std::string_view min_severity,
                                              std::string_view actor);
  // The same checks, for a channel that exists (not_found otherwise); enabled, created_by and
  // created_at stay.
  [[nodiscard]] Result<ChannelOutcome> replace(std::string_view organisation_id, std::string_view id,
                                               std::string_view definition_json, std::string_view min_severity,
                                               std::string_view actor);
  // not_found when there is no such channel.
  [[nodiscard]] Status set_enabled(std::string_view organisation_id, std::string_view id, bool enabled);
  // False when there was no such channel.
  [[nodiscard]] Result<bool> remove(std::string_view organisation_id, std::string_view id);

  [[nodiscard]] Result<std::optional<store::NotificationChannelRecord>> find(std::string_view organisation_id,
                                                                             std::string_view id);
  // The organisation's channels, by id.
  [[nodiscard]] Result<std::vector<store::NotificationChannelRecord>> list(std::string_view organisation_id);

  // The definition unsealed and parsed again: what the dispatcher delivers to. corrupt when
  // the opened definition is no longer valid; the key ring's errors otherwise.
  [[nodiscard]] Result<Channel> open(const store::NotificationChannelRecord& record);

  // The redacted view (redacted_json plus id, name, type, min_severity, enabled, created_by,
  // created_at, updated_at): never the secret. A stored definition that no longer parses
  // has "definition": null and a "problem" saying why, instead of failing the whole list.
  [[nodiscard]] Result<nlohmann::json> to_json(const store::NotificationChannelRecord& record);

 private:
  [[nodiscard]] Result<ChannelOutcome> write(std::string_view organisation_id, std::string_view id,
                                             std::string_view definition_json, std::string_view min_severity,
                                             std::string_view actor, bool create);
  void notify_changed(std::string_view organisation_id, std::string_view id) const;

  store::Store& store_;
  keys::KeyRing& keys_;
  const Clock& clock_;
  Random& random_;
  Changed changed_;
};

}  // namespace torii::notify
