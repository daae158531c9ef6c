#include "agent/sensor_health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::agent {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::chrono::system_clock::time_point kT0{std::chrono::milliseconds(1'790'000'000'000)};

Result<Value> failed() { return fail(Errc::io_error, "cannot open temp1_input"); }

TEST(SensorHealth, ATamperInputIsReportedOncePerTransition) {
  SensorHealth health;
  health.add_sensor("tamper", std::nullopt, std::nullopt, true);
  health.add_sensor("door_open", std::nullopt, std::nullopt);
  EXPECT_THAT(health.observe("tamper", false, kT0), IsEmpty());
  const auto open = health.observe("tamper", true, kT0 + seconds(1));
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].kind, HealthEventKind::tamper);
  EXPECT_EQ(to_string(open[0].kind), "tamper");
  EXPECT_EQ(open[0].metric, "tamper");
  EXPECT_EQ(open[0].time, kT0 + seconds(1));
  EXPECT_THAT(open[0].detail, HasSubstr("reads true"));
  EXPECT_THAT(health.observe("tamper", true, kT0 + seconds(2)), IsEmpty());
  EXPECT_THAT(health.observe("tamper", failed(), kT0 + seconds(3)), IsEmpty());  // a failed read ends nothing
  EXPECT_THAT(health.observe("tamper", true, kT0 + seconds(4)), IsEmpty());
  const auto closed = health.observe("tamper", false, kT0 + seconds(5));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].kind, HealthEventKind::tamper_cleared);
  EXPECT_EQ(to_string(closed[0].kind), "tamper_cleared");
  EXPECT_THAT(health.observe("tamper", false, kT0 + seconds(6)), IsEmpty());
  ASSERT_EQ(health.observe("tamper", true, kT0 + seconds(7)).size(), 1u);  // and again
  // A door is not a tamper input unless declared one.
  EXPECT_THAT(health.observe("door_open", true, kT0), IsEmpty());
}

TEST(SensorHealth, ANumericTamperInputIsTrippedByAnythingButZeroAndNeverStuck) {
  SensorHealth health;
  health.add_sensor("lid", std::nullopt, std::nullopt, true);  // a GPIO value file: 0 or 1
  for (int i = 0; i < 30; ++i) EXPECT_THAT(health.observe("lid", 0.0, kT0 + seconds(i)), IsEmpty()) << i;
  const auto open = health.observe("lid", 1.0, kT0 + seconds(30));
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].kind, HealthEventKind::tamper);
  EXPECT_THAT(open[0].detail, HasSubstr("reads 1"));
  const auto closed = health.observe("lid", 0.0, kT0 + seconds(31));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].kind, HealthEventKind::tamper_cleared);
}

TEST(SensorHealth, OutOfRangeIsReportedOnceAndItsEndOnce) {
  SensorHealth health;
  health.add_sensor("temperature", 0.0, 40.0);
  EXPECT_THAT(health.observe("temperature", 21.0, kT0), IsEmpty());
  const auto start = health.observe("temperature", 42.5, kT0 + seconds(5));
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0].kind, HealthEventKind::out_of_range);
  EXPECT_EQ(to_string(start[0].kind), "sensor_out_of_range");
  EXPECT_EQ(start[0].metric, "temperature");
  EXPECT_EQ(start[0].time, kT0 + seconds(5));
  EXPECT_THAT(start[0].detail, HasSubstr("42.5 is above the maximum 40"));
  EXPECT_THAT(health.observe("temperature", 43.0, kT0 + seconds(10)), IsEmpty());
  EXPECT_THAT(health.observe("temperature", 44.0, kT0 + seconds(15)), IsEmpty());
  const auto end = health.observe("temperature", 40.0, kT0 + seconds(20));  // the bound itself is in range
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0].kind, HealthEventKind::recovered);
  EXPECT_EQ(to_string(end[0].kind), "sensor_recovered");
  EXPECT_EQ(end[0].ended, HealthEventKind::out_of_range);

  const auto low = health.observe("temperature", -3.0, kT0 + seconds(25));
  ASSERT_EQ(low.size(), 1u);
  EXPECT_THAT(low[0].detail, HasSubstr("-3 is below the minimum 0"));
}

TEST(SensorHealth, ASensorWithoutRangeIsNeverOutOfRange) {
  SensorHealth health;
  health.add_sensor("power", std::nullopt, 100.0);
  EXPECT_THAT(health.observe("power", -1e6, kT0), IsEmpty());
  EXPECT_THAT(health.observe("undeclared", 1e9, kT0), IsEmpty());
}

TEST(SensorHealth, StuckAfterTenEqualReadsByDefault) {
  SensorHealth health;
  for (int i = 0; i < 9; ++i) EXPECT_THAT(health.observe("humidity", 45.0, kT0 + seconds(i)), IsEmpty()) << i;
  const auto stuck = health.observe("humidity", 45.0, kT0 + seconds(9));
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].kind, HealthEventKind::stuck);
  EXPECT_EQ(to_string(stuck[0].kind), "sensor_stuck");
  EXPECT_THAT(stuck[0].detail, HasSubstr("45 for 10 reads in a row"));
  EXPECT_THAT(health.observe("humidity", 45.0, kT0 + seconds(10)), IsEmpty());  // once, not every read
  const auto moved = health.observe("humidity", 45.5, kT0 + seconds(11));
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].kind, HealthEventKind::recovered);
  EXPECT_EQ(moved[0].ended, HealthEventKind::stuck);
}

TEST(SensorHealth, StuckCountIsConfigurableAndNeedsConsecutiveReads) {
  SensorHealth health({.stuck_after_reads = 3, .failing_after_failures = 3});
  EXPECT_THAT(health.observe("m", 1.0, kT0), IsEmpty());
  EXPECT_THAT(health.observe("m", 1.0, kT0), IsEmpty());
  EXPECT_THAT(health.observe("m", 2.0, kT0), IsEmpty());  // the run starts again
  EXPECT_THAT(health.observe("m", 2.0, kT0), IsEmpty());
  EXPECT_THAT(health.observe("m", failed(), kT0), IsEmpty());  // a failed read ends the run too
  EXPECT_THAT(health.observe("m", 2.0, kT0), IsEmpty());
  EXPECT_THAT(health.observe("m", 2.0, kT0), IsEmpty());
  EXPECT_EQ(health.observe("m", 2.0, kT0).size(), 1u);
}

TEST(SensorHealth, AStuckSensorThatFailsOnceAndReadsAgainRecovers) {
  SensorHealth health(HealthLimits{3, 3});
  for (int i = 0; i < 3; ++i) (void)health.observe("temperature", 20.0, kT0 + seconds(i));
  EXPECT_THAT(health.observe("temperature", failed(), kT0 + seconds(3)), IsEmpty());
  const auto back = health.observe("temperature", 20.0, kT0 + seconds(4));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].kind, HealthEventKind::recovered);
  EXPECT_EQ(back[0].ended, HealthEventKind::stuck);
  EXPECT_THAT(back[0].detail, HasSubstr("after a failed read"));
}

TEST(SensorHealth, BooleansAreNeverStuck) {
  SensorHealth health({.stuck_after_reads = 2, .failing_after_failures = 3});
  for (int i = 0; i < 100; ++i) EXPECT_THAT(health.observe("door_open", false, kT0 + seconds(i)), IsEmpty());
  EXPECT_EQ(health.self_test().at(0).status, SensorStatus::ok);
}

TEST(SensorHealth, FailingAfterThreeFailuresByDefaultAndRecovered) {
  SensorHealth health;
  EXPECT_THAT(health.observe("board", failed(), kT0), IsEmpty());
  EXPECT_THAT(health.observe("board", failed(), kT0 + seconds(1)), IsEmpty());
  const auto failing = health.observe("board", failed(), kT0 + seconds(2));
  ASSERT_EQ(failing.size(), 1u);
  EXPECT_EQ(failing[0].kind, HealthEventKind::failing);
  EXPECT_EQ(to_string(failing[0].kind), "sensor_failing");
  EXPECT_THAT(failing[0].detail, HasSubstr("3 failed reads in a row"));
  EXPECT_THAT(failing[0].detail, HasSubstr("cannot open temp1_input"));
  EXPECT_THAT(health.observe("board", failed(), kT0 + seconds(3)), IsEmpty());
  const auto back = health.observe("board", 48.0, kT0 + seconds(4));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].kind, HealthEventKind::recovered);
  EXPECT_EQ(back[0].ended, HealthEventKind::failing);
  EXPECT_THAT(back[0].detail, HasSubstr("after 4 failures"));
}

TEST(SensorHealth, FailuresMustBeConsecutive) {
  SensorHealth health;
  for (int i = 0; i < 10; ++i) {
    EXPECT_THAT(health.observe("board", failed(), kT0), IsEmpty());
    EXPECT_THAT(health.observe("board", failed(), kT0), IsEmpty());
    EXPECT_THAT(health.observe("board", static_cast<double>(i), kT0), IsEmpty());
  }
}

TEST(SensorHealth, SelfTestSummarisesEachSensor) {
  SensorHealth health({.stuck_after_reads = 2, .failing_after_failures = 1});
  std::vector<SensorConfig> sensors(4);
  for (std::size_t i = 0; i < sensors.size(); ++i) sensors[i].metric = std::string(1, static_cast<char>('a' + i));
  sensors[3].min = 0.0;
  sensors[3].max = 1.0;
  health.add_sensors(sensors);
  (void)health.observe("b", failed(), kT0);
  (void)health.observe("c", 5.0, kT0);
  (void)health.observe("c", 5.0, kT0);
  (void)health.observe("d", 7.0, kT0);
  const auto summary = health.self_test();
  ASSERT_EQ(summary.size(), 4u);
  EXPECT_EQ(summary[0], (SelfTest{"a", SensorStatus::ok, ""}));
  EXPECT_EQ(summary[1].status, SensorStatus::failing);
  EXPECT_EQ(summary[2].status, SensorStatus::stuck);
  EXPECT_EQ(summary[3].status, SensorStatus::out_of_range);
  EXPECT_THAT(summary[3].detail, HasSubstr("above the maximum 1"));
  EXPECT_EQ(to_string(summary[1].status), "failing");
  EXPECT_EQ(to_string(summary[2].status), "stuck");
  EXPECT_EQ(to_string(summary[3].status), "out_of_range");

  (void)health.observe("b", 1.0, kT0);
  (void)health.observe("c", 6.0, kT0);
  (void)health.observe("d", 0.5, kT0);
  for (const auto& s : health.self_test()) EXPECT_EQ(s.status, SensorStatus::ok) << s.metric;
}

TEST(SensorHealth, OneReadingMayStartTwoConditions) {
  SensorHealth health({.stuck_after_reads = 2, .failing_after_failures = 3});
  health.add_sensor("m", std::nullopt, 10.0);
  EXPECT_EQ(health.observe("m", 50.0, kT0).size(), 1u);
  const auto both = health.observe("m", 50.0, kT0);
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].kind, HealthEventKind::stuck);
  const auto ends = health.observe("m", 5.0, kT0);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_EQ(ends[0].ended, HealthEventKind::out_of_range);
  EXPECT_EQ(ends[1].ended, HealthEventKind::stuck);
}

}  // namespace
}  // namespace torii::agent
