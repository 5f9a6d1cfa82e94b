#!/usr/bin/env python3
"""Minimal, deterministic reproductions of the problems the fault suite found.

    $CHORUS_CACHE_DIR/venv/bin/python tests/faults/repro.py [name...]

Starts its own Kafka broker and Redis with tests/harness/ (stopped at the
end), runs each named reproduction (default: all) against CHORUS_BIN
(default build/chorus), prints one line per reproduction, and exits 0 only
if none of them shows the problem any more. See docs/reliability.md.

  dlq_beyond_hold       a dead letter for a record behind a held prediction
                        is produced again after a graceful restart
  forecast_beyond_hold  a forecast for a record behind a held prediction is
                        produced again when the worker dies between the
                        transaction commit and the snapshot release
  subnormal             a subnormal value (5e-324) is valid input, is applied
                        to Redis, and then every later prediction of the
                        series fails to parse its state and is dead-lettered
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from confluent_kafka import Producer  # noqa: E402

from conftest import AvroCodec, chorus_env, write_config  # noqa: E402
from faults import DAY_MS, EPOCH_2024, HOUR_MS, Kafka, act_dict, pred_dict  # noqa: E402

ROLES = ("predictions", "actuals", "forecasts", "dlq", "indicators", "feature_importance",
         "alerts", "regimes", "validation", "shadow")


class Env:
    def __init__(self, bootstrap: str, redis_port: int, chorus: str, work: Path):
        self.bootstrap, self.redis_port, self.chorus, self.work = bootstrap, redis_port, chorus, work
        self.kafka = Kafka(bootstrap)
        self.avro = AvroCodec()

    def setup(self, name: str, **cfg_extra):
        base = f"repro.{name}.{uuid.uuid4().hex[:6]}"
        topics = {r: f"{base}.{r}" for r in ROLES}
        self.kafka.create_topics({t: 1 for t in topics.values()})
        cfg = {"kafka.bootstrap.servers": self.bootstrap, "kafka.group.id": base + ".g",
               "kafka.session.timeout.ms": 6000, "redis.host": "127.0.0.1", "redis.port": self.redis_port,
               "redis.key_prefix": "r" + uuid.uuid4().hex[:8], "join.max_wait_ms": 60000,
               "http.listen": "127.0.0.1:0"}
        cfg.update(cfg_extra)
        cfg.update({f"topic.{r}": t for r, t in topics.items()})
        conf = write_config(self.work / f"{base}.conf", cfg)
        return topics, conf

    def produce(self, items):
        p = Producer({"bootstrap.servers": self.bootstrap})
        for topic, key, value in items:
            p.produce(topic, key=key, value=value)
        assert p.flush(30) == 0

    def worker(self, conf: Path, tag: str) -> subprocess.Popen:
        return subprocess.Popen([self.chorus, "run", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=open(self.work / f"{conf.stem}.{tag}.log", "wb"), stderr=subprocess.STDOUT,
                                env=chorus_env())

    def count(self, topic: str) -> int:
        return len(self.kafka.read_all(topic, 1))

    def wait_count(self, topic: str, n: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while (c := self.count(topic)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return c

    def P(self, series, issued, target, value):
        return self.avro.encode("Prediction", pred_dict("m", series, issued, target, value))

    def A(self, series, observed, value):
        return self.avro.encode("Actual", act_dict(series, observed, value))


def stop(w: subprocess.Popen, sig=signal.SIGTERM) -> int:
    w.send_signal(sig)
    return w.wait(30)


def dlq_beyond_hold(env: Env) -> tuple[bool, str]:
    t, conf = env.setup("dlq")
    env.produce([
        (t["actuals"], b"X", env.A("X", EPOCH_2024 + 21 * HOUR_MS, 100.0)),
        # issued after X's newest actual: held (offset 0 of predictions)
        (t["predictions"], b"X", env.P("X", EPOCH_2024 + DAY_MS + 22 * HOUR_MS, EPOCH_2024 + 2 * DAY_MS, 101.0)),
        (t["predictions"], b"X", b"\x07not avro"),  # offset 1: a dead letter
    ])
    w = env.worker(conf, "w1")
    first = env.wait_count(t["dlq"], 1)
    stop(w)
    w = env.worker(conf, "w2")
    env.wait_count(t["dlq"], 2, timeout=15)  # gives the second worker time to re-read
    stop(w)
    n = env.count(t["dlq"])
    return n == 1, f"1 bad record, {n} dead letters under read_committed after one graceful restart (first worker: {first})"


def forecast_beyond_hold(env: Env) -> tuple[bool, str]:
    # A long batch wait leaves seconds between a batch's commit and the next
    # round trip, which releases the batch's snapshots.
    t, conf = env.setup("fc", **{"batch.max_wait_ms": 5000})
    env.produce([
        (t["actuals"], b"X", env.A("X", EPOCH_2024 + 21 * HOUR_MS, 100.0)),
        (t["actuals"], b"Y", env.A("Y", EPOCH_2024 + 5 * DAY_MS, 50.0)),
        (t["predictions"], b"X", env.P("X", EPOCH_2024 + DAY_MS + 22 * HOUR_MS, EPOCH_2024 + 2 * DAY_MS, 101.0)),  # held
        (t["predictions"], b"Y", env.P("Y", EPOCH_2024 + DAY_MS + 22 * HOUR_MS, EPOCH_2024 + 2 * DAY_MS, 51.0)),  # applied
    ])
    w = env.worker(conf, "w1")
    env.wait_count(t["forecasts"], 1)
    stop(w, signal.SIGKILL)  # after the commit, before the release
    w = env.worker(conf, "w2")
    env.wait_count(t["forecasts"], 2, timeout=20)
    stop(w)
    n = env.count(t["forecasts"])
    return n == 1, f"1 prediction of Y, {n} identical forecasts under read_committed after kill -9 and restart"


def subnormal(env: Env) -> tuple[bool, str]:
    t, conf = env.setup("subnormal")
    items = [(t["actuals"], b"Z", env.A("Z", EPOCH_2024 + d * DAY_MS + 21 * HOUR_MS, 5e-324 if d == 2 else 100.0 + d))
             for d in range(6)]
    items += [(t["predictions"], b"Z", env.P("Z", EPOCH_2024 + d * DAY_MS + 22 * HOUR_MS,
                                             EPOCH_2024 + (d + 1) * DAY_MS + 12 * HOUR_MS, 101.0 + d)) for d in range(5)]
    env.produce(items)
    w = env.worker(conf, "w1")
    deadline = time.monotonic() + 40
    while env.count(t["forecasts"]) + env.count(t["dlq"]) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop(w)
    fc, dl = env.count(t["forecasts"]), env.count(t["dlq"])
    return (fc == 5 and dl == 0), (f"5 valid predictions (one actual is 5e-324): {fc} forecasts, {dl} dead letters "
                                   f"(poison_pill: 'Unexpected reply from a state function')")


REPROS = {"dlq_beyond_hold": dlq_beyond_hold, "forecast_beyond_hold": forecast_beyond_hold, "subnormal": subnormal}


def harness(script: str, *args: str) -> str:
    r = subprocess.run([str(REPO / "tests" / "harness" / script), *args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode:
        sys.exit(f"tests/harness/{script} {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout.strip()


def main() -> int:
    names = sys.argv[1:] or list(REPROS)
    for n in names:
        if n not in REPROS:
            sys.exit(f"unknown reproduction {n!r}; have {', '.join(REPROS)}")
    chorus = os.environ.get("CHORUS_BIN", str(REPO / "build" / "chorus"))
    work = Path(tempfile.mkdtemp(prefix="chorus-repro."))
    kdir, rdir = work / "kafka", work / "redis"
    try:
        bootstrap = harness("kafka.sh", "start", str(kdir))
        port = int(harness("redis.sh", "start", str(rdir)))
        env = Env(bootstrap, port, chorus, work)
        bad = 0
        for n in names:
            ok, what = REPROS[n](env)
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {n}: {what}", flush=True)
        return 1 if bad else 0
    finally:
        harness("kafka.sh", "stop", str(kdir))
        harness("redis.sh", "stop", str(rdir))
        print(f"(worker logs in {work})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
