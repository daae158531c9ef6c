// The Decision Trigger at scale: how much the rules engine adds to each accepted
// telemetry message, with many rules over many devices. It drives decision::Trigger exactly
// as the server does (observe for each message on one thread, tick every simulated second)
// over rules stored through the RuleBook in a real SQLite store, and reports messages per
// second through the engine and the time observe() took per message (p50, p99, max).
//
//   torii-rules-bench [--rules 1000] [--devices 10000] [--messages 200000] [--rate 20000]
//                     [--selectors mixed|device]
//
// With mixed selectors (the default) the rules are spread over three kinds (one device, one
// of ten profiles, one of twenty segments), so that each message meets about 50 of 1,000
// rules; with device selectors each rule watches one device. Conditions are of four kinds (a threshold, a windowed
// average, a rate of change and an absence), each held "for" a few seconds. Telemetry comes from devices picked by a
// fixed pseudo-random sequence, `rate` messages per simulated second, so that windows,
// holds and absences behave as in a fleet publishing at that rate. Nothing here is timed
// against a threshold: the numbers go to docs/benchmarks.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "crypto/sodium.h"
#include "decision/rule_book.h"
#include "decision/trigger.h"
#include "identity/roles.h"
#include "testing/fakes.h"
#include "testing/keyed_store.h"
#include "testing/temp_dir.h"

namespace {

using namespace torii;
using Wall = std::chrono::steady_clock;

struct Options {
  std::size_t rules = 1000;
  std::size_t devices = 10000;
  std::size_t messages = 200000;
  std::size_t rate = 20000;   // messages per simulated second, across the fleet
  bool devices_only = false;  // every rule selects one device (else: a third each by device, profile, segment)
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view name = argv[i];
    if (name == "--selectors") {
      const std::string_view value = argv[i + 1];
      if (value != "device" && value != "mixed") return false;
      o.devices_only = value == "device";
      continue;
    }
    char* end = nullptr;
    const unsigned long long value = std::strtoull(argv[i + 1], &end, 10);
    if (*end != '\0' || value == 0) return false;
    if (name == "--rules") {
      o.rules = value;
    } else if (name == "--devices") {
      o.devices = value;
    } else if (name == "--messages") {
      o.messages = value;
    } else if (name == "--rate") {
      o.rate = value;
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

std::string device_id(std::size_t i) { return fmt::format("dev-{:05}", i); }
std::string profile_of(std::size_t i) { return fmt::format("p-{}", i % 10); }
std::string segment_of(std::size_t i) { return fmt::format("s-{}", i % 20); }

std::string rule_definition(std::size_t i, std::size_t devices, bool devices_only) {
  std::string selector;
  switch (devices_only ? 0 : i % 3) {
    case 0: selector = fmt::format(R"({{"devices":["{}"]}})", device_id((i * 7919) % devices)); break;
    case 1: selector = fmt::format(R"({{"profiles":["{}"]}})", profile_of(i)); break;
    default: selector = fmt::format(R"({{"segments":["{}"]}})", segment_of(i)); break;
  }
  const char* conditions[] = {"temperature > 29.5", "avg(temperature, 1m) > 26", "rate(temperature, 30s) > 0.5",
                              "absent(5m)"};
  return fmt::format(R"({{"name":"rule {}","selector":{},"condition":"{}","for":"5s","severity":"warning",)"
                     R"("actions":[{{"type":"alert"}}]}})",
                     i, selector, conditions[i % 4]);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fputs(
        "usage: torii-rules-bench [--rules N] [--devices N] [--messages N] [--rate N] [--selectors device|mixed]\n",
        stderr);
    return 2;
  }
  if (!crypto::init()) return 1;
  testing::TempDir dir;
  crypto::SystemRandom random;
  testing::FakeClock clock;
  auto opened = testing::open_keyed_store(dir.path(), random, clock);
  if (!opened) {
    std::fprintf(stderr, "store: %s\n", opened.error().message.c_str());
    return 1;
  }
  auto& store = *opened->store;
  auto& keys = *opened->keys;
  if (!store.organisations().insert({"bench", "Bench", false, 0})) return 1;
  // Each device with its data key, as the registry makes them (identity::DeviceRegistry):
  // the states are sealed under it.
  std::vector<store::DeviceRecord> devices(o.devices);
  const auto registered = store.transaction([&]() -> Status {
    for (std::size_t i = 0; i < o.devices; ++i) {
      store::DeviceRecord& d = devices[i];
      d.id = device_id(i);
      d.organisation_id = "bench";
      d.name = d.id;
      d.profile_id = profile_of(i);
      d.segment = segment_of(i);
      if (auto st = store.devices().insert(d); !st) return st;
      if (auto st = keys.ensure_data_key(keys::device_key_id(d.id), "device"); !st) return st;
    }
    return ok();
  });
  if (!registered) {
    std::fprintf(stderr, "devices: %s\n", registered.error().message.c_str());
    return 1;
  }
  decision::RuleBook book(store, keys, clock, random);
  const decision::Author author{"admin-cli", "bench", identity::builtin_role_permissions(identity::kRoleOrgAdmin)};
  for (std::size_t i = 0; i < o.rules; ++i) {
    auto made = book.create(author, rule_definition(i, o.devices, o.devices_only), true);
    if (!made || !made->rule) {
      std::fprintf(
          stderr, "rule %zu refused: %s\n", i,
          made ? (made->problems.empty() ? "?" : made->problems[0].message.c_str()) : made.error().message.c_str());
      return 1;
    }
  }

  std::uint64_t fired = 0;
  decision::TriggerActions actions;
  actions.alert = [&](const decision::Firing&) { ++fired; };
  actions.security_event = [](const events::SecurityEvent&) {};
  decision::Trigger trigger(store, keys, clock, std::move(actions));
  if (auto st = trigger.load(); !st) {
    std::fprintf(stderr, "load: %s\n", st.error().message.c_str());
    return 1;
  }

  // A fixed seed on purpose: every run sends the same telemetry, so runs compare.
  std::mt19937_64 pick(42);  // NOLINT(cert-msc51-cpp)
  std::uniform_int_distribution<std::size_t> any_device(0, o.devices - 1);
  std::normal_distribution<double> step(0.0, 0.3);
  std::vector<double> temperature(o.devices, 25.0);
  std::vector<std::uint64_t> nanos;
  nanos.reserve(o.messages);
  const UnixMillis t0 = to_unix_millis(clock.now());
  UnixMillis last_tick = t0;
  UnixMillis last_save = t0;
  double save_seconds = 0;
  double save_max = 0;
  std::size_t saves = 0;
  double tick_seconds = 0;
  const auto started = Wall::now();
  for (std::size_t n = 0; n < o.messages; ++n) {
    const UnixMillis at = t0 + static_cast<UnixMillis>(n * 1000 / o.rate);
    const std::size_t i = any_device(pick);
    temperature[i] = std::clamp(temperature[i] + step(pick), 15.0, 35.0);
    // Reported with two decimals, as a sensor's JSON payload has them (a full-precision double
    // would take 17 digits in each saved window sample).
    const std::vector<policy::Metric> metrics{{"temperature", std::round(temperature[i] * 100) / 100}};
    const auto before = Wall::now();
    trigger.observe({"bench", devices[i].id, devices[i].profile_id, devices[i].segment, metrics, at});
    nanos.push_back(static_cast<std::uint64_t>(std::chrono::nanoseconds(Wall::now() - before).count()));
    if (at - last_tick >= 1000) {
      last_tick = at;
      const auto tick_start = Wall::now();
      trigger.tick(at);
      tick_seconds += std::chrono::duration<double>(Wall::now() - tick_start).count();
    }
    // The server saves the changed states every 10 seconds: serialised on this thread, sealed
    // and written on the Trigger's writer thread.
    if (at - last_save >= 10'000) {
      last_save = at;
      const auto save_start = Wall::now();
      trigger.save();
      const double took = std::chrono::duration<double>(Wall::now() - save_start).count();
      save_seconds += took;
      save_max = std::max(save_max, took);
      ++saves;
    }
  }
  const double seconds = std::chrono::duration<double>(Wall::now() - started).count();
  // What the writer still had to do when the messages ended (not counted in the rate above).
  const auto flush_start = Wall::now();
  if (auto st = trigger.flush(); !st) {
    std::fprintf(stderr, "save: %s\n", st.error().message.c_str());
    return 1;
  }
  const double flush_seconds = std::chrono::duration<double>(Wall::now() - flush_start).count();
  // What the last save left in the store: every device's row, sealed.
  auto rows = store.rules().device_states();
  if (!rows) {
    std::fprintf(stderr, "saved states: %s\n", rows.error().message.c_str());
    return 1;
  }
  std::size_t saved_bytes = 0;
  for (const auto& row : *rows) saved_bytes += row.sealed.size();
  std::sort(nanos.begin(), nanos.end());
  // Microseconds at quantile q.
  const auto at = [&](double q) {
    const auto i = std::min(nanos.size() - 1, static_cast<std::size_t>(q * static_cast<double>(nanos.size())));
    return static_cast<double>(nanos[i]) / 1000.0;
  };
  const auto& c = trigger.counters();
  std::printf("rules %zu (%s selectors), devices %zu, messages %zu at %zu/s simulated (%.1f s of telemetry)\n", o.rules,
              o.devices_only ? "device" : "mixed", o.devices, o.messages, o.rate,
              static_cast<double>(o.messages) / static_cast<double>(o.rate));
  std::printf("through the engine: %.0f messages/s (%.2f s wall, of which tick %.2f s, save %.2f s)\n",
              static_cast<double>(o.messages) / seconds, seconds, tick_seconds, save_seconds);
  std::printf(
      "save every 10 s simulated: %zu saves, %llu states written, longest on this thread %.3f s; writer's wait at "
      "the end %.3f s\n",
      saves, static_cast<unsigned long long>(trigger.counters().states_saved), save_max, flush_seconds);
  std::printf("saved rows: %zu devices, %.1f MB sealed (%.0f bytes per device)\n", rows->size(),
              static_cast<double>(saved_bytes) / 1e6,
              rows->empty() ? 0.0 : static_cast<double>(saved_bytes) / static_cast<double>(rows->size()));
  std::printf("observe per message: p50 %.1f us, p99 %.1f us, max %.1f us, mean %.1f us\n", at(0.50), at(0.99),
              static_cast<double>(nanos.back()) / 1000.0,
              (seconds - tick_seconds - save_seconds) * 1e6 / static_cast<double>(o.messages));
  std::printf(
      "rules met %.1f per message; evaluations %llu (%.1f per message), tick evaluations %llu, fired %llu, "
      "cleared %llu\n",
      static_cast<double>(c.candidates) / static_cast<double>(o.messages),
      static_cast<unsigned long long>(c.evaluations),
      static_cast<double>(c.evaluations) / static_cast<double>(o.messages),
      static_cast<unsigned long long>(c.deadlines), static_cast<unsigned long long>(c.fired),
      static_cast<unsigned long long>(c.cleared));
  return 0;
}
