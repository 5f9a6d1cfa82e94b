"""SPEC §9.2 over a history longer than `state.retention_days`.

"Replay is checked with several input partitions and several workers, over
histories longer than every retention setting: trimming old state must never
remove what a held or not-yet-applied record will still need as of its own
event time."

The input is a complete daily history, produced in full before any worker
starts (a catch-up or a replay from the start): 6 series x 4 models x 100
days, with `state.retention_days` = 40 and `window.days` = 30. Because the
whole history is already in the topics, a worker can read a series' actuals
long before that series' predictions; if it trims by the newest actual it has
seen, the windows of the early targets are empty when their predictions are
finally applied (cold_start, no z-score), and how much is lost depends on how
the partitions are read. The same topics are replayed three times, each into
an empty Redis key space and a fresh output topic:

  (a) 1 partition per input topic, 1 worker;
  (b) 3 partitions per input topic, 1 worker: the predictions partitioned
      by crc32 (librdkafka's default partitioner) and the actuals by
      murmur2 (the Java client's default), so a series' two streams are in
      different partitions and no two series share both (SPEC §2:
      "producers on the different input topics may use different
      partitioners");
  (c) the topics of (b), 2 workers in one consumer group, started together
      (a gate consumer makes sure both are members before the input is
      divided up, see GroupGate).

The three runs must give the same forecasts, byte for byte per (key,
revision); every applied prediction emits exactly one revision; after the
warm-up no forecast is cold_start or lacks a z-score; and every forecast
equals the one reference_model.py computes from the full history (which has
no retention at all: with window.days <= state.retention_days, retention
must not be observable).

Hold releases. `join.max_wait_ms` is 10 minutes, so no prediction is ever
forced out by wall-clock time: each is released only when its series'
actuals reach its issued_at. A prediction issued at 22:00 on day d (for
day d+1) is released by the actual of day d+1, observed at 21:00 on day d+1.
The history therefore ends with one actual more than the predictions need for
scoring: the last predictions (issued on day 99, target day 100) are released
by the actual of day 100, the final actual of each series. Nothing is left
held, so every prediction of the input is counted and compared.

No sleeps: every wait is on a condition (a forecast count, committed offsets
at the log end) with a deadline scaled by CHORUS_TIMEOUT_MULT.
"""

from __future__ import annotations

import math
import random
import re
import time
import zlib
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from conftest import TOPIC_ROLES, ChorusProcess, KafkaHelper, scaled
from e2e_support import HOUR_MS, GroupWatcher, Sent, day, decode_forecasts, new_group
from reference_model import DAY_MS, Actual, Config, Prediction, expected_forecasts, forecast_key
from test_e2e_forecasts import compare_forecast

#: Series chosen so that each mapping below puts two series in each of the
#: three partitions, and no two series share both partitions (checked).
SERIES = {"ZL": 50.0, "CL": 80.0, "NG": 3.2, "MSFT": 420.0, "GC": 2300.0, "TSLA": 240.0}
#: The four models: relative noise (sigma) and bias of their predictions.
MODELS = {"lstm": (0.003, 0.0), "arima_garch": (0.007, 0.001), "gb": (0.015, -0.004), "naive": (0.03, 0.012)}
DAYS = 100  # targets day 1 .. day 100; actuals day 0 .. day 100
RETENTION_DAYS = 40
WINDOW_DAYS = 30
PARTITIONS = 3
#: From this target day on, every model has >= weights.min_samples (5)
#: scored points and the window >= validation.min_samples (10) actuals.
WARM_DAY = 10
SEED = 20260921

INPUT_ROLES = ("predictions", "actuals")
#: Every output role gets fresh topics per run, not only the forecasts.
OUTPUT_ROLES = tuple(r for r in TOPIC_ROLES if r not in ("predictions", "actuals", "indicators", "feature_importance"))


# ------------------------------------------------------------------ data --


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, as the Java client's default partitioner uses it."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n = len(data) // 4
    for i in range(n):
        k = (int.from_bytes(data[4 * i : 4 * i + 4], "little") * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def prediction_partition(series: str) -> int:
    return zlib.crc32(series.encode()) % PARTITIONS


def actual_partition(series: str) -> int:
    return (murmur2(series.encode()) & 0x7FFFFFFF) % PARTITIONS


def history() -> tuple[list[Actual], list[Prediction]]:
    """Daily random walks: actual of day d observed at 21:00 UTC on day d
    (d = 0..DAYS); each model's prediction for day d+1 issued at 22:00 on
    day d (d = 0..DAYS-1), target 12:00 inside day d+1's bucket. Both lists
    are in event-time order, series interleaved, as a daily feed writes them."""
    rng = random.Random(SEED)
    prices = {}
    for s, level in SERIES.items():
        p = [level]
        for _ in range(DAYS):
            p.append(p[-1] * math.exp(rng.gauss(0.0, 0.015)))
        prices[s] = p
    actuals = [Actual(s, day(d) + 21 * HOUR_MS, prices[s][d], source="replay") for d in range(DAYS + 1) for s in SERIES]
    preds = [
        Prediction(m, s, "1D", day(d) + 22 * HOUR_MS, day(d + 1) + 12 * HOUR_MS, prices[s][d + 1] * (1 + bias + rng.gauss(0.0, sigma)))
        for d in range(DAYS)
        for s in SERIES
        for m, (sigma, bias) in MODELS.items()
    ]
    return actuals, preds


def encode(avro, topics, actuals: list[Actual], preds: list[Prediction], partitioned: bool) -> list[Sent]:
    """Records with an explicit partition each (0 for 1-partition topics)."""
    out = []
    for a in actuals:
        part = actual_partition(a.series) if partitioned else 0
        out.append(Sent(topics.actuals, a.series.encode(), avro.encode("Actual", a.avro()), partition=part))
    for p in preds:
        part = prediction_partition(p.series) if partitioned else 0
        out.append(Sent(topics.predictions, p.series.encode(), avro.encode("Prediction", p.avro()), partition=part))
    return out


def produce_to_partitions(kafka: KafkaHelper, records: list[Sent]) -> None:
    """Produce each record to its own `partition` (the idempotent producer
    keeps the order within a partition) and check where it landed."""
    errors: list[str] = []

    def cb(rec: Sent):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"{rec.key!r}: {err}")
            elif msg.partition() != rec.partition:
                errors.append(f"{rec.key!r} landed in partition {msg.partition()}, not {rec.partition}")
            else:
                rec.offset = msg.offset()

        return on_delivery

    for rec in records:
        kafka.producer.produce(rec.topic, value=rec.value, key=rec.key, partition=rec.partition, on_delivery=cb(rec))
        kafka.producer.poll(0)
    kafka.flush()
    assert not errors, errors[:5]
    assert all(r.offset >= 0 for r in records), "a record was not acknowledged"


# --------------------------------------------------------------- running --


def wait_for_forecasts(kafka: KafkaHelper, topic: str, count: int, timeout: float, procs: list[ChorusProcess]) -> None:
    """Read `topic` (read_committed) until `count` records arrived; fail on
    the deadline or when a worker exits, saying how many came."""
    got = 0
    c = kafka.consumer()
    try:
        c.assign([TopicPartition(topic, p, -2) for p in kafka.partitions(topic)])
        deadline = time.monotonic() + scaled(timeout)
        while got < count:
            for p in procs:
                if not p.alive():
                    raise AssertionError(f"{p.name} exited ({p.proc.returncode}) after {got} of {count} forecasts:\n{p.log_tail(60)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {got} of {count} forecasts within {scaled(timeout):.0f}s")
            msg = c.poll(0.1)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            if msg.error():
                raise AssertionError(f"{topic}: {msg.error()}")
            got += 1
    finally:
        c.close()


ASSIGNED = re.compile(r'partitions assigned"? count=[1-9]')


class GroupGate:
    """A plain consumer that joins the workers' group first and holds
    partitions, so that N workers started together all become members
    before the input is divided up among them.

    Without it, with the whole input already in the topics and the broker's
    group.initial.rebalance.delay.ms at 0, the first worker to join can take
    every partition and finish the replay (about 2 s) before the second one
    is a member, and "2 workers" silently becomes 1. While the gate is a
    member it owns some partitions and consumes nothing of them (no offsets
    committed), so their records wait; once every worker has been assigned
    partitions the gate leaves, and its partitions go to the workers, who
    read them from the start. The handovers are part of what SPEC §9.2
    covers (any worker can take over any partition)."""

    def __init__(self, kafka: KafkaHelper, group: str, topics: list[str]):
        # The workers' assignors (eager): the gate must share a protocol.
        self.c = kafka.consumer(**{"group.id": group, "partition.assignment.strategy": "range,roundrobin"})
        self.c.subscribe(topics)
        deadline = time.monotonic() + scaled(60)
        while not self.c.assignment():
            if time.monotonic() > deadline:
                raise AssertionError(f"the gate consumer got no partitions of {topics} in group {group}")
            self.c.poll(0.1)

    def open_when_assigned(self, procs: list[ChorusProcess], timeout: float) -> None:
        """Keep polling (an eager member must rejoin every rebalance) until
        every worker has logged an assignment; then leave the group."""
        try:
            deadline = time.monotonic() + scaled(timeout)
            while not all(ASSIGNED.search(p.log()) for p in procs):
                for p in procs:
                    if not p.alive():
                        raise AssertionError(f"{p.name} exited ({p.proc.returncode}):\n{p.log_tail(60)}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"not every worker was assigned partitions within {scaled(timeout):.0f}s")
                self.c.poll(0.1)
        finally:
            self.c.close()


def replay(kafka, chorus, chorus_config, topic_factory, test_id, redis_prefix, name, inputs, workers, expected_count, extra=None, outputs_out=None):
    """One replay of `inputs` from the start into a fresh key space and fresh
    output topics; returns the forecast messages and the workers' logs (and
    puts the output topics in `outputs_out`, when given)."""
    outputs = topic_factory(partitions=PARTITIONS, roles=OUTPUT_ROLES)
    group = new_group(test_id, name)
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg.update(
        {
            "kafka.group.id": group,
            "redis.key_prefix": f"{redis_prefix}{name}",
            "window.days": WINDOW_DAYS,
            "state.retention_days": RETENTION_DAYS,
            # Never release a hold on wall-clock time (see the module doc).
            "join.max_wait_ms": 600000,
        }
    )
    cfg.update(extra or {})
    if outputs_out is not None:
        outputs_out.append(outputs)
    gate = GroupGate(kafka, group, [inputs.predictions, inputs.actuals]) if workers > 1 else None
    procs = [chorus(cfg, name=f"{name}-worker{i}") for i in range(1, workers + 1)]
    if gate is not None:
        gate.open_when_assigned(procs, 60)
    watch = GroupWatcher(kafka, group)
    try:
        wait_for_forecasts(kafka, outputs.forecasts, expected_count, 120, procs)
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, procs[0])
    finally:
        watch.close()
    for p in procs:
        assert p.stop() == 0, f"{p.name} did not stop cleanly:\n{p.log_tail(60)}"
    logs = [p.log() for p in procs]
    msgs = kafka.read_to_end(outputs.forecasts)
    assert kafka.read_to_end(outputs.dlq) == [], f"run {name}: valid input was dead-lettered"
    return msgs, logs


# ---------------------------------------------------------------- checks --


def by_key_revision(avro, msgs) -> tuple[dict[tuple[str, int], bytes], dict[tuple[str, int], dict], list]:
    """(key, revision) -> raw value bytes and -> decoded record; and the
    (key, revision) pairs emitted more than once."""
    raw: dict[tuple[str, int], bytes] = {}
    dec: dict[tuple[str, int], dict] = {}
    dups = []
    for key, rec, m in decode_forecasts(avro, msgs):
        kr = (key, rec["revision"])
        if kr in raw:
            dups.append(kr)
            continue
        raw[kr], dec[kr] = m.value(), rec
    return raw, dec, dups


def target_day(rec: dict) -> int:
    return (rec["target_time"] - day(0)) // DAY_MS


def test_replay_past_retention_is_deterministic(kafka, avro, topic_factory, chorus, chorus_config, redis_prefix, test_id):
    """SPEC §9.2: a 100-day history replayed with state.retention_days=40
    gives byte-identical forecasts with 1 partition and 1 worker, 3
    partitions and 1 worker, and 3 partitions and 2 workers; one revision
    per applied prediction; no cold_start (and a z-score) after the warm-up,
    early targets included; and the reference model's values."""
    # The partitioning claims of the module doc.
    pp = {s: prediction_partition(s) for s in SERIES}
    ap = {s: actual_partition(s) for s in SERIES}
    for mapping in (pp, ap):
        assert sorted(mapping.values()) == [0, 0, 1, 1, 2, 2], mapping
    assert all(pp[s] != pp[t] or ap[s] != ap[t] for s in SERIES for t in SERIES if s < t), (pp, ap)
    assert DAYS >= 2 * RETENTION_DAYS and RETENTION_DAYS >= WINDOW_DAYS

    actuals, preds = history()
    assert len(preds) == len(SERIES) * len(MODELS) * DAYS and len(actuals) == len(SERIES) * (DAYS + 1)
    # Every prediction is released by an actual (no wall-clock release).
    newest = {s: max(a.observed_at for a in actuals if a.series == s) for s in SERIES}
    assert all(p.issued_at <= newest[p.series] for p in preds)

    expected = expected_forecasts(Config(window_days=WINDOW_DAYS), preds, actuals)
    # Each (series, model, day) prediction is applied once and emits one revision.
    assert len(expected) == len(preds)
    # The data exercises the warm-up and then leaves it.
    assert any(f["fallback"] == "cold_start" for f in expected if target_day(f) < WARM_DAY)
    assert all(f["fallback"] is None and f["z_score"] is not None for f in expected if target_day(f) >= WARM_DAY)
    want = {(forecast_key(f), f["revision"]): f for f in expected}
    assert len(want) == len(expected)

    one = topic_factory(partitions=1, roles=INPUT_ROLES)
    three = topic_factory(partitions=PARTITIONS, roles=INPUT_ROLES)
    produce_to_partitions(kafka, encode(avro, one, actuals, preds, partitioned=False))
    produce_to_partitions(kafka, encode(avro, three, actuals, preds, partitioned=True))

    runs: dict[str, Any] = {}
    t0 = time.monotonic()
    for name, inputs, workers, what in (
        ("a", one, 1, "1 partition per input topic, 1 worker"),
        ("b", three, 1, "3 partitions per input topic, 1 worker"),
        ("c", three, 2, "3 partitions per input topic, 2 workers"),
    ):
        t = time.monotonic()
        msgs, logs = replay(kafka, chorus, chorus_config, topic_factory, test_id, redis_prefix, name, inputs, workers, len(preds))
        raw, dec, dups = by_key_revision(avro, msgs)
        runs[name] = {"what": what, "n": len(msgs), "raw": raw, "dec": dec, "dups": dups, "logs": logs, "secs": time.monotonic() - t}
    print(f"three replays in {time.monotonic() - t0:.1f}s: " + ", ".join(f"{n} {r['secs']:.1f}s" for n, r in runs.items()))

    # Everything that is wrong, per run, in one message.
    problems: list[str] = []
    base = runs["a"]
    for name, r in runs.items():
        label = f"run ({name}) [{r['what']}]"
        if r["n"] != len(preds) or r["dups"]:
            problems.append(
                f"{label}: {r['n']} forecasts, expected {len(preds)} (one per applied prediction); "
                f"{len(r['dups'])} (key, revision) pairs emitted twice, e.g. {r['dups'][:3]}"
            )
        missing, extra = sorted(set(want) - set(r["raw"])), sorted(set(r["raw"]) - set(want))
        if missing or extra:
            problems.append(f"{label}: {len(missing)} (key, revision) missing, e.g. {missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]}")
        if name != "a":
            common = set(base["raw"]) & set(r["raw"])
            differ = sorted(kr for kr in common if base["raw"][kr] != r["raw"][kr])
            only = len(set(base["raw"]) ^ set(r["raw"]))
            if differ or only:
                days = sorted({target_day(r["dec"][kr]) for kr in differ}) or [None]
                problems.append(
                    f"{label}: {len(differ)} of {len(common)} (key, revision) pairs in both runs differ byte-wise "
                    f"from run (a) (targets from day {days[0]} to day {days[-1]}, e.g. {differ[:3]}); "
                    f"{only} pairs are in only one of the two runs"
                )
        cold = [kr for kr, f in r["dec"].items() if target_day(f) >= WARM_DAY and f["fallback"] is not None]
        no_z = [kr for kr, f in r["dec"].items() if target_day(f) >= WARM_DAY and f["z_score"] is None]
        if cold or no_z:
            early = sum(1 for kr in cold if target_day(r["dec"][kr]) < RETENTION_DAYS)
            problems.append(
                f"{label}: after the warm-up (target day >= {WARM_DAY}) {len(cold)} forecasts have a fallback "
                f"({early} of them in the first retention period, target day < {RETENTION_DAYS}), "
                f"{len(no_z)} have no z_score; e.g. {[(kr, r['dec'][kr]['fallback']) for kr in cold[:3]]}"
            )
        wrong = []
        for kr in sorted(set(want) & set(r["dec"])):
            diff = compare_forecast(r["dec"][kr], want[kr])
            if diff:
                wrong.append(f"{kr}: {'; '.join(diff[:3])}")
        if wrong:
            problems.append(f"{label}: {len(wrong)} forecasts differ from the reference model, e.g.\n    " + "\n    ".join(wrong[:5]))
    assert not problems, "replay past state.retention_days is not deterministic:\n" + "\n".join(problems)

    # Run (c) really had two workers: each applied records (the worker's
    # "stopped" line counts them).
    for i, log in enumerate(runs["c"]["logs"], start=1):
        applied = re.findall(r'msg="?stopped"?.* applied=(\d+)', log)
        assert applied and int(applied[-1]) > 0, f"c-worker{i} applied no records; run (c) did not test two workers"


# ------------------------------------------------------------ monitoring --

#: Monitoring settings under which this history raises alerts of several
#: kinds and closes validation windows: retention 40 >= window 30 +
#: validation windows of 7 days + 1; a configured baseline the ensemble's
#: daily MAPE (about 0.3 %) crosses both ways; the other thresholds at
#: their defaults.
MONITORING = {
    "alerts.enabled": 1,
    "alerts.baseline_mape": "0.3",
    "alerts.mape_degradation.pp": 0,
    "alerts.performance_drift.pp": 0,
    "validation.window_days": 7,
    "validation.min_test_points": 5,
}


def test_replay_with_monitoring_is_deterministic(kafka, avro, topic_factory, chorus, chorus_config, redis_prefix, test_id):
    """Issue 10's determinism test: the same history replayed with monitoring
    on, 1 partition and 1 worker, 3 partitions and 1 worker, 3 partitions
    and 2 workers, gives the same forecasts (byte for byte per key and
    revision), the same alerts (per fingerprint, the same records in the same
    order) and the same validation windows (per key, in order)."""
    actuals, preds = history()
    one = topic_factory(partitions=1, roles=INPUT_ROLES)
    three = topic_factory(partitions=PARTITIONS, roles=INPUT_ROLES)
    produce_to_partitions(kafka, encode(avro, one, actuals, preds, partitioned=False))
    produce_to_partitions(kafka, encode(avro, three, actuals, preds, partitioned=True))

    def per_key(msgs):
        out: dict[bytes, list[bytes]] = {}
        for m in msgs:
            out.setdefault(m.key(), []).append(m.value())
        return out

    runs = {}
    for name, inputs, workers in (("ma", one, 1), ("mb", three, 1), ("mc", three, 2)):
        outs: list = []
        msgs, _ = replay(kafka, chorus, chorus_config, topic_factory, test_id, redis_prefix, name, inputs, workers, len(preds), MONITORING, outs)
        raw, _, dups = by_key_revision(avro, msgs)
        assert not dups, f"run {name}: forecasts emitted twice: {dups[:3]}"
        runs[name] = {
            "forecasts": raw,
            "alerts": per_key(kafka.read_to_end(outs[0].alerts)),
            "windows": per_key(kafka.read_to_end(outs[0].validation)),
        }
    base = runs["ma"]
    alerts = [avro.decode(v, "Alert") for vs in base["alerts"].values() for v in vs]
    kinds = {a["type"] for a in alerts}
    n_windows = sum(len(v) for v in base["windows"].values())
    # Not vacuous: several kinds of alert, and windows for every series.
    assert len(alerts) >= 10 and len(kinds) >= 3, sorted(kinds)
    assert n_windows >= len(SERIES) * 5, n_windows
    for name in ("mb", "mc"):
        r = runs[name]
        assert r["forecasts"] == base["forecasts"], f"run {name}: forecasts differ from run ma"
        if r["alerts"] != base["alerts"]:
            diff = []
            for k in sorted(set(r["alerts"]) | set(base["alerts"])):
                a = [avro.decode(v, "Alert") for v in base["alerts"].get(k, [])]
                b = [avro.decode(v, "Alert") for v in r["alerts"].get(k, [])]
                if a != b:
                    brief = lambda xs: [(x["state"], x["event_time"], x["value"], x["details"].get("scored_targets")) for x in xs]  # noqa: E731
                    diff.append(f"{k!r}: ma {brief(a)} vs {name} {brief(b)}")
            raise AssertionError(f"run {name}: alerts differ from run ma:\n" + "\n".join(diff[:6]))
        assert r["windows"] == base["windows"], f"run {name}: validation windows differ from run ma"
