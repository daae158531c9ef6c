#include "agent/sensors.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <numbers>
#include <utility>

#include <fmt/format.h>

#include "base/bytes.h"
#include "base/file.h"

namespace torii::agent {
namespace {

using std::chrono::system_clock;

constexpr double kTwoPi = 2 * std::numbers::pi;

// What every sensor answers from its configuration.
class ConfiguredSensor : public Sensor {
 public:
  explicit ConfiguredSensor(const SensorConfig& config) : config_(config) {}
  [[nodiscard]] const std::string& metric() const final { return config_.metric; }
  [[nodiscard]] std::chrono::milliseconds interval() const final { return config_.interval; }

 protected:
  const SensorConfig config_;
};

// --- simulated -----------------------------------------------------------------------------

class SimulatedSensor final : public ConfiguredSensor {
 public:
  SimulatedSensor(const SensorConfig& config, Random& random, system_clock::time_point start)
      : ConfiguredSensor(config), random_(random), start_(start) {}

  [[nodiscard]] Result<Value> read(system_clock::time_point now) override {
    const double t = std::chrono::duration<double>(now - start_).count();
    const double fault_at = std::chrono::duration<double>(config_.fault_after).count();
    const bool faulty = config_.fault != Fault::none && t >= fault_at;
    if (faulty && config_.fault == Fault::read_failure) {
      return fail(Errc::io_error, fmt::format("{}: simulated read failure", config_.metric));
    }
    if (faulty && config_.fault == Fault::stuck) {
      // Frozen at the last value read before the fault (or the first one read during it).
      if (!last_) last_ = natural(t);
      return *last_;
    }
    Value value = natural(t);
    if (faulty && std::holds_alternative<double>(value)) {
      double& x = std::get<double>(value);
      if (config_.fault == Fault::drift) x += drift_per_second() * (t - fault_at);
      if (config_.fault == Fault::out_of_range) x = beyond_range();
    }
    last_ = value;
    return value;
  }

 private:
  // Uniform in [-1, 1).
  double noise() {
    std::array<std::uint8_t, 4> bytes{};
    random_.fill(bytes);
    const std::uint32_t n = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                            (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
    return static_cast<double>(n) / 2147483648.0 - 1.0;
  }

  // The signal without faults, t seconds after the start.
  Value natural(double t) {
    switch (config_.signal) {
      case Signal::temperature:  // °C: a daily swing around 21 plus a faster ripple
        return 21.0 + 3.0 * std::sin(kTwoPi * t / 86'400) + 0.5 * std::sin(kTwoPi * t / 900) + 0.1 * noise();
      case Signal::humidity:  // % relative humidity
        return std::clamp(45.0 + 8.0 * std::sin(kTwoPi * t / 7200 + 1.0) + 0.5 * noise(), 0.0, 100.0);
      case Signal::power:  // W: a load cycling every ten minutes
        return std::max(0.0, 120.0 + 40.0 * std::sin(kTwoPi * t / 600) + 5.0 * noise());
      case Signal::door: {  // opens now and then, stays open a few reads
        const double draw = (noise() + 1.0) / 2.0;
        door_open_ = door_open_ ? draw >= 0.3 : draw < 0.02;
        return door_open_;
      }
      case Signal::tamper: {  // tripped rarely (one read in a thousand), for a few reads
        const double draw = (noise() + 1.0) / 2.0;
        door_open_ = door_open_ ? draw >= 0.3 : draw < 0.001;
        return door_open_;
      }
    }
    return 0.0;
  }

  [[nodiscard]] double drift_per_second() const {
    switch (config_.signal) {
      case Signal::temperature: return 0.01;
      case Signal::humidity: return 0.02;
      case Signal::power: return 0.5;
      case Signal::door:
      case Signal::tamper: break;
    }
    return 0.0;
  }

  // Beyond max (or below min when only min is set), by a tenth of the bound and then some.
  double beyond_range() {
    const double jitter = std::abs(noise());
    if (config_.max) return *config_.max + 1.0 + 0.1 * std::abs(*config_.max) + jitter;
    if (config_.min) return *config_.min - 1.0 - 0.1 * std::abs(*config_.min) - jitter;
    return 1e9;  // nothing configured: far beyond anything plausible
  }

  Random& random_;
  const system_clock::time_point start_;
  std::optional<Value> last_;
  bool door_open_ = false;
};

// --- sysfs files ---------------------------------------------------------------------------

// The whole text as one number, surrounding whitespace allowed.
std::optional<double> whole_number(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return std::nullopt;
  text = text.substr(first, text.find_last_not_of(" \t\r\n") + 1 - first);
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

class FileSensor final : public ConfiguredSensor {
 public:
  explicit FileSensor(const SensorConfig& config) : ConfiguredSensor(config) {}

  [[nodiscard]] Result<Value> read(system_clock::time_point /*now*/) override {
    auto bytes = read_file(config_.path, 4096);
    if (!bytes) return fail(Errc::io_error, fmt::format("{}: {}", config_.metric, bytes.error().message));
    const auto value = whole_number(torii::to_string(*bytes));
    if (!value) {
      return fail(Errc::corrupt, fmt::format("{}: {} does not hold a number", config_.metric, config_.path.string()));
    }
    return *value * config_.scale;
  }
};

// --- commands ------------------------------------------------------------------------------

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "ended abnormally";
}

class CommandSensor final : public ConfiguredSensor {
 public:
  explicit CommandSensor(const SensorConfig& config) : ConfiguredSensor(config) {}

  [[nodiscard]] Result<Value> read(system_clock::time_point /*now*/) override {
    auto out = run_command(config_.command, config_.timeout);
    if (!out)
      return tl::unexpected(Error{out.error().code, fmt::format("{}: {}", config_.metric, out.error().message)});
    const auto value = first_number(*out);
    if (!value) {
      return fail(Errc::corrupt, fmt::format("{}: {} printed no number", config_.metric, config_.command.front()));
    }
    return *value;
  }
};

}  // namespace

std::optional<double> first_number(std::string_view text) {
  const auto digit = [&](std::size_t i) { return i < text.size() && text[i] >= '0' && text[i] <= '9'; };
  // A number starts at a digit, at a point a digit follows, or at a sign either follows.
  const auto starts_number = [&](std::size_t i) {
    if (text[i] == '-' || text[i] == '+') ++i;
    return digit(i) || (i < text.size() && text[i] == '.' && digit(i + 1));
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!starts_number(i)) continue;
    const std::size_t start = text[i] == '+' ? i + 1 : i;  // from_chars takes no plus sign
    double value = 0;
    const auto result =
        std::from_chars(text.data() + start, text.data() + text.size(), value, std::chars_format::fixed);
    if (result.ec != std::errc() || !std::isfinite(value)) return std::nullopt;  // hundreds of digits
    return value;
  }
  return std::nullopt;
}

Result<std::string> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  if (argv.empty() || argv.front().empty() || argv.front().front() != '/') {
    return fail(Errc::invalid_argument, "the command must start with an absolute path");
  }
  const std::string& program = argv.front();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return fail(Errc::io_error, fmt::format("{}: cannot make a pipe: {}", program, errno_text(errno)));
  }
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  // The child starts with default signal dispositions and nothing blocked, whatever the
  // agent's threads have set.
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  // Its own process group, so that a timeout ends whatever it started too.
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // posix_spawn's signature
  args.push_back(nullptr);
  char path_variable[] = "PATH=/usr/bin:/bin";
  char* environment[] = {path_variable, nullptr};

  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, program.c_str(), &actions, &attributes, args.data(), environment);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  write_end.reset();  // the child holds the only write end: end of file when it is done
  if (spawned != 0) return fail(Errc::io_error, fmt::format("cannot run {}: {}", program, errno_text(spawned)));

  using Steady = std::chrono::steady_clock;
  const auto deadline = Steady::now() + timeout;
  const auto remaining_ms = [&] {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 60'000));
  };
  constexpr std::size_t kMaxOutput = std::size_t{64} * 1024;
  std::string output;
  bool timed_out = false;
  // Read until end of file (more than kMaxOutput is read and dropped, so the child never
  // blocks on a full pipe), then wait for the exit, all within the deadline.
  while (read_end.get() >= 0) {
    pollfd fd{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&fd, 1, remaining_ms());
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0 && remaining_ms() > 0) continue;  // one poll waits at most a minute
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    std::array<char, 4096> buffer{};
    const ssize_t n = ::read(read_end.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      read_end.reset();
      break;
    }
    const auto keep = std::min(static_cast<std::size_t>(n), kMaxOutput - output.size());
    output.append(buffer.data(), keep);
  }
  int status = 0;
  while (!timed_out) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR)
      return fail(Errc::io_error, fmt::format("{}: wait failed: {}", program, errno_text(errno)));
    if (remaining_ms() == 0) {
      timed_out = true;
      break;
    }
    // Output closed but not exited yet: look again shortly (bounded by the deadline).
    ::poll(nullptr, 0, std::min(remaining_ms(), 10));
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL);  // the child's own group (above), not yet reaped: only what it started
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return fail(Errc::unavailable,
                fmt::format("{} did not finish within {} ms and was killed", program, timeout.count()));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail(Errc::io_error, fmt::format("{} {}", program, describe_status(status)));
  }
  return output;
}

std::unique_ptr<Sensor> make_simulated_sensor(const SensorConfig& config, Random& random,
                                              system_clock::time_point start) {
  return std::make_unique<SimulatedSensor>(config, random, start);
}

std::unique_ptr<Sensor> make_file_sensor(const SensorConfig& config) { return std::make_unique<FileSensor>(config); }

std::unique_ptr<Sensor> make_command_sensor(const SensorConfig& config) {
  return std::make_unique<CommandSensor>(config);
}

std::unique_ptr<Sensor> make_sensor(const SensorConfig& config, Random& random, system_clock::time_point start) {
  switch (config.source) {
    case SensorSource::simulated: return make_simulated_sensor(config, random, start);
    case SensorSource::hwmon:
    case SensorSource::thermal: return make_file_sensor(config);
    case SensorSource::command: return make_command_sensor(config);
  }
  return make_simulated_sensor(config, random, start);
}

}  // namespace torii::agent
