// The console API (api.h), rules of the Decision Trigger (decision/rule_book.h): an
// organisation's rules, each change a new version kept in its history, and the dry run
// that tries a definition against stored telemetry before it is switched on. Every change is
// a security event with the person as actor; definitions are not logged (their names are).

#include <charconv>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/work_pool.h"
#include "decision/rule_book.h"

namespace torii::console::api {

using identity::Permission;

namespace {

constexpr std::size_t kMaxRuleBytes = std::size_t{16} * 1024;
constexpr std::size_t kMaxVersion = 1'000'000'000;

Response rules_unavailable() { return problem(503, "unavailable", "Rules are not available on this server"); }

tl::expected<decision::Author, Response> author_of(const Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) return tl::unexpected(problem(403, "forbidden", "You may not act on that organisation"));
  return decision::Author{"user:" + call.caller->user.id, *organisation, call.caller->permissions};
}

// The rule the path's {rule} names, when it is of the caller's organisation; otherwise the
// answer (404 as for a rule that does not exist).
tl::expected<std::pair<decision::Author, store::RuleRecord>, Response> reachable_rule(ApiState& s, Call& call) {
  auto author = author_of(call);
  if (!author) return tl::unexpected(author.error());
  auto found = s.ctx.rules->find(author->organisation_id, call.params["rule"]);
  if (!found) return tl::unexpected(internal_error(found.error()));
  if (!*found) return tl::unexpected(problem(404, "not_found", "No such rule"));
  return std::pair{std::move(*author), std::move(**found)};
}

bool enabled_of(Call& call) {
  const auto it = call.fields.find("enabled");
  return it == call.fields.end() || it->second == "true";
}

std::uint64_t number_of(Call& call, const std::string& name) {
  const auto& text = call.fields[name];
  std::uint64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

Response refused(const std::vector<decision::RuleProblem>& problems) {
  std::vector<FieldProblem> out;
  out.reserve(problems.size());
  for (const auto& p : problems) out.push_back({p.path, "invalid", p.message});
  return invalid_input(out);
}

void record(ApiState& s, Call& call, std::string action, const store::RuleRecord& rule) {
  s.emit(&*call.caller, std::move(action), "rule:" + rule.id, events::Outcome::success, call.origin,
         {{"organisation", rule.organisation_id},
          {"rule", rule.name},
          {"version", rule.version},
          {"enabled", rule.enabled}});
}

asio::awaitable<Response> list_rules(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  auto listed = s.ctx.store.rules().list(*organisation);
  if (!listed) co_return internal_error(listed.error());
  json rules = json::array();
  for (const auto& r : *listed) rules.push_back(decision::RuleBook::describe(r));
  co_return json_response(200, {{"organisation", *organisation}, {"rules", std::move(rules)}});
}

asio::awaitable<Response> create_rule(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto author = author_of(call);
  if (!author) co_return author.error();
  auto outcome = s.ctx.rules->create(*author, call.fields["definition"], enabled_of(call));
  if (!outcome) co_return internal_error(outcome.error());
  if (!outcome->rule) co_return refused(outcome->problems);
  record(s, call, "rule.created", *outcome->rule);
  co_return json_response(201, decision::RuleBook::describe(*outcome->rule));
}

asio::awaitable<Response> show_rule(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto found = reachable_rule(s, call);
  if (!found) co_return found.error();
  co_return json_response(200, decision::RuleBook::describe(found->second));
}

asio::awaitable<Response> change_rule(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto author = author_of(call);
  if (!author) co_return author.error();
  auto outcome = s.ctx.rules->change(*author, call.params["rule"], call.fields["definition"], enabled_of(call),
                                     static_cast<std::uint32_t>(number_of(call, "version")));
  if (!outcome) {
    if (outcome.error().is(Errc::not_found)) co_return problem(404, "not_found", "No such rule");
    co_return internal_error(outcome.error());
  }
  if (!outcome->rule) {
    if (outcome->problems.size() == 1 && outcome->problems[0].path == "version") {
      co_return problem(409, "version_conflict", outcome->problems[0].message);
    }
    co_return refused(outcome->problems);
  }
  record(s, call, "rule.changed", *outcome->rule);
  co_return json_response(200, decision::RuleBook::describe(*outcome->rule));
}

asio::awaitable<Response> delete_rule(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto found = reachable_rule(s, call);
  if (!found) co_return found.error();
  const auto& [author, rule] = *found;
  auto removed = s.ctx.rules->remove(author.organisation_id, rule.id);
  if (!removed) co_return internal_error(removed.error());
  if (!*removed) co_return problem(404, "not_found", "No such rule");
  record(s, call, "rule.deleted", rule);
  co_return no_content();
}

asio::awaitable<Response> rule_versions(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto found = reachable_rule(s, call);
  if (!found) co_return found.error();
  auto versions = s.ctx.store.rules().versions(found->second.id);
  if (!versions) co_return internal_error(versions.error());
  json out = json::array();
  for (const auto& v : *versions) {
    json definition = json::parse(v.definition, nullptr, false);
    if (definition.is_discarded()) definition = nullptr;
    out.push_back({{"version", v.version},
                   {"name", v.name},
                   {"enabled", v.enabled},
                   {"definition", std::move(definition)},
                   {"changed_by", v.changed_by},
                   {"changed_at", iso(v.changed_at)}});
  }
  co_return json_response(200, {{"rule", found->second.id}, {"versions", std::move(out)}});
}

// Decision Trigger, dry run: when the definition would have fired and cleared over the last
// hours of stored telemetry. Reads the store and opens sealed telemetry, so it runs on the
// work pool.
asio::awaitable<Response> dry_run_rule(ApiState& s, Call& call) {
  if (s.ctx.rules == nullptr) co_return rules_unavailable();
  auto author = author_of(call);
  if (!author) co_return author.error();
  const auto hours = call.fields.contains("hours") ? number_of(call, "hours") : 24;
  auto* book = s.ctx.rules;
  const std::string definition = call.fields["definition"];
  // Named before co_await: GCC 12 destroys a non-trivial temporary in a co_await operand
  // twice (here, the copies of the author and the definition).
  auto job = [book, author = *author, definition, hours] {
    return book->dry_run(author, definition, std::chrono::hours(hours));
  };
  auto result = co_await s.ctx.work.run(std::move(job));
  if (!result) co_return busy();
  if (!*result) co_return internal_error(result->error());
  if (!**result) co_return refused((**result).error());
  const auto& run = ***result;
  json devices = json::array();
  for (const auto& d : run.devices) {
    json events = json::array();
    for (const auto& e : d.events) {
      events.push_back({{"at", iso(e.at)},
                        {"transition", e.transition == rules::Transition::fired ? "fired" : "cleared"},
                        {"summary", e.summary}});
    }
    json j = {{"device", d.device_id}, {"messages", d.messages}, {"events", std::move(events)}};
    if (d.complete_until) j["complete_until"] = iso(*d.complete_until);
    devices.push_back(std::move(j));
  }
  co_return json_response(200, {{"from", iso(run.from)},
                                {"to", iso(run.to)},
                                {"devices", std::move(devices)},
                                {"devices_skipped", run.devices_skipped}});
}

}  // namespace

void add_rule_routes(std::vector<Route>& routes) {
  const FieldSpec definition{"definition", true, kMaxRuleBytes, false, 0, true};
  const FieldSpec enabled{"enabled", false, 5, true};
  const std::vector<Route> mine = {
      {"GET", "/api/v1/rules", Access::full, Permission::rules_read, {}, false, list_rules},
      {"POST", "/api/v1/rules", Access::full, Permission::rules_write, {definition, enabled}, false, create_rule},
      {"POST",
       "/api/v1/rules/dry-run",
       Access::full,
       Permission::rules_write,
       {definition,
        {"hours", false, static_cast<std::size_t>(decision::kMaxDryRunSpan.count()), false, 0, false, true}},
       false,
       dry_run_rule},
      {"GET", "/api/v1/rules/{rule}", Access::full, Permission::rules_read, {}, false, show_rule},
      {"PUT",
       "/api/v1/rules/{rule}",
       Access::full,
       Permission::rules_write,
       {definition, enabled, {"version", true, kMaxVersion, false, 0, false, true}},
       false,
       change_rule},
      {"DELETE", "/api/v1/rules/{rule}", Access::full, Permission::rules_write, {}, false, delete_rule},
      {"GET", "/api/v1/rules/{rule}/versions", Access::full, Permission::rules_read, {}, false, rule_versions},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api
