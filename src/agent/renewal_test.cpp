#include "agent/renewal.h"

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/device_agent.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::agent {
namespace {

using std::chrono::hours;

// A 90-day certificate issued at the fake clock's start.
class RenewalTest : public ::testing::Test {
 protected:
  [[nodiscard]] RenewalStep step(double renew_at = kDefaultRenewAt) const {
    return renewal_step(not_before_, not_after_, clock_.now(), renew_at);
  }

  testing::FakeClock clock_;
  std::chrono::system_clock::time_point not_before_ = clock_.now();
  std::chrono::system_clock::time_point not_after_ = clock_.now() + hours(24 * 90);
};

TEST_F(RenewalTest, NothingHappensBeforeTwoThirdsOfTheLifetime) {
  EXPECT_EQ(step(), RenewalStep::wait);
  clock_.advance(hours(24 * 59));
  EXPECT_EQ(step(), RenewalStep::wait);
  clock_.advance(hours(23));
  EXPECT_EQ(step(), RenewalStep::wait);
}

TEST_F(RenewalTest, RenewalIsDueAtTwoThirdsOfTheLifetime) {
  EXPECT_EQ(renewal_due(not_before_, not_after_, kDefaultRenewAt), not_before_ + hours(24 * 60));
  clock_.advance(hours(24 * 60));
  EXPECT_EQ(step(), RenewalStep::renew);
  clock_.advance(hours(24 * 29));
  EXPECT_EQ(step(), RenewalStep::renew);
}

TEST_F(RenewalTest, AnExpiredCertificateNeedsANewEnrolment) {
  clock_.set(not_after_);
  EXPECT_EQ(step(), RenewalStep::reenrol);
  clock_.advance(hours(1));
  EXPECT_EQ(step(), RenewalStep::reenrol);
  EXPECT_EQ(step(0.0), RenewalStep::reenrol);
}

TEST_F(RenewalTest, TheFractionMovesTheDueTime) {
  EXPECT_EQ(step(0.0), RenewalStep::renew);
  clock_.advance(hours(24 * 45));
  EXPECT_EQ(step(0.5), RenewalStep::renew);
  EXPECT_EQ(step(0.51), RenewalStep::wait);
  EXPECT_EQ(step(kMaxRenewAt), RenewalStep::wait);
}

// An agent whose certificate expired while it ran stops and asks for a new enrolment.
TEST(DeviceAgentRenewal, AnExpiredCertificateStopsTheAgent) {
  testing::TempDir dir;
  testing::FakeClock clock;
  testing::SeededRandom random;
  AgentConfig config = default_agent_config(1);
  config.state_dir = dir.path();
  config.posture_seconds = 0;
  config.gateway.port = 1;  // nothing listens there: the agent never connects
  Identity identity;
  identity.device_id = "pump-7";
  identity.not_before = clock.now() - hours(24 * 90);
  identity.not_after = clock.now() - hours(1);
  boost::asio::io_context io;
  auto agent = DeviceAgent::create(io.get_executor(), io.get_executor(), config, identity, random, clock);
  ASSERT_TRUE(agent.has_value()) << agent.error().message;
  bool ended = false;
  boost::asio::co_spawn(io, (*agent)->run(), [&](const std::exception_ptr&) { ended = true; });
  io.run_for(std::chrono::seconds(30));  // a bound, not a timing check: it ends at once
  EXPECT_TRUE(ended);
  EXPECT_TRUE((*agent)->needs_enrolment());
}

TEST(RenewalMessages, AnAnswerIsACertificateOrAnError) {
  const auto ok = parse_renewal_answer(
      R"({"id": "r1", "certificate_pem": "CERT", "ca_bundle_pem": "CA", "expires_at": "2027-01-01T00:00:00.000Z"})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->id, "r1");
  EXPECT_EQ(ok->certificate_pem, "CERT");
  EXPECT_EQ(ok->ca_bundle_pem, "CA");
  const auto refused = parse_renewal_answer(R"({"id": "r1", "error": "at most one renewal per hour"})");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error, "at most one renewal per hour");
  for (const char* bad : {"", "[]", R"({"certificate_pem": "C", "ca_bundle_pem": "A"})", R"({"id": "r1"})",
                          R"({"id": "r1", "certificate_pem": "C"})", R"({"id": 7, "error": "x"})"}) {
    EXPECT_FALSE(parse_renewal_answer(bad)) << bad;
  }
  EXPECT_EQ(renewal_request_payload("r1", "CSR"), R"({"csr":"CSR","id":"r1"})");
}

}  // namespace
}  // namespace torii::agent
