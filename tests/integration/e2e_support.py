"""Helpers of the end-to-end forecast tests (test_e2e_forecasts.py).

The servers, topics, Avro codec and the `chorus` process fixture come from
conftest.py; this module adds what those tests need on top:

* a deterministic, seeded data set (daily actuals and three models of
  different quality), with the awkward cases of SPEC §4 built in;
* producing records while keeping each record's partition and offset;
* waiting, on conditions only, until a worker has consumed its input;
* reading and decoding the forecast and dead-letter topics;
* a canonical dump of a prefix's Redis state.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from confluent_kafka import Consumer, KafkaError, TopicPartition

from conftest import AvroCodec, KafkaHelper, scaled, unique
from reference_model import DAY_MS, Actual, Prediction

#: 2024-01-01T00:00:00Z
EPOCH_2024 = 1_704_067_200_000
HOUR_MS = 3_600_000

#: The three upstream models: relative noise (σ) and bias of their predictions.
MODEL_QUALITY = {"good": (0.002, 0.0), "fair": (0.008, 0.0), "poor": (0.03, 0.02)}


def zigzag(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def day(d: int) -> int:
    return EPOCH_2024 + d * DAY_MS


# ------------------------------------------------------------------ data --


@dataclass
class SeriesData:
    """One series' records in the order they are produced."""

    series: str
    actuals: list[Actual] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    #: what the special records are, for assertion messages
    notes: dict[str, Any] = field(default_factory=dict)


def make_series(series: str, level: float, days: int, seed: int, shock_day: Optional[int] = None) -> SeriesData:
    """A random-walk series with daily actuals observed at 21:00 UTC and,
    for each day d < days, predictions of the models for day d+1 issued at
    22:00 on day d (target 12:00 on day d+1, inside its bucket).

    Built-in special cases (SPEC §4), placed where `days` allows:
      * a revision: `fair` republishes a target with a later issued_at;
      * an intraday revision of `good`, issued inside its target bucket
        before the bucket's actual is observed;
      * an exact duplicate of a `good` record (emits nothing);
      * an older revision of `poor` arriving after the newer (emits nothing);
      * a same-issued_at rewrite of `good` (later arrival wins, emits);
      * a late revision of `poor` issued after its target's actual;
      * a corrected actual (later observed_at the same evening) and an older
        actual for another bucket arriving after the winner;
      * on `shock_day`, every model predicts a 12 % jump (z-guard).
    Each bucket's actuals are all observed before any prediction issued on
    or after that day, so as-of results never depend on processing timing.
    """
    rng = random.Random(f"{seed}:{series}")
    prices = [level]
    for _ in range(days):
        prices.append(prices[-1] * math.exp(rng.gauss(0.0, 0.012)))
    data = SeriesData(series)
    for d in range(days + 1):
        data.actuals.append(Actual(series, day(d) + 21 * HOUR_MS, prices[d], source="e2e"))
        if d == 15 and days > 15:  # a correction at 21:30 wins over 21:00
            data.actuals.append(Actual(series, day(d) + 21 * HOUR_MS + 30 * 60_000, prices[d] * 1.004))
            data.notes["corrected_actual_day"] = d
        if d == 16 and days > 16:  # observed earlier, arrives later: loses
            data.actuals.append(Actual(series, day(d) + 20 * HOUR_MS, prices[d] * 0.97))
    late = None
    for d in range(days):
        target, issued = day(d + 1) + 12 * HOUR_MS, day(d) + 22 * HOUR_MS
        for model, (sigma, bias) in MODEL_QUALITY.items():
            if d + 1 == shock_day:
                value = prices[d] * 1.12 * (1 + rng.gauss(0.0, 0.002))
            else:
                value = prices[d + 1] * (1 + bias + rng.gauss(0.0, sigma))
            extra = {"lower": value * 0.98, "upper": value * 1.02, "model_version": "v1"} if model == "good" else {}
            p = Prediction(model, series, "1D", issued, target, value, **extra)
            data.predictions.append(p)
            if model == "good" and d == 24:
                data.predictions.append(p)  # exact duplicate
                data.notes["duplicate"] = p
            if model == "good" and d == 34:
                rewrite = Prediction(model, series, "1D", issued, target, value * 1.001, **extra)
                data.predictions.append(rewrite)
                data.notes["same_issued_rewrite"] = rewrite
            if model == "poor" and d == 29:
                older = Prediction(model, series, "1D", issued - 2 * HOUR_MS, target, value * 0.9)
                data.predictions.append(older)
                data.notes["older_revision"] = older
            if model == "poor" and d + 1 == 45:
                late = Prediction(model, series, "1D", day(45) + 22 * HOUR_MS, target, prices[45] * 1.001)
        if d == 19:
            fair = next(p for p in data.predictions if p.model_id == "fair" and p.issued_at == issued)
            rev = Prediction("fair", series, "1D", issued + HOUR_MS, fair.target_time, fair.value * 0.995)
            data.predictions.append(rev)
            data.notes["revision"] = rev
            # Issued at 10:00 inside its own target bucket, before that
            # bucket's actual (21:00): the window as of 10:00 holds the
            # bucket, but must not see its actual (SPEC §4 "No look-ahead").
            good = next(p for p in data.predictions if p.model_id == "good" and p.issued_at == issued)
            intraday = Prediction("good", series, "1D", day(d + 1) + 10 * HOUR_MS, good.target_time, good.value * 1.002)
            data.predictions.append(intraday)
            data.notes["intraday_revision"] = intraday
        if d == 45 and late is not None:
            # issued at 22:00 on day 45 for target day 45: after that day's actual
            data.predictions.append(late)
            data.notes["late_revision"] = late
    return data


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ------------------------------------------------------------- producing --


@dataclass
class Sent:
    topic: str
    key: Optional[bytes]
    value: bytes
    partition: int = -1
    offset: int = -1
    label: str = ""


def produce_all(kafka: KafkaHelper, records: Iterable[Sent]) -> list[Sent]:
    """Produce in order (per partition the order is kept: the producer is
    idempotent) and fill in each record's partition and offset."""
    sent = list(records)
    errors: list[str] = []

    def on_delivery(rec: Sent):
        def cb(err, msg):
            if err is not None:
                errors.append(f"{rec.label or rec.key!r}: {err}")
            else:
                rec.partition, rec.offset = msg.partition(), msg.offset()

        return cb

    for rec in sent:
        kafka.producer.produce(rec.topic, value=rec.value, key=rec.key, on_delivery=on_delivery(rec))
        kafka.producer.poll(0)
    kafka.flush()
    assert not errors, errors
    assert all(r.offset >= 0 for r in sent), "a record was not acknowledged"
    return sent


def encode_predictions(avro: AvroCodec, topic: str, preds: Iterable[Prediction]) -> list[Sent]:
    return [Sent(topic, p.series.encode(), avro.encode("Prediction", p.avro())) for p in preds]


def encode_actuals(avro: AvroCodec, topic: str, acts: Iterable[Actual]) -> list[Sent]:
    return [Sent(topic, a.series.encode(), avro.encode("Actual", a.avro())) for a in acts]


# --------------------------------------------------------------- waiting --


class GroupWatcher:
    """Reads a consumer group's committed offsets without joining it."""

    def __init__(self, kafka: KafkaHelper, group: str):
        self.kafka = kafka
        self.group = group
        self.c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False})

    def lag(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """Records between the committed offset and the log end, per partition
        (a partition that never had a record counts as caught up)."""
        tps = [TopicPartition(t, p) for t in topics for p in self.kafka.partitions(t)]
        out = {}
        for tp in self.c.committed(tps, timeout=scaled(10)):
            lo, hi = self.c.get_watermark_offsets(tp, timeout=scaled(10), cached=False)
            done = tp.offset if tp.offset >= 0 else lo
            out[(tp.topic, tp.partition)] = max(0, hi - done)
        return out

    def caught_up(self, topics: Iterable[str]) -> bool:
        return not any(self.lag(topics).values())

    def wait_caught_up(self, topics: Iterable[str], timeout: float, proc=None) -> None:
        topics = list(topics)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            lag = self.lag(topics)
            if not any(lag.values()):
                return
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.name} exited ({proc.proc.returncode}) with lag {lag}:\n{proc.log_tail(60)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"group {self.group} not caught up after {scaled(timeout):.0f}s: lag {lag}")
            time.sleep(0.1)

    def close(self) -> None:
        self.c.close()


def consume_until(kafka: KafkaHelper, topic: str, count: int, timeout: float, proc=None) -> list:
    """Read `topic` from the beginning until `count` records arrived; fail on
    the deadline (or when the worker process exits), saying how many came."""
    out: list = []
    c = kafka.consumer()
    try:
        c.assign([TopicPartition(topic, p, -2) for p in kafka.partitions(topic)])
        deadline = time.monotonic() + scaled(timeout)
        while len(out) < count:
            if proc is not None and not proc.alive():
                raise AssertionError(f"{proc.name} exited ({proc.proc.returncode}) after {len(out)} of {count} records on {topic}:\n{proc.log_tail(60)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(out)} of {count} records within {scaled(timeout):.0f}s")
            msg = c.poll(0.1)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            if msg.error():
                raise AssertionError(f"{topic}: {msg.error()}")
            out.append(msg)
    finally:
        c.close()
    return out


def wait_for_redis_key(r, pattern: str, timeout: float, what: str) -> list[bytes]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        keys = list(r.scan_iter(match=pattern, count=1000))
        if keys:
            return keys
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.0f}s waiting for {what} (no key matches {pattern!r})")
        time.sleep(0.05)


# ----------------------------------------------------------------- state --


def is_transient(key: bytes) -> bool:
    """Hold markers, and the partition epochs: a new owner takes a new epoch
    to fence the old one, which is bookkeeping, not state."""
    return key.endswith(b":held") or b":epoch:{" in key


def dump_state(r, prefix: str) -> dict[bytes, Any]:
    """Every non-transient key under `<prefix>:` in a canonical, comparable
    form (type, content, and whether it has a TTL)."""
    out: dict[bytes, Any] = {}
    for key in sorted(r.scan_iter(match=f"{prefix}:*", count=1000)):
        if is_transient(key):
            continue
        t = r.type(key).decode()
        if t == "string":
            v: Any = r.get(key)
        elif t == "hash":
            # The epoch fields of base:wm change with every assignment.
            v = sorted(kv for kv in r.hgetall(key).items() if not kv[0].startswith(b"e|"))
        elif t == "zset":
            v = r.zrange(key, 0, -1, withscores=True)
        elif t == "set":
            v = sorted(r.smembers(key))
        elif t == "list":
            v = r.lrange(key, 0, -1)
        elif t == "none":
            continue
        else:
            v = r.dump(key)
        out[key] = (t, v, r.pttl(key) > 0)
    return out


# ------------------------------------------------------------- forecasts --


def decode_forecasts(avro: AvroCodec, msgs: list) -> list[tuple[str, dict, Any]]:
    """(key, decoded EnsembleForecast, message) for each message, checking
    the framing's schema id (5)."""
    out = []
    for m in msgs:
        assert m.value()[:5] == b"\x00\x00\x00\x00\x05", f"forecast not framed with schema id 5: {m.value()[:8]!r}"
        out.append((m.key().decode(), avro.decode(m.value(), "EnsembleForecast"), m))
    return out


def bytes_per_key(msgs: list) -> dict[bytes, list[bytes]]:
    """Per key, the values in log order (one key lives in one partition)."""
    out: dict[bytes, list[bytes]] = {}
    for m in sorted(msgs, key=lambda m: (m.partition(), m.offset())):
        out.setdefault(m.key(), []).append(m.value())
    return out


def new_group(test_id: str, what: str) -> str:
    return unique(f"{test_id}.{what}")
