#include "bench/report.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace torii::bench {
namespace {

TEST(BenchReport, IsOneLineOfJsonWithTheCountsAndRates) {
  BenchResult r;
  r.mode = Mode::publish;
  r.host = "127.0.0.1";
  r.port = 8883;
  r.tls_version = "TLSv1.3";
  r.cipher = "TLS_AES_128_GCM_SHA256";
  r.connections = 100;
  r.connected = 100;
  r.sent = 1000;
  r.acked = 990;
  r.refused = 10;
  r.refused_by_reason["Quota exceeded"] = 10;
  r.duration_s = 2.0;
  r.window_messages = 500;
  r.msgs_per_s = 250.04;
  LatencySummary s;
  s.count = 3;
  s.p50_us = 12.34;
  s.p99_us = 56.78;
  r.ack_latency = s;
  const auto line = to_json_line(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["tool"], "torii-bench");
  EXPECT_EQ(j["mode"], "publish");
  EXPECT_EQ(j["acked"], 990);
  EXPECT_EQ(j["refused"], 10);
  EXPECT_EQ(j["refused_by_reason"]["Quota exceeded"], 10);
  EXPECT_EQ(j["msgs_per_s"], 250.0);
  EXPECT_EQ(j["ack_latency_us"]["p50"], 12.3);
  EXPECT_EQ(j["ack_latency_us"]["p99"], 56.8);
  EXPECT_FALSE(j.contains("latency_us"));  // only with --subscribe
  EXPECT_FALSE(j.contains("server"));
  EXPECT_EQ(j["tls_version"], "TLSv1.3");
}

TEST(BenchReport, IdleRunsReportServerMemoryPerOpenConnection) {
  BenchResult r;
  r.mode = Mode::idle;
  r.open_at_end = 1000;
  r.duration_s = 10;
  ServerSample server;
  server.pid = 42;
  server.rss_kb_before = 10'000;
  server.rss_kb_after = 30'000;  // 20,000 kB for 1000 connections
  server.cpu_s = 1.5;
  r.server = server;
  const auto j = nlohmann::json::parse(to_json_line(r));
  EXPECT_EQ(j["server"]["rss_bytes_per_connection"], 20480.0);
  EXPECT_EQ(j["server"]["cpu_percent"], 15.0);
  EXPECT_EQ(j["open_at_end"], 1000);
}

TEST(BenchReport, CarriesTheErrorOfARunThatFailed) {
  BenchResult r;
  r.error = "--cafile: cannot load x";
  r.tls = false;
  const auto j = nlohmann::json::parse(to_json_line(r));
  EXPECT_EQ(j["error"], "--cafile: cannot load x");
  EXPECT_FALSE(j.contains("tls_version"));
}

}  // namespace
}  // namespace torii::bench
