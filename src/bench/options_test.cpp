#include "bench/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace torii::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

BenchOptions usable() {
  BenchOptions o;
  o.cafile = "ca.crt";
  o.cert_dir = "certs";
  return o;
}

std::string joined(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += p + "\n";
  return out;
}

TEST(BenchOptions, DefaultsWithACaFileAreUsableAndFilledIn) {
  auto o = usable();
  o.connections = 100;
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_EQ(o.mode, Mode::publish);
  EXPECT_TRUE(o.v5);
  EXPECT_EQ(o.devices, 100u);
  EXPECT_EQ(o.payload, kDefaultPayload);
  EXPECT_EQ(o.duration_s, kDefaultDurationSeconds);
  EXPECT_EQ(device_name(o, 0), "bench-0");
  EXPECT_EQ(device_name(o, 99), "bench-99");
}

TEST(BenchOptions, TlsIsRequiredUnlessPlaintextIsAskedForExplicitly) {
  BenchOptions o;
  const auto problems = validate(o);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], StartsWith("--cafile:"));

  BenchOptions plain;
  plain.insecure_plaintext = true;
  EXPECT_THAT(validate(plain), IsEmpty());

  BenchOptions mixed;
  mixed.insecure_plaintext = true;
  mixed.cafile = "ca.crt";
  mixed.cert = "c.crt";
  EXPECT_THAT(joined(validate(mixed)), HasSubstr("--cafile: a TLS option"));
}

TEST(BenchOptions, ReportsEveryProblemEachWithItsOption) {
  BenchOptions o;
  o.cafile = "ca.crt";
  o.cert = "a.crt";  // no --key
  o.cert_dir = "certs";
  o.connections = 0;
  o.qos = 2;
  o.mqtt_version = "3";
  o.topic = "devices/+/{device}";
  o.payload = R"({"n":{sequence}})";
  o.rate = -1;
  o.inflight = 0;
  o.source_addresses = "127.0.0.1,localhost";
  o.idle = true;
  o.subscribe = true;
  o.ts_unit_text = "ms";
  const auto text = joined(validate(o));
  for (const char* expected :
       {"--cert and --key", "--cert-dir: cannot be combined", "--connections", "--qos", "--mqtt-version: '3'",
        "--topic: no MQTT wildcards", "--payload: unknown placeholder {sequence}", "--rate", "--inflight",
        "--source-addresses: 'localhost'", "--idle and --subscribe", "--ts-unit"}) {
    EXPECT_THAT(text, HasSubstr(expected));
  }
}

TEST(BenchOptions, ProtocolVersionsAcceptTheUsualSpellings) {
  for (const char* v311 : {"311", "3.1.1", "4"}) {
    auto o = usable();
    o.mqtt_version = v311;
    EXPECT_THAT(validate(o), IsEmpty());
    EXPECT_FALSE(o.v5);
  }
  auto o = usable();
  o.mqtt_version = "5.0";
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_TRUE(o.v5);
}

TEST(BenchOptions, SourceAddressesAreSplitAndTrimmed) {
  auto o = usable();
  o.source_addresses = "127.0.0.1, 127.0.0.2,127.0.0.3";
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_THAT(o.source_list, ElementsAre("127.0.0.1", "127.0.0.2", "127.0.0.3"));
  o.source_addresses = "127.0.0.1,";
  EXPECT_THAT(joined(validate(o)), HasSubstr("'' is not a numeric IP address"));
}

TEST(BenchOptions, SubscribeModeNeedsATimestampInThePayloadAndDefaultsToOne) {
  auto o = usable();
  o.subscribe = true;
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_EQ(o.mode, Mode::subscribe);
  EXPECT_EQ(o.payload, kDefaultTimestampedPayload);
  EXPECT_EQ(o.sub_client_id, "bench-sub");

  auto without = usable();
  without.subscribe = true;
  without.payload = R"({"id":"{device}-{seq}","t":1})";
  EXPECT_THAT(joined(validate(without)), HasSubstr("must contain it"));

  auto qos = usable();
  qos.subscribe = true;
  qos.sub_qos = 2;
  EXPECT_THAT(joined(validate(qos)), HasSubstr("--sub-qos"));
}

TEST(BenchOptions, SubscriberOptionsOnlyWithSubscribeAndMessagesNotWithIdle) {
  auto o = usable();
  o.sub_topic = "devices/+/telemetry";
  o.sub_cert = "s.crt";
  o.sub_key = "s.key";
  const auto text = joined(validate(o));
  EXPECT_THAT(text, HasSubstr("--sub-topic: only with --subscribe"));
  EXPECT_THAT(text, HasSubstr("--sub-cert: only with --subscribe"));

  auto idle = usable();
  idle.idle = true;
  idle.count = 5;
  idle.rate = 10;
  const auto idle_text = joined(validate(idle));
  EXPECT_THAT(idle_text, HasSubstr("--count: not with --idle"));
  EXPECT_THAT(idle_text, HasSubstr("--rate: not with --idle"));
}

TEST(BenchOptions, ACountAloneMeansNoDurationLimit) {
  auto o = usable();
  o.count = 50;
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_EQ(o.duration_s, 0);
}

TEST(BenchOptions, FewerDevicesThanConnectionsWrapAround) {
  auto o = usable();
  o.connections = 10;
  o.devices = 3;
  o.device_prefix = "meter-";
  EXPECT_THAT(validate(o), IsEmpty());
  EXPECT_EQ(device_name(o, 4), "meter-1");
  EXPECT_EQ(client_id(o, 4), "meter-4");  // client ids stay distinct
  o.device_prefix = "bad/prefix";
  EXPECT_THAT(joined(validate(o)), HasSubstr("--device-prefix"));
}

}  // namespace
}  // namespace torii::bench
