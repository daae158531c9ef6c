#include "alerts/alert_book.h"

#include <gtest/gtest.h>

#include "crypto/sodium.h"
#include "events/log_reader.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/fakes.h"
#include "testing/temp_dir.h"

namespace torii::alerts {
namespace {

using namespace std::chrono_literals;
using events::Outcome;

class AlertBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::sqlite::open_sqlite_memory_store();
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->organisations().insert({"org-1", "One", false, 1}));
    ASSERT_TRUE(store_->organisations().insert({"org-2", "Two", false, 1}));
    store::DeviceRecord d;
    d.id = "pump-1";
    d.organisation_id = "org-1";
    d.name = "Pump";
    d.status = "active";
    d.created_at = 1;
    ASSERT_TRUE(store_->devices().insert(d));
    events::SecurityLog::Options o;
    o.directory = dir_.path() / "log";
    auto log = events::SecurityLog::open(o, clock_, keys_.secret_key);
    ASSERT_TRUE(log) << log.error().message;
    log_ = std::move(*log);
    book_ = std::make_unique<AlertBook>(*store_, log_.get(), clock_, random_);
  }

  std::vector<store::AlertRecord> listed(const Scope& scope, std::vector<std::string> statuses = {}) {
    store::AlertRepository::Query q;
    q.statuses = std::move(statuses);
    auto r = book_->list(q, scope);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : std::vector<store::AlertRecord>{};
  }

  std::vector<std::string> logged_actions() {
    auto page = events::read_log(dir_.path() / "log", {});
    EXPECT_TRUE(page);
    std::vector<std::string> out;
    if (page) {
      for (const auto& e : page->events) out.push_back(e.actor + " " + e.action + " " + e.object);
    }
    return out;
  }

  static events::SecurityEvent tamper(bool on) {
    return {"device:pump-1",
            on ? "device.tamper" : "device.tamper_cleared",
            "device:pump-1",
            on ? Outcome::failure : Outcome::success,
            "",
            on ? nlohmann::json{{"metric", "lid"}, {"alert", true}} : nlohmann::json{{"metric", "lid"}}};
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  testing::SeededRandom random_;
  crypto::Ed25519KeyPair keys_ = crypto::ed25519_generate();
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<events::SecurityLog> log_;
  std::unique_ptr<AlertBook> book_;
};

TEST_F(AlertBookTest, ADeviceEventOpensAnAlertInItsOrganisationAndItsClearingResolvesIt) {
  book_->observe(tamper(true));
  clock_.advance(1s);
  book_->observe(tamper(true));  // again while open: one alert, two occurrences
  auto open = listed(Scope{"org-1"}, {"open"});
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0].organisation_id, "org-1");
  EXPECT_EQ(open[0].device_id, "pump-1");
  EXPECT_EQ(open[0].severity, "critical");
  EXPECT_EQ(open[0].occurrences, 2U);
  EXPECT_EQ(open[0].last_raised_at, open[0].opened_at + 1000);
  EXPECT_TRUE(listed(Scope{"org-2"}).empty());

  clock_.advance(1s);
  book_->observe(tamper(false));
  EXPECT_TRUE(listed(Scope{"org-1"}, {"open", "acknowledged"}).empty());
  auto resolved = listed(Scope{"org-1"}, {"resolved"});
  ASSERT_EQ(resolved.size(), 1U);
  EXPECT_EQ(resolved[0].resolved_by, "system");
  EXPECT_EQ(resolved[0].resolved_at, open[0].opened_at + 2000);
}

TEST_F(AlertBookTest, AnEventWithoutOrganisationIsInstallationWideAndSeenOnlyWithTheWholeScope) {
  book_->observe({"system",
                  "login.failures_burst",
                  "source:203.0.113.5",
                  Outcome::failure,
                  "203.0.113.5:4000",
                  {{"failures", 20}, {"alert", true}}});
  ASSERT_EQ(listed(Scope::everything()).size(), 1U);
  EXPECT_EQ(listed(Scope::everything())[0].organisation_id, "");
  EXPECT_TRUE(listed(Scope{"org-1"}).empty());
  const auto id = listed(Scope::everything())[0].id;
  auto hidden = book_->acknowledge(id, "user:u-1", Scope{"org-1"});
  ASSERT_TRUE(hidden);
  EXPECT_EQ(*hidden, Transition::not_found);
}

TEST_F(AlertBookTest, APersonAcknowledgesAndResolvesAndBothAreLoggedWithoutLooping) {
  book_->observe(tamper(true));
  const auto id = listed(Scope{"org-1"})[0].id;
  auto acked = book_->acknowledge(id, "user:u-1", Scope{"org-1"}, "203.0.113.9:5000");
  ASSERT_TRUE(acked);
  EXPECT_EQ(*acked, Transition::done);
  auto again = book_->acknowledge(id, "user:u-1", Scope{"org-1"});
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, Transition::already);
  auto other_org = book_->resolve(id, "user:u-2", Scope{"org-2"});
  ASSERT_TRUE(other_org);
  EXPECT_EQ(*other_org, Transition::not_found);
  auto resolved = book_->resolve(id, "user:u-1", Scope{"org-1"});
  ASSERT_TRUE(resolved);
  EXPECT_EQ(*resolved, Transition::done);
  auto twice = book_->resolve(id, "user:u-1", Scope{"org-1"});
  ASSERT_TRUE(twice);
  EXPECT_EQ(*twice, Transition::already);

  auto found = book_->find(id, Scope{"org-1"});
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->acknowledged_by, "user:u-1");
  EXPECT_EQ((*found)->resolved_by, "user:u-1");
  const auto actions = logged_actions();
  EXPECT_EQ(actions, (std::vector<std::string>{"user:u-1 alert.resolved alert:" + id,
                                               "user:u-1 alert.acknowledged alert:" + id}));
  // Fed back (as the server's log does), the book's own events change nothing.
  book_->observe({"user:u-1", "alert.resolved", "alert:" + id, Outcome::success, "", {{"alert", true}}});
  EXPECT_EQ(listed(Scope::everything()).size(), 1U);

  // Raised after it was resolved: a new alert.
  book_->observe(tamper(true));
  EXPECT_EQ(listed(Scope{"org-1"}, {"open"}).size(), 1U);
  EXPECT_EQ(listed(Scope{"org-1"}).size(), 2U);
}

TEST_F(AlertBookTest, ARuleRaisesAndResolvesByKey) {
  store::AlertRecord a;
  a.organisation_id = "org-1";
  a.source = "rule";
  a.key = "rule:r-1:pump-1";
  a.rule_id = "r-1";
  a.device_id = "pump-1";
  a.severity = "info";
  a.title = "Tank high";
  auto raised = book_->raise(a);
  ASSERT_TRUE(raised) << raised.error().message;
  EXPECT_TRUE(raised->second);
  EXPECT_EQ(raised->first.status, "open");
  EXPECT_EQ(raised->first.opened_at, to_unix_millis(clock_.now()));
  auto resolved = book_->resolve_key("org-1", "rule:r-1:pump-1", "rule:r-1");
  ASSERT_TRUE(resolved && *resolved);
  EXPECT_EQ((*resolved)->resolved_by, "rule:r-1");
  auto none = book_->resolve_key("org-1", "rule:r-1:pump-1", "rule:r-1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  a.severity = "loud";
  EXPECT_FALSE(book_->raise(a));
}

// JPCERT VIII-2: the notification channels hear of each alert opened, acknowledged and
// resolved once; another occurrence of an open alert is not news.
TEST_F(AlertBookTest, EachChangeOfAnAlertIsToldOnceWithTheAlertAsStored) {
  std::vector<std::string> told;
  book_->on_change([&](const store::AlertRecord& a, std::string_view event) {
    told.push_back(std::string(event) + " " + a.status + " " + a.device_id);
  });
  book_->observe(tamper(true));
  book_->observe(tamper(true));  // again while open: one more occurrence
  auto open = listed(Scope::everything());
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0].occurrences, 2U);
  ASSERT_TRUE(book_->acknowledge(open[0].id, "user:u-1", Scope::everything()));
  book_->observe(tamper(false));
  EXPECT_EQ(told, (std::vector<std::string>{"alert.opened open pump-1", "alert.acknowledged acknowledged pump-1",
                                            "alert.resolved resolved pump-1"}));
  book_->observe(tamper(true));
  auto again = listed(Scope::everything(), {"open"});
  ASSERT_EQ(again.size(), 1U);
  ASSERT_TRUE(book_->resolve(again[0].id, "user:u-1", Scope::everything()));
  EXPECT_EQ(told.size(), 5U);
  EXPECT_EQ(told.back(), "alert.resolved resolved pump-1");
}

TEST_F(AlertBookTest, TheListIsCappedAndScopedToTheCallersOrganisation) {
  book_->observe(tamper(true));
  book_->observe(
      {"user:u-1", "totp.disabled", "user:u-1", Outcome::success, "", {{"organisation", "org-2"}, {"alert", true}}});
  store::AlertRepository::Query q;
  q.organisation_id = "org-2";  // the caller's scope wins
  auto mine = book_->list(q, Scope{"org-1"});
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1U);
  EXPECT_EQ((*mine)[0].organisation_id, "org-1");
  auto chosen = book_->list(q, Scope::everything());
  ASSERT_TRUE(chosen);
  ASSERT_EQ(chosen->size(), 1U);
  EXPECT_EQ((*chosen)[0].organisation_id, "org-2");
  const auto j = to_json((*chosen)[0]);
  EXPECT_EQ(j["status"], "open");
  EXPECT_TRUE(j["acknowledged_at"].is_null());
  EXPECT_EQ(j["organisation"], "org-2");
}

}  // namespace
}  // namespace torii::alerts
