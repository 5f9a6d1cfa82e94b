#!/usr/bin/env python3
"""Chorus fault-injection suite (issue 3, item 7): the driver.

Run it through tests/faults/run.sh, which starts a real Kafka broker and a
real redis-server with tests/harness/ and passes their addresses here. See
docs/reliability.md for what every scenario does and what is compared.

Outline of one scenario run
    1. A deterministic data set (daily actuals and three models' predictions
       for several series; SPEC §4 special cases included) is turned into
       Kafka records. Scenarios that change the input (duplicates, shuffled,
       garbage, nonfinite) transform that list.
    2. A CLEAN reference run (one worker, no faults, all input produced before
       the worker starts) on the same logical input gives the expected
       forecasts (multiset of (key, value bytes)) and the reference Redis
       state. It is run once per logical data set and shared by the scenarios
       that use that data set.
    3. The scenario run gets fresh topics, consumer group and Redis key
       prefix, starts 1-3 `chorus run` workers in one group, produces the
       input paced over some seconds while injecting its faults, and acts as
       the supervisor: a worker that exits (or that we killed) is restarted.
    4. Completion: the group's committed offsets reach the input topics' end
       offsets, no transaction is open on the output topics (last stable
       offset = high watermark) and the output end offsets have been stable
       for a while; all bounded by a deadline. Then the workers are stopped
       (SIGTERM) and the outputs are read with isolation.level=read_committed.
    5. Comparison: duplicates, lost and unexpected forecasts; dead letters
       (each bad input record exactly once, nothing else); Redis state equal
       to the reference (canonical dump; offsets bookkeeping excluded).

Only the standard library, confluent-kafka, fastavro and redis (the test
venv of scripts/deps.sh) are used. Every wait is bounded and scaled by
CHORUS_TIMEOUT_MULT; sleeps only pace production and schedule faults, or
are the interval of a bounded poll.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import redis as redislib  # noqa: E402
from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # noqa: E402

from conftest import AvroCodec, chorus_env, write_config  # noqa: E402

# ------------------------------------------------------------------ basics --

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
EPOCH_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z

#: Input and output topics of a run and their partition counts. The input
#: topics deliberately differ, and their producers use different
#: partitioners (SPEC §2: correctness must not depend on co-partitioning).
TOPIC_PARTITIONS = {"predictions": 4, "actuals": 3, "forecasts": 3, "dlq": 2, "alerts": 2, "validation": 2}
#: The output topics whose transactions must be closed and end offsets
#: stable before a run counts as complete.
OUTPUT_ROLES = ("forecasts", "dlq", "alerts", "validation")
#: The input topics take records far larger than the dead-letter topic's
#: default limit (about 1 MB), for the oversized garbage class.
INPUT_MAX_BYTES = 4 * 1024 * 1024
#: An oversized garbage record's model id (predictions) or series (actuals).
OVERSIZED_NAME = 1_200_000
#: dlq.max_value_bytes (default): an oversized record's dead letter keeps
#: this much key plus value (the dead-letter topic's default limit is larger).
DLQ_LIMIT = 262144
GARBAGE_KINDS = ["magic", "schema_id", "truncated", "empty", "tombstone", "random", "bad_name", "bad_time",
                 "wrong_type", "oversized"]
OTHER_ROLES = ("indicators", "feature_importance", "regimes", "shadow")

SESSION_TIMEOUT_MS = 6000
#: Input is produced in bursts, one every BURST_S seconds. Process faults
#: (kill, stop, Redis pause/stop) are injected at a random instant within
#: HIT_S after a burst, when workers are most likely in the middle of a batch.
BURST_S = 0.1
HIT_S = 0.06
REDIS_TIMEOUT_MS = 2000

#: Monitoring (issue 10) in every run, the reference included, with
#: settings that the data set crosses, so that the alerts and validation
#: windows compared are many and of every type built (the reference run
#: asserts it: see MONITOR_MIN). With window.days=10 the retention (15) must
#: be at least window.days + validation.window_days + 1.
#:  - a configured baseline (the auto one needs 20 days of history) and
#:    MAPE_DEGRADATION / PERFORMANCE_DRIFT levels near the ensemble's typical
#:    daily APE (~0.15 %), so both fire and resolve again and again, and
#:    every series fires MAPE_DEGRADATION after the cold start at once;
#:  - DATA_MISSING at the default 5 %: the data set leaves gaps (GAPS);
#:  - WEIGHT_SHIFT at 0.05: the weights swing when the `good` model
#:    degrades (DEGRADED);
#:  - 4-day validation windows judged from 2 test points, so that about 8
#:    windows per series close and the degraded stretch reads as
#:    overfitting (the frozen weights trust `good`, equal weights do better);
#:  - EXTREME_PREDICTIONS from 5 forecasts a day (8 series, one horizon)
#:    with z_max 1.5 (so ~13 % of forecasts are extreme; they are shrunk, as
#:    in the reference) and 20 %: it fires and resolves often;
#:  - ALERT_STORM above 2 critical alerts in the trailing hour: the
#:    critical MAPE_DEGRADATION and EXTREME_PREDICTIONS alerts of a day
#:    start at the same instant, the end of the day.
MONITOR_CFG: dict[str, Any] = {
    "alerts.enabled": 1,
    "alerts.baseline_mape": "0.1",
    "alerts.mape_degradation.pp": 0.05,
    "alerts.performance_drift.pp": 0.05,
    "alerts.data_missing.pct": 5,
    "alerts.weight_shift.max_change": 0.05,
    "alerts.extreme_predictions.pct": 20,
    "alerts.extreme_predictions.min_forecasts": 5,
    "alerts.alert_storm.count": 2,
    "validation.window_days": 4,
    "validation.min_test_points": 2,
    "validation.z_max": 1.5,
}
#: Alert types judged on the global watermark (SPEC §1): with input produced
#: while the workers run, a partition can be consumed to its end for a moment
#: while the producer still produces, and then counts as being at the newest
#: event time, so their decisions legitimately depend on timing (see
#: docs/reliability.md, "Alerts and validation windows").
GLOBAL_TYPES = ("EXTREME_PREDICTIONS", "ALERT_STORM")
#: What the clean reference run on the base data set must emit, so that a
#: configuration or data drift that silences the monitor fails loudly: at
#: least this many alert records and validation windows, and every one of
#: these types.
MONITOR_MIN = {"alerts": 10, "windows": 10, "overfitting_windows": 1,
               "types": ("MAPE_DEGRADATION", "PERFORMANCE_DRIFT", "DATA_MISSING", "WEIGHT_SHIFT",
                         "OVERFITTING", "EXTREME_PREDICTIONS", "ALERT_STORM")}

#: Keys left out of the Redis state comparison: transient hold markers,
#: forecast snapshots and the monitor's output snapshots (`:osnap:`, series
#: and global slot) kept for re-emission until their batch commits, the
#: per-partition offset watermarks, the partition epochs (fencing) and the
#: committed-dead-letter offsets (bookkeeping that legitimately differs with
#: the input's offsets, assignments and commit timing; business state does
#: not). The global slot's partition states (`{__global__}:pst`,
#: `<epoch>|<at end>`) are compared as the set of partitions that reported:
#: the epoch is fencing bookkeeping, and the "consumed to its end" flag is
#: the consumer's position at the partition's last report, which depends on
#: how the last batches were cut (a partition whose last batch ended at the
#: high watermark is left at 1, one drained earlier may be left at 0).
EXCLUDED_KEY = re.compile(rb"(:held$|:snap$|:snap:|:osnap:|:wm$|:dlq:|:epoch:)")
GLOBAL_PST = re.compile(rb"\{__global__\}:pst$")
#: In runs whose input is produced while the workers run, the state of the
#: rules judged on the global watermark is timing dependent like their
#: alerts (GLOBAL_TYPES): the last watermark evaluated, the open
#: EXTREME_PREDICTIONS days, the critical alerts kept for ALERT_STORM and the
#: global alerts' lifecycle. Compared only when all input is produced first.
GLOBAL_TIMING_KEY = re.compile(rb"\{__global__\}:(gw$|xp:|xpdays$|crit$|alert:)")

CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


def timeout_mult() -> float:
    return float(os.environ.get("CHORUS_TIMEOUT_MULT", "1") or "1")


def scaled(seconds: float) -> float:
    return seconds * timeout_mult()


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} +{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {scaled(timeout):.0f}s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def proc_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ("T" when stopped), or ""."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def pid_cmdline(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------------- data --


@dataclass
class Rec:
    """One input record as produced (role: 'predictions' or 'actuals')."""

    role: str
    key: Optional[bytes]
    value: Optional[bytes]
    kind: str = "valid"  # valid | copy | garbage | nonfinite
    series: str = ""
    note: str = ""


MODELS = {"good": (0.002, 0.0), "fair": (0.008, 0.0), "poor": (0.03, 0.02)}
SERIES = ["ZL", "AAPL", "BRK.B", "CL", "GC", "ES", "NQ", "SI", "HG", "NG", "ZC", "ZS"]
ABSURD = [1e308, -1e308, 5e-324, -5e-324, 1e-300, 0.0, 2.2250738585072014e-308]
#: Events in the data set for the monitor (issue 10): the `good` model of
#: these series (indices into SERIES) degrades to this sigma in the
#: predictions issued on these days (its weight falls, the validation window
#: over them reads as overfitting, the ensemble's MAPE rises) ...
DEGRADED_SERIES, DEGRADED_DAYS, DEGRADED_SIGMA = (3, 7), range(24, 30), 0.04
#: ... and the `poor` model of these series publishes nothing on these days
#: (DATA_MISSING; those groups are incomplete).
GAP_SERIES, GAP_DAYS, GAP_MODEL = (1, 5), (17, 18), "poor"


def pred_dict(model, series, issued, target, value, lower=None, upper=None, version=None) -> dict:
    return {
        "model_id": model,
        "model_version": version,
        "series": series,
        "horizon": "1D",
        "issued_at": issued,
        "target_time": target,
        "value": value,
        "lower": lower,
        "upper": upper,
    }


def act_dict(series, observed, value, source="faults") -> dict:
    return {"series": series, "observed_at": observed, "value": value, "source": source}


def make_dataset(avro: AvroCodec, n_series: int, days: int, seed: int, absurd: bool = False,
                 absurd_values: Optional[list[float]] = None) -> list[Rec]:
    """The canonical input, in event-time order.

    Per series: a random walk of daily closes; the actual of day d is
    observed at 21:00 UTC on day d; each model predicts day d+1 (target
    12:00) at 22:00 on day d. A prediction is therefore released by the
    hold rule (SPEC §9.2) once the actual of day d+1 arrives, and the last
    day's actual releases the last predictions: no prediction ever needs
    join.max_wait_ms in a complete run. Special cases (SPEC §4): a revision
    with a later issued_at, an exact duplicate in the log, an older revision
    arriving after the newer one (stale), and a corrected actual
    (later observed_at the same evening). Events for the monitor: the
    `good` model of DEGRADED_SERIES degrades on DEGRADED_DAYS, and the
    `poor` model of GAP_SERIES skips GAP_DAYS.

    With absurd=True, about 3 % of the prediction values and a few actuals
    are replaced by absurd finite values (±1e308, subnormals, 0): valid
    input (SPEC §9.3 does not range-check values), processed by the
    reference too.
    """
    rng = random.Random(f"faults-data:{seed}:{n_series}:{days}:{absurd}")
    absurd_values = absurd_values or ABSURD
    out: list[Rec] = []
    series_names = SERIES[:n_series]
    prices = {}
    for s in series_names:
        p = [rng.uniform(20, 400)]
        for _ in range(days + 1):
            p.append(p[-1] * math.exp(rng.gauss(0.0, 0.012)))
        prices[s] = p

    def P(d: dict, note="") -> Rec:
        return Rec("predictions", d["series"].encode(), avro.encode("Prediction", d), series=d["series"], note=note)

    def A(d: dict, note="") -> Rec:
        return Rec("actuals", d["series"].encode(), avro.encode("Actual", d), series=d["series"], note=note)

    for d in range(days + 1):
        for si, s in enumerate(series_names):
            v = prices[s][d]
            if absurd and si % 4 == 1 and d in (12, 27):
                v = absurd_values[(si + d) % len(absurd_values)]
            out.append(A(act_dict(s, EPOCH_2024 + d * DAY_MS + 21 * HOUR_MS, v)))
            if d == 10 and si % 2 == 0:  # a correction wins over 21:00
                out.append(A(act_dict(s, EPOCH_2024 + d * DAY_MS + 21 * HOUR_MS + 30 * 60_000, v * 1.004), "correction"))
        if d == days:
            break
        issued, target = EPOCH_2024 + d * DAY_MS + 22 * HOUR_MS, EPOCH_2024 + (d + 1) * DAY_MS + 12 * HOUR_MS
        for si, s in enumerate(series_names):
            for model, (sigma, bias) in MODELS.items():
                if model == "good" and si in DEGRADED_SERIES and d in DEGRADED_DAYS:
                    sigma = DEGRADED_SIGMA
                value = prices[s][d + 1] * (1 + bias + rng.gauss(0.0, sigma))
                extra: dict = {}
                if model == "good":
                    extra = {"lower": value * 0.98, "upper": value * 1.02, "version": "v1"}
                if absurd and rng.random() < 0.03:
                    value, extra = rng.choice(absurd_values), {}
                if model == GAP_MODEL and si in GAP_SERIES and d in GAP_DAYS:
                    continue  # after every draw, so the rest of the data is unchanged
                rec = pred_dict(model, s, issued, target, value, **extra)
                out.append(P(rec))
                if model == "good" and d == 20:
                    out.append(P(rec, "exact duplicate"))
                if model == "poor" and d == 25:
                    out.append(P(pred_dict(model, s, issued - 2 * HOUR_MS, target, value * 0.9), "older revision"))
                if model == "fair" and d == 15:
                    out.append(P(pred_dict(model, s, issued + HOUR_MS, target, value * 0.995), "revision"))
    return out


def add_copies(recs: list[Rec], rng: random.Random, fraction: float = 0.10,
               max_late: Optional[int] = None) -> list[Rec]:
    """A copy of ~fraction of the records, each at a random later position
    (same key, so same partition, new offset), at most max_late records
    after the original. A copy later than the retention would meet a
    trimmed group and legitimately count as new (docs/redis-keys.md)."""
    out = list(recs)
    picks = sorted(rng.sample(range(len(recs)), max(1, int(len(recs) * fraction))))
    for i in reversed(picks):
        src = recs[i]
        # position in `out` of the original: every insert so far was later
        hi = len(out) if max_late is None else min(len(out), i + max_late)
        pos = rng.randint(i + 1, hi)
        out.insert(pos, Rec(src.role, src.key, src.value, "copy", src.series, "copy"))
    return out


def shuffle_order(recs: list[Rec], rng: random.Random) -> list[Rec]:
    """Randomly interleave the per-(topic, series) streams: series order and
    actuals-vs-predictions interleaving are shuffled; the order of one
    series' records within one topic is kept (that order is the record's
    arrival order, which SPEC §4's tie-breaks depend on)."""
    streams: dict[tuple[str, str], collections.deque] = {}
    for r in recs:
        streams.setdefault((r.role, r.series), collections.deque()).append(r)
    keys = list(streams)
    out: list[Rec] = []
    while keys:
        weights = [len(streams[k]) for k in keys]
        k = rng.choices(keys, weights)[0]
        out.append(streams[k].popleft())
        if not streams[k]:
            keys.remove(k)
    return out


def garbage_record(avro: AvroCodec, role: str, rng: random.Random, series_names: list[str],
                   kind: Optional[str] = None) -> Rec:
    """One record that must be dead-lettered, of a random class (or `kind`)."""
    s = rng.choice(series_names)
    key = s.encode() if rng.random() < 0.8 else None
    valid = avro.encode("Prediction", pred_dict("good", s, EPOCH_2024, EPOCH_2024 + DAY_MS, 1.0)) if role == "predictions" \
        else avro.encode("Actual", act_dict(s, EPOCH_2024, 1.0))
    kind = kind or rng.choice(GARBAGE_KINDS)
    if kind == "oversized":
        # Larger than the dead-letter topic takes (issue 14): its dead
        # letter is cut to DLQ_LIMIT, and the partition must move on.
        big = "m" * OVERSIZED_NAME
        if role == "predictions":
            v = avro.encode("Prediction", pred_dict(big, s, EPOCH_2024, EPOCH_2024 + DAY_MS, 1.0))
        else:
            v = avro.encode("Actual", act_dict(big, EPOCH_2024, 1.0))
    elif kind == "magic":
        v = bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(4, 60))
    elif kind == "schema_id":
        v = b"\x00" + struct.pack(">I", rng.choice([0, 3, 77, 4096, 0xFFFFFFFF])) + valid[5:]
    elif kind == "truncated":
        v = valid[: rng.randint(0, len(valid) - 1)]
    elif kind == "empty":
        v = b""
    elif kind == "tombstone":
        v = None
    elif kind == "random":
        v = bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(0, 200))
    elif kind == "bad_name":
        bad = rng.choice(["has space", "pipe|name", "__reserved", "", "ctl\x01x", "x" * 200])
        if role == "predictions":
            v = avro.encode("Prediction", pred_dict("good", bad, EPOCH_2024, EPOCH_2024 + DAY_MS, 1.0))
        else:
            v = avro.encode("Actual", act_dict(bad, EPOCH_2024, 1.0))
    elif kind == "bad_time":
        t = rng.choice([-1, -DAY_MS, 7_258_118_400_000, 7_258_118_400_001, 2**62])
        if role == "predictions":
            v = avro.encode("Prediction", pred_dict("good", s, t, EPOCH_2024 + DAY_MS, 1.0))
        else:
            v = avro.encode("Actual", act_dict(s, t, 1.0))
    else:  # the other input type, correctly framed with its own schema id
        if role == "predictions":
            v = avro.encode("Actual", act_dict(s, EPOCH_2024, 1.0))
        else:
            v = avro.encode("Prediction", pred_dict("good", s, EPOCH_2024, EPOCH_2024 + DAY_MS, 1.0))
    return Rec(role, key, v, "garbage", s, kind)


def add_garbage(avro: AvroCodec, recs: list[Rec], rng: random.Random, fraction: float = 0.01) -> list[Rec]:
    out = list(recs)
    names = sorted({r.series for r in recs})
    n = max(2, round(len(recs) * fraction))
    for i in range(n):
        role = rng.choice(["predictions", "actuals"])
        # One oversized record in every run (the class is rare otherwise).
        out.insert(rng.randint(0, len(out)), garbage_record(avro, role, rng, names, "oversized" if i == 0 else None))
    return out


def add_nonfinite(avro: AvroCodec, recs: list[Rec], rng: random.Random, fraction: float = 0.02) -> list[Rec]:
    """Copies of ~fraction of the valid records with NaN/±Inf in a double
    field, at random positions: each must be dead-lettered and change
    nothing else."""
    out = list(recs)
    valid = [r for r in recs if r.kind == "valid"]
    for src in rng.sample(valid, max(2, int(len(valid) * fraction))):
        bad = rng.choice([math.nan, math.inf, -math.inf])
        if src.role == "predictions":
            d = avro.decode(src.value, "Prediction")
            fld = rng.choice(["value", "value", "lower", "upper"])
            d[fld] = bad
            v = avro.encode("Prediction", d)
        else:
            d = avro.decode(src.value, "Actual")
            fld = "value"
            d[fld] = bad
            v = avro.encode("Actual", d)
        out.insert(rng.randint(0, len(out)), Rec(src.role, src.key, v, "nonfinite", src.series, f"{fld}={bad}"))
    return out


# ------------------------------------------------------------------ servers --


class PausedSet:
    """Every pid we SIGSTOPped and not yet SIGCONTinued: continued on cleanup."""

    pids: set[int] = set()

    @classmethod
    def stop(cls, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        cls.pids.add(pid)

    @classmethod
    def cont(cls, pid: int) -> None:
        cls.pids.discard(pid)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    @classmethod
    def cont_all(cls) -> None:
        for pid in list(cls.pids):
            cls.cont(pid)


class HarnessRedis:
    """The harness's redis-server (tests/harness/redis.sh): pausable."""

    def __init__(self, redis_dir: Path, port: int):
        self.dir, self.port = redis_dir, port

    def pid(self) -> int:
        pid = int((self.dir / "pid").read_text().strip())
        if not pid_alive(pid) or not any(str(self.dir) in a for a in pid_cmdline(pid)):
            raise RuntimeError(f"harness redis pid {pid} is not running from {self.dir}")
        return pid


class PersistentRedis:
    """A redis-server of our own for the restart scenario, with
    appendonly yes + appendfsync always: every acknowledged write is on disk
    before its reply is sent, so state survives SIGTERM and SIGKILL."""

    def __init__(self, d: Path, binary: str, pidfile: Path):
        self.dir = d
        self.binary = binary
        self.pidfile = pidfile
        self.proc: Optional[subprocess.Popen] = None
        d.mkdir(parents=True, exist_ok=True)
        self.port = 0
        for _ in range(5):
            self.port = free_port()
            self._write_conf()
            try:
                self.start()
                return
            except RuntimeError as e:
                if "Address already in use" not in str(e):
                    raise
        raise RuntimeError("could not start the persistent redis")

    def _write_conf(self) -> None:
        (self.dir / "redis.conf").write_text(
            f"""# Written by tests/faults/faults.py: a persistent test server.
port {self.port}
bind 127.0.0.1
protected-mode yes
dir {self.dir}
logfile {self.dir}/redis.log
daemonize no
set-proc-title no
save ""
appendonly yes
appendfsync always
appenddirname appendonly
maxmemory-policy noeviction
enable-debug-command local
"""
        )

    def ping(self) -> bool:
        try:
            return redislib.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping()
        except Exception:
            return False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, str(self.dir / "redis.conf")], stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "stdout.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        with open(self.pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + scaled(30)
        while not self.ping():
            if self.proc.poll() is not None:
                text = (self.dir / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"persistent redis exited ({self.proc.returncode}): {text[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("persistent redis did not answer PING")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            PausedSet.cont(self.proc.pid)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(scaled(30))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(scaled(10))


class Broker:
    """Stops and restarts the harness's Kafka broker on the same ports and
    data directory: the command line is read from /proc before the first
    stop, and the new pid is written to the harness's pid file so that
    `kafka.sh stop` still finds it."""

    def __init__(self, kafka_dir: Path, kafka: "Kafka"):
        self.dir = kafka_dir
        self.kafka = kafka
        self.argv: list[str] = []
        self.cwd = "/"
        self.proc: Optional[subprocess.Popen] = None

    def pid(self) -> int:
        return int((self.dir / "pid").read_text().strip())

    def _started_count(self) -> int:
        try:
            return (self.dir / "logs" / "server.log").read_text(errors="replace").count("Kafka Server started")
        except OSError:
            return 0

    def stop(self, sig: int) -> None:
        pid = self.pid()
        argv = pid_cmdline(pid)
        if not pid_alive(pid) or not any(str(self.dir / "server.properties") in a for a in argv):
            raise RuntimeError(f"broker pid {pid} is not the harness broker of {self.dir}")
        self.argv = argv
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        os.kill(pid, sig)
        if self.proc is not None and self.proc.pid == pid:
            self.proc.wait(scaled(90))
        else:
            wait_until(lambda: not pid_alive(pid), 90, f"broker pid {pid} to exit")

    def start(self) -> None:
        before = self._started_count()
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "logs" / "stdout.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        (self.dir / "pid").write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + scaled(120)
        while self._started_count() <= before:
            if self.proc.poll() is not None:
                raise RuntimeError(f"restarted broker exited with {self.proc.returncode}; see {self.dir}/logs")
            if time.monotonic() > deadline:
                raise RuntimeError("restarted broker did not log 'Kafka Server started'")
            time.sleep(0.1)
        self.kafka.reset()


# ------------------------------------------------------------------- kafka --


class Kafka:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topics(self, names: dict[str, int], configs: Optional[dict[str, dict[str, str]]] = None) -> None:
        futs = self.admin.create_topics([NewTopic(n, p, 1, config=(configs or {}).get(n, {})) for n, p in names.items()],
                                        operation_timeout=scaled(30), request_timeout=scaled(30))
        for n, f in futs.items():
            f.result(timeout=scaled(60))

        def ready():
            md = self.admin.list_topics(timeout=scaled(10))
            for n, p in names.items():
                t = md.topics.get(n)
                if t is None or t.error is not None or len(t.partitions) != p or any(x.leader < 0 for x in t.partitions.values()):
                    return False
            return True

        wait_until(ready, 60, f"leaders of {list(names)}")

    def reset(self) -> None:
        """A new admin client: after a broker restart the old one's cached
        leader epochs are stale (ListOffsets then fails with
        FENCED_LEADER_EPOCH)."""
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def offsets(self, tps: list[TopicPartition], isolation: IsolationLevel) -> dict[tuple[str, int], int]:
        for attempt in (1, 2):
            try:
                futs = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, isolation_level=isolation,
                                               request_timeout=scaled(10))
                return {(tp.topic, tp.partition): f.result(timeout=scaled(15)).offset for tp, f in futs.items()}
            except KafkaException:
                if attempt == 2:
                    raise
                self.reset()
        raise AssertionError("unreachable")

    def read_all(self, topic: str, partitions: int, timeout: float = 120, isolation: str = "read_committed") -> list:
        """Every record of the topic up to its last stable offset, read with
        isolation.level=read_committed (by default) until every partition
        reports EOF."""
        c = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"faults-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "isolation.level": isolation,
            "enable.partition.eof": True, "fetch.wait.max.ms": 50,
        })
        out = []
        try:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            at_end: set[int] = set()
            deadline = time.monotonic() + scaled(timeout)
            while len(at_end) < partitions:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{topic}: partitions {sorted(set(range(partitions)) - at_end)} never reached EOF")
                for m in c.consume(500, 0.2):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            at_end.add(m.partition())
                            continue
                        raise RuntimeError(f"{topic}: {m.error()}")
                    at_end.discard(m.partition())
                    out.append((m.key(), m.value(), m.partition(), m.offset(), m.headers() or []))
        finally:
            c.close()
        return out


# ------------------------------------------------------------------ redis --


def unname(x: Any, name: bytes) -> Any:
    """x with every occurrence of `name` in its bytes replaced by `<topics>`."""
    if isinstance(x, bytes):
        return x.replace(name, b"<topics>")
    if isinstance(x, (list, tuple)):
        return type(x)(unname(y, name) for y in x)
    if isinstance(x, dict):
        return {unname(k, name): unname(v, name) for k, v in x.items()}
    return x


def dump_state(r: redislib.Redis, prefix: str, topic_base: str = "") -> dict[bytes, Any]:
    """Canonical dump of every key under `<prefix>:` except EXCLUDED_KEY,
    with the prefix removed: {key: (type, content, has_ttl)}. The global
    slot names input partitions by topic (`{__global__}:pz:<topic>|<p>`, the
    fields of `:parts` and `:pst`): the run's topic names, which start with
    `topic_base`, are replaced by `<topics>` there."""
    keys = sorted(k for k in r.scan_iter(match=f"{prefix}:*", count=2000) if not EXCLUDED_KEY.search(k))
    if not keys:
        return {}
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.type(k)
    types = [t.decode() for t in pipe.execute()]
    pipe = r.pipeline(transaction=False)
    for k, t in zip(keys, types):
        if t == "string":
            pipe.get(k)
        elif t == "hash":
            pipe.hgetall(k)
        elif t == "zset":
            pipe.zrange(k, 0, -1, withscores=True)
        elif t == "set":
            pipe.smembers(k)
        elif t == "list":
            pipe.lrange(k, 0, -1)
        else:
            pipe.dump(k)
        pipe.pttl(k)
    vals = pipe.execute()
    out = {}
    cut = len(prefix) + 1
    for i, (k, t) in enumerate(zip(keys, types)):
        v, ttl = vals[2 * i], vals[2 * i + 1]
        if t == "none":
            continue
        if t == "hash":
            if GLOBAL_PST.search(k):  # <epoch>|<at end>: which partitions reported, not how
                v = {f: b"" for f in v}
            v = sorted(v.items())
        elif t == "set":
            v = sorted(v)
        key = k[cut:]
        if topic_base and key.startswith(b"{__global__}"):
            key, v = unname(key, topic_base.encode()), unname(v, topic_base.encode())
        out[key] = (t, v, ttl > 0)
    return out


def leftover_snapshots(r: redislib.Redis, prefix: str, kind: str = "snap") -> int:
    """Members of the forecast-snapshot sorted sets (`:snap:` keys; the
    monitor's output snapshots with kind="osnap") still in Redis: not
    compared, but reported, since snapshots that are never released are
    memory that only grows."""
    n = 0
    for k in r.scan_iter(match=f"{prefix}:*:{kind}:*", count=2000):
        if r.type(k) == b"zset":
            n += r.zcard(k)
        else:
            n += 1
    return n


def diff_state(ref: dict, got: dict) -> dict:
    only_ref = sorted(set(ref) - set(got))
    only_got = sorted(set(got) - set(ref))
    changed = sorted(k for k in set(ref) & set(got) if ref[k] != got[k])
    return {"missing": only_ref, "extra": only_got, "changed": changed}


# ----------------------------------------------------------------- monitor --


def alert_type(key: Optional[bytes]) -> str:
    """The type of an alert from its key, the fingerprint
    `type|series|horizon|model|indicator`."""
    return (key or b"").split(b"|", 1)[0].decode(errors="replace")


def keyed(msgs: list) -> dict[Optional[bytes], list[bytes]]:
    """Records of an output topic by key, each key's values in log order
    (a key lives in one partition)."""
    out: dict[Optional[bytes], list[bytes]] = {}
    for key, value, part, offset, _h in sorted(msgs, key=lambda m: (m[2], m[3])):
        out.setdefault(key, []).append(value)
    return out


@dataclass
class KeyedCmp:
    """Alerts or validation windows of a run against the reference's: per
    key, the same multiset of value bytes (duplicates: copies beyond the
    reference's count; lost: reference records missing; unexpected: values
    the reference does not have) and, where the multisets are equal, the
    same order (`order` counts keys whose records came in another order)."""

    expected: int = 0
    seen: int = 0
    duplicates: int = 0
    lost: int = 0
    unexpected: int = 0
    order: int = 0
    samples: list = field(default_factory=list)

    def failed(self) -> bool:
        return bool(self.duplicates or self.lost or self.unexpected or self.order)


def compare_keyed(exp: dict, got: dict) -> KeyedCmp:
    c = KeyedCmp()
    for key in sorted(set(exp) | set(got), key=lambda k: k or b""):
        e = collections.Counter(exp.get(key, []))
        g = collections.Counter(got.get(key, []))
        c.expected += sum(e.values())
        c.seen += sum(g.values())
        dup = lost = unexp = 0
        for v, n in g.items():
            dup += max(0, n - max(1, e.get(v, 0)))
            unexp += v not in e
        for v, n in e.items():
            lost += max(0, n - g.get(v, 0))
        c.duplicates += dup
        c.lost += lost
        c.unexpected += unexp
        name = (key or b"").decode(errors="replace")
        if e == g and exp.get(key, []) != got.get(key, []):
            c.order += 1
            what = "same records, another order"
        elif dup or lost or unexp:
            what = f"{dup} duplicated, {lost} lost, {unexp} unexpected"
        else:
            continue
        if len(c.samples) < 10:
            c.samples.append(f"{name}: {what} (reference {sum(e.values())}, run {sum(g.values())})")
    return c


def split_alerts(alerts: dict) -> tuple[dict, dict]:
    """(per-series alerts, alerts judged on the global watermark)."""
    ser = {k: v for k, v in alerts.items() if alert_type(k) not in GLOBAL_TYPES}
    glob = {k: v for k, v in alerts.items() if alert_type(k) in GLOBAL_TYPES}
    return ser, glob


def lifecycle_errors(avro: AvroCodec, alerts: dict) -> list[str]:
    """Violations of the alert lifecycle (SPEC §6) in one run's output, per
    fingerprint in log order: it starts with `firing`; a `firing` follows a
    `firing` only with another severity; no two `resolved` in a row; the
    fingerprint is the key; event times do not go back. Timing independent,
    so it holds for every alert type in every run."""
    errs = []
    for key, vals in alerts.items():
        prev = None
        for v in vals:
            try:
                a = avro.decode(v, "Alert")
            except Exception as e:  # noqa: BLE001
                errs.append(f"{key!r}: undecodable alert ({e})")
                continue
            name = (key or b"").decode(errors="replace")
            if a["fingerprint"] != name:
                errs.append(f"{name}: record with fingerprint {a['fingerprint']!r}")
            if prev is None:
                if a["state"] != "firing":
                    errs.append(f"{name}: starts {a['state']}")
            elif prev["state"] == a["state"] == "resolved":
                errs.append(f"{name}: resolved twice at {prev['event_time']}, {a['event_time']}")
            elif prev["state"] == a["state"] == "firing" and prev["severity"] == a["severity"]:
                errs.append(f"{name}: fired twice as {a['severity']} at {prev['event_time']}, {a['event_time']}")
            if prev is not None and a["event_time"] < prev["event_time"]:
                errs.append(f"{name}: event_time goes back from {prev['event_time']} to {a['event_time']}")
            prev = a
    return errs


def monitor_census(avro: AvroCodec, alerts: dict, windows: dict) -> dict:
    """What a run's monitor emitted: alert records by type and state, and
    validation windows (overfitting ones counted)."""
    types: collections.Counter = collections.Counter()
    states: collections.Counter = collections.Counter()
    for key, vals in alerts.items():
        for v in vals:
            a = avro.decode(v, "Alert")
            types[a["type"]] += 1
            states[a["state"]] += 1
    overfit = sum(avro.decode(v, "ValidationWindow")["is_overfitting"] for vals in windows.values() for v in vals)
    return {"alerts": sum(types.values()), "types": dict(sorted(types.items())), "states": dict(states),
            "windows": sum(len(v) for v in windows.values()), "overfitting_windows": overfit,
            "window_keys": len(windows)}


# ------------------------------------------------------------------ worker --


class Worker:
    """One supervised `chorus run` slot; restarted when it exits unless retired."""

    def __init__(self, run: "Run", slot: int):
        self.run = run
        self.slot = slot
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = run.dir / f"worker{slot}.log"
        self.state = "new"  # running | dead | retired | stopped-signal
        self.started_at = 0.0
        self.restart_at: Optional[float] = None
        self.backoff = 0.3
        self.incarnations = 0

    def start(self) -> None:
        logf = open(self.log_path, "ab")
        logf.write(f"===== incarnation {self.incarnations + 1} at +{time.monotonic() - T0:.1f}s =====\n".encode())
        logf.flush()
        self.proc = subprocess.Popen([str(self.run.suite.chorus_bin), "run", "-c", str(self.run.cfg_path)],
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                     env=chorus_env(self.run.start_env(self)), start_new_session=True)
        logf.close()
        with open(self.run.suite.pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        self.incarnations += 1
        self.state = "running"
        self.started_at = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def supervise(self) -> None:
        now = time.monotonic()
        if self.state in ("running", "stopped-signal") and self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            intended = self.run.expect_exit.pop(self.proc.pid, None)
            self.run.exits.append((self.slot, rc, intended or "unexpected"))
            if rc < 0 and -rc in CRASH_SIGNALS:
                self.run.crashes.append(f"worker{self.slot} died of {signal.Signals(-rc).name} (log {self.log_path})")
            if rc == 2:
                raise RuntimeError(f"worker{self.slot} exited 2 (configuration error):\n{tail(self.log_path, 20)}")
            if intended is None:
                log(f"  worker{self.slot} pid {self.proc.pid} exited rc={rc} by itself; restarting")
            quick = now - self.started_at < 3
            self.backoff = min(5.0, self.backoff * 2) if quick else 0.3
            self.state = "dead"
            if self.restart_at is None:
                self.restart_at = now + self.backoff
        if self.state == "dead" and self.restart_at is not None and now >= self.restart_at:
            self.start()

    def signal(self, sig: int, why: str) -> None:
        if self.alive():
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.run.expect_exit[self.proc.pid] = why
            if sig == signal.SIGSTOP:
                PausedSet.stop(self.proc.pid)
                self.state = "stopped-signal"
            elif sig == signal.SIGCONT:
                PausedSet.cont(self.proc.pid)
                self.state = "running"
            else:
                self.proc.send_signal(sig)

    def stop(self, grace: float = 20) -> bool:
        """SIGTERM and wait; SIGKILL after `grace`. True if it needed SIGKILL."""
        self.state = "retired"
        if not self.alive():
            return False
        PausedSet.cont(self.proc.pid)
        self.run.expect_exit[self.proc.pid] = "stopped"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(scaled(grace))
            rc = self.proc.returncode
            if rc not in (0, None):
                self.run.exits.append((self.slot, rc, "on SIGTERM"))
            return False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(scaled(10))
            return True


def tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------ sniper --


class Sniper(threading.Thread):
    """Watches the forecast topic with isolation.level=read_uncommitted and,
    when armed, SIGKILLs every live worker the moment a new output shows
    up: the output's transaction is then most likely still open (or just
    committed, with its snapshots not yet released)."""

    def __init__(self, run: "Run", shots: int):
        super().__init__(daemon=True)
        self.run_ = run
        self.shots = shots
        self.rearm_at: Optional[float] = None
        self.armed = threading.Event()
        self._halt = threading.Event()
        self.c = Consumer({"bootstrap.servers": run.suite.bootstrap, "group.id": f"faults-sniper-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "isolation.level": "read_uncommitted",
                           "fetch.wait.max.ms": 5, "fetch.error.backoff.ms": 10})
        self.c.assign([TopicPartition(run.topics["forecasts"], p, -1) for p in range(TOPIC_PARTITIONS["forecasts"])])

    def run(self) -> None:
        while not self._halt.is_set():
            m = self.c.poll(0.01)
            if self.rearm_at is not None and time.monotonic() >= self.rearm_at:
                self.rearm_at = None
                self.armed.set()
            if m is None or m.error() or not self.armed.is_set():
                continue
            self.armed.clear()
            self.shots -= 1
            if self.shots > 0:  # the next shot 1.5-3 s after this one
                self.rearm_at = time.monotonic() + self.run_.rng.uniform(1.5, 3.0)
            victims = self.run_.alive_workers()
            for w in victims:
                w.signal(signal.SIGKILL, "crash_inflight")
                w.restart_at = time.monotonic() + self.run_.rng.uniform(0.2, 1.0)
            self.run_.injections += 1
            log(f"    killed {len(victims)} workers on an in-flight output ({m.topic().rsplit('.', 1)[1]}[{m.partition()}]@{m.offset()})")

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.c.close()


# --------------------------------------------------------------------- run --


@dataclass
class Outcome:
    name: str
    records_in: int = 0
    expected: int = 0
    seen: int = 0
    duplicates: int = 0
    lost: int = 0
    unexpected: int = 0
    diverged_keys: int = 0
    dlq_expected: int = 0
    dlq_seen: int = 0
    dlq_dup: int = 0
    dlq_lost: int = 0
    dlq_unexpected: int = 0
    dlq_mismatch: int = 0
    state_equal: bool = True
    state_diff: dict = field(default_factory=dict)
    injections: int = 0
    seconds: float = 0.0
    settle_seconds: float = 0.0
    timeout: str = ""
    crashes: list = field(default_factory=list)
    exits: list = field(default_factory=list)
    forced_kills: int = 0
    error: str = ""
    seed: int = 0
    dir: str = ""
    nonfinite_forecasts: int = 0
    snapshots_left: int = 0
    aborted_outputs: int = 0
    extra: list = field(default_factory=list)
    lost_sample: list = field(default_factory=list)
    dup_sample: list = field(default_factory=list)
    state_diff_detail: list = field(default_factory=list)
    unexpected_sample: list = field(default_factory=list)
    # monitoring (issue 10): per-series alerts, global-watermark alerts
    # (GLOBAL_TYPES), validation windows, each against the reference
    monitor: bool = False
    alerts: KeyedCmp = field(default_factory=KeyedCmp)
    global_alerts: KeyedCmp = field(default_factory=KeyedCmp)
    global_strict: bool = True  # all input produced before the workers started
    windows: KeyedCmp = field(default_factory=KeyedCmp)
    lifecycle: list = field(default_factory=list)
    osnaps_left: int = 0

    def monitor_failed(self) -> bool:
        g = self.global_alerts
        return bool(self.alerts.failed() or self.windows.failed() or self.lifecycle or g.duplicates
                    or (self.global_strict and g.failed()))

    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.unexpected or not self.state_equal or self.dlq_dup
                    or self.dlq_lost or self.dlq_unexpected or self.dlq_mismatch or self.timeout or self.crashes
                    or self.error or self.monitor_failed())


class Run:
    """One run: fresh topics, group and prefix; workers; input; faults."""

    def __init__(self, suite: "Suite", name: str, recs: list[Rec], n_workers: int, seed: int,
                 redis_port: Optional[int] = None, batch_wait_ms: int = 20):
        self.suite = suite
        self.name = name
        self.recs = recs
        self.seed = seed
        self.rng = random.Random(seed)
        uid = uuid.uuid4().hex[:8]
        self.base = f"faults.{name}.{uid}"
        self.dir = suite.work / "runs" / f"{name}-{uid}"
        self.dir.mkdir(parents=True)
        self.topics = {role: f"{self.base}.{role}" for role in (*TOPIC_PARTITIONS, *OTHER_ROLES)}
        self.group = f"{self.base}.workers"
        self.prefix = "f" + uid
        self.redis_port = redis_port or suite.redis_port
        self.workers: list[Worker] = []
        self.n_workers = n_workers
        self.expect_exit: dict[int, str] = {}
        self.exits: list = []
        self.crashes: list = []
        self.events: list[tuple[float, str, Callable[[], None]]] = []
        self.injections = 0
        self.sniper: Optional[Sniper] = None
        self.sent: list[tuple[Rec, int, int]] = []  # rec, partition, offset
        # All input produced before the workers start (the reference, the
        # input scenarios): then the global watermark is not timing dependent.
        self.preproduced = False
        self.worker_env: dict[str, str] = {}  # extra environment of every worker
        self.fresh_worker_id = False  # a new worker.id per incarnation (settle_fresh_id)
        self.stop_before_redis = 0  # zombie_midbatch: worker1's first incarnation stops itself
        self.settle_times: list[float] = []  # kill -> no open transaction (settle_*)
        cfg = {
            "kafka.bootstrap.servers": suite.bootstrap,
            "kafka.group.id": self.group,
            "kafka.session.timeout.ms": SESSION_TIMEOUT_MS,
            "kafka.heartbeat.interval.ms": 1000,
            "kafka.reconnect.backoff.max.ms": 1000,
            "redis.host": "127.0.0.1",
            "redis.port": self.redis_port,
            "redis.key_prefix": self.prefix,
            "redis.timeout_ms": REDIS_TIMEOUT_MS,
            "http.listen": "127.0.0.1:0",  # 1-3 workers at once: a free port each
            "join.max_wait_ms": suite.join_wait_ms,
            "batch.max_wait_ms": batch_wait_ms,
            # Windows and retention far shorter than the data set, so that
            # trimming runs while predictions are held or unread (SPEC §9.2).
            "window.days": suite.args.window_days,
            "state.retention_days": suite.args.retention_days,
            "log.level": "info",
        }
        if suite.monitor:
            cfg.update(MONITOR_CFG)
        if suite.guarantee:
            cfg["processing.guarantee"] = suite.guarantee
        cfg.update({f"topic.{role}": t for role, t in self.topics.items()})
        self.cfg_path = write_config(self.dir / "worker.conf", cfg)

    # -- scheduling -------------------------------------------------------

    def at(self, t: float, label: str, fn: Callable[[], None]) -> None:
        self.events.append((t, label, fn))

    def start_env(self, w: "Worker") -> dict[str, str]:
        """The environment of worker w's next incarnation. With
        fresh_worker_id every incarnation gets a worker.id of its own, as the
        pid-based transactional.id of the first versions did, so that a
        restart cannot fence its predecessor's open transaction."""
        env = dict(self.worker_env)
        if self.stop_before_redis and w.slot == 1 and w.incarnations == 0:
            env["CHORUS_TEST_FAULT_STOP_BEFORE_REDIS"] = str(self.stop_before_redis)
        if self.fresh_worker_id:
            env["CHORUS_WORKER_ID"] = f"w{w.slot}-i{w.incarnations + 1}-{uuid.uuid4().hex[:6]}"
        return env

    def alive_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.state == "running" and w.alive()]

    def supervise(self) -> None:
        for w in self.workers:
            w.supervise()

    # -- the run ------------------------------------------------------------

    def setup(self) -> None:
        names = {self.topics[r]: p for r, p in TOPIC_PARTITIONS.items()}
        names.update({self.topics[r]: 1 for r in OTHER_ROLES})
        big = {"max.message.bytes": str(INPUT_MAX_BYTES)}
        self.suite.kafka.create_topics(names, {self.topics["predictions"]: big, self.topics["actuals"]: big})
        self.workers = [Worker(self, i + 1) for i in range(self.n_workers)]

    def produce(self, duration: float, start_workers_first: bool = True) -> None:
        """Produce self.recs paced over `duration` seconds while running the
        scheduled events and supervising the workers."""
        producers = {
            "predictions": Producer({"bootstrap.servers": self.suite.bootstrap, "enable.idempotence": True,
                                     "linger.ms": 5, "partitioner": "murmur2_random",
                                     "message.max.bytes": INPUT_MAX_BYTES}),
            "actuals": Producer({"bootstrap.servers": self.suite.bootstrap, "enable.idempotence": True,
                                 "linger.ms": 5, "message.max.bytes": INPUT_MAX_BYTES}),
        }
        results: list[Optional[tuple[int, int]]] = [None] * len(self.recs)
        errors: list[str] = []

        def cb(i):
            def f(err, msg):
                if err is not None:
                    errors.append(str(err))
                else:
                    results[i] = (msg.partition(), msg.offset())
            return f

        if start_workers_first:
            for w in self.workers:
                w.start()
        n_chunks = max(1, math.ceil(duration / BURST_S))
        per = math.ceil(len(self.recs) / n_chunks)
        chunks = [(k * BURST_S, k * per) for k in range(n_chunks)]
        events = sorted(self.events, key=lambda e: e[0])
        t0 = time.monotonic()
        ci = ei = 0
        while ci < len(chunks) or ei < len(events):
            now = time.monotonic() - t0
            while ci < len(chunks) and chunks[ci][0] <= now:
                lo = chunks[ci][1]
                for i in range(lo, min(lo + per, len(self.recs))):
                    r = self.recs[i]
                    while True:
                        try:
                            producers[r.role].produce(self.topics[r.role], key=r.key, value=r.value, on_delivery=cb(i))
                            break
                        except BufferError:
                            producers[r.role].poll(0.1)
                ci += 1
            while ei < len(events) and events[ei][0] <= now:
                label, fn = events[ei][1], events[ei][2]
                if label:
                    log(f"  +{now:5.1f}s {label}")
                fn()
                ei += 1
            for p in producers.values():
                p.poll(0)
            self.supervise()
            time.sleep(0.02)
        if not start_workers_first:
            pass
        deadline = time.monotonic() + scaled(180)
        for p in producers.values():
            while p.flush(1.0) > 0:
                self.supervise()
                if time.monotonic() > deadline:
                    raise RuntimeError("input records not acknowledged within 180 s")
        if errors:
            raise RuntimeError(f"producing input failed: {errors[:3]}")
        if any(r is None for r in results):
            raise RuntimeError("an input record was not acknowledged")
        self.sent = [(rec, res[0], res[1]) for rec, res in zip(self.recs, results)]  # type: ignore[index]
        if not start_workers_first:
            for w in self.workers:
                w.start()

    def lag(self, watcher: Consumer) -> dict:
        tps = [TopicPartition(self.topics[r], p) for r in ("predictions", "actuals") for p in range(TOPIC_PARTITIONS[r])]
        ends = self.suite.kafka.offsets(tps, IsolationLevel.READ_UNCOMMITTED)
        out = {}
        for tp in watcher.committed(tps, timeout=scaled(10)):
            done = tp.offset if tp.offset >= 0 else 0
            out[(tp.topic.rsplit(".", 1)[1], tp.partition)] = max(0, ends[(tp.topic, tp.partition)] - done)
        return out

    def output_state(self) -> tuple[dict, dict]:
        tps = [TopicPartition(self.topics[r], p) for r in OUTPUT_ROLES for p in range(TOPIC_PARTITIONS[r])]
        hw = self.suite.kafka.offsets(tps, IsolationLevel.READ_UNCOMMITTED)
        lso = self.suite.kafka.offsets(tps, IsolationLevel.READ_COMMITTED)
        return hw, lso

    def wait_complete(self, timeout: float, give_up: Optional[Callable[[], bool]] = None) -> tuple[str, float]:
        """Poll until the group has committed every input record, no output
        transaction is open and the output end offsets stayed the same for
        1.5 s. Returns ('', seconds) or (reason, seconds) on the deadline."""
        watcher = Consumer({"bootstrap.servers": self.suite.bootstrap, "group.id": self.group,
                            "enable.auto.commit": False})
        start = time.monotonic()
        deadline = start + scaled(timeout)
        stable_since, last_hw = None, None
        why = ""
        next_report = start + 15
        try:
            while True:
                self.supervise()
                try:
                    lag = self.lag(watcher)
                    hw, lso = self.output_state()
                except KafkaException as e:
                    lag, hw, lso = {"?": 1}, {}, {}
                    kafka_error = str(e)
                else:
                    kafka_error = ""
                pending = {k: v for k, v in lag.items() if v}
                open_txn = {k for k in hw if lso.get(k) != hw[k]}
                if kafka_error:
                    stable_since, last_hw = None, None
                    why = f"kafka: {kafka_error}"
                elif not pending and not open_txn:
                    if hw != last_hw:
                        stable_since, last_hw = time.monotonic(), hw
                    elif time.monotonic() - stable_since >= 1.5:
                        return "", time.monotonic() - start
                else:
                    stable_since, last_hw = None, None
                    why = f"lag {pending}" if pending else f"open transactions on {sorted(open_txn)}"
                if time.monotonic() > next_report and why:
                    log(f"  still waiting ({time.monotonic() - start:.0f}s): {why}")
                    next_report += 15
                if give_up is not None and give_up():
                    return f"gave up: {why}", time.monotonic() - start
                if time.monotonic() > deadline:
                    return f"not complete after {scaled(timeout):.0f}s: {why}", time.monotonic() - start
                time.sleep(0.25)
        finally:
            watcher.close()

    def stop_workers(self) -> int:
        if self.sniper is not None:
            self.sniper.stop()
        forced = 0
        for w in self.workers:
            forced += w.stop()
        return forced

    def write_monitor_outputs(self) -> None:
        """The run's alerts and validation windows, decoded, one JSON line
        each in log order per key, into its directory (alerts.jsonl,
        validation.jsonl): the evidence when they differ from the reference."""
        for name, recs, schema in (("alerts", self.alerts, "Alert"), ("validation", self.windows, "ValidationWindow")):
            with open(self.dir / f"{name}.jsonl", "w") as f:
                for key, vals in sorted(recs.items(), key=lambda kv: kv[0] or b""):
                    for v in vals:
                        f.write(json.dumps(self.suite.avro.decode(v, schema), sort_keys=True, default=str) + "\n")

    def collect(self, ref: Optional["Reference"], outcome: Outcome) -> None:
        k = self.suite.kafka
        # With the workers gone, wait (bounded) for transactions left open to
        # be resolved, so that read_committed sees the final outputs.
        def closed() -> bool:
            hw, lso = self.output_state()
            return all(lso.get(k) == v for k, v in hw.items())

        try:
            wait_until(closed, 90, "output transactions to close", interval=0.5)
        except RuntimeError as e:
            outcome.extra.append(str(e))
        fc = k.read_all(self.topics["forecasts"], TOPIC_PARTITIONS["forecasts"])
        dlq = k.read_all(self.topics["dlq"], TOPIC_PARTITIONS["dlq"])
        self.forecasts = fc
        self.dlq = dlq
        self.alerts = keyed(k.read_all(self.topics["alerts"], TOPIC_PARTITIONS["alerts"]))
        self.windows = keyed(k.read_all(self.topics["validation"], TOPIC_PARTITIONS["validation"]))
        outcome.monitor = self.suite.monitor
        # With input produced during the run, the global rules' records can
        # also come out of order: an aborted batch's global outputs are
        # emitted again after a later batch's (docs/reliability.md, finding
        # 10, open). Their lifecycle is then counted in the notes, not failed.
        strict = self.alerts if self.preproduced else {
            k: v for k, v in self.alerts.items() if alert_type(k) not in GLOBAL_TYPES}
        outcome.lifecycle = lifecycle_errors(self.suite.avro, strict)
        if not self.preproduced:
            loose = lifecycle_errors(self.suite.avro, {
                k: v for k, v in self.alerts.items() if alert_type(k) in GLOBAL_TYPES})
            if loose:
                outcome.extra.append(f"{len(loose)} global-alert lifecycle violations "
                                     f"(not failed, finding 10), e.g. {loose[0]}")
        self.write_monitor_outputs()
        # Outputs of aborted transactions (a killed or fenced worker's
        # half-done batches): present in the log, hidden by read_committed.
        # Evidence that the faults hit workers in the middle of a batch.
        outcome.aborted_outputs = len(k.read_all(self.topics["forecasts"], TOPIC_PARTITIONS["forecasts"],
                                                 isolation="read_uncommitted")) - len(fc)
        outcome.records_in = len(self.recs)
        outcome.seen = len(fc)
        for _k, v, *_ in fc:
            try:
                f = self.suite.avro.decode(v, "EnsembleForecast")
                if not all(math.isfinite(f[x]) for x in ("value", "raw_value")):
                    outcome.nonfinite_forecasts += 1
            except Exception:  # noqa: BLE001
                outcome.extra.append("an undecodable forecast")
        r = redislib.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=scaled(30))
        self.state = dump_state(r, self.prefix, self.base)
        outcome.snapshots_left = leftover_snapshots(r, self.prefix)
        outcome.osnaps_left = leftover_snapshots(r, self.prefix, "osnap")
        r.close()
        if ref is None:
            return
        ser_exp, glob_exp = split_alerts(ref.alerts)
        ser_got, glob_got = split_alerts(self.alerts)
        outcome.alerts = compare_keyed(ser_exp, ser_got)
        outcome.global_alerts = compare_keyed(glob_exp, glob_got)
        outcome.global_strict = self.preproduced
        outcome.windows = compare_keyed(ref.windows, self.windows)
        exp = ref.pairs
        got = collections.Counter((m[0], m[1]) for m in fc)
        outcome.expected = sum(exp.values())
        for kv, n in got.items():
            extra_copies = max(0, n - max(1, exp.get(kv, 0)))
            outcome.duplicates += extra_copies
            if extra_copies and len(outcome.dup_sample) < 10:
                outcome.dup_sample.append(kv[0].decode(errors="replace"))
            if kv not in exp:
                outcome.unexpected += 1
        lost_keys = set()
        for kv, n in exp.items():
            miss = max(0, n - got.get(kv, 0))
            outcome.lost += miss
            if miss:
                lost_keys.add(kv[0])
                if len(outcome.lost_sample) < 10:
                    outcome.lost_sample.append(kv[0].decode(errors="replace"))
        unexpected_keys = {kv[0] for kv in got if kv not in exp}
        outcome.unexpected_sample = sorted(k.decode(errors="replace") for k in unexpected_keys)[:10]
        outcome.diverged_keys = len(lost_keys & unexpected_keys)
        # Dead letters: every bad input record exactly once, with its bytes.
        bad = {(self.topics[rec.role], p, o): rec for rec, p, o in self.sent if rec.kind in ("garbage", "nonfinite")}
        outcome.dlq_expected = len(bad)
        outcome.dlq_seen = len(dlq)
        seen_src = collections.Counter()
        for key, value, _p, _o, headers in dlq:
            h = {hk: (hv.decode(errors="replace") if hv is not None else "") for hk, hv in headers}
            src = (h.get("chorus.source.topic"), int(h.get("chorus.source.partition", -1)), int(h.get("chorus.source.offset", -1)))
            seen_src[src] += 1
            rec = bad.get(src)
            if rec is None:
                outcome.dlq_unexpected += 1
                if len(outcome.extra) < 8:
                    outcome.extra.append(f"unexpected dead letter {src} reason={h.get('chorus.error')} {h.get('chorus.error.message', '')[:80]}")
            elif rec.note == "oversized" or h.get("chorus.error.truncated"):
                # cut to the limit, key first, with the original size (issue 14)
                if (h.get("chorus.error.truncated") != "true" or rec.key != key or value is None
                        or rec.value[:len(value)] != value or len(key or b"") + len(value) != DLQ_LIMIT
                        or h.get("chorus.source.value_bytes") != str(len(rec.value))):
                    outcome.dlq_mismatch += 1
                    if len(outcome.extra) < 8:
                        outcome.extra.append(f"truncated dead letter of {src} ({rec.note}): key {key!r}, "
                                             f"{len(value or b'')} of {len(rec.value or b'')} bytes, headers {h}")
            elif rec.value != value or rec.key != key:
                # the original bytes, unchanged; a null key or value stays null
                outcome.dlq_mismatch += 1
                if len(outcome.extra) < 8:
                    outcome.extra.append(f"dead letter of {src} ({rec.note}) differs: key {key!r} value {value[:16] if value else value!r}")
        for src, n in seen_src.items():
            if src in bad:
                outcome.dlq_dup += n - 1
        outcome.dlq_lost = sum(1 for src in bad if src not in seen_src)
        if outcome.dlq_lost:
            kinds = collections.Counter(bad[s].note for s in bad if s not in seen_src)
            outcome.extra.append(f"bad records never dead-lettered by kind: {dict(kinds)}")
        ref_state, run_state = ref.state, self.state
        if not self.preproduced:  # the global rules' state is timing dependent then (GLOBAL_TIMING_KEY)
            ref_state = {k: v for k, v in ref_state.items() if not GLOBAL_TIMING_KEY.search(k)}
            run_state = {k: v for k, v in run_state.items() if not GLOBAL_TIMING_KEY.search(k)}
        d = diff_state(ref_state, run_state)
        outcome.state_equal = not any(d.values())
        for key in (d["changed"] + d["missing"] + d["extra"])[:4]:
            outcome.state_diff_detail.append({"key": key.decode(errors="replace"),
                                              "reference": repr(ref_state.get(key))[:3000],
                                              "run": repr(run_state.get(key))[:3000]})
        outcome.state_diff = {k: [x.decode(errors="replace") for x in v[:6]] + ([f"... {len(v)} in all"] if len(v) > 6 else [])
                              for k, v in d.items() if v}


class ReferenceFailed(RuntimeError):
    pass


@dataclass
class Reference:
    pairs: collections.Counter
    state: dict
    count: int
    nonfinite: int
    dir: str
    alerts: dict = field(default_factory=dict)  # key -> values in log order
    windows: dict = field(default_factory=dict)
    census: dict = field(default_factory=dict)


# ------------------------------------------------------------------- suite --


class Suite:
    def __init__(self, args):
        self.args = args
        self.bootstrap = args.bootstrap
        self.kafka = Kafka(args.bootstrap)
        self.redis_port = args.redis_port
        self.redis = HarnessRedis(Path(args.redis_dir), args.redis_port)
        self.broker = Broker(Path(args.kafka_dir), self.kafka)
        self.work = Path(args.work)
        self.pidfile = self.work / "pids"
        self.chorus_bin = Path(args.chorus_bin)
        self.join_wait_ms = args.join_wait_ms
        self.guarantee = args.guarantee
        self.monitor = not args.no_alerts
        self.monitor_problems: list[str] = []
        self.avro = AvroCodec()
        self.refs: dict[str, Reference] = {}
        self.persistent: Optional[PersistentRedis] = None
        self.base = make_dataset(self.avro, args.series, args.days, args.data_seed)

    # -- data sets --------------------------------------------------------

    def dataset(self, which: str) -> list[Rec]:
        if which == "base":
            return self.base
        if which == "absurd":
            if not hasattr(self, "_absurd"):
                self._absurd = make_dataset(self.avro, self.args.series, self.args.days, self.args.data_seed, absurd=True,
                                            absurd_values=self.args.absurd_values)
            return self._absurd
        raise KeyError(which)

    def reference(self, which: str) -> Reference:
        if which in self.refs:
            return self.refs[which]
        recs = self.dataset(which)
        log(f"reference run on data set '{which}' ({len(recs)} records, 1 worker, no faults)")
        run = Run(self, f"ref-{which}", recs, 1, seed=0)
        run.preproduced = True
        run.setup()
        out = Outcome(f"ref-{which}")
        run.produce(0.0, start_workers_first=False)
        why, secs = run.wait_complete(300, give_up=lambda: sum(x[2] == "unexpected" for x in run.exits) >= 3)
        if why:
            run.stop_workers()
            errors = collections.Counter(m.group(1) for m in re.finditer(r'level=error .*?msg="([^"]*)"',
                                                                           run.workers[0].log_path.read_text(errors="replace")))
            exits = collections.Counter(rc for _s, rc, w in run.exits if w == "unexpected")
            raise ReferenceFailed(f"reference run on '{which}' failed: {why}; worker exits {dict(exits)}; "
                                  f"errors logged {dict(errors)} (log {run.workers[0].log_path})")
        run.stop_workers()
        run.collect(None, out)
        pairs = collections.Counter((m[0], m[1]) for m in run.forecasts)
        dups = sum(n - 1 for n in pairs.values() if n > 1)
        nonfinite = 0
        for _k, v, *_ in run.forecasts:
            f = self.avro.decode(v, "EnsembleForecast")
            if not all(math.isfinite(f[x]) for x in ("value", "raw_value")):
                nonfinite += 1
        if run.dlq:
            raise ReferenceFailed(f"reference run on '{which}' dead-lettered {len(run.dlq)} valid records; see {run.dir}")
        if run.crashes or any(x[2] == "unexpected" for x in run.exits):
            errors = collections.Counter(m.group(1) for m in re.finditer(r'level=error .*?msg="([^"]*)"',
                                                                           run.workers[0].log_path.read_text(errors="replace")))
            raise ReferenceFailed(f"reference run on '{which}': the worker exited by itself "
                                  f"{sum(x[2] == 'unexpected' for x in run.exits)} times (rc "
                                  f"{sorted({x[1] for x in run.exits if x[2] == 'unexpected'})}), errors logged {dict(errors)}, "
                                  f"{len(run.forecasts)} forecasts; log {run.workers[0].log_path}")
        log(f"reference '{which}': {len(run.forecasts)} forecasts ({dups} duplicate pairs), "
            f"{len(run.state)} Redis keys compared, {secs:.1f}s")
        if dups:
            log(f"WARNING: the reference itself has {dups} duplicate (key, value) pairs")
        ref = Reference(pairs, run.state, len(run.forecasts), nonfinite, str(run.dir), run.alerts, run.windows)
        if self.monitor:
            ref.census = census = monitor_census(self.avro, run.alerts, run.windows)
            log(f"reference '{which}': monitor emitted {census}")
            if out.lifecycle:
                raise ReferenceFailed(f"reference run on '{which}' broke the alert lifecycle: {out.lifecycle[:5]}; "
                                      f"see {run.dir}")
            dup_alerts = sum(n - 1 for vals in run.alerts.values() for n in collections.Counter(vals).values() if n > 1)
            dup_windows = sum(n - 1 for vals in run.windows.values() for n in collections.Counter(vals).values() if n > 1)
            if dup_alerts or dup_windows:
                raise ReferenceFailed(f"reference run on '{which}' emitted {dup_alerts} duplicate alerts and "
                                      f"{dup_windows} duplicate validation windows; see {run.dir}")
            # Monitoring must not be vacuous: a drift of the configuration,
            # the data or the rules that silences it fails every row.
            if which == "base":
                short = []
                for what in ("alerts", "windows", "overfitting_windows"):
                    if census[what] < MONITOR_MIN[what]:
                        short.append(f"{census[what]} {what.replace('_', ' ')} (at least {MONITOR_MIN[what]} required)")
                missing = [t for t in MONITOR_MIN["types"] if t not in census["types"]]
                if missing:
                    short.append(f"no {', '.join(missing)} alert")
                if not census["states"].get("resolved"):
                    short.append("no resolved alert")
                if short:
                    # Not a ReferenceFailed: the scenarios still run and are
                    # compared, but the suite fails (main) with this reason.
                    self.monitor_problems.append(f"reference run on '{which}': the monitor is nearly silent: "
                                                 f"{'; '.join(short)}; check MONITOR_CFG and the data set's events")
                    log(f"  ERROR: {self.monitor_problems[-1]}")
        self.refs[which] = ref
        return ref

    def persistent_redis(self) -> PersistentRedis:
        if self.persistent is None:
            binary = os.environ.get("CHORUS_TEST_REDIS_SERVER") or "redis-server"
            from shutil import which
            binary = which(binary) or "/usr/bin/redis-server"
            self.persistent = PersistentRedis(self.work / "redis-persistent", binary, self.pidfile)
        return self.persistent

    def cleanup(self) -> None:
        PausedSet.cont_all()
        if self.persistent:
            self.persistent.stop()


# ---------------------------------------------------------------- scenarios --

@dataclass
class Scenario:
    name: str
    what: str
    workers: int
    quick: int  # iterations in --quick mode
    full: int  # iterations in the full run
    per_run: int  # fault injections per run (0: input scenario, iterations = runs)
    data: str = "base"
    # All input produced before the workers start (as in the reference), so
    # that the global watermark, and with it EXTREME_PREDICTIONS and
    # ALERT_STORM, are compared strictly. Fault scenarios produce while
    # their faults are injected, and cannot.
    preproduce: bool = False


SCENARIOS = [
    Scenario("control", "no fault, 3 workers, all input produced first (1-vs-N determinism control)", 3, 1, 2, 0,
             preproduce=True),
    Scenario("replay", "the reference again: 1 worker, no fault, all input produced first; must be "
             "byte-identical (SPEC §9.2) (extra)", 1, 1, 2, 0, preproduce=True),
    Scenario("control_live", "no fault, 3 workers, input produced while they run (the timing control of the "
             "global alerts) (extra)", 3, 1, 2, 0),
    Scenario("kill9", "SIGKILL a random worker at random instants, supervisor restarts it", 3, 4, 24, 6),
    Scenario("crash_inflight", "SIGKILL every worker the moment an output appears in the log (read_uncommitted) (extra)", 3, 2, 8, 4),
    Scenario("zombie", "SIGSTOP a worker beyond session.timeout.ms, then SIGCONT; its Redis writes must be fenced", 3, 1, 4, 2),
    Scenario("zombie_midbatch", "a worker stops itself (fault hook) right before a batch's Redis calls, beyond session.timeout.ms, then continues: its writes must be fenced", 3, 1, 3, 1),
    Scenario("settle_stable_id", "SIGKILL the only worker mid-transaction and restart it at once: time until no transaction is open (same worker.id)", 1, 3, 6, 3),
    Scenario("settle_fresh_id", "as settle_stable_id, but every incarnation has a new worker.id (the pid-based transactional.id before issue 9)", 1, 2, 4, 2),
    Scenario("kill_at_release", "the worker kills itself (fault hook) right after a commit, before releasing its snapshots, while a prediction is held", 2, 3, 12, 3),
    Scenario("rebalance", "start or stop (SIGTERM) a worker every 2-4 s", 2, 6, 24, 8),
    Scenario("rolling_restart", "SIGTERM a worker and start it again, in turn (a rolling deploy); 1 % garbage in the input (extra)", 3, 4, 12, 6),
    Scenario("redis_restart", "kill redis-server (TERM/KILL alternately), restart on the same port (AOF, fsync always)", 2, 2, 6, 3),
    Scenario("redis_pause", "SIGSTOP redis-server 3-7 s (> redis.timeout_ms), then SIGCONT", 2, 2, 6, 3),
    Scenario("redis_fnflush", "FUNCTION FLUSH: Redis loses the loaded chorus library mid-run (extra)", 2, 2, 6, 3),
    Scenario("duplicates", "a copy of 10 % of the input records re-produced at new offsets", 2, 1, 3, 0,
             preproduce=True),
    Scenario("shuffled", "input interleaved at random across series and topics (per-series order kept)", 2, 1, 3, 0,
             preproduce=True),
    Scenario("garbage", "1 % garbage records interleaved (10 classes, one oversized per run)", 2, 1, 3, 0,
             preproduce=True),
    Scenario("nonfinite", "NaN/±Inf records added; absurd finite values (±1e308, subnormal, 0) in the data", 2, 1, 3, 0,
             "absurd", preproduce=True),
    Scenario("broker_restart", "stop the Kafka broker (TERM/KILL alternately), restart it on the same ports and data", 2, 1, 4, 2),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def schedule_faults(suite: Suite, run: Run, sc: Scenario, k: int) -> float:
    """Adds k fault injections of scenario sc to run; returns the production
    duration that keeps data flowing through all of them."""
    rng = run.rng
    t = 1.0

    def hit(t: float) -> float:
        return math.floor(t / BURST_S) * BURST_S + rng.uniform(0.0, HIT_S)
    if sc.name == "kill9":
        for _ in range(k):
            t += rng.uniform(1.0, 2.5)

            def kill():
                ws = run.alive_workers()
                if not ws:
                    log("    (no live worker to kill)")
                    return
                w = rng.choice(ws)
                w.signal(signal.SIGKILL, "kill9")
                w.restart_at = time.monotonic() + rng.uniform(0.1, 1.5)
                run.injections += 1
            run.at(hit(t), "SIGKILL a worker", kill)
        return t + 1.5
    if sc.name == "crash_inflight":
        run.sniper = Sniper(run, k)
        run.sniper.start()
        t += rng.uniform(1.0, 2.0)
        run.at(t, f"arm: kill every worker at the next output ({k} times)", run.sniper.armed.set)
        return t + 4.0 * k
    if sc.name == "zombie":
        for _ in range(k):
            t = hit(t + rng.uniform(1.0, 2.0))
            dur = SESSION_TIMEOUT_MS / 1000 + rng.uniform(3.0, 6.0)
            chosen: list[Worker] = []

            def stop(chosen=chosen):
                ws = run.alive_workers()
                if ws:
                    chosen.append(rng.choice(ws))
                    chosen[0].signal(signal.SIGSTOP, "zombie")
                    run.injections += 1

            def cont(chosen=chosen):
                if chosen:
                    chosen[0].signal(signal.SIGCONT, "zombie")
            run.at(t, "SIGSTOP a worker", stop)
            run.at(t + dur, f"SIGCONT the zombie ({dur:.1f}s)", cont)
            t += dur + rng.uniform(1.0, 2.0)
        return t
    if sc.name == "zombie_midbatch":
        run.stop_before_redis = rng.randint(3, 8)

        # Polled every 0.25 s (events are scheduled up front): once worker1
        # has stopped itself before a batch's Redis calls, let the group move
        # its partitions and the new owners apply records (session timeout
        # plus a few seconds), then continue it.
        zs = {"stopped_at": None, "done": False, "hold": SESSION_TIMEOUT_MS / 1000 + rng.uniform(6.0, 9.0)}

        def poll_zombie():
            w = run.workers[0]
            if zs["done"] or not w.alive():
                return
            if zs["stopped_at"] is None:
                if proc_state(w.proc.pid) == "T":
                    PausedSet.stop(w.proc.pid)
                    w.state = "stopped-signal"
                    zs["stopped_at"] = time.monotonic()
                    run.injections += 1
                    log("    worker1 stopped itself mid-batch")
            elif time.monotonic() - zs["stopped_at"] >= zs["hold"]:
                w.signal(signal.SIGCONT, "zombie_midbatch")
                zs["done"] = True
                log("    worker1 continued")
        for n in range(int(40 / 0.25)):
            run.at(t + n * 0.25, "", poll_zombie)
        return t + 40.0

    if sc.name in ("settle_stable_id", "settle_fresh_id"):
        run.fresh_worker_id = sc.name == "settle_fresh_id"
        for _ in range(k):
            t += rng.uniform(2.0, 3.0)

            def kill_and_time():
                ws = run.alive_workers()
                if not ws:
                    return
                w = ws[0]
                # Kill while a transaction is open on the outputs (the high
                # watermark is past the last stable offset), up to 5 s.
                until = time.monotonic() + scaled(5)
                while time.monotonic() < until:
                    hw, lso = run.output_state()
                    if any(lso.get(tp) != hw[tp] for tp in hw):
                        break
                w.signal(signal.SIGKILL, "settle")
                t0 = time.monotonic()
                w.proc.wait(scaled(10))
                # Still open 0.3 s later: not a commit that was already on
                # its way to the coordinator (it completes by itself).
                time.sleep(max(0.0, t0 + 0.3 - time.monotonic()))
                hw, lso = run.output_state()
                if all(lso.get(tp) == hw[tp] for tp in hw):
                    log("    (no transaction left open by the kill: not timed)")
                    w.restart_at = time.monotonic()
                    run.supervise()
                    return
                w.restart_at = time.monotonic()
                while time.monotonic() - t0 < scaled(90):
                    run.supervise()
                    hw, lso = run.output_state()
                    if all(lso.get(tp) == hw[tp] for tp in hw):
                        break
                    time.sleep(0.05)
                run.settle_times.append(time.monotonic() - t0)
                run.injections += 1
                log(f"    open transaction gone {run.settle_times[-1]:.2f}s after the kill")
            run.at(hit(t), "SIGKILL the worker, restart it at once", kill_and_time)
        return t + 2.0
    if sc.name == "kill_at_release":
        # Every incarnation dies after its N-th commit inside the window
        # (test builds: CHORUS_FAULT_HOOKS); the supervisor restarts it.
        run.worker_env["CHORUS_TEST_FAULT_KILL_AFTER_COMMIT"] = str(rng.randint(2, 6))
        return 1.0 + 2.0 * k
    if sc.name == "rebalance":
        for _ in range(k):
            t += rng.uniform(2.0, 4.0)

            def change():
                live = [w for w in run.workers if w.state in ("running", "dead")]
                if len(live) <= 1 or (len(live) < 3 and rng.random() < 0.5):
                    w = Worker(run, len(run.workers) + 1)
                    run.workers.append(w)
                    w.start()
                    log(f"    started worker{w.slot} ({len(live) + 1} in the group)")
                else:
                    w = rng.choice(live)
                    log(f"    stopping worker{w.slot} ({len(live) - 1} left)")
                    if w.stop():
                        run.extra_forced += 1
                run.injections += 1
            run.at(t, "membership change", change)
        return t + 1.0
    if sc.name == "rolling_restart":
        for _ in range(k):
            t = hit(t + rng.uniform(1.5, 3.0))

            def restart():
                ws = run.alive_workers()
                if not ws:
                    return
                w = ws[run.injections % len(ws)]
                if w.stop():
                    run.extra_forced += 1
                w.start()
                run.injections += 1
            run.at(t, "SIGTERM a worker and start it again", restart)
        return t + 1.0
    if sc.name == "redis_restart":
        pr = suite.persistent_redis()
        for i in range(k):
            t = hit(t + rng.uniform(1.5, 3.0))
            down = rng.uniform(1.5, 4.0)
            sig = signal.SIGKILL if i % 2 else signal.SIGTERM
            run.at(t, f"stop redis ({sig.name})", lambda sig=sig: pr.stop(sig))

            def start():
                pr.start()
                run.injections += 1
            run.at(t + down, f"start redis ({down:.1f}s down)", start)
            t += down
        return t + 1.0
    if sc.name == "redis_pause":
        for _ in range(k):
            t = hit(t + rng.uniform(1.5, 3.0))
            dur = rng.uniform(3.0, 7.0)
            pid = suite.redis.pid()

            def stop(pid=pid):
                PausedSet.stop(pid)
                run.injections += 1
            run.at(t, "SIGSTOP redis", stop)
            run.at(t + dur, f"SIGCONT redis ({dur:.1f}s)", lambda pid=pid: PausedSet.cont(pid))
            t += dur
        return t + 1.0
    if sc.name == "redis_fnflush":
        for _ in range(k):
            t = hit(t + rng.uniform(1.5, 3.0))

            def flush():
                r = redislib.Redis(host="127.0.0.1", port=suite.redis_port, socket_timeout=scaled(10))
                r.execute_command("FUNCTION", "FLUSH", "SYNC")
                r.close()
                run.injections += 1
            run.at(t, "FUNCTION FLUSH", flush)
        return t + 1.0
    if sc.name == "broker_restart":
        for i in range(k):
            t += rng.uniform(2.0, 4.0)
            down = rng.uniform(1.0, 4.0)
            sig = signal.SIGKILL if i % 2 else signal.SIGTERM
            run.at(t, f"stop the broker ({sig.name})", lambda sig=sig: suite.broker.stop(sig))

            def start():
                suite.broker.start()
                run.injections += 1
            run.at(t + down, f"start the broker ({down:.1f}s after the stop)", start)
            t += down + 8.0  # the restart itself takes a few seconds
        return t
    raise KeyError(sc.name)


def run_scenario(suite: Suite, sc: Scenario, iterations: int, seed: int) -> list[Outcome]:
    try:
        ref = suite.reference(sc.data)
    except ReferenceFailed as e:
        log(f"  ERROR: {e}")
        return [Outcome(sc.name, error=str(e), state_equal=False)]
    outs = []
    if sc.per_run:
        plan = []
        left = iterations
        while left > 0:
            plan.append(min(sc.per_run, left))
            left -= plan[-1]
    else:
        plan = [0] * iterations
    for i, k in enumerate(plan):
        rseed = int(hashlib.sha256(f"{seed}:{sc.name}:{i}".encode()).hexdigest()[:12], 16)
        rng = random.Random(rseed)
        recs = suite.dataset(sc.data)
        if sc.name == "duplicates":
            # Copies arrive up to (retention - window - 1) days of records
            # late: still inside what trimming keeps for their groups.
            days = max(1, suite.args.retention_days - suite.args.window_days - 1)
            recs = add_copies(recs, rng, max_late=int(len(recs) / suite.args.days * days))
        elif sc.name == "shuffled":
            recs = shuffle_order(recs, rng)
        elif sc.name in ("garbage", "rolling_restart"):
            recs = add_garbage(suite.avro, recs, rng)
        elif sc.name == "nonfinite":
            recs = add_nonfinite(suite.avro, recs, rng)
        port = suite.persistent_redis().port if sc.name == "redis_restart" else None
        run = Run(suite, sc.name, recs, sc.workers, rseed, redis_port=port)
        run.extra_forced = 0
        run.preproduced = sc.preproduce
        out = Outcome(sc.name, seed=rseed, dir=str(run.dir), records_in=len(recs))
        log(f"{sc.name} run {i + 1}/{len(plan)}: seed {rseed}, {len(recs)} records, {sc.workers} workers"
            + (f", {k} injections" if k else ""))
        t_start = time.monotonic()
        try:
            run.setup()
            duration = schedule_faults(suite, run, sc, k) if k else 4.0
            if sc.preproduce:
                run.produce(0.0, start_workers_first=False)
            else:
                run.produce(duration)
            why, settle = run.wait_complete(150)
            out.timeout, out.settle_seconds = why, settle
            out.forced_kills = run.stop_workers() + run.extra_forced
            run.collect(ref, out)
            logs = "".join(w.log_path.read_text(errors="replace") for w in run.workers)
            if sc.name == "kill_at_release":
                run.injections = logs.count('msg="killing after commit"')
                if not run.injections:
                    out.error = "the fault hook never fired (a build without -DCHORUS_FAULT_HOOKS=ON?)"
            if run.settle_times:
                ts = sorted(run.settle_times)
                out.extra.append(f"kill to no open transaction: median {ts[len(ts) // 2]:.1f}s, max {ts[-1]:.1f}s "
                                 f"over {len(ts)} kills")
            if sc.name == "zombie_midbatch":
                fenced = logs.count('msg="fenced')
                out.extra.append(f"fenced zombie calls: {fenced}")
                if not run.injections:
                    out.error = "the zombie never stopped itself (a build without -DCHORUS_FAULT_HOOKS=ON?)"
                elif not fenced:
                    out.error = "the zombie's batch was not fenced"
            if sc.name == "zombie":
                fenced = logs.count('msg="fenced')
                out.extra.append(f"fenced zombie calls: {fenced}")
        except Exception as e:  # noqa: BLE001 - reported in the table
            out.error = f"{type(e).__name__}: {e}"
            log(f"  ERROR: {out.error}\n{traceback.format_exc()}")
            PausedSet.cont_all()
            for w in run.workers:
                try:
                    w.stop(5)
                except Exception:
                    pass
        out.injections = run.injections if k else 1
        out.crashes = run.crashes
        out.exits = run.exits
        out.seconds = time.monotonic() - t_start
        if run.crashes:
            log(f"  CRASHES: {run.crashes}")
        log(f"  -> in {out.records_in}, forecasts {out.expected} expected / {out.seen} seen, dup {out.duplicates}, "
            f"lost {out.lost}, unexpected {out.unexpected}, dlq {out.dlq_seen}/{out.dlq_expected} "
            f"(dup {out.dlq_dup}, lost {out.dlq_lost}, unexpected {out.dlq_unexpected}), state equal {out.state_equal}, "
            f"settle {out.settle_seconds:.1f}s, {out.seconds:.0f}s"
            + (f", {monitor_line(out)}" if out.monitor else "")
            + (f", TIMEOUT {out.timeout}" if out.timeout else "")
            + (f", state diff {out.state_diff}" if out.state_diff else "")
            + (f", notes {out.extra}" if out.extra else ""))
        unexpected_exits = collections.Counter(rc for _s, rc, why in run.exits if why == "unexpected")
        if unexpected_exits:
            log(f"  worker exits not caused by the suite: {dict(unexpected_exits)}")
        outs.append(out)
    return outs


# ------------------------------------------------------------------- table --


def monitor_line(o: Outcome) -> str:
    a, g, w = o.alerts, o.global_alerts, o.windows
    s = (f"alerts {a.expected}+{g.expected} expected / {a.seen}+{g.seen} seen (per-series+global; "
         f"dup {a.duplicates}+{g.duplicates}, lost {a.lost}+{g.lost}, unexpected {a.unexpected}+{g.unexpected}, "
         f"order {a.order}+{g.order}{'' if o.global_strict else '; global not strict'}), "
         f"windows {w.expected}/{w.seen} (dup {w.duplicates}, lost {w.lost}, unexpected {w.unexpected}, order {w.order})")
    if o.lifecycle:
        s += f", LIFECYCLE {o.lifecycle[:3]}"
    samples = a.samples + w.samples + (g.samples if o.global_strict or g.duplicates else [])
    if samples:
        s += f", differing keys {samples[:6]}"
    return s


def summarize(name: str, outs: list[Outcome], sc: Scenario) -> dict:
    def tot(f: Callable[[Outcome], int]) -> int:
        return sum(f(o) for o in outs)

    # Alerts compared strictly: the per-series ones always, the global ones
    # when all input was produced first; a duplicate is a duplicate anyway.
    def strict_alerts(attr: str) -> int:
        return tot(lambda o: getattr(o.alerts, attr) + (getattr(o.global_alerts, attr) if o.global_strict else 0))

    s = {
        "fault": name,
        "runs": len(outs),
        "iterations": sum(o.injections for o in outs) if sc.per_run else len(outs),
        "records_in": tot(lambda o: o.records_in),
        "expected": tot(lambda o: o.expected),
        "seen": tot(lambda o: o.seen),
        "alerts_expected": strict_alerts("expected"),
        "alerts_seen": strict_alerts("seen"),
        "global_expected": tot(lambda o: o.global_alerts.expected),
        "global_seen": tot(lambda o: o.global_alerts.seen),
        "global_strict": all(o.global_strict for o in outs),
        "windows_expected": tot(lambda o: o.windows.expected),
        "windows_seen": tot(lambda o: o.windows.seen),
        "monitor": any(o.monitor for o in outs),
        "duplicates": tot(lambda o: o.duplicates + o.dlq_dup + o.alerts.duplicates + o.global_alerts.duplicates
                          + o.windows.duplicates),
        "lost": tot(lambda o: o.lost + o.dlq_lost + o.windows.lost) + strict_alerts("lost"),
        "unexpected": tot(lambda o: o.unexpected + o.dlq_unexpected + o.windows.unexpected) + strict_alerts("unexpected"),
        "state_equal": all(o.state_equal for o in outs) and not any(o.error for o in outs),
        "ok": all(o.ok() for o in outs),
    }
    notes = []
    if s["monitor"]:
        ad, al, au = (tot(lambda o: o.alerts.duplicates + o.global_alerts.duplicates), strict_alerts("lost"),
                      strict_alerts("unexpected"))
        wd, wl, wu = tot(lambda o: o.windows.duplicates), tot(lambda o: o.windows.lost), tot(lambda o: o.windows.unexpected)
        if ad or al or au:
            notes.append(f"ALERTS dup {ad}, lost {al}, unexpected {au}")
        if wd or wl or wu:
            notes.append(f"WINDOWS dup {wd}, lost {wl}, unexpected {wu}")
        order = strict_alerts("order") + tot(lambda o: o.windows.order)
        if order:
            notes.append(f"{order} alert or window keys out of order")
        lc = tot(lambda o: len(o.lifecycle))
        if lc:
            notes.append(f"{lc} alert lifecycle violations")
        paced = [o for o in outs if not o.global_strict]
        if paced:
            g = [o.global_alerts for o in paced]
            differ = sum(1 for x in g if x.lost or x.unexpected or x.order)
            notes.append(f"global alerts (not compared strictly, input produced during the run): "
                         f"{sum(x.expected for x in g)} expected / {sum(x.seen for x in g)} seen, "
                         f"{sum(x.lost for x in g)} not seen, {sum(x.unexpected for x in g)} unexpected"
                         f"{f', {sum(x.order for x in g)} keys in another order' if any(x.order for x in g) else ''}"
                         f" ({differ} of {len(g)} runs differ)")
        osn = tot(lambda o: o.osnaps_left)
        if osn:
            notes.append(f"{osn} unreleased monitor snapshots left in Redis")
    if sc.per_run:
        notes.append(f"{s['runs']} run{'s' if s['runs'] != 1 else ''}")
    dlq_exp = sum(o.dlq_expected for o in outs)
    if dlq_exp or any(o.dlq_seen for o in outs):
        notes.append(f"DLQ {sum(o.dlq_seen for o in outs)}/{dlq_exp} (dup {sum(o.dlq_dup for o in outs)}, "
                     f"lost {sum(o.dlq_lost for o in outs)}, unexpected {sum(o.dlq_unexpected for o in outs)}"
                     + (f", bytes differ {sum(o.dlq_mismatch for o in outs)}" if any(o.dlq_mismatch for o in outs) else "") + ")")
    if sum(o.unexpected for o in outs):
        notes.append(f"unexpected forecasts {sum(o.unexpected for o in outs)}")
    div = sum(o.diverged_keys for o in outs)
    if div:
        notes.append(f"{div} keys with a different value")
    ue = collections.Counter(rc for o in outs for _s, rc, why in o.exits if why == "unexpected")
    if ue:
        notes.append("worker exits " + ", ".join(f"rc={rc}×{n}" for rc, n in sorted(ue.items())))
    crashes = sum(len(o.crashes) for o in outs)
    if crashes:
        notes.append(f"CRASHES {crashes}")
    tos = sum(1 for o in outs if o.timeout)
    if tos:
        notes.append(f"{tos} run(s) never completed")
    errs = [o.error for o in outs if o.error]
    if errs:
        notes.append(f"error: {errs[0][:120]}")
    forced = sum(o.forced_kills for o in outs)
    if forced:
        notes.append(f"{forced} worker(s) ignored SIGTERM")
    nf = sum(o.nonfinite_forecasts for o in outs)
    if nf:
        notes.append(f"{nf} non-finite forecasts")
    aborted = sum(o.aborted_outputs for o in outs)
    if aborted:
        notes.append(f"{aborted} outputs of aborted transactions hidden by read_committed")
    snaps = sum(o.snapshots_left for o in outs)
    if snaps:
        notes.append(f"{snaps} unreleased snapshots left in Redis")
    notes.append(f"settle ≤{max((o.settle_seconds for o in outs), default=0):.0f}s")
    s["notes"] = "; ".join(notes)
    return s


def table(rows: list[dict]) -> str:
    """The Markdown table. "alerts" counts the alert records compared
    strictly (per-series types always, EXTREME_PREDICTIONS and ALERT_STORM
    too where all input was produced first: marked "incl. global"; elsewhere
    the global ones are in the notes). duplicates and lost add up forecasts,
    dead letters, alerts and validation windows."""
    monitor = any(r.get("monitor") for r in rows)
    head = ["fault", "iterations", "records in", "forecasts expected vs seen"]
    if monitor:
        head += ["alerts expected vs seen", "windows expected vs seen"]
    head += ["duplicates", "lost", "Redis state equal to a clean run", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["fault"], str(r["iterations"]), str(r["records_in"]), f"{r['expected']} / {r['seen']}"]
        if monitor:
            cells += [f"{r['alerts_expected']} / {r['alerts_seen']}"
                      + (" incl. global" if r["global_strict"] else " per-series"),
                      f"{r['windows_expected']} / {r['windows_seen']}"]
        cells += [str(r["duplicates"]), str(r["lost"]), "yes" if r["state_equal"] else "no", r["notes"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------- main --


def probe_guarantee(chorus_bin: Path, work: Path) -> str:
    """Whether this binary knows processing.guarantee (check-config)."""
    p = work / "probe.conf"
    write_config(p, {"kafka.bootstrap.servers": "127.0.0.1:9", "processing.guarantee": "exactly_once"})
    r = subprocess.run([str(chorus_bin), "check-config", "-c", str(p)], capture_output=True, text=True,
                       env=chorus_env(), stdin=subprocess.DEVNULL)
    return "supported" if r.returncode == 0 else "unknown key (a build before exactly-once)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenarios", nargs="*", help=f"scenarios to run (default all): {', '.join(BY_NAME)}")
    ap.add_argument("--quick", action="store_true", help="a few iterations of each scenario (CI)")
    ap.add_argument("--iterations", type=int, help="iterations of every scenario (fault injections, or runs for input scenarios)")
    ap.add_argument("--seed", type=int, default=20260321, help="seed of fault timing, copies, shuffles and garbage")
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--series", type=int, default=8)
    ap.add_argument("--days", type=int, default=40)
    ap.add_argument("--window-days", type=int, default=10, help="window.days of every run")
    ap.add_argument("--retention-days", type=int, default=15,
                    help="state.retention_days of every run (the data set should be longer than twice this)")
    ap.add_argument("--join-wait-ms", type=int, default=60000)
    ap.add_argument("--absurd-values", type=lambda t: [float(x) for x in t.split(",")],
                    help="comma list of the absurd finite values of the nonfinite scenario (default: %s)"
                    % ",".join(repr(v) for v in ABSURD))
    ap.add_argument("--no-alerts", action="store_true",
                    help="run without monitoring (alerts.enabled=0): forecasts, dead letters and state only")
    ap.add_argument("--guarantee", default="", help="set processing.guarantee (default: the binary's default)")
    ap.add_argument("--json", help="write the results (rows and per-run details) to this file")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--kafka-dir", required=True)
    ap.add_argument("--redis-dir", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--chorus-bin", required=True)
    args = ap.parse_args()

    names = args.scenarios or [s.name for s in SCENARIOS]
    for n in names:
        if n not in BY_NAME:
            ap.error(f"unknown scenario {n!r}; have {', '.join(BY_NAME)}")
    # keep the canonical order (broker_restart last: it disturbs everything)
    names = [s.name for s in SCENARIOS if s.name in names]

    suite = Suite(args)
    probe = probe_guarantee(suite.chorus_bin, suite.work)
    mode = "quick" if args.quick else "full"
    log(f"fault suite ({mode}): binary {suite.chorus_bin}; processing.guarantee "
        f"{args.guarantee or '(binary default)'}: {probe}; {len(suite.base)} base records; seed {args.seed}")
    rows, details = [], {}
    started = time.time()
    try:
        for n in names:
            sc = BY_NAME[n]
            its = args.iterations if args.iterations else (sc.quick if args.quick else sc.full)
            outs = run_scenario(suite, sc, its, args.seed)
            rows.append(summarize(n, outs, sc))
            details[n] = [dataclasses.asdict(o) for o in outs]
    finally:
        suite.cleanup()
    header = (f"Fault suite, {mode} mode, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
              f"{time.time() - started:.0f} s; binary {suite.chorus_bin}; processing.guarantee "
              f"{args.guarantee or 'default'} ({probe}); seed {args.seed}; data {args.series} series × 3 models × "
              f"{args.days} days ({len(suite.base)} records per run); join.max_wait_ms {args.join_wait_ms}; "
              + (f"monitoring on ({', '.join(f'{k}={v}' for k, v in MONITOR_CFG.items())})" if suite.monitor
                 else "monitoring off"))
    if suite.monitor:
        header += "; reference monitor output: " + "; ".join(f"{k}: {v.census}" for k, v in suite.refs.items())
    print(header)
    print()
    print(table(rows))
    for problem in suite.monitor_problems:
        print(f"\nFAILED: {problem}")
    sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows, "runs": details,
                                               "references": {k: {"count": v.count, "keys": len(v.state), "dir": v.dir,
                                                                  "monitor": v.census}
                                                              for k, v in suite.refs.items()}},
                                              indent=1, default=str))
    return 0 if all(r["ok"] for r in rows) and not suite.monitor_problems else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        PausedSet.cont_all()
        sys.exit(130)
