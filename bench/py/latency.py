"""End-to-end latency at a fixed input rate.

Starts one worker, waits for its partition assignment, runs the paced
producer (bench_produce --rate R --ts-file F, which stamps every input with
its CreateTime and records it per forecast key and revision), waits until
the group's committed offsets reach the end, stops the worker and reads the
output topic. Latency of a forecast = its log-append timestamp (the topic is
created with message.timestamp.type=LogAppendTime) − the CreateTime of the
prediction that triggered it, i.e. revision r of key K is triggered by the
r-th prediction of K (the lead and slices orders keep a group's predictions
together).

    latency.py --bootstrap B --group G --topics P,A --forecasts F
               --ts-file FILE --warmup-s S [--redis-port P] --log PREFIX
               --worker "CMD ..." -- PRODUCER CMD ...

The first --warmup-s seconds of input are left out of the percentiles.
One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
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
    ap.add_argument("--forecasts", required=True)
    ap.add_argument("--ts-file", required=True)
    ap.add_argument("--warmup-s", type=float, default=2.0)
    ap.add_argument("--log", default="latency")
    ap.add_argument("--worker", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    producer_cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd

    logf = open(f"{a.log}.worker.log", "wb")
    w = subprocess.Popen(shlex.split(a.worker), stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b"partitions assigned" not in open(f"{a.log}.worker.log", "rb").read():
        if w.poll() is not None or time.monotonic() > deadline:
            print("latency: the worker was not assigned its partitions", file=sys.stderr)
            w.kill()
            return 1
        time.sleep(0.05)
    time.sleep(0.5)

    prod = subprocess.run(producer_cmd, capture_output=True, text=True)
    if prod.returncode != 0:
        print(prod.stderr, file=sys.stderr)
        w.terminate()
        return 1
    produced = json.loads(prod.stdout.strip().splitlines()[-1])

    lag = bl.Lag(a.bootstrap, a.group, a.topics.split(","))
    total = lag.refresh_end()
    deadline = time.monotonic() + a.timeout
    while lag.committed() < total:
        if w.poll() is not None or time.monotonic() > deadline:
            print("latency: the worker did not catch up", file=sys.stderr)
            w.kill()
            return 1
        time.sleep(0.1)
    lag.close()
    cpu = bl.proc_cpu_s(w.pid)
    hwm = bl.proc_status_kb(w.pid, "VmHWM")
    w.send_signal(signal.SIGTERM)
    try:
        w.wait(timeout=60)
    except subprocess.TimeoutExpired:
        w.kill()
    logf.close()

    created = {}
    first = None
    with open(a.ts_file) as f:
        for line in f:
            key, rev, ts = line.rstrip("\n").split("\t")
            created[(key, int(rev))] = int(ts)
            first = int(ts) if first is None else min(first, int(ts))
    lat = []
    unmatched = 0
    n_out = 0
    for m in bl.read_topic(a.bootstrap, a.forecasts):
        n_out += 1
        series, horizon, target, _issued, rev = bl.forecast_head(m.value())
        ts_type, ts = m.timestamp()
        c = created.get((f"{series}|{horizon}|{target}", rev))
        if c is None:
            unmatched += 1
            continue
        if c - first < a.warmup_s * 1000:
            continue
        lat.append(ts - c)
    lat.sort()
    out = {
        "input_records": produced["records"],
        "input_rate": round(produced["rate"], 1),
        "forecasts": n_out,
        "measured": len(lat),
        "unmatched": unmatched,
        "timestamp_type": ts_type if n_out else None,
        "p50_ms": bl.percentile(lat, 50),
        "p90_ms": bl.percentile(lat, 90),
        "p99_ms": bl.percentile(lat, 99),
        "p999_ms": bl.percentile(lat, 99.9),
        "max_ms": lat[-1] if lat else None,
        "mean_ms": round(sum(lat) / len(lat), 2) if lat else None,
        "worker_cpu_s": round(cpu, 3),
        "worker_peak_rss_kb": hwm,
        "worker_phases": bl.worker_phases(f"{a.log}.worker.log"),
    }
    print(json.dumps(out))
    return 0 if lat and not unmatched else 1


if __name__ == "__main__":
    sys.exit(main())
