#!/usr/bin/env bash
# bench/table.sh RESULTS.jsonl: the Markdown table of a compare.sh run (docs/benchmarks.md).
set -euo pipefail
results="${1:?usage: bench/table.sh results.jsonl}"
echo "| scenario | broker | conn. open | msgs/s | stored (torii) | PUBACK p50 / p99 µs | delivery p50 / p99 µs | server CPU | bench CPU | server RSS before → after | RSS / conn. | refused | errors | other load |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
jq -r '
  def num(x): if x == null then "–" else (x | tostring) end;
  def lat(x): if x == null or x.count == 0 then "–" else "\(x.p50 | round) / \(x.p99 | round)" end;
  def kb(x): if x == null then "–" else "\((x / 1024 * 10 | round) / 10) MiB" end;
  .result as $r
  | "| \(.scenario) | \(.broker) | \(num($r.open_at_end)) | "
    + (if $r.mode == "idle" then "–" else num($r.msgs_per_s | floor) end) + " | "
    + (if .stored == null then "–" else "\(.stored) of \($r.sent) (\(.stored_per_s)/s)" end) + " | "
    + lat($r.ack_latency_us) + " | " + lat($r.latency_us) + " | "
    + (if $r.server.cpu_percent == null then "–" else "\($r.server.cpu_percent) %" end) + " | "
    + (if $r.duration_s == null or $r.duration_s == 0 then "–" else "\($r.bench_cpu_s / $r.duration_s * 100 | round) %" end) + " | "
    + kb($r.server.rss_kb_before) + " → " + kb($r.server.rss_kb_after) + " | "
    + (if $r.server.rss_bytes_per_connection == null then "–" else "\(($r.server.rss_bytes_per_connection / 1024 * 10 | round) / 10) KiB" end) + " | "
    + num($r.refused) + " | " + num($r.errors)
    + (if $r.error then " (" + $r.error + ")" else "" end) + " | "
    + (if .others_cpu_percent == null then "–" else "\(.others_cpu_percent) %" end) + " |"
' "$results"
