"""The benchmark's report: one Markdown document from a results directory.

    report.py RESULTS_DIR          print the report (bench/run.sh tees it to report.md)
    report.py --gate RESULTS_DIR   exit 0 if the correctness gate passed, else 1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(res: Path, name: str):
    p = res / f"{name}.json"
    if not p.exists():
        return None
    text = p.read_text().strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])


def n(x, digits=0) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def tail_rate(run: dict, share: float = 0.25):
    """records/s over the last `share` of the input, from the commit timeline."""
    tl = run.get("timeline") or []
    if not tl or not run.get("seconds"):
        return None
    total = run["records"]
    for t, c in tl:
        if c >= total * (1 - share):
            if run["seconds"] - t <= 0:
                return None
            return (total - c) / (run["seconds"] - t)
    return None


def gate_status(res: Path) -> tuple[bool, list[str]]:
    ok, lines = True, []
    for name, what in (("gate_ref", "reference run (batch.max_records=100), byte for byte"),
                       ("gate_c2", "2-worker run, byte for byte"),
                       ("gate_peer", "Python peer, field by field (rel. 1e-9)")):
        g = load(res, name)
        if g is None:
            continue
        ok = ok and bool(g["match"])
        if g["mode"] == "bytes":
            detail = f"{g['records_a']:,} vs {g['records_b']:,} records; only in Chorus run: {g['only_in_a']}, only in the other: {g['only_in_b']}"
        else:
            detail = (f"{g['compared']:,} forecasts compared (1 key in {g['sample']}), {g['bit_identical']:,} bit-identical, "
                      f"max rel. diff {g['max_rel_diff']:.1e}, mismatched {g['mismatched']}, missing {g['only_in_a']}+{g['only_in_b']}")
        lines.append(f"| {what} | {'**match**' if g['match'] else '**MISMATCH**'} | {detail} |")
    return ok, lines


def main() -> int:
    if sys.argv[1] == "--gate":
        res = Path(sys.argv[2])
        ok, _ = gate_status(res)
        print(f"bench: correctness gate {'passed' if ok else 'FAILED'}", file=sys.stderr)
        return 0 if ok else 1
    res = Path(sys.argv[1])
    b = load(res, "build")
    pre, con, rc, rcc = load(res, "preload"), load(res, "consume"), load(res, "redis_ceiling"), load(res, "redis_compute")
    c1, c2, gate, peer = load(res, "c1"), load(res, "c2"), load(res, "gate"), load(res, "peer")
    c1d, ret = load(res, "c1d"), load(res, "retention_effect")
    c1m, c1x = load(res, "c1m"), load(res, "c1x")
    lat = {v: load(res, f"latency_{v}") for v in ("default", "alo")}
    mem, cg, tot = load(res, "memory"), load(res, "callgrind"), load(res, "total")
    out = []
    w = out.append

    w(f"# Chorus benchmark ({b['mode']})\n")
    w(f"- command: `{b['command']}`; date {b['date']}; commit `{b['commit']}`"
      + (f" (+{b['dirty_files']} uncommitted files under src/include)" if b["dirty_files"] else "")
      + f"; {b['nproc']} cores shared by broker, Redis and worker; {b['cc']}")
    w(f"- workload: {pre['records']:,} records ({b['series']:,} series × {b['models']} models × 1 horizon, "
      f"{b['days']} daily buckets; predictions for day d+1 issued 22:00 on day d, actuals observed 21:00), "
      f"{pre['bytes'] / 1e6:.0f} MB, Confluent framing, 4 partitions per input topic; preload took {pre['produce_s']:.1f} s"
      + (f"; whole run {tot['seconds'] // 60} min {tot['seconds'] % 60} s" if tot else ""))
    w("")

    c1_rate = c1["records_per_s"]
    ceilings = {"consume-only (kcat)": con["records_per_s"], "Redis state functions": rc["calls_per_s"],
                "produce-only": pre["rate"]}
    min_name = min(ceilings, key=ceilings.get)
    w("## Results\n")
    w("| measure | value | notes |")
    w("|---|---|---|")
    w(f"| (a) Chorus catch-up, 1 worker | **{n(c1_rate)} records/s** | {c1['records']:,} records in {c1['seconds']:.1f} s, from worker start to committed = end; join.max_wait_ms=600000, other settings default |")
    w(f"| (a) worker CPU per record | **{n(c1['worker_cpu_us_per_record'], 1)} µs** | utime+stime of the worker process |")
    ph = (c1.get("worker_phases") or [None])[0] or {}
    if ph.get("batches"):
        w(f"| (a) worker time per batch | {ph['batches']:,} batches | Redis round trip {ph['redis_ms'] / ph['batches']:.1f} ms, "
          f"produce {ph['produce_ms'] / ph['batches']:.1f} ms, commit {ph['commit_ms'] / ph['batches']:.1f} ms, "
          f"release {ph['release_ms'] / ph['batches']:.1f} ms (wall clock) |")
    w(f"| (a) worker peak RSS | **{n(max(x for x in c1['worker_peak_rss_kb'] if x) / 1024, 1)} MB** | VmHWM |")
    w(f"| (a) Redis CPU per record | {n(c1.get('redis_cpu_us_per_record'), 1)} µs | INFO used_cpu_user+sys during (a) |")
    w(f"| (a) broker CPU per record | {n(c1.get('broker_cpu_us_per_record'), 1)} µs | the broker JVM during (a) |")
    if c2:
        w(f"| (a) Chorus catch-up, 2 workers | {n(c2['records_per_s'])} records/s | × {c2['records_per_s'] / c1_rate:.2f} of 1 worker; "
          f"peak RSS {n(max(x for x in c2['worker_peak_rss_kb'] if x) / 1024, 1)} MB each; Redis {n(c2.get('redis_cpu_us_per_record'), 1)} µs/record |")
    if c1m and c1x:
        w(f"| (a) catch-up, monitoring on | {n(c1m['records_per_s'])} records/s | × {c1m['records_per_s'] / c1x['records_per_s']:.2f} of the same run with monitoring off just before it ({n(c1x['records_per_s'])} records/s; target ≥ 0.70); "
          f"worker {n(c1m['worker_cpu_us_per_record'], 1)} µs/record, Redis {n(c1m.get('redis_cpu_us_per_record'), 1)} µs/record |")
    if c1d:
        w(f"| (a) catch-up, default join wait | {n(c1d['records_per_s'])} records/s | predictions forced after 5 s may see fewer actuals; "
          f"worker {n(c1d['worker_cpu_us_per_record'], 1)} µs/record, Redis {n(c1d.get('redis_cpu_us_per_record'), 1)} µs/record, "
          f"peak RSS {n(max(x for x in c1d['worker_peak_rss_kb'] if x) / 1024, 1)} MB |")
    for v, label in (("default", "exactly-once (default)"), ("alo", "processing.guarantee=at_least_once")):
        L = lat[v]
        if L:
            ph = L.get("worker_phases") or {}
            phases = ""
            if ph.get("batches"):
                phases = (f"; {ph['batches']:,} batches, per batch: Redis {ph['redis_ms'] / ph['batches']:.1f} ms, "
                          f"produce {ph['produce_ms'] / ph['batches']:.1f} ms, commit {ph['commit_ms'] / ph['batches']:.1f} ms, "
                          f"release {ph['release_ms'] / ph['batches']:.1f} ms; longest batch {ph['batch_max_ms']} ms"
                          + (f" (longest Redis round trip {ph['redis_max_ms']} ms, longest commit {ph['commit_max_ms']} ms)"
                             if "redis_max_ms" in ph else ""))
            w(f"| (b) end-to-end latency, {label} | **p50 {n(L['p50_ms'])} / p99 {n(L['p99_ms'])} / p99.9 {n(L['p999_ms'])} ms** | "
              f"at {n(L['input_rate'])} records/s (50 % of (a)); {L['measured']:,} forecasts after a warm-up; max {n(L['max_ms'])} ms; "
              f"LogAppendTime − input CreateTime{phases} |")
    w(f"| (c) consume-only ceiling | {n(con['records_per_s'])} records/s | kcat, both input topics at once |")
    w(f"| (c) Redis state-function ceiling | {n(rc['calls_per_s'])} calls/s | Chorus's state module, pipelines of {rc['pipeline']}, no Kafka; Redis CPU {n(rc.get('redis_cpu_us_per_call'), 1)} µs/call |")
    if rcc:
        w(f"| (c) Redis state + compute, no Kafka | {n(rcc['calls_per_s'])} calls/s | the same plus reply parsing and forecast_build, first {rcc['calls']:,} calls |")
    w(f"| (c) produce-only ceiling | {n(pre['rate'])} records/s | librdkafka, idempotent, linger 5 ms, the same records, encoded beforehand |")
    if peer:
        w(f"| (d) Python peer catch-up | {n(peer['records_per_s'])} records/s | CPU {n(peer['worker_cpu_us_per_record'], 1)} µs/record, "
          f"peak RSS {n(max(x for x in peer['worker_peak_rss_kb'] if x) / 1024, 1)} MB, Redis {n(peer.get('redis_cpu_us_per_record'), 1)} µs/record |")
    w(f"| **Chorus ÷ min(ceilings)** | **{c1_rate / ceilings[min_name]:.2f}** | min = {min_name} |")
    w(f"| Chorus ÷ Redis state ceiling | {c1_rate / rc['calls_per_s']:.2f} | the same records; the ceiling in live order (each day's actuals, then the predictions) |")
    if peer:
        w(f"| **Chorus ÷ peer** | **{c1_rate / peer['records_per_s']:.2f} ×** | |")
    if gate:
        w(f"| reference run (batch 100) | {n(gate['records_per_s'])} records/s | for the gate |")
    w("")

    ok, glines = gate_status(res)
    if glines:
        w(f"## Correctness gate: {'passed' if ok else 'FAILED'}\n")
        w("| Chorus (a) compared with | result | detail |")
        w("|---|---|---|")
        out.extend(glines)
        w("")

    if ret:
        share = ret["mismatched"] / ret["compared"] if ret["compared"] else 0
        w("## Replay settings (a finding, not part of the gate)\n")
        w(f"(a) against the same catch-up with the default state.retention_days=100 and join.max_wait_ms=5000 (c1d): "
          f"{ret['mismatched']:,} of {ret['compared']:,} sampled forecasts differ ({100 * share:.0f} %). "
          "In a catch-up the consumer can hand over predictions long before their actuals; they are held, and "
          "with the default join.max_wait_ms (5 s of wall clock) they are forced out with the actuals applied by "
          "then, so a replay with the defaults may differ from the live run where the topics raced (SPEC §9.2 "
          "states the trade-off). Retention no longer matters: trimming follows the series' watermark.")
        if ret["examples"]:
            e = ret["examples"][0]
            w(f"\nExample {e['key']}: fields {', '.join(e['fields'])}; (a): {e['a']}; defaults: {e['b']}")
        w("")

    growth = [g for g in (load(res, f"growth_{x}") for x in ("1d", "1h", "1m")) if g]
    if growth:
        base = growth[0]["measure"]["cpu_us_per_record"] if growth[0]["ok"] else None
        w("## Cost growth with the window length\n")
        w("One worker, the window full (30 days of data before the measured buckets). Per-record cost is "
          "worker + Redis CPU over the measured records (actuals and predictions).\n")
        w("| points per window | resolution | series | records measured | worker + Redis CPU µs/record | of which Redis | records/s | × the 30-point cost | Redis bytes per window |")
        w("|---|---|---|---|---|---|---|---|---|")
        for g in growth:
            m = g["measure"]
            if not g["ok"]:
                w(f"| {g['points_per_window']:,} | {g['label']} | {g['series']} | failed: {g['error']} | | | | | |")
                continue
            w(f"| {g['points_per_window']:,} | {g['label']} | {g['series']} | {m['records']:,} | {n(m['cpu_us_per_record'], 1)} | "
              f"{n(m['redis_cpu_us_per_record'], 1)} | {n(m['records_per_s'], 1)} | {m['cpu_us_per_record'] / base:.1f} | {n(g['redis_bytes_per_window'])} |")
        w("")

    if mem or c1.get("redis_used_memory_delta"):
        windows = b["series"] * b["models"]
        w("## Redis memory per (series, horizon, model) window\n")
        w(f"- after (a): used_memory grew by {c1['redis_used_memory_delta'] / 1e6:,.1f} MB for {windows:,} windows = "
          f"{c1['redis_used_memory_delta'] / windows / 1024:,.1f} KiB per window (everything of the series included; "
          f"daily data, {b['days'] + 1} days, default retention)")
        for g in growth:
            if g["ok"]:
                w(f"- a full window of {g['points_per_window']:,} points ({g['window_days']} days at {g['label']}): "
                  f"**{g['redis_bytes_per_window'] / 1024:,.1f} KiB per window** (cost-growth run, used_memory after the fill)")
        if mem:
            parts = ", ".join(f"`{k}` {v / 1024:,.1f} KiB ({mem['keys_per_series'][k]:g} keys/series)" for k, v in
                              sorted(mem["bytes_per_window_by_key"].items(), key=lambda kv: -kv[1]))
            w(f"- by key (MEMORY USAGE of {mem['sampled_series']} series, per window): {parts}")
        w("")

    if cg:
        w("## Instruction counts (callgrind)\n")
        w("`bench/callgrind.sh`: encode a Prediction, decode it, build the forecast (scores, weights, z-guard), encode it; no I/O.\n")
        w("| points per window | records | instructions per record | native ns/record |")
        w("|---|---|---|---|")
        for r in cg["runs"]:
            w(f"| {r['points']:,} | {r['records']:,} | **{r['ir_per_record']:,}** | {n(r['native']['ns_per_record'])} |")
        w("")
        w("Hottest functions at 30 points (exclusive instructions per record): " + ", ".join(
            f"`{t['function']}` {t['ir_per_record']:,} ({t['percent']})" for t in cg["top_exclusive"][:10]))
        w("")
        w("Inclusive: " + ", ".join(f"`{t['function']}` {t['ir_per_record']:,}" for t in cg["top_inclusive"][:10]))
        w("")

    prof = []
    for who in ("worker", "redis"):
        p = res / f"perf.c1.{who}.txt"
        if not p.exists():
            continue
        rows = []
        for line in p.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0].endswith("%") and parts[0][:-1].replace(".", "").isdigit():
                sym = parts[3:]
                while sym and sym[-1] == "-":
                    sym.pop()
                rows.append(f"{parts[0]} `{' '.join(sym)}` ({parts[1]})")
        if rows:
            prof.append(f"- {who}: " + ", ".join(rows[:12]))
    if prof:
        w("## Where the time goes during (a) (perf record, self time)\n")
        out.extend(prof)
        w("")

    # Targets of issue 4.
    w("## Targets (issue 4)\n")
    w("| target | measured | |")
    w("|---|---|---|")

    def verdict(good: bool) -> str:
        return "met" if good else "**missed**"

    r = c1_rate / rc["calls_per_s"]
    w(f"| Chorus ÷ Redis state-function ceiling ≥ 0.5 | {r:.2f} | {verdict(r >= 0.5)} |")
    if peer:
        r = c1_rate / peer["records_per_s"]
        w(f"| Chorus ÷ Python peer ≥ 10 × | {r:.2f} × | {verdict(r >= 10)} |")
    for v in ("default", "alo"):
        L = lat[v]
        if L:
            w(f"| p99 end-to-end ≤ 25 ms at 50 % load ({v}) | {n(L['p99_ms'])} ms | {verdict(L['p99_ms'] <= 25)} |")
    rss = max(x for x in c1["worker_peak_rss_kb"] if x) / 1024
    w(f"| worker peak RSS ≤ 100 MB | {rss:.1f} MB | {verdict(rss <= 100)} |")
    if len(growth) >= 2 and all(g["ok"] for g in growth):
        r = growth[-1]["measure"]["cpu_us_per_record"] / growth[0]["measure"]["cpu_us_per_record"]
        w(f"| per-record cost {growth[0]['points_per_window']:,} → {growth[-1]['points_per_window']:,} points within 1.5 × | {r:,.1f} × | {verdict(r <= 1.5)} |")
    w("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
