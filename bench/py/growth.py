"""Cost growth with the window length (issue 4, item 2).

For one resolution R and window W days (points per window = W·1d / R), with
one worker running throughout:

  1. fill, predictions: the predictions for buckets 0..N-1 (N = points per
     window). No actual exists yet, so each one reads empty windows and is
     cheap; they are held and forced on the next batch (join.max_wait_ms=0).
  2. fill, actuals: the actuals of buckets 0..N-1; each scores its bucket's
     predictions. Now every (series, model) window is full.
  3. measure: M more buckets in the slices order (every series' actual of
     the bucket, then the predictions for it), each prediction computed over
     a full window of N points per model. Worker CPU (schedstat of its
     threads, ns resolution) and Redis CPU
     (INFO used_cpu_*) are read before and after; per-record cost is their
     sum over the M·S·(1+models) records, and throughput is those records
     over the wall time from the first produce to the last commit.

Redis memory per (series, horizon, model) window is used_memory after the
fill minus before it (FLUSHALL first: this script owns the Redis server),
divided by series × models.

    growth.py --bootstrap B --kafka-dir D --redis-port P --chorus BIN --tools DIR --label L
              --resolution-ms R --window-days W --series S --measure M
              --workdir DIR [--models 4]

One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import benchlib as bl


def run(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--kafka-dir", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--chorus", required=True)
    ap.add_argument("--tools", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--resolution-ms", type=int, required=True)
    ap.add_argument("--window-days", type=int, default=30)
    ap.add_argument("--series", type=int, required=True)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--measure", type=int, required=True, help="buckets measured")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()

    import redis

    r = redis.Redis(host="127.0.0.1", port=a.redis_port)
    n = a.window_days * 86_400_000 // a.resolution_ms
    name = f"grow.{a.label}"
    topics = {role: f"{name}.{role}" for role in ("predictions", "actuals", "forecasts", "dlq")}
    harness = str(bl.REPO / "tests" / "harness" / "kafka.sh")
    for role, t in topics.items():
        subprocess.run([harness, "create-topic", a.kafka_dir, t, "1" if role == "dlq" else "2"],
                       check=True, capture_output=True)
    conf = os.path.join(a.workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(
            f"kafka.bootstrap.servers = {a.bootstrap}\nkafka.group.id = {name}\n"
            f"topic.predictions = {topics['predictions']}\ntopic.actuals = {topics['actuals']}\n"
            f"topic.forecasts = {topics['forecasts']}\ntopic.dlq = {topics['dlq']}\n"
            f"redis.port = {a.redis_port}\nredis.key_prefix = {name}\n"
            f"resolution.default = {a.resolution_ms}\nwindow.days = {a.window_days}\n"
            f"join.max_wait_ms = 0\n"
        )
    r.flushall()
    mem0 = int(r.info("memory")["used_memory"])
    log = open(os.path.join(a.workdir, f"{name}.worker.log"), "wb")
    w = subprocess.Popen([a.chorus, "run", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    lag = bl.Lag(a.bootstrap, name, [topics["predictions"], topics["actuals"]])
    common = [
        os.path.join(a.tools, "bench_produce"), "--brokers", a.bootstrap,
        "--pred-topic", topics["predictions"], "--act-topic", topics["actuals"],
        "--series", str(a.series), "--models", str(a.models), "--prefix", f"G{a.label}_",
        "--resolution-ms", str(a.resolution_ms),
    ]

    def phase(order: str, frm: int, to: int) -> dict:
        t0 = time.monotonic()
        c0 = bl.proc_cpu_precise_s(w.pid)
        r0 = bl.redis_cpu_s(r.info("cpu"))
        produced = run(common + ["--order", order, "--from", str(frm), "--to", str(to)])
        total = lag.refresh_end()
        deadline = t0 + a.timeout
        while lag.committed() < total:
            if w.poll() is not None:
                raise RuntimeError(f"the worker exited ({w.returncode}) during {order}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{order}: not caught up after {a.timeout}s")
            time.sleep(0.05)
        dt = time.monotonic() - t0
        dc = bl.proc_cpu_precise_s(w.pid) - c0
        dr = bl.redis_cpu_s(r.info("cpu")) - r0
        recs = produced["records"]
        return {"records": recs, "seconds": round(dt, 3), "records_per_s": round(recs / dt, 1),
                "worker_cpu_us_per_record": round(dc * 1e6 / recs, 1),
                "redis_cpu_us_per_record": round(dr * 1e6 / recs, 1),
                "cpu_us_per_record": round((dc + dr) * 1e6 / recs, 1)}

    try:
        fill_p = phase("preds", 0, n)
        fill_a = phase("acts", 0, n)
        mem1 = int(r.info("memory")["used_memory"])
        meas = phase("slices", n, n + a.measure)
        hwm = bl.proc_status_kb(w.pid, "VmHWM")
        ok, err = True, None
    except RuntimeError as e:
        ok, err, fill_p, fill_a, meas, mem1, hwm = False, str(e), None, None, None, mem0, None
    finally:
        w.send_signal(signal.SIGTERM)
        try:
            w.wait(timeout=60)
        except subprocess.TimeoutExpired:
            w.kill()
        log.close()
        lag.close()
    windows = a.series * a.models
    out = {"label": a.label, "resolution_ms": a.resolution_ms, "window_days": a.window_days,
           "points_per_window": n, "series": a.series, "models": a.models, "ok": ok, "error": err,
           "fill_predictions": fill_p, "fill_actuals": fill_a, "measure": meas,
           "redis_bytes_per_window": round((mem1 - mem0) / windows) if ok else None,
           "worker_peak_rss_kb": hwm}
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
