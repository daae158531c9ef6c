#include "decision/trigger.h"

#include <algorithm>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "decision/state_writer.h"

namespace torii::decision {

std::string rule_state_associated_data(std::string_view rule_id, std::string_view device_id) {
  return fmt::format("rule_state:{}:{}", rule_id, device_id);
}

Trigger::Trigger(store::Store& store, keys::KeyRing& keys, const Clock& clock, TriggerActions actions)
    : store_(store),
      keys_(keys),
      clock_(clock),
      actions_(std::move(actions)),
      writer_(std::make_unique<StateWriter>(store, keys)) {}

Trigger::~Trigger() = default;

std::string device_rule_states_associated_data(std::string_view device_id) {
  return fmt::format("device_rule_states:{}", device_id);
}

// A device's saved states (sealed under the device's data key), format 2:
//   {"v":2,"rules":[{"rule":"r-1","version":3,"state":{...rules::serialize...}}, ...],
//    "windows":[...rules::WindowTable...]}
// The states' windows equal among its rules are written once, in "windows". Format 1 (read, no
// longer written) had no "windows": each state held its own in full.
// A state counts only for the rule's version it was saved with: a changed rule starts afresh.
Result<Trigger::Restored> Trigger::read_saved_states() {
  Restored out;
  auto rows = store_.rules().device_states();
  if (!rows) return tl::unexpected(rows.error());
  for (const auto& row : *rows) {
    const auto drop = [&](std::string_view why) {
      ++counters_.states_dropped;
      spdlog::warn("rule states of device {}: {}; they start afresh", row.device_id, why);
    };
    auto plain = keys_.open(row.key_id, row.sealed, device_rule_states_associated_data(row.device_id));
    if (!plain) {
      drop("they do not open (" + plain.error().message + ")");
      continue;
    }
    const auto saved = nlohmann::json::parse(to_string(plain->view()), nullptr, false);
    const int format =
        saved.is_object() && saved.contains("v") && saved["v"].is_number_integer() ? saved["v"].get<int>() : 0;
    if ((format != 1 && format != 2) || !saved.contains("rules") || !saved["rules"].is_array() ||
        (format == 2 && !saved.contains("windows"))) {
      drop("not a known format");
      continue;
    }
    std::optional<rules::SavedWindows> windows;
    if (format == 2) {
      auto read = rules::SavedWindows::read(saved["windows"]);
      if (!read) {
        drop(read.error());
        continue;
      }
      windows = std::move(*read);
    }
    for (const auto& entry : saved["rules"]) {
      if (!entry.is_object() || !entry.contains("rule") || !entry["rule"].is_string() || !entry.contains("version") ||
          !entry["version"].is_number_unsigned() || !entry.contains("state")) {
        drop("an entry is not a rule's state");
        continue;
      }
      auto state = rules::restore(entry["state"].dump(), windows ? &*windows : nullptr);
      if (!state) {
        drop("a state is refused (" + state.error() + ")");
        continue;
      }
      out[entry["rule"].get<std::string>()].push_back(
          {row.device_id, entry["version"].get<std::uint32_t>(), std::move(*state)});
    }
  }
  return out;
}

Status Trigger::load() {
  auto enabled = store_.rules().list_enabled();
  if (!enabled) return tl::unexpected(enabled.error());
  auto saved = read_saved_states();
  if (!saved) return tl::unexpected(saved.error());
  // Each organisation's devices are read once, however many rules it has.
  std::map<std::string, std::vector<store::DeviceRecord>, std::less<>> devices;
  for (const auto& record : *enabled) {
    auto it = devices.find(record.organisation_id);
    if (it == devices.end()) {
      auto listed = store_.devices().list(record.organisation_id);
      if (!listed) return tl::unexpected(listed.error());
      it = devices.emplace(record.organisation_id, std::move(*listed)).first;
      remember_tags(it->second);
    }
    const auto restored = saved->find(record.id);
    if (auto st = load_rule(record, it->second, restored == saved->end() ? nullptr : &restored->second); !st) {
      return st;
    }
  }
  return ok();
}

Status Trigger::reload(const std::string& rule_id) {
  // The loaded version's unsaved states go with it: every change of a rule (definition or
  // enabled) makes a new version, whose saved states are none, and a deleted rule has none.
  drop(rule_id);
  auto found = store_.rules().find(rule_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found || !(*found)->enabled) return ok();
  auto devices = store_.devices().list((*found)->organisation_id);
  if (!devices) return tl::unexpected(devices.error());
  remember_tags(*devices);
  return load_rule(**found, *devices, nullptr);
}

void Trigger::remember_tags(const std::vector<store::DeviceRecord>& devices) {
  for (const auto& d : devices) device_tags_[intern(d.id)] = d.tags;
  changed();
}

Status Trigger::load_rule(const store::RuleRecord& record, const std::vector<store::DeviceRecord>& devices,
                          std::vector<SavedState>* saved) {
  auto parsed = rules::parse_rule(record.definition);
  if (!parsed) {
    spdlog::error("rule {}: its stored definition does not parse ({} problems); it does not run", record.id,
                  parsed.error().size());
    return ok();
  }
  auto loaded = std::make_unique<Loaded>();
  loaded->record = record;
  loaded->definition = std::make_shared<const rules::RuleDefinition>(std::move(*parsed));
  loaded->evaluator = std::make_unique<rules::Evaluator>(loaded->definition);
  loaded->saved_as =
      fmt::format(R"({{"rule":{},"version":{},"state":)", nlohmann::json(record.id).dump(), record.version);
  const auto selects = [&](std::string_view device_id) {
    const auto d = std::lower_bound(devices.begin(), devices.end(), device_id,
                                    [](const store::DeviceRecord& r, std::string_view id) { return r.id < id; });
    return d != devices.end() && d->id == device_id &&
           rules::matches(loaded->definition->selector, {d->id, d->profile_id, d->segment, d->tags});
  };
  auto states = store_.rules().states(record.id);
  if (!states) return tl::unexpected(states.error());
  for (const auto& row : *states) {
    // A device whose tags changed while the server was down may no longer be selected.
    if (!selects(row.device_id)) continue;
    auto plain = keys_.open(row.key_id, row.sealed, rule_state_associated_data(row.rule_id, row.device_id));
    if (!plain) {
      ++counters_.states_dropped;
      spdlog::warn("rule {}: the state of device {} does not open ({}); it starts afresh", record.id, row.device_id,
                   plain.error().message);
      continue;
    }
    auto state = rules::restore(to_string(plain->view()));
    if (!state) {
      ++counters_.states_dropped;
      spdlog::warn("rule {}: the state of device {} is refused ({}); it starts afresh", record.id, row.device_id,
                   state.error());
      continue;
    }
    loaded->watches[intern(row.device_id)].state = std::move(*state);
  }
  // Then the states saved per device, newer than those rows: only this version's.
  if (saved != nullptr) {
    for (auto& s : *saved) {
      if (s.version != record.version || !selects(s.device_id)) continue;
      loaded->watches[intern(s.device_id)].state = std::move(s.state);
    }
  }
  // A restored state's deadline may have passed while the server was down: the next tick
  // evaluates it. Its windows are shared with the device's other rules from now on.
  for (auto& [device, watch] : loaded->watches) {
    device_windows_[device].adopt(watch.state);
    schedule(*loaded, device, watch);
  }
  // Devices the rule selects that have no state yet are watched from now on, so that an
  // absence rule also notices one that never sends anything.
  const UnixMillis now = to_unix_millis(clock_.now());
  std::vector<DeviceSlot> fresh;
  for (const auto& d : devices) {
    if (d.status != store::kDeviceStatusActive) continue;
    const DeviceSlot device = intern(d.id);
    if (loaded->watches.contains(device)) continue;
    if (!rules::matches(loaded->definition->selector, {d.id, d.profile_id, d.segment, d.tags})) continue;
    loaded->watches.emplace(device, Watch{});
    fresh.push_back(device);
  }
  const RuleSlot slot = loaded->slot = static_cast<RuleSlot>(loaded_.size());
  loaded_.push_back(loaded.get());
  for (const auto& [device, watch] : loaded->watches) device_rules_[device].push_back(slot);
  index(*loaded);
  rules_[record.id] = std::move(loaded);
  // The first tick starts each fresh state's clock: absence counts from now.
  for (const DeviceSlot device : fresh) {
    Loaded* current = this->loaded(slot);
    if (current == nullptr) break;  // an action removed the rule
    if (current->watches.contains(device)) watch_from(*current, device, now);
  }
  return ok();
}

Trigger::Watch& Trigger::watch_of(Loaded& rule, DeviceSlot device) {
  const auto [it, added] = rule.watches.try_emplace(device);
  if (added) device_rules_[device].push_back(rule.slot);
  return it->second;
}

void Trigger::watch_from(Loaded& rule, DeviceSlot device, UnixMillis now) {
  Watch& watch = watch_of(rule, device);
  const auto evaluation = rule.evaluator->tick(watch.state, now, &device_windows_[device]);
  mark_dirty(device);
  schedule(rule, device, watch);
  apply(rule, device, evaluation, now);
}

Trigger::DeviceSlot Trigger::intern(std::string_view device_id) {
  if (const auto it = device_slots_.find(device_id); it != device_slots_.end()) return it->second;
  const auto slot = static_cast<DeviceSlot>(device_ids_.size());
  device_ids_.emplace_back(device_id);
  device_tags_.emplace_back();
  device_rules_.emplace_back();
  device_dirty_.push_back(false);
  device_views_.emplace_back();
  device_windows_.emplace_back();
  device_slots_.emplace(device_ids_.back(), slot);
  return slot;
}

void Trigger::drop(const std::string& rule_id) {
  const auto it = rules_.find(rule_id);
  if (it == rules_.end()) return;
  // Its entries in due_ become stale.
  loaded_[it->second->slot] = nullptr;
  unindex(*it->second);
  rules_.erase(it);
}

namespace {

// The lists of an index a selector puts its rule in: its devices', else its profiles', else
// its segments', else its tags', else the list for every device (kind 4).
template <class F>
void for_each_key(const rules::Selector& selector, F&& f) {
  if (!selector.device_ids.empty()) {
    for (const auto& id : selector.device_ids) f(0, id);
  } else if (!selector.profiles.empty()) {
    for (const auto& profile : selector.profiles) f(1, profile);
  } else if (!selector.segments.empty()) {
    for (const auto& segment : selector.segments) f(2, segment);
  } else if (!selector.tags.empty()) {
    for (const auto& tag : selector.tags) f(3, tag);
  } else {
    f(4, std::string());
  }
}

}  // namespace

void Trigger::index(const Loaded& rule) {
  changed();
  auto& index = by_organisation_[rule.record.organisation_id];
  ++index.rules;
  for_each_key(rule.definition->selector, [&](int kind, const std::string& key) {
    switch (kind) {
      case 0: index.by_device[key].push_back(rule.slot); break;
      case 1: index.by_profile[key].push_back(rule.slot); break;
      case 2: index.by_segment[key].push_back(rule.slot); break;
      case 3: index.by_tag[key].push_back(rule.slot); break;
      default: index.every_device.push_back(rule.slot); break;
    }
  });
}

void Trigger::unindex(const Loaded& rule) {
  changed();
  const auto org = by_organisation_.find(rule.record.organisation_id);
  if (org == by_organisation_.end()) return;
  auto& index = org->second;
  const auto take = [&](std::vector<RuleSlot>& slots) {
    slots.erase(std::remove(slots.begin(), slots.end(), rule.slot), slots.end());
  };
  const auto take_from = [&](auto& by, const std::string& key) {
    const auto it = by.find(key);
    if (it == by.end()) return;
    take(it->second);
    if (it->second.empty()) by.erase(it);
  };
  for_each_key(rule.definition->selector, [&](int kind, const std::string& key) {
    switch (kind) {
      case 0: take_from(index.by_device, key); break;
      case 1: take_from(index.by_profile, key); break;
      case 2: take_from(index.by_segment, key); break;
      case 3: take_from(index.by_tag, key); break;
      default: take(index.every_device); break;
    }
  });
  if (--index.rules == 0) by_organisation_.erase(org);
}

const std::vector<Trigger::Met>& Trigger::meets(const RuleIndex& index, DeviceSlot device,
                                                const DeviceMessage& message) {
  auto& view = device_views_[device];
  if (!view) view = std::make_unique<DeviceView>();
  if (view->generation == generation_ && view->profile_id == message.profile_id && view->segment == message.segment) {
    counters_.candidates += view->candidates;
    return view->met;
  }
  // The rules whose selector may take this device. A rule is in one kind of list only, and in
  // one list of each kind but tags (a device has several): it is met at most once unless by
  // two of its tags.
  const std::vector<std::string>& tags = device_tags_[device];
  std::vector<RuleSlot> slots = index.every_device;
  const auto add = [&](const auto& by, std::string_view key) {
    const auto it = by.find(key);
    if (it == by.end()) return false;
    slots.insert(slots.end(), it->second.begin(), it->second.end());
    return true;
  };
  add(index.by_device, message.device_id);
  add(index.by_profile, message.profile_id);
  add(index.by_segment, message.segment);
  int tag_lists = 0;
  for (const auto& tag : tags) tag_lists += add(index.by_tag, tag) ? 1 : 0;
  if (tag_lists > 1) {
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  }
  const rules::DeviceFacts facts{message.device_id, message.profile_id, message.segment, tags};
  view->met.clear();
  for (const RuleSlot slot : slots) {
    Loaded* rule = loaded(slot);
    if (rule == nullptr || !rules::matches(rule->definition->selector, facts)) continue;
    view->met.push_back({slot, &watch_of(*rule, device)});
  }
  view->generation = generation_;
  view->profile_id = message.profile_id;
  view->segment = message.segment;
  view->candidates = slots.size();
  counters_.candidates += slots.size();
  return view->met;
}

namespace {
constexpr std::size_t kCacheLine = 64;
constexpr std::size_t kPrefetchAhead = 4;
}  // namespace

void Trigger::observe(const DeviceMessage& message) {
  const auto org = by_organisation_.find(message.organisation_id);
  if (org == by_organisation_.end()) return;
  const DeviceSlot device = intern(message.device_id);
  // A copy: an action may reload a rule, which changes the view.
  const std::vector<Met> met = meets(org->second, device, message);
  const std::uint64_t generation = generation_;
  std::optional<std::vector<std::string>> tags;  // the device's, once rules changed under the loop
  // Each watch is an allocation of its own among the rules' states of every device, seldom in
  // the processor's caches: the next few are asked for ahead, so that their loads overlap.
  const auto prefetch = [&met](std::size_t i) {
    if (i >= met.size()) return;
    // An address in every line the watch spans (it need not begin at a line's start).
    const auto* bytes = reinterpret_cast<const char*>(met[i].watch);
    for (std::size_t offset = 0; offset < sizeof(Watch); offset += kCacheLine) __builtin_prefetch(bytes + offset);
    __builtin_prefetch(bytes + sizeof(Watch) - 1);
  };
  for (std::size_t i = 0; i < kPrefetchAhead; ++i) prefetch(i);
  const rules::Sharing sharing{&device_windows_[device], ++messages_};
  std::size_t next = 0;
  for (const auto& [slot, seen] : met) {
    prefetch(kPrefetchAhead + next++);
    Loaded* rule = loaded(slot);
    if (rule == nullptr) continue;  // an action dropped it
    Watch* watch = seen;
    if (generation_ != generation) {
      // An action changed rules or watches: this rule's watch is looked up again (its
      // selector checked against the device's tags as they are now).
      if (!tags) tags = device_tags_[device];
      if (!rules::matches(rule->definition->selector,
                          {message.device_id, message.profile_id, message.segment, *tags})) {
        continue;
      }
      watch = &watch_of(*rule, device);
    }
    ++counters_.evaluations;
    const auto evaluation = rule->evaluator->observe(watch->state, message.metrics, message.at, sharing);
    mark_dirty(device);
    schedule(*rule, device, *watch);
    if (actions_.derived && !evaluation.derived.empty()) {
      actions_.derived({rule->record.organisation_id, device_ids_[device], rule->record.id, message.message_id,
                        message.at, evaluation.derived});
    }
    apply(*rule, device, evaluation, message.at);
  }
}

void Trigger::tick(UnixMillis now) {
  while (!due_.empty() && due_.front().at <= now) {
    std::pop_heap(due_.begin(), due_.end(), later);
    const Due due = due_.back();
    due_.pop_back();
    Loaded* rule = loaded(due.rule);
    if (rule == nullptr) continue;
    const auto it = rule->watches.find(due.device);
    if (it == rule->watches.end() || it->second.queued != due.at) continue;  // stale
    Watch& watch = it->second;
    watch.queued = kNoDeadline;
    if (watch.deadline == kNoDeadline) continue;
    if (watch.deadline > now) {  // it moved later since it was queued
      enqueue(*rule, due.device, watch);
      continue;
    }
    ++counters_.deadlines;
    const auto evaluation = rule->evaluator->tick(watch.state, now, &device_windows_[due.device]);
    // The next deadline is after `now` (the state's time is now at least that), so this loop ends.
    schedule(*rule, due.device, watch);
    if (evaluation.transition == rules::Transition::none) continue;
    mark_dirty(due.device);
    apply(*rule, due.device, evaluation, now);
  }
}

void Trigger::schedule(Loaded& rule, DeviceSlot device, Watch& watch) {
  const auto next = rule.evaluator->next_deadline(watch.state);
  watch.deadline = next ? *next : kNoDeadline;
  if (watch.deadline == kNoDeadline) return;  // an entry it has is dropped when it comes up
  // A deadline that moved later keeps its earlier entry: tick() queues it again when that
  // comes up (an absence's deadline moves with every message; this way it costs nothing).
  if (watch.queued != kNoDeadline && watch.queued <= watch.deadline) return;
  enqueue(rule, device, watch);
}

void Trigger::enqueue(Loaded& rule, DeviceSlot device, Watch& watch) {
  if (due_.size() >= compact_at_) compact_due();
  watch.queued = watch.deadline;
  due_.push_back({watch.deadline, rule.slot, device});
  std::push_heap(due_.begin(), due_.end(), later);
}

void Trigger::compact_due() {
  std::erase_if(due_, [this](const Due& due) {
    const Loaded* rule = loaded(due.rule);
    if (rule == nullptr) return true;
    const auto it = rule->watches.find(due.device);
    return it == rule->watches.end() || it->second.queued != due.at;
  });
  std::make_heap(due_.begin(), due_.end(), later);
  // At least as many entries again before the next compaction: its cost is spread over them.
  compact_at_ = std::max<std::size_t>(4096, 2 * due_.size());
}

void Trigger::mark_dirty(DeviceSlot device) {
  if (device_dirty_[device]) return;
  device_dirty_[device] = true;
  dirty_devices_.push_back(device);
}

void Trigger::apply(Loaded& rule, DeviceSlot device, const rules::Evaluation& evaluation, UnixMillis at) {
  const std::string& device_id = device_ids_[device];
  if (evaluation.transition == rules::Transition::none) return;
  const bool fired = evaluation.transition == rules::Transition::fired;
  if (fired) {
    ++counters_.fired;
    rule.record.last_fired_at = at;
    writer_->fired(rule.record.id, at);  // written on the writer's thread
  } else {
    ++counters_.cleared;
  }
  Firing firing{rule.record.id,
                rule.record.name,
                rule.record.organisation_id,
                rule.record.updated_by,
                rule.definition->severity,
                device_id,
                evaluation.transition,
                evaluation.summary,
                at,
                std::any_of(rule.definition->actions.begin(), rule.definition->actions.end(),
                            [](const rules::Action& a) { return std::holds_alternative<rules::AlertAction>(a); })};
  if (actions_.security_event) {
    actions_.security_event({"rule:" + rule.record.id,
                             fired ? "rule.fired" : "rule.cleared",
                             "device:" + device_id,
                             events::Outcome::success,
                             "local",
                             {{"organisation", rule.record.organisation_id},
                              {"rule", rule.record.name},
                              {"version", rule.record.version},
                              {"severity", rules::to_string(rule.definition->severity)},
                              {"summary", evaluation.summary}}});
  }
  // The definition stays alive through the actions even if one of them reloads the rule.
  const auto definition = rule.definition;
  for (const auto& action : definition->actions) {
    if (std::holds_alternative<rules::AlertAction>(action)) {
      if (actions_.alert) actions_.alert(firing);
    } else if (const auto* command = std::get_if<rules::CommandAction>(&action)) {
      if (command->on_clear != fired && actions_.command) actions_.command(firing, *command);
    } else if (const auto* notify = std::get_if<rules::NotifyAction>(&action)) {
      if (actions_.notify) actions_.notify(firing, *notify);
    }
  }
}

std::string Trigger::row_of(DeviceSlot device) {
  device_dirty_[device] = false;
  // Every state of the device, changed or not: its row is replaced whole. The rules that
  // no longer watch it (dropped, changed, no longer selecting it) leave its list here.
  std::string text;
  text.reserve(last_row_size_);
  text = R"({"v":2,"rules":[)";
  bool first = true;
  rules::WindowTable windows;
  auto& slots = device_rules_[device];
  std::sort(slots.begin(), slots.end());  // a rule that left and came back is listed twice
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  std::erase_if(slots, [&](RuleSlot slot) {
    const Loaded* rule = loaded(slot);
    if (rule == nullptr) return true;
    const auto it = rule->watches.find(device);
    if (it == rule->watches.end()) return true;
    text += first ? "" : ",";
    first = false;
    text += rule->saved_as;
    rules::serialize(it->second.state, text, &windows);
    text += '}';
    ++counters_.states_saved;
    return false;
  });
  text += R"(],"windows":)";
  windows.write(text);
  text += '}';
  last_row_size_ = text.size();
  return text;
}

void Trigger::save() {
  // Without a budget one call goes through a whole save: first the one under way in parts, if
  // any (else everything changed), then what changed since that one began.
  constexpr auto kWhole = std::chrono::microseconds::max();
  (void)save_some(kWhole);
  if (!dirty_devices_.empty()) (void)save_some(kWhole);
}

bool Trigger::save_some(std::chrono::microseconds budget) {
  if (saved_ == saving_.size()) {  // begin a save
    saving_.swap(dirty_devices_);
    dirty_devices_.clear();
    saved_ = 0;
  }
  const bool timed = budget != std::chrono::microseconds::max();
  const auto start = std::chrono::steady_clock::now();
  std::vector<StateWriter::Row> rows;
  const UnixMillis now = to_unix_millis(clock_.now());
  while (saved_ < saving_.size()) {
    const DeviceSlot device = saving_[saved_++];
    if (!device_dirty_[device]) continue;  // forgotten since
    rows.push_back({device_ids_[device], row_of(device), now});
    if (timed && std::chrono::steady_clock::now() - start >= budget) break;
  }
  writer_->submit(std::move(rows));
  if (saved_ < saving_.size()) return true;
  saving_.clear();
  saved_ = 0;
  return false;
}

Status Trigger::flush() {
  save();
  return writer_->wait();
}

void Trigger::device_changed(const store::DeviceRecord& record) {
  const DeviceSlot device = intern(record.id);
  device_tags_[device] = record.tags;
  changed();  // its tags, and below the watches of rules that no longer select it
  if (!by_organisation_.contains(record.organisation_id)) return;
  const rules::DeviceFacts facts{record.id, record.profile_id, record.segment, record.tags};
  const UnixMillis now = to_unix_millis(clock_.now());
  // Every rule of the organisation: this is rare, and an index would miss the rules the
  // device leaves. Slots, since an action may reload rules.
  std::vector<RuleSlot> slots;
  for (const auto& [id, rule] : rules_) {
    if (rule->record.organisation_id == record.organisation_id) slots.push_back(rule->slot);
  }
  for (const RuleSlot slot : slots) {
    Loaded* rule = loaded(slot);
    if (rule == nullptr) continue;
    const bool selected = rules::matches(rule->definition->selector, facts);
    const auto it = rule->watches.find(device);
    if (selected && it == rule->watches.end() && record.status == store::kDeviceStatusActive) {
      watch_from(*rule, device, now);
    } else if (!selected && it != rule->watches.end()) {
      const bool fired = it->second.state.active();
      rule->watches.erase(it);  // its entry in due_ is stale now; its device_rules_ entry is dropped at save
      mark_dirty(device);
      if (fired) {
        rules::Evaluation cleared;
        cleared.transition = rules::Transition::cleared;
        cleared.summary = "the rule no longer selects the device";
        apply(*rule, device, cleared, now);
      }
    }
  }
}

void Trigger::forget_device(const std::string& device_id) {
  const auto slot = device_slots_.find(device_id);
  if (slot == device_slots_.end()) return;
  // Its saved row went with it.
  writer_->forget(device_id);
  device_rules_[slot->second].clear();
  device_dirty_[slot->second] = false;
  device_views_[slot->second].reset();
  device_windows_[slot->second] = rules::WindowPool();
  changed();  // its watches go
  for (auto& [id, rule] : rules_) {
    const auto it = rule->watches.find(slot->second);
    if (it == rule->watches.end()) continue;
    rule->watches.erase(it);  // its entry in due_ is stale now
  }
}

}  // namespace torii::decision
