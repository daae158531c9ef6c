// The console API (api.h), notification channels (notify/channel_book.h;
// JPCERT VIII-2, I-10): an organisation's channels, always shown redacted; a webhook secret
// torii generated is in the answer that made it and nowhere else. Creating, changing and
// deleting need step-up: a channel sends the organisation's alerts out of the installation.
// Every change is a security event with the person as actor, naming the channel and where it
// sends to (a host or devices), never a secret, a URL's path or query, or e-mail addresses.

#include <string>
#include <vector>

#include "console/api_internal.h"
#include "notify/channel_book.h"

namespace torii::console::api {

using identity::Permission;

namespace {

constexpr std::size_t kMaxChannelBytes = std::size_t{16} * 1024;

Response channels_unavailable() {
  return problem(503, "unavailable", "Notification channels are not available on this server");
}

Response no_such_channel() { return problem(404, "not_found", "No such channel"); }

Response forbidden_organisation() { return problem(403, "forbidden", "You may not act on that organisation"); }

// The definition's problems are under "definition" in the request body.
Response refused(const std::vector<notify::Problem>& problems) {
  std::vector<FieldProblem> out;
  out.reserve(problems.size());
  for (const auto& p : problems) {
    std::string field = p.path;
    if (field != "id" && field != "min_severity") field.insert(0, field.empty() ? "definition" : "definition.");
    out.push_back({std::move(field), "invalid", p.message});
  }
  return invalid_input(out);
}

// Where a channel sends to, for the security log: no secret, no URL path or query, no
// addresses of people.
json destination_of(const notify::Channel& channel) {
  switch (channel.type) {
    case notify::ChannelType::webhook: return channel.webhook.host;
    case notify::ChannelType::syslog: return channel.host;
    case notify::ChannelType::mqtt: return channel.devices;
    case notify::ChannelType::email: return std::to_string(channel.to.size()) + " recipient(s)";
  }
  return nullptr;
}

void record(ApiState& s, Call& call, std::string action, const store::NotificationChannelRecord& record,
            const notify::Channel* channel) {
  json details = {{"organisation", record.organisation_id},
                  {"channel", record.id},
                  {"name", record.name},
                  {"type", record.type},
                  {"min_severity", record.min_severity},
                  {"enabled", record.enabled}};
  if (channel != nullptr) details["destination"] = destination_of(*channel);
  s.emit(&*call.caller, std::move(action), "channel:" + record.organisation_id + ":" + record.id,
         events::Outcome::success, call.origin, std::move(details));
}

// The caller's channel named by the path, or the answer.
tl::expected<store::NotificationChannelRecord, Response> reachable_channel(ApiState& s, Call& call) {
  auto organisation = organisation_scope(call);
  if (!organisation) return tl::unexpected(forbidden_organisation());
  auto found = s.ctx.channels->find(*organisation, call.params["channel"]);
  if (!found) return tl::unexpected(internal_error(found.error()));
  if (!*found) return tl::unexpected(no_such_channel());
  return std::move(**found);
}

Response stored_answer(ApiState& s, int status, const notify::ChannelOutcome& outcome) {
  auto body = s.ctx.channels->to_json(outcome.stored->record);
  if (!body) return internal_error(body.error());
  if (outcome.secret_shown_once) (*body)["secret"] = *outcome.secret_shown_once;
  return json_response(status, *body);
}

asio::awaitable<Response> list_channels(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr) co_return channels_unavailable();
  auto organisation = organisation_scope(call);
  if (!organisation) co_return forbidden_organisation();
  auto listed = s.ctx.channels->list(*organisation);
  if (!listed) co_return internal_error(listed.error());
  json channels = json::array();
  for (const auto& c : *listed) {
    auto j = s.ctx.channels->to_json(c);
    if (!j) co_return internal_error(j.error());
    channels.push_back(std::move(*j));
  }
  co_return json_response(200, {{"organisation", *organisation}, {"channels", std::move(channels)}});
}

asio::awaitable<Response> create_channel(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr) co_return channels_unavailable();
  auto organisation = organisation_scope(call);
  if (!organisation) co_return forbidden_organisation();
  auto outcome = s.ctx.channels->create(*organisation, call.fields["id"], call.fields["definition"],
                                        call.fields["min_severity"], "user:" + call.caller->user.id);
  if (!outcome) co_return internal_error(outcome.error());
  if (!outcome->stored) co_return refused(outcome->problems);
  record(s, call, "channel.created", outcome->stored->record, &outcome->stored->channel);
  co_return stored_answer(s, 201, *outcome);
}

asio::awaitable<Response> show_channel(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr) co_return channels_unavailable();
  auto channel = reachable_channel(s, call);
  if (!channel) co_return channel.error();
  auto body = s.ctx.channels->to_json(*channel);
  if (!body) co_return internal_error(body.error());
  co_return json_response(200, *body);
}

asio::awaitable<Response> change_channel(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr) co_return channels_unavailable();
  auto existing = reachable_channel(s, call);
  if (!existing) co_return existing.error();
  const std::string min_severity =
      call.fields.contains("min_severity") ? call.fields["min_severity"] : existing->min_severity;
  auto outcome = s.ctx.channels->replace(existing->organisation_id, existing->id, call.fields["definition"],
                                         min_severity, "user:" + call.caller->user.id);
  if (!outcome) {
    if (outcome.error().is(Errc::not_found)) co_return no_such_channel();
    co_return internal_error(outcome.error());
  }
  if (!outcome->stored) co_return refused(outcome->problems);
  if (const auto it = call.fields.find("enabled"); it != call.fields.end()) {
    const bool enabled = it->second == "true";
    if (enabled != outcome->stored->record.enabled) {
      if (auto st = s.ctx.channels->set_enabled(existing->organisation_id, existing->id, enabled); !st) {
        co_return internal_error(st.error());
      }
      outcome->stored->record.enabled = enabled;
    }
  }
  record(s, call, "channel.changed", outcome->stored->record, &outcome->stored->channel);
  co_return stored_answer(s, 200, *outcome);
}

asio::awaitable<Response> delete_channel(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr) co_return channels_unavailable();
  auto existing = reachable_channel(s, call);
  if (!existing) co_return existing.error();
  auto removed = s.ctx.channels->remove(existing->organisation_id, existing->id);
  if (!removed) co_return internal_error(removed.error());
  if (!*removed) co_return no_such_channel();
  record(s, call, "channel.deleted", *existing, nullptr);
  co_return no_content();
}

// Queues a test notice through the server's dispatcher; 202 with its delivery id (what the
// receiver sees as X-Torii-Delivery). Whether it arrived is the dispatcher's to report.
asio::awaitable<Response> test_channel(ApiState& s, Call& call) {
  if (s.ctx.channels == nullptr || !s.ctx.test_channel) co_return channels_unavailable();
  auto existing = reachable_channel(s, call);
  if (!existing) co_return existing.error();
  auto delivery = s.ctx.test_channel(existing->organisation_id, existing->id);
  if (!delivery) {
    if (delivery.error().is(Errc::not_found)) co_return no_such_channel();
    if (delivery.error().is(Errc::limit_exceeded)) {
      co_return problem(429, "rate_limited", "The channel's rate limit holds notices back; try again later");
    }
    if (delivery.error().is(Errc::unavailable)) co_return channels_unavailable();
    co_return problem(409, "not_sent", "The test notice could not be queued (is the channel enabled?)");
  }
  s.emit(&*call.caller, "channel.tested", "channel:" + existing->organisation_id + ":" + existing->id,
         events::Outcome::success, call.origin,
         {{"organisation", existing->organisation_id}, {"channel", existing->id}, {"delivery", *delivery}});
  co_return json_response(202, {{"channel", existing->id}, {"delivery", *delivery}});
}

}  // namespace

void add_channel_routes(std::vector<Route>& routes) {
  const FieldSpec definition{"definition", true, kMaxChannelBytes, false, 0, true};
  const FieldSpec min_severity{"min_severity", false, 16};
  const std::vector<Route> mine = {
      {"GET", "/api/v1/channels", Access::full, Permission::channels_read, {}, false, list_channels},
      {"POST",
       "/api/v1/channels",
       Access::full,
       Permission::channels_write,
       {{"id", true, 64}, definition, min_severity},
       false,
       create_channel,
       true},
      {"GET", "/api/v1/channels/{channel}", Access::full, Permission::channels_read, {}, false, show_channel},
      {"PUT",
       "/api/v1/channels/{channel}",
       Access::full,
       Permission::channels_write,
       {definition, min_severity, {"enabled", false, 5, true}},
       false,
       change_channel,
       true},
      {"DELETE",
       "/api/v1/channels/{channel}",
       Access::full,
       Permission::channels_write,
       {},
       false,
       delete_channel,
       true},
      {"POST", "/api/v1/channels/{channel}/test", Access::full, Permission::channels_write, {}, false, test_channel},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api
