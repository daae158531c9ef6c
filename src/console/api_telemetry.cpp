// The console API (api.h), what devices sent: one metric over a time range, downsampled for
// a chart, the latest value of every metric, and live: a WebSocket (live.h) carrying what the
// gateway accepts from one device or from all of an organisation's devices.
//
// Telemetry is stored sealed under each device's own key (keys/key_ring.h); it is opened
// here, per request, and never kept. Reading and opening the messages of a range runs on the
// WorkPool, off the network thread, and is bounded: at most kMaxMessagesRead stored
// messages per query, the answer saying when the range held more.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <string>
#include <vector>

#include "console/api_internal.h"
#include "console/live.h"
#include "console/websocket.h"
#include "console/work_pool.h"
#include "policy/profile.h"
#include "policy/series.h"

namespace torii::console::api {

using identity::Permission;

namespace {

// At most this many stored messages are read (and opened) for one query: about 4 MiB and a
// few hundred milliseconds of one pool thread.
constexpr std::size_t kMaxMessagesRead = 20000;
constexpr std::size_t kDefaultPoints = 500;
constexpr std::size_t kMaxPoints = 2000;
constexpr auto kDefaultSpan = std::chrono::hours(24);
constexpr auto kMaxSpan = std::chrono::days(31);

// %XX escapes decoded (a browser sends "2026-01-31T00%3A00%3A00Z"); nullopt for a broken one.
std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    unsigned value = 0;
    for (std::size_t j = i + 1; j <= i + 2; ++j) {
      const char c = text[j];
      value <<= 4U;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else {
        return std::nullopt;
      }
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

// A time given in the query, or the fallback when absent.
std::optional<UnixMillis> time_parameter(const Call& call, std::string_view name, UnixMillis fallback,
                                         std::vector<FieldProblem>& problems) {
  auto raw = query_parameter(call.request.query, name);
  if (!raw) return fallback;
  auto text = percent_decoded(*raw);
  auto parsed = text ? parse_utc_millis(*text) : std::nullopt;
  if (!parsed) problems.push_back({std::string(name), "invalid", "must be a time such as 2027-01-31T00:00:00Z"});
  return parsed;
}

struct Query {
  std::string device_id;
  std::string metric;
  UnixMillis from = 0;
  UnixMillis to = 0;
  std::size_t points = kDefaultPoints;
};

struct Series {
  std::vector<policy::Bucket> buckets;
  std::size_t messages_read = 0;
  std::size_t unreadable = 0;                // messages that did not open (logged)
  std::optional<UnixMillis> complete_until;  // set when the range held more than was read
};

// On a pool thread: the store and the key ring may be used from several threads.
Result<Series> read_series(store::Store& data, keys::KeyRing& ring, const Query& q) {
  auto rows = data.telemetry().range(q.device_id, q.from, q.to, kMaxMessagesRead + 1);
  if (!rows) return tl::unexpected(rows.error());
  Series out;
  if (rows->size() > kMaxMessagesRead) {
    rows->resize(kMaxMessagesRead);
    // Rows come by time: everything before the last one read is in (the rest of its
    // millisecond may not be).
    out.complete_until = rows->back().received_at;
  }
  out.messages_read = rows->size();
  std::vector<policy::Sample> samples;
  samples.reserve(rows->size());
  for (const auto& row : *rows) {
    // What the device sent, and what rules derived from it (docs/rules.md).
    if (row.kind != store::kTelemetryKindTelemetry && row.kind != store::kTelemetryKindDerived) continue;
    auto plain = ring.open(row.key_id, row.sealed,
                           keys::telemetry_associated_data(row.device_id, row.kind, row.received_at, row.message_key));
    if (!plain) {
      ++out.unreadable;
      spdlog::error("console: telemetry {} of device {} does not open: {}", row.seq, row.device_id,
                    plain.error().message);
      continue;
    }
    if (auto value = policy::chart_value(to_string(plain->view()), q.metric)) {
      samples.push_back({row.received_at, *value});
    }
  }
  out.buckets = policy::downsample(samples, q.from, out.complete_until.value_or(q.to), q.points);
  return out;
}

asio::awaitable<Response> device_telemetry(ApiState& s, Call& call) {
  if (s.ctx.keys == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();

  std::vector<FieldProblem> problems;
  Query q;
  q.device_id = device->id;
  q.metric = query_parameter(call.request.query, "metric").value_or("");
  if (!policy::valid_name(q.metric)) {
    problems.push_back({"metric", q.metric.empty() ? "missing" : "invalid",
                        "must be a metric name: 1-64 characters of a-z, 0-9 and _"});
  }
  const UnixMillis now = to_unix_millis(s.ctx.clock.now());
  const auto to = time_parameter(call, "to", now, problems);
  const auto from = time_parameter(
      call, "from", to.value_or(now) - std::chrono::duration_cast<std::chrono::milliseconds>(kDefaultSpan).count(),
      problems);
  if (from && to) {
    if (*from >= *to) {
      problems.push_back({"from", "invalid", "must be before to"});
    } else if (*to - *from > std::chrono::duration_cast<std::chrono::milliseconds>(kMaxSpan).count()) {
      problems.push_back({"to", "invalid", fmt::format("must be at most {} days after from", kMaxSpan.count())});
    }
  }
  if (auto points = query_parameter(call.request.query, "points")) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(points->data(), points->data() + points->size(), n);
    if (ec != std::errc() || end != points->data() + points->size() || n < 1 || n > kMaxPoints) {
      problems.push_back({"points", "invalid", fmt::format("must be a whole number from 1 to {}", kMaxPoints)});
    }
    q.points = n;
  }
  if (!problems.empty()) co_return invalid_input(problems);
  q.from = *from;
  q.to = *to;

  auto job = [&data = s.ctx.store, &ring = *s.ctx.keys, q] { return read_series(data, ring, q); };
  auto series = co_await s.ctx.work.run(std::move(job));
  if (!series) co_return busy();
  if (!*series) co_return internal_error(series->error());
  const Series& result = **series;
  json buckets = json::array();
  for (const auto& b : result.buckets) {
    buckets.push_back(
        {{"from", iso(b.from)}, {"to", iso(b.to)}, {"min", b.min}, {"max", b.max}, {"avg", b.avg}, {"count", b.count}});
  }
  json body = {{"device", q.device_id},
               {"metric", q.metric},
               {"from", iso(q.from)},
               {"to", iso(q.to)},
               {"points", q.points},
               {"buckets", buckets},
               {"messages_read", result.messages_read},
               {"unreadable", result.unreadable},
               {"truncated", result.complete_until.has_value()}};
  if (result.complete_until) body["complete_until"] = iso(*result.complete_until);
  co_return json_response(200, body);
}

asio::awaitable<Response> device_latest(ApiState& s, Call& call) {
  if (s.ctx.keys == nullptr) co_return devices_unavailable();
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  auto latest = s.ctx.store.latest_values().list(device->id);
  if (!latest) co_return internal_error(latest.error());
  json values = json::object();
  for (const auto& v : *latest) {
    auto plain = s.ctx.keys->open(v.key_id, v.sealed, keys::latest_value_associated_data(v.device_id, v.metric));
    if (!plain) {
      spdlog::error("console: the latest {} of device {} does not open: {}", v.metric, v.device_id,
                    plain.error().message);
      continue;
    }
    values[v.metric] = {{"value", json::parse(to_string(plain->view()), nullptr, false)}, {"at", iso(v.at)}};
  }
  co_return json_response(200, {{"device", device->id}, {"latest", values}});
}

// Opens a live socket for the caller on the organisation's devices (one of them when
// `device` is set). The socket ends when the caller's session or token stops being valid
// (checked at every ping, and at once when the session signs out) or the server stops.
Response open_live(ApiState& s, Call& call, const std::string& organisation, std::optional<std::string> device) {
  if (s.ctx.live == nullptr) return problem(503, "unavailable", "Live telemetry is not available on this server");
  auto accept = websocket::check_handshake(call.request);
  if (!accept) {
    Response r = problem(accept.error().status, "websocket_required", accept.error().reason);
    if (accept.error().status == 426) r.set("Sec-WebSocket-Version", "13");
    return r;
  }
  // Cross-site WebSocket hijacking: a browser always names the page that opens a socket.
  // A session's socket needs that page to be this console; a script with a token may send
  // no Origin, but not another one.
  const bool origin_named = call.request.header("origin").has_value();
  if ((!origin_named && !call.caller->token) || !same_origin(call.request)) {
    s.emit(&*call.caller, "console.cross_origin_refused", std::string(call.request.path), events::Outcome::denied,
           call.origin);
    return problem(403, "cross_origin", "A live view opens only from this console's own pages");
  }
  std::set<std::string, std::less<>> devices;
  if (device) devices.insert(*device);
  const identity::Caller caller = *call.caller;
  auto still_allowed = [&s, caller]() -> Result<bool> {
    return caller.token ? s.ctx.tokens.still_valid(caller, Permission::telemetry_read)
                        : s.ctx.accounts.still_signed_in(caller);
  };
  const std::string credential = caller.token ? "api_token:" + caller.token->id : caller.session.id_hash;
  auto feed = s.ctx.live->subscribe(LiveFeed::Subscriber{caller.user.id, credential, organisation}, std::move(devices),
                                    std::move(still_allowed));
  if (!feed) {
    return problem(429, "too_many_live_views", "Too many live views are open; close one first");
  }
  Response r;
  r.status = 101;
  r.set("Upgrade", "websocket");
  r.set("Connection", "Upgrade");
  r.set("Sec-WebSocket-Accept", *accept);
  r.websocket = std::move(feed);
  return r;
}

asio::awaitable<Response> organisation_live(ApiState& s, Call& call) {
  const auto organisation = organisation_scope(call);
  if (!organisation) co_return problem(403, "forbidden", "You may not act on that organisation");
  co_return open_live(s, call, *organisation, std::nullopt);
}

asio::awaitable<Response> device_live(ApiState& s, Call& call) {
  auto device = reachable_device(s, call);
  if (!device) co_return device.error();
  co_return open_live(s, call, device->organisation_id, device->id);
}

}  // namespace

void add_telemetry_routes(std::vector<Route>& routes) {
  const std::vector<Route> mine = {
      {"GET", "/api/v1/devices/{id}/telemetry", Access::full, Permission::telemetry_read, {}, false, device_telemetry},
      {"GET", "/api/v1/devices/{id}/latest", Access::full, Permission::telemetry_read, {}, false, device_latest},
      {"GET", "/api/v1/devices/{id}/live", Access::full, Permission::telemetry_read, {}, false, device_live},
      {"GET", "/api/v1/live", Access::full, Permission::telemetry_read, {}, false, organisation_live},
  };
  routes.insert(routes.end(), mine.begin(), mine.end());
}

}  // namespace torii::console::api
