"""Catch-up measurement: start N copies of a consumer command, wait until
their group's committed offsets reach the end offsets of the input topics,
and report records/s, CPU-µs per record and peak RSS, plus what Redis and
the broker spent meanwhile.

    catchup.py --bootstrap B --group G --topics T1,T2 [--workers N]
               [--redis-port P] [--broker-pid PID] [--timeout S]
               [--log PREFIX] [--label L] -- COMMAND ARGS...

Throughput is counted from the moment the workers are started (so group
join and connection setup are included) to the first poll that sees every
partition's committed offset at its end offset. The workers are then sent
SIGTERM. A JSON object goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import benchlib as bl


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--redis-port", type=int)
    ap.add_argument("--broker-pid", type=int)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--log", default="worker")
    ap.add_argument("--label", default="")
    ap.add_argument("--expect", type=int, default=0, help="records expected (0: the end offsets)")
    ap.add_argument("--perf-dir", help="profile the workers and Redis with perf record into this directory")
    ap.add_argument("--perf-delay", type=float, default=15)
    ap.add_argument("--perf-seconds", type=float, default=10)
    ap.add_argument("--redis-pid", type=int)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    topics = a.topics.split(",")

    lag = bl.Lag(a.bootstrap, a.group, topics)
    total = lag.refresh_end()
    if a.expect and total != a.expect:
        print(f"catchup: the input holds {total} records, expected {a.expect}", file=sys.stderr)
        return 1
    start_committed = lag.committed()
    r0 = bl.redis_info(a.redis_port) if a.redis_port else None
    b0 = bl.proc_cpu_s(a.broker_pid) if a.broker_pid else None

    procs, logs = [], []
    t0 = time.monotonic()
    for i in range(a.workers):
        logf = open(f"{a.log}.{i}.log", "wb")
        logs.append(logf)
        procs.append(subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT))

    perf = []
    perf_started = a.perf_dir is None or not shutil.which("perf")
    timeline = []
    last_print = 0.0
    done_at = None
    failed = None
    while True:
        time.sleep(a.interval)
        now = time.monotonic() - t0
        committed = lag.committed()
        timeline.append((round(now, 3), committed))
        if not perf_started and now >= a.perf_delay:
            perf_started = True
            targets = [("worker", ",".join(str(p.pid) for p in procs))]
            if a.redis_pid:
                targets.append(("redis", str(a.redis_pid)))
            for name, pids in targets:
                data = os.path.join(a.perf_dir, f"perf.{a.label}.{name}.data")
                perf.append((name, data, subprocess.Popen(
                    ["perf", "record", "-F", "499", "-o", data, "-p", pids, "--", "sleep", str(a.perf_seconds)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        if committed >= total:
            done_at = now
            break
        for p in procs:
            if p.poll() is not None:
                failed = f"worker pid {p.pid} exited with {p.returncode} before catching up"
        if failed:
            break
        if now > a.timeout:
            failed = f"not caught up after {a.timeout:.0f}s ({committed}/{total})"
            break
        if now - last_print >= 10:
            last_print = now
            print(f"  [{a.label}] {now:6.1f}s  {committed - start_committed:>9} / {total - start_committed} records", file=sys.stderr)

    cpu = [bl.proc_cpu_s(p.pid) if p.poll() is None else None for p in procs]
    hwm = [bl.proc_status_kb(p.pid, "VmHWM") if p.poll() is None else None for p in procs]
    r1 = bl.redis_info(a.redis_port) if a.redis_port else None
    b1 = bl.proc_cpu_s(a.broker_pid) if a.broker_pid else None

    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=60))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    for f in logs:
        f.close()
    lag.close()
    for name, data, p in perf:
        p.wait()
        with open(os.path.join(a.perf_dir, f"perf.{a.label}.{name}.txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol",
                            "--percent-limit", "0.5"], stdout=f, stderr=subprocess.DEVNULL)

    stats = {"batches": 0, "applied": 0, "forecasts": 0}
    for i in range(a.workers):
        text = open(f"{a.log}.{i}.log", errors="replace").read()
        m = re.findall(r"batches=(\d+) applied=(\d+) forecasts=(\d+)", text)
        if m:
            for k, v in zip(("batches", "applied", "forecasts"), m[-1]):
                stats[k] += int(v)

    records = total - start_committed
    out = {
        "label": a.label,
        "workers": a.workers,
        "records": records,
        "ok": failed is None,
        "error": failed,
        "seconds": round(done_at, 3) if done_at else None,
        "records_per_s": round(records / done_at, 1) if done_at else None,
        "worker_cpu_s": [round(c, 3) if c is not None else None for c in cpu],
        "worker_cpu_us_per_record": round(sum(c for c in cpu if c) * 1e6 / records, 2) if done_at and records else None,
        "worker_peak_rss_kb": hwm,
        "exit_codes": codes,
        "worker_stats": stats,
        "worker_phases": [bl.worker_phases(f"{a.log}.{i}.log") for i in range(a.workers)],
        "timeline": timeline,
    }
    if r0 and r1:
        out["redis_cpu_s"] = round(bl.redis_cpu_s(r1) - bl.redis_cpu_s(r0), 3)
        out["redis_cpu_us_per_record"] = round(out["redis_cpu_s"] * 1e6 / records, 2) if records else None
        out["redis_used_memory_delta"] = int(r1["used_memory"]) - int(r0["used_memory"])
        out["redis_used_memory"] = int(r1["used_memory"])
    if b0 is not None and b1 is not None:
        out["broker_cpu_s"] = round(b1 - b0, 3)
        out["broker_cpu_us_per_record"] = round((b1 - b0) * 1e6 / records, 2) if records else None
    print(json.dumps(out))
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
