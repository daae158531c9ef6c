#include "decision/rule_book.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "base/bytes.h"
#include "identity/device_commands.h"
#include "policy/series.h"
#include "policy/telemetry.h"

namespace torii::decision {

using nlohmann::json;

namespace {

constexpr std::size_t kRuleIdBytes = 12;

std::string random_rule_id(Random& random) {
  Bytes bytes(kRuleIdBytes);
  random.fill(bytes);
  return "r-" + hex_encode(bytes);
}

// parse_rule's "path: message" lines, under "definition".
std::vector<RuleProblem> definition_problems(const std::vector<std::string>& lines) {
  std::vector<RuleProblem> out;
  out.reserve(lines.size());
  for (const auto& line : lines) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) {
      out.push_back({"definition", line});
    } else {
      out.push_back({"definition." + line.substr(0, colon), line.substr(colon + 2)});
    }
  }
  return out;
}

std::string iso_or_null(const std::optional<UnixMillis>& at) {
  return at ? format_utc_millis(from_unix_millis(*at)) : std::string();
}

}  // namespace

json to_json(const std::vector<RuleProblem>& problems) {
  json out = json::array();
  for (const auto& p : problems) out.push_back({{"path", p.path}, {"message", p.message}});
  return out;
}

RuleBook::RuleBook(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random, Changed changed)
    : store_(store), keys_(keys), clock_(clock), random_(random), changed_(std::move(changed)) {}

Result<std::vector<RuleProblem>> RuleBook::check(const Author& author, std::string_view definition,
                                                 std::optional<rules::RuleDefinition>& parsed) {
  auto rule = rules::parse_rule(definition);
  if (!rule) return definition_problems(rule.error());
  std::vector<RuleProblem> problems;
  for (std::size_t i = 0; i < rule->actions.size(); ++i) {
    const auto* command = std::get_if<rules::CommandAction>(&rule->actions[i]);
    if (command == nullptr) continue;
    const std::string path = fmt::format("definition.actions[{}]", i);
    // IIIT I7: a rule commands only what its author may command.
    if (!author.permissions.has(identity::Permission::devices_command)) {
      problems.push_back({path, "sending commands needs the devices.command permission"});
      continue;
    }
    auto device = store_.devices().find(command->device_id);
    if (!device) return tl::unexpected(device.error());
    if (!*device || (*device)->organisation_id != author.organisation_id) {
      problems.push_back({path + ".device", "no such device in the organisation"});
      continue;
    }
    auto profile = identity::command_profile(store_, **device);
    if (!profile) return tl::unexpected(profile.error());
    for (const auto& p : policy::validate_command(*profile, command->command, command->params.dump())) {
      problems.push_back({path + "." + (p.path == "command" ? std::string("command") : p.path), p.message});
    }
  }
  if (problems.empty()) parsed = std::move(*rule);
  return problems;
}

Result<RuleOutcome> RuleBook::create(const Author& author, std::string_view definition, bool enabled) {
  std::optional<rules::RuleDefinition> parsed;
  auto problems = check(author, definition, parsed);
  if (!problems) return tl::unexpected(problems.error());
  if (!problems->empty()) return RuleOutcome{std::nullopt, std::move(*problems)};
  auto existing = store_.rules().list(author.organisation_id);
  if (!existing) return tl::unexpected(existing.error());
  if (existing->size() >= kMaxRulesPerOrganisation) {
    return RuleOutcome{
        std::nullopt, {{"definition", fmt::format("the organisation has {} rules already", kMaxRulesPerOrganisation)}}};
  }
  const UnixMillis now = to_unix_millis(clock_.now());
  store::RuleRecord record;
  record.id = random_rule_id(random_);
  record.organisation_id = author.organisation_id;
  record.name = parsed->name;
  // Stored as the normal form, so what people read back is what runs.
  record.definition = rules::to_json(*parsed).dump();
  record.enabled = enabled;
  record.created_by = author.actor;
  record.created_at = now;
  record.updated_by = author.actor;
  record.updated_at = now;
  if (auto st = store_.rules().insert(record); !st) return tl::unexpected(st.error());
  if (changed_) changed_(record.id);
  return RuleOutcome{std::move(record), {}};
}

Result<RuleOutcome> RuleBook::change(const Author& author, std::string_view rule_id, std::string_view definition,
                                     bool enabled, std::uint32_t expected_version) {
  auto found = find(author.organisation_id, rule_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return fail(Errc::not_found, "no such rule");
  std::optional<rules::RuleDefinition> parsed;
  auto problems = check(author, definition, parsed);
  if (!problems) return tl::unexpected(problems.error());
  if (!problems->empty()) return RuleOutcome{std::nullopt, std::move(*problems)};
  store::RuleRecord record = **found;
  record.name = parsed->name;
  record.definition = rules::to_json(*parsed).dump();
  record.enabled = enabled;
  // The author of this version answers for its commands from now on.
  record.updated_by = author.actor;
  record.updated_at = to_unix_millis(clock_.now());
  auto stored = store_.rules().update(record, expected_version);
  if (!stored) {
    if (stored.error().is(Errc::conflict)) {
      return RuleOutcome{std::nullopt,
                         {{"version", fmt::format("the rule is at version {} now; read it again and redo the change",
                                                  (*found)->version)}}};
    }
    return tl::unexpected(stored.error());
  }
  // Windows and timers of the old definition mean nothing to the new one.
  if (auto st = store_.rules().clear_states(record.id); !st) return tl::unexpected(st.error());
  if (changed_) changed_(record.id);
  return RuleOutcome{std::move(*stored), {}};
}

Result<bool> RuleBook::remove(std::string_view organisation_id, std::string_view rule_id) {
  auto found = find(organisation_id, rule_id);
  if (!found) return tl::unexpected(found.error());
  if (!*found) return false;
  auto removed = store_.rules().remove(rule_id);
  if (!removed) return tl::unexpected(removed.error());
  if (*removed && changed_) changed_(std::string(rule_id));
  return *removed;
}

Result<std::optional<store::RuleRecord>> RuleBook::find(std::string_view organisation_id, std::string_view rule_id) {
  auto found = store_.rules().find(rule_id);
  if (!found) return tl::unexpected(found.error());
  if (*found && (*found)->organisation_id != organisation_id) return std::optional<store::RuleRecord>();
  return found;
}

Result<tl::expected<DryRun, std::vector<RuleProblem>>> RuleBook::dry_run(const Author& author,
                                                                         std::string_view definition,
                                                                         std::chrono::hours span) {
  using Refused = tl::unexpected<std::vector<RuleProblem>>;
  if (span < std::chrono::hours(1) || span > kMaxDryRunSpan) {
    return Refused(std::vector<RuleProblem>{{"hours", fmt::format("must be 1..{}", kMaxDryRunSpan.count())}});
  }
  auto rule = rules::parse_rule(definition);
  if (!rule) return Refused(definition_problems(rule.error()));
  auto devices = store_.devices().list(author.organisation_id);
  if (!devices) return tl::unexpected(devices.error());
  DryRun run;
  run.to = to_unix_millis(clock_.now());
  run.from = run.to - std::chrono::duration_cast<std::chrono::milliseconds>(span).count();
  const auto metrics = rule->condition.metrics();
  for (const auto& device : *devices) {
    if (!rules::matches(rule->selector, {device.id, device.profile_id, device.segment, device.tags})) continue;
    if (run.devices.size() == kMaxDryRunDevices) {
      ++run.devices_skipped;
      continue;
    }
    auto rows = store_.telemetry().range(device.id, run.from, run.to, kMaxDryRunMessages + 1);
    if (!rows) return tl::unexpected(rows.error());
    DryRunDevice out;
    out.device_id = device.id;
    if (rows->size() > kMaxDryRunMessages) {
      rows->resize(kMaxDryRunMessages);
      out.complete_until = rows->back().received_at;
    }
    std::vector<rules::Sample> samples;
    samples.reserve(rows->size());
    for (const auto& row : *rows) {
      if (row.kind != store::kTelemetryKindTelemetry) continue;
      auto plain =
          keys_.open(row.key_id, row.sealed,
                     keys::telemetry_associated_data(row.device_id, row.kind, row.received_at, row.message_key));
      if (!plain) continue;  // counted by the telemetry routes; a dry run shows what it could read
      const std::string text = to_string(plain->view());
      rules::Sample sample{row.received_at, {}};
      for (const auto& m : metrics) {
        if (auto value = policy::chart_value(text, m)) sample.metrics.push_back({m, *value});
      }
      samples.push_back(std::move(sample));
    }
    out.messages = samples.size();
    out.events = rules::dry_run(*rule, samples, out.complete_until.value_or(run.to));
    run.devices.push_back(std::move(out));
  }
  return run;
}

json RuleBook::describe(const store::RuleRecord& rule) {
  json definition = json::parse(rule.definition, nullptr, false);
  if (definition.is_discarded()) definition = nullptr;
  json out = {{"id", rule.id},
              {"organisation", rule.organisation_id},
              {"name", rule.name},
              {"version", rule.version},
              {"enabled", rule.enabled},
              {"definition", std::move(definition)},
              {"author", rule.updated_by},
              {"created_by", rule.created_by},
              {"created_at", format_utc_millis(from_unix_millis(rule.created_at))},
              {"updated_at", format_utc_millis(from_unix_millis(rule.updated_at))}};
  const auto fired = iso_or_null(rule.last_fired_at);
  out["last_fired_at"] = fired.empty() ? json(nullptr) : json(fired);
  return out;
}

}  // namespace torii::decision
