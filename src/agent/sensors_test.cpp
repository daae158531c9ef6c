#include "agent/sensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr system_clock::time_point kStart{milliseconds(1'790'000'000'000)};

SensorConfig simulated(Signal signal, Fault fault = Fault::none, seconds fault_after = seconds(0)) {
  SensorConfig c;
  c.metric = "m";
  c.signal = signal;
  c.fault = fault;
  c.fault_after = fault_after;
  c.min = 0;
  c.max = 40;
  return c;
}

double number(const Result<Value>& r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  if (!r || !std::holds_alternative<double>(*r)) {
    ADD_FAILURE() << "not a number";
    return NAN;
  }
  return std::get<double>(*r);
}

TEST(SimulatedSensor, IsDeterministicGivenItsRandomAndTheTimes) {
  testing::SeededRandom r1(7), r2(7), r3(8);
  auto a = make_simulated_sensor(simulated(Signal::temperature), r1, kStart);
  auto b = make_simulated_sensor(simulated(Signal::temperature), r2, kStart);
  auto c = make_simulated_sensor(simulated(Signal::temperature), r3, kStart);
  bool differs = false;
  for (int i = 0; i < 50; ++i) {
    const auto t = kStart + seconds(5 * i);
    const double x = number(a->read(t));
    EXPECT_EQ(x, number(b->read(t)));
    differs |= x != number(c->read(t));
  }
  EXPECT_TRUE(differs);
}

TEST(SimulatedSensor, SignalsStayPlausibleAndMove) {
  testing::SeededRandom random(1);
  auto temperature = make_simulated_sensor(simulated(Signal::temperature), random, kStart);
  auto humidity = make_simulated_sensor(simulated(Signal::humidity), random, kStart);
  auto power = make_simulated_sensor(simulated(Signal::power), random, kStart);
  double t_min = 1e9, t_max = -1e9;
  for (int i = 0; i < 2000; ++i) {
    const auto t = kStart + seconds(43 * i);  // a day
    const double x = number(temperature->read(t));
    t_min = std::min(t_min, x);
    t_max = std::max(t_max, x);
    const double h = number(humidity->read(t));
    EXPECT_GE(h, 0.0);
    EXPECT_LE(h, 100.0);
    EXPECT_GE(number(power->read(t)), 0.0);
  }
  EXPECT_GT(t_min, 17.0);
  EXPECT_LT(t_max, 25.0);
  EXPECT_GT(t_max - t_min, 3.0);  // a slow swing, not a constant
}

TEST(SimulatedSensor, DoorOpensNowAndThenAndClosesAgain) {
  testing::SeededRandom random(3);
  auto door = make_simulated_sensor(simulated(Signal::door), random, kStart);
  int opened = 0, open_reads = 0;
  bool was_open = false;
  for (int i = 0; i < 2000; ++i) {
    const auto r = door->read(kStart + seconds(i));
    ASSERT_TRUE(r && std::holds_alternative<bool>(*r));
    const bool open = std::get<bool>(*r);
    if (open && !was_open) ++opened;
    open_reads += open ? 1 : 0;
    was_open = open;
  }
  EXPECT_GE(opened, 5);
  EXPECT_LT(open_reads, 400);  // mostly closed
}

TEST(SimulatedSensor, ATamperSwitchTripsRarely) {
  testing::SeededRandom random(3);
  auto tamper = make_simulated_sensor(simulated(Signal::tamper), random, kStart);
  int tripped = 0;
  bool was = false;
  for (int i = 0; i < 20000; ++i) {
    const auto r = tamper->read(kStart + seconds(i));
    ASSERT_TRUE(r && std::holds_alternative<bool>(*r));
    if (std::get<bool>(*r) && !was) ++tripped;
    was = std::get<bool>(*r);
  }
  EXPECT_GE(tripped, 2);
  EXPECT_LE(tripped, 60);  // about one read in a thousand, far rarer than a door
}

TEST(SimulatedSensor, StuckFaultRepeatsTheLastValueFromItsStart) {
  testing::SeededRandom random(1);
  auto s = make_simulated_sensor(simulated(Signal::power, Fault::stuck, seconds(60)), random, kStart);
  double before = 0;
  for (int i = 0; i < 12; ++i) before = number(s->read(kStart + seconds(5 * i)));  // up to 55 s
  EXPECT_NE(before, number(s->read(kStart + seconds(54))));                        // still moving before the fault
  const double frozen = number(s->read(kStart + seconds(59)));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(number(s->read(kStart + seconds(60 + 5 * i))), frozen);
}

TEST(SimulatedSensor, DriftFaultMovesAwayFromTheSignalSteadily) {
  testing::SeededRandom r1(5), r2(5);
  auto healthy = make_simulated_sensor(simulated(Signal::temperature), r1, kStart);
  auto drifting = make_simulated_sensor(simulated(Signal::temperature, Fault::drift, seconds(100)), r2, kStart);
  for (int i = 0; i <= 100; ++i) {
    const auto t = kStart + seconds(10 * i);
    const double offset = number(drifting->read(t)) - number(healthy->read(t));
    const double expected = t < kStart + seconds(100) ? 0.0 : 0.01 * (10.0 * i - 100);
    EXPECT_NEAR(offset, expected, 1e-9) << i;
  }
}

TEST(SimulatedSensor, OutOfRangeFaultGoesBeyondTheBounds) {
  testing::SeededRandom random(2);
  auto above = make_simulated_sensor(simulated(Signal::temperature, Fault::out_of_range, seconds(30)), random, kStart);
  EXPECT_LE(number(above->read(kStart + seconds(29))), 40.0);
  for (int i = 0; i < 20; ++i) EXPECT_GT(number(above->read(kStart + seconds(30 + i))), 40.0);

  SensorConfig only_min = simulated(Signal::power, Fault::out_of_range);
  only_min.max.reset();
  only_min.min = 10;
  auto below = make_simulated_sensor(only_min, random, kStart);
  for (int i = 0; i < 20; ++i) EXPECT_LT(number(below->read(kStart + seconds(i))), 10.0);
}

TEST(SimulatedSensor, ReadFailureFaultFailsReads) {
  testing::SeededRandom random(1);
  auto s = make_simulated_sensor(simulated(Signal::humidity, Fault::read_failure, seconds(10)), random, kStart);
  EXPECT_TRUE(s->read(kStart + seconds(9)).has_value());
  for (int i = 10; i < 20; ++i) {
    const auto r = s->read(kStart + seconds(i));
    ASSERT_FALSE(r.has_value());
    EXPECT_THAT(r.error().message, HasSubstr("simulated read failure"));
  }
}

// --- sysfs files --------------------------------------------------------------------------

void write(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

SensorConfig file_sensor(SensorSource source, const std::filesystem::path& path, double scale = 0.001) {
  SensorConfig c;
  c.metric = "board";
  c.source = source;
  c.path = path;
  c.scale = scale;
  return c;
}

TEST(FileSensor, ReadsHwmonAndThermalMillidegrees) {
  testing::TempDir dir;
  const auto hwmon = dir / "sys/class/hwmon/hwmon0/temp1_input";
  const auto zone = dir / "sys/class/thermal/thermal_zone0/temp";
  write(hwmon, "48300\n");
  write(zone, "51234\n");
  testing::SeededRandom random;
  auto a = make_sensor(file_sensor(SensorSource::hwmon, hwmon), random, kStart);
  auto b = make_sensor(file_sensor(SensorSource::thermal, zone), random, kStart);
  EXPECT_DOUBLE_EQ(number(a->read(kStart)), 48.3);
  EXPECT_DOUBLE_EQ(number(b->read(kStart)), 51.234);
  write(hwmon, "-1500\n");  // read afresh each time
  EXPECT_DOUBLE_EQ(number(a->read(kStart)), -1.5);
  auto raw = make_file_sensor(file_sensor(SensorSource::hwmon, hwmon, 1.0));
  EXPECT_DOUBLE_EQ(number(raw->read(kStart)), -1500.0);
  EXPECT_EQ(a->metric(), "board");
  EXPECT_EQ(a->interval(), seconds(5));
}

TEST(FileSensor, MissingOrGarbledFilesAreReadErrors) {
  testing::TempDir dir;
  auto missing = make_file_sensor(file_sensor(SensorSource::hwmon, dir / "temp9_input"));
  const auto r = missing->read(kStart);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is(Errc::io_error));
  EXPECT_THAT(r.error().message, HasSubstr("temp9_input"));

  for (const char* text : {"", "hot\n", "48300 48400\n", "inf\n"}) {
    write(dir / "temp1_input", text);
    const auto g = make_file_sensor(file_sensor(SensorSource::hwmon, dir / "temp1_input"))->read(kStart);
    ASSERT_FALSE(g.has_value()) << text;
    EXPECT_TRUE(g.error().is(Errc::corrupt)) << text;
    EXPECT_THAT(g.error().message, HasSubstr("does not hold a number"));
  }
}

// --- commands -----------------------------------------------------------------------------

SensorConfig command_sensor(std::vector<std::string> argv, milliseconds timeout = seconds(5)) {
  SensorConfig c;
  c.metric = "soc";
  c.source = SensorSource::command;
  c.command = std::move(argv);
  c.timeout = timeout;
  return c;
}

TEST(CommandSensor, TakesTheFirstNumberOfTheOutput) {
  testing::SeededRandom random;
  auto s = make_sensor(command_sensor({"/bin/echo", "temp=48.3'C"}), random, kStart);
  EXPECT_DOUBLE_EQ(number(s->read(kStart)), 48.3);
}

TEST(CommandSensor, ANonZeroExitIsAReadError) {
  const auto r = make_command_sensor(command_sensor({"/bin/false"}))->read(kStart);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is(Errc::io_error));
  EXPECT_THAT(r.error().message, HasSubstr("/bin/false exited with status 1"));
}

TEST(CommandSensor, OutputWithoutANumberIsAReadError) {
  const auto r = make_command_sensor(command_sensor({"/bin/echo", "sensor offline"}))->read(kStart);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is(Errc::corrupt));
  EXPECT_THAT(r.error().message, HasSubstr("printed no number"));
}

TEST(CommandSensor, IsKilledAtItsTimeout) {
  const auto began = std::chrono::steady_clock::now();
  const auto r = make_command_sensor(command_sensor({"/bin/sh", "-c", "sleep 5"}, seconds(1)))->read(kStart);
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is(Errc::unavailable));
  EXPECT_THAT(r.error().message, HasSubstr("did not finish within 1000 ms"));
  EXPECT_LT(took, seconds(4));  // not the five seconds the command asked for
}

TEST(CommandSensor, MissingProgramIsAReadError) {
  const auto r = make_command_sensor(command_sensor({"/nonexistent/vcgencmd"}))->read(kStart);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/vcgencmd"));
}

TEST(RunCommand, RunsWithoutShellStdinOrInheritedEnvironment) {
  ::setenv("TORII_AGENT_TEST_SECRET", "leak", 1);  // NOLINT(concurrency-mt-unsafe): one thread
  EXPECT_EQ(run_command({"/usr/bin/env"}, seconds(5)), "PATH=/usr/bin:/bin\n");
  ::unsetenv("TORII_AGENT_TEST_SECRET");  // NOLINT(concurrency-mt-unsafe): one thread
  // Standard input is /dev/null, not the agent's: cat reads nothing and ends at once.
  int input[2];
  ASSERT_EQ(::pipe(input), 0);
  ASSERT_EQ(::write(input[1], "42\n", 3), 3);
  ::close(input[1]);
  const int saved_stdin = ::dup(STDIN_FILENO);
  ::dup2(input[0], STDIN_FILENO);
  ::close(input[0]);
  const auto from_stdin = run_command({"/bin/cat"}, seconds(5));
  ::dup2(saved_stdin, STDIN_FILENO);
  ::close(saved_stdin);
  EXPECT_EQ(from_stdin, "");
  // No descriptor of the agent's but 0-2 reaches the child.
  const int leaked = ::fcntl(STDOUT_FILENO, F_DUPFD, 50);  // without FD_CLOEXEC
  ASSERT_GE(leaked, 50);
  const auto fds = run_command({"/bin/ls", "/proc/self/fd"}, seconds(5));
  ::close(leaked);
  ASSERT_TRUE(fds.has_value());
  EXPECT_THAT(*fds, Not(HasSubstr(std::to_string(leaked) + "\n")));
  // No shell: metacharacters are arguments.
  EXPECT_EQ(run_command({"/bin/echo", "$HOME;", "`id`"}, seconds(5)), "$HOME; `id`\n");
  // Standard error is not the output.
  EXPECT_EQ(run_command({"/bin/sh", "-c", "echo 1 >&2; echo 2"}, seconds(5)), "2\n");
  const auto relative = run_command({"echo", "1"}, seconds(5));
  ASSERT_FALSE(relative.has_value());
  EXPECT_TRUE(relative.error().is(Errc::invalid_argument));
}

TEST(FirstNumber, FindsTheFirstDecimalNumber) {
  EXPECT_EQ(first_number("temp=48.3'C"), 48.3);
  EXPECT_EQ(first_number("-5 dBm"), -5.0);
  EXPECT_EQ(first_number("level: +7.25"), 7.25);
  EXPECT_EQ(first_number("v.5"), 0.5);
  EXPECT_EQ(first_number("a-b 12 13"), 12.0);
  EXPECT_EQ(first_number("1e5"), 1.0);
  EXPECT_EQ(first_number("x-"), std::nullopt);
  EXPECT_EQ(first_number("nan inf"), std::nullopt);
  EXPECT_EQ(first_number(""), std::nullopt);
}

}  // namespace
}  // namespace torii::agent
