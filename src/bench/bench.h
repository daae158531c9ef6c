// `torii bench`: an MQTT load generator for torii and any other MQTT broker.
//
//   publish    N connections publish a payload template at QoS 0 or 1, at a target rate or as
//              fast as the broker takes it (QoS 1: a per-connection window of unacknowledged
//              messages), for a duration and/or a count per connection;
//   idle       N connections are opened and held, sending only PINGREQ (memory per connection);
//   subscribe  as publish, plus one subscriber connection that receives what they send and
//              measures publish -> delivery latency from the {ts} in each payload.
//
// TLS (mutual TLS with a client identity) is always on unless --insecure-plaintext is asked
// for. One io_context per thread; connections are spread round-robin and opened at a bounded
// rate. Progress goes to the progress stream; the result is one JSON line (report.h).
#pragma once

#include <iosfwd>

#include "bench/options.h"
#include "bench/report.h"

namespace torii::bench {

// Runs validated options (validate() returned no problem) until the duration or count is
// reached, or SIGINT/SIGTERM arrives (a second one ends the process). Never throws; a run
// that could not be carried out (unreadable CA file, unresolvable host, refused subscription)
// comes back with result.error set.
[[nodiscard]] BenchResult run(const BenchOptions& options, std::ostream& progress);

// The command: validates (every problem to err, exit code 2), runs (progress to err), and
// prints exactly one result line to out. Exit codes as docs/cli.md: 0 the run was carried
// out, 1 it failed (result.error, or no connection could be opened), 2 invalid options.
[[nodiscard]] int run_command(BenchOptions options, std::ostream& out, std::ostream& err);

}  // namespace torii::bench
