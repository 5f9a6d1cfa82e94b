#!/usr/bin/env python3
"""The Python peer: what a user might write instead of Chorus.

The same job in plain Python with confluent-kafka, fastavro and redis-py:
consume predictions and actuals, apply them to Redis in one pipelined round
trip per batch, compute each changed group's ensemble forecast (SPEC §5.1
exp_inv_mape weights with cold start, the raw value, the §5.2 z-guard with
the `change` reference, shrink, clipping) and produce EnsembleForecast
records, committing input offsets after the outputs are flushed.

Decisions (see docs/performance.md):
  * State goes through Redis Functions, as Chorus does, but the peer's own
    frozen copy (peer_state.lua: Chorus's walking-skeleton functions,
    renamed): atomic idempotent upserts, and every prediction re-reads its
    windows. So the peer is as correct as Chorus and its Redis work is what
    a straightforward implementation does.
  * Delivery is at-least-once (flush, then a synchronous commit), without
    Kafka transactions: cheaper than Chorus's default exactly-once.
  * Holds (SPEC §9.2): a prediction whose series' actuals have not reached
    its issued_at is carried to the next batch, and forced after
    --join-max-wait-ms, like Chorus.
  * Input validation is the decoder's (fastavro); the benchmark's input is
    clean, so there is no dead-letter path.
  * Sums run in the same order as Chorus's C code, so on the same inputs the
    peer's doubles normally agree with Chorus's to the last bit; the
    benchmark's comparison still allows a relative 1e-9.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import struct
import sys
import time
from pathlib import Path

import fastavro
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE.parents[1] / "schemas"


def load_schema(stem: str):
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "logicalType"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return fastavro.parse_schema(strip(json.loads((SCHEMAS / f"{stem}.avsc").read_text())))


PREDICTION = load_schema("prediction")
ACTUAL = load_schema("actual")
FORECAST = load_schema("ensemble_forecast")


def fmt(v: float) -> str:
    """The value text Chorus sends to Redis (C's %.17g)."""
    return "%.17g" % v


# ------------------------------------------------------------ the maths --


def stats(points):
    """(n_ape, mape): mean APE in percent over the pairs with actual != 0,
    summed in bucket order (SPEC §4)."""
    ape_sum = 0.0
    n_ape = 0
    for p, a in points:
        if a == 0.0:
            continue
        ape_sum += 100.0 * abs(p - a) / abs(a)
        n_ape += 1
    return n_ape, (ape_sum / n_ape if n_ape else 0.0)


def weights_exp_inv_mape(st, min_samples):
    """SPEC §5.1: exp(1/max(mape, 0.1)); cold models get the warm mean;
    all cold: equal weights and fallback cold_start."""
    n = len(st)
    w = [0.0] * n
    warm_sum, n_warm = 0.0, 0
    for i, (n_ape, mape) in enumerate(st):
        if n_ape >= min_samples:
            w[i] = math.exp(1.0 / max(mape, 0.1))
            warm_sum += w[i]
            n_warm += 1
    fallback = None
    if n_warm == 0:
        w = [1.0] * n
        fallback = "cold_start"
    elif n_warm < n:
        cold = warm_sum / n_warm
        for i, (n_ape, _) in enumerate(st):
            if n_ape < min_samples:
                w[i] = cold
    total = 0.0
    for x in w:
        total += x
    return [x / total for x in w], fallback


def stddev(xs):
    n = len(xs)
    if n < 2:
        return 0.0
    s = 0.0
    for x in xs:
        s += x
    mean = s / n
    ss = 0.0
    for x in xs:
        d = x - mean
        ss += d * d
    return math.sqrt(ss / (n - 1))


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[(n - 1) // 2] if n % 2 else (s[(n - 1) // 2] + s[n // 2]) / 2.0


def guard(raw, target_bucket, actuals, min_samples, z_max, shrink):
    """SPEC §5.2 with the `change` reference: (value, z or None, z_adjusted)."""
    n = len(actuals)
    if n < 2 or n < min_samples:
        return raw, None, False
    values = [v for _, v in actuals]
    sigma = stddev([values[i + 1] - values[i] for i in range(n - 1)])
    if not (sigma > 0.0) or not math.isfinite(sigma):
        return raw, None, False
    med = median([float(actuals[i + 1][0]) - float(actuals[i][0]) for i in range(n - 1)])
    k = 1.0
    if med > 0.0:
        q = (float(target_bucket) - float(actuals[-1][0])) / med
        q = math.floor(abs(q) + 0.5) * (1.0 if q >= 0 else -1.0)  # half away from zero
        if q > 1.0 and math.isfinite(q):
            k = q
    last = values[-1]
    z = (raw - last) / (sigma * math.sqrt(k))
    if not math.isfinite(z):
        return raw, None, False
    if abs(z) > z_max and shrink < 1.0:
        return last + shrink * (raw - last), z, True
    return raw, z, False


def forecast(series, horizon, bucket, reply, a):
    """Build the EnsembleForecast dict from a peer_prediction 'applied' reply:
    {'applied', revision, asof, {model, issued, value, ...}, {points...},
     {bucket, value, ...}, {expected...}}."""
    revision, asof = int(reply[1]), int(reply[2])
    flat, scores, acts, expected = reply[3], reply[4], reply[5], reply[6]
    models = []
    for i in range(len(flat) // 3):
        sc = scores[i]
        pts = [(float(sc[j]), float(sc[j + 1])) for j in range(0, len(sc), 2)]
        models.append((flat[3 * i].decode(), float(flat[3 * i + 2]), pts))
    models.sort(key=lambda m: m[0].encode())
    st = [stats(m[2]) for m in models]
    w, fallback = weights_exp_inv_mape(st, a.min_samples)
    raw = 0.0
    for wi, m in zip(w, models):
        raw += wi * m[1]
    actuals = [(int(acts[j]), float(acts[j + 1])) for j in range(0, len(acts), 2)]
    value, z, adjusted = guard(raw, bucket, actuals, a.validation_min_samples, a.z_max, a.shrink)
    present = [m[0] for m in models]
    expected = sorted((x.decode() for x in expected), key=str.encode)
    return {
        "series": series,
        "horizon": horizon,
        "target_time": bucket,
        "issued_at": asof,
        "revision": revision,
        "value": value,
        "raw_value": raw,
        "weights": {m: wi for m, wi in zip(present, w)},
        "models_expected": expected,
        "models_present": present,
        "complete": set(expected) <= set(present),
        "weighting_method": "exp_inv_mape",
        "profile": "baseline",
        "regime": None,
        "z_score": z,
        "z_adjusted": adjusted,
        "clipped": False,
        "fallback": fallback,
    }


# ------------------------------------------------------------ the loop --


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--actuals", required=True)
    ap.add_argument("--forecasts", required=True)
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--prefix", default="peer")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--batch-wait-ms", type=int, default=100)
    ap.add_argument("--window-days", type=int, default=30)
    ap.add_argument("--retention-days", type=int, default=100)
    ap.add_argument("--resolution-ms", type=int, default=86_400_000)
    ap.add_argument("--join-max-wait-ms", type=int, default=5000)
    ap.add_argument("--min-samples", type=int, default=5)
    ap.add_argument("--validation-min-samples", type=int, default=10)
    ap.add_argument("--z-max", type=float, default=3.0)
    ap.add_argument("--shrink", type=float, default=0.5)
    ap.add_argument("--forecast-schema-id", type=int, default=5)
    a = ap.parse_args()

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    r = redis.Redis(host="127.0.0.1", port=a.redis_port)
    r.function_load((HERE / "peer_state.lua").read_text(), replace=True)
    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range,roundrobin",
        }
    )
    producer = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    consumer.subscribe([a.predictions, a.actuals])

    window_ms = str(a.window_days * 86_400_000)
    retention_ms = str(a.retention_days * 86_400_000)
    header = b"\x00" + struct.pack(">I", a.forecast_schema_id)
    instance = f"peer-{os.getpid()}"
    held: list[dict] = []
    positions: dict[tuple[str, int], int] = {}  # next offset to commit
    committed: dict[tuple[str, int], int] = {}
    seq = 0
    n_forecasts = 0

    while not stop:
        msgs = consumer.consume(num_messages=a.batch, timeout=a.batch_wait_ms / 1000.0)
        fresh = []
        for m in msgs:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(f"peer: consume error {m.error()}", file=sys.stderr)
                continue
            topic, part, off = m.topic(), m.partition(), m.offset()
            positions[(topic, part)] = off + 1
            is_pred = topic == a.predictions
            rec = fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), PREDICTION if is_pred else ACTUAL)
            t = rec["target_time"] if is_pred else rec["observed_at"]
            fresh.append(
                {"pred": is_pred, "topic": topic, "part": part, "off": off, "rec": rec,
                 "bucket": t // a.resolution_ms * a.resolution_ms, "held_since": 0.0}
            )
        entries = held + fresh
        held = []
        if entries:
            seq += 1
            batch_id = f"{instance}-{seq}"
            now = time.monotonic()
            pipe = r.pipeline(transaction=False)
            for e in entries:
                rec = e["rec"]
                base = f"{a.prefix}:{{{rec['series']}}}"
                wm = f"{e['topic']}|{e['part']}"
                if e["pred"]:
                    force = e["held_since"] and (now - e["held_since"]) * 1000 >= a.join_max_wait_ms
                    iss, val = str(rec["issued_at"]), fmt(rec["value"])
                    lo = fmt(rec["lower"]) if rec["lower"] is not None else ""
                    hi = fmt(rec["upper"]) if rec["upper"] is not None else ""
                    mv = rec["model_version"]
                    record = f"{iss}|{val}|{lo}|{hi}|{'v' + mv if mv is not None else '-'}"
                    pipe.execute_command(
                        "FCALL", "peer_prediction", 1, base, wm, e["off"], batch_id, "1" if force else "0",
                        rec["horizon"], rec["model_id"], e["bucket"], iss, val, record, window_ms,
                        retention_ms, "1",
                    )
                else:
                    pipe.execute_command(
                        "FCALL", "peer_actual", 1, base, wm, e["off"], e["bucket"],
                        str(rec["observed_at"]), fmt(rec["value"]), retention_ms,
                    )
            replies = pipe.execute()
            for e, rep in zip(entries, replies):
                status = rep[0]
                if status == b"applied" and e["pred"]:
                    rec = e["rec"]
                    f = forecast(rec["series"], rec["horizon"], e["bucket"], rep, a)
                    buf = io.BytesIO()
                    buf.write(header)
                    fastavro.schemaless_writer(buf, FORECAST, f)
                    key = f"{rec['series']}|{rec['horizon']}|{e['bucket']}"
                    while True:
                        try:
                            producer.produce(a.forecasts, key=key, value=buf.getvalue())
                            break
                        except BufferError:
                            producer.poll(0.05)
                    n_forecasts += 1
                elif status == b"hold":
                    if not e["held_since"]:
                        e["held_since"] = now
                    held.append(e)
            producer.flush()
        # Commit what is delivered, never past a held record.
        offsets = []
        for tp, nxt in positions.items():
            for e in held:
                if (e["topic"], e["part"]) == tp and e["off"] < nxt:
                    nxt = e["off"]
            if committed.get(tp, -1) < nxt:
                offsets.append(TopicPartition(tp[0], tp[1], nxt))
                committed[tp] = nxt
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()
    producer.flush(10)
    print(f"peer: stopped batches={seq} applied=0 forecasts={n_forecasts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
