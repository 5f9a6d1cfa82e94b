"""emit.mode=complete (SPEC §5) end to end: real Kafka, real Redis, `chorus run`.

The data set (`complete_history`) is a few daily series with two horizons,
1D (target day d+1) and 2D (target day d+2), and the configured models
good, fair and poor; every prediction is issued at 22:00 on day d, after
day d's actual (21:00), except where a case says otherwise:

  * most groups get every model: complete, one emission, complete=true;
  * 1D day GAP_DAY: poor never publishes. The group closes at day GAP_DAY's
    actual and is emitted (min_models 2) or not (min_models 3) by the next
    prediction of the series;
  * 1D day EARLY_DAY: poor never publishes and fair's prediction is issued
    at 20:00 the day before, before that day's actual: it is released by
    that actual and races with day EARLY_DAY's actual, which closes the
    group; the emission holds fair however the race goes;
  * 1D day INTRADAY_DAY: poor publishes only at 12:00 inside the target
    day. At 10:00 a 1D prediction for the next day, issued after the target
    time, closes the group: it is emitted with good and fair (revision 1,
    min_models 2) and again with poor (revision 2, a late revision after
    the emission);
  * 1D day REVISION_DAY: complete, then fair revises it: revision 2;
  * the 1D predictions stop after target day LAST_1D (its group without
    poor), the 2D ones go on two more days: only an actual (day LAST_1D's)
    closes it, and a 2D prediction emits it.

Every forecast is compared field by field with reference_model.py
(emit_mode="complete"), and the tests check the cases by name as well.
"""

from __future__ import annotations

import math
import random

from conftest import wait_until
from e2e_support import (
    HOUR_MS,
    GroupWatcher,
    Sent,
    bytes_per_key,
    consume_until,
    day,
    decode_forecasts,
    new_group,
    produce_all,
)
from reference_model import Actual, Config, Prediction, expected_forecasts, forecast_key
from test_e2e_forecasts import compare_forecast
from test_replay_determinism import GroupGate, actual_partition, prediction_partition, produce_to_partitions

MODELS = {"good": (0.002, 0.0), "fair": (0.008, 0.0), "poor": (0.03, 0.02)}
CONFIGURED = ["fair", "good", "poor"]
SERIES = {"ZL": 50.0, "CL": 80.0, "NG": 3.2, "MSFT": 420.0, "GC": 2300.0, "TSLA": 240.0}
DAYS = 24  # actuals day 0 .. DAYS
GAP_DAY, EARLY_DAY, INTRADAY_DAY, REVISION_DAY, LAST_1D = 8, 11, 14, 17, DAYS - 2


def complete_history(series: dict[str, float]) -> tuple[list[Actual], list[Prediction]]:
    rng = random.Random(20261207)
    actuals, preds = [], []
    prices = {}
    for s, level in series.items():
        p = [level]
        for _ in range(DAYS + 2):
            p.append(p[-1] * math.exp(rng.gauss(0.0, 0.012)))
        prices[s] = p
    for d in range(DAYS + 1):
        for s in series:
            actuals.append(Actual(s, day(d) + 21 * HOUR_MS, prices[s][d], source="complete"))
    for d in range(DAYS):
        for s in series:
            for horizon, ahead in (("1D", 1), ("2D", 2)):
                target = d + ahead
                if horizon == "1D" and target > LAST_1D:
                    continue
                for model, (sigma, bias) in MODELS.items():
                    value = prices[s][target] * (1 + bias + rng.gauss(0.0, sigma))
                    issued = day(d) + 22 * HOUR_MS
                    if horizon == "1D" and model == "poor" and target in (GAP_DAY, EARLY_DAY, INTRADAY_DAY, LAST_1D):
                        continue
                    if horizon == "1D" and model == "fair" and target == EARLY_DAY:
                        continue  # issued early, below
                    preds.append(Prediction(model, s, horizon, issued, day(target) + 12 * HOUR_MS, value))
                    if horizon == "1D" and model == "fair" and target == REVISION_DAY:
                        preds.append(Prediction(model, s, horizon, issued + HOUR_MS, day(target) + 12 * HOUR_MS, value * 0.997))
            if d == EARLY_DAY - 1:
                # fair's 1D prediction for day EARLY_DAY, issued at 20:00 the
                # day before, before that day's actual: released by it, and
                # then in a race with day EARLY_DAY's actual, which closes it.
                v = prices[s][d + 1] * (1 + rng.gauss(0.0, 0.008))
                preds.append(Prediction("fair", s, "1D", day(d) + 20 * HOUR_MS, day(d + 1) + 12 * HOUR_MS, v))
        if d == INTRADAY_DAY - 1:
            # Inside day INTRADAY_DAY (after its bucket starts, before its
            # actual): good's 1D for the next day at 10:00 closes the group,
            # poor's own at 12:00 revises it.
            for s in series:
                preds.append(Prediction("good", s, "1D", day(d + 1) + 10 * HOUR_MS, day(d + 2) + 12 * HOUR_MS, prices[s][d + 2]))
                preds.append(Prediction("poor", s, "1D", day(d + 1) + 12 * HOUR_MS, day(d + 1) + 12 * HOUR_MS, prices[s][d + 1] * 1.01))
    # Stream order: event time (issued_at), then production order.
    order = sorted(range(len(preds)), key=lambda i: (preds[i].issued_at, i))
    return actuals, [preds[i] for i in order]


def expected(actuals, preds, min_models):
    return expected_forecasts(Config(), preds, actuals, emit_mode="complete", models=CONFIGURED, min_models=min_models)


def config(chorus_config, inputs, outputs, group, prefix, min_models):
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg.update(
        {
            "kafka.group.id": group,
            "redis.key_prefix": prefix,
            "emit.mode": "complete",
            "emit.min_models": min_models,
            "models": ",".join(CONFIGURED),
            # No hold is released by wall-clock time: each waits for its actual.
            "join.max_wait_ms": 600000,
        }
    )
    return cfg


def encode(avro, topics, actuals, preds, partitioned):
    out = []
    for a in actuals:
        part = actual_partition(a.series) if partitioned else 0
        out.append(Sent(topics.actuals, a.series.encode(), avro.encode("Actual", a.avro()), partition=part))
    for p in preds:
        part = prediction_partition(p.series) if partitioned else 0
        out.append(Sent(topics.predictions, p.series.encode(), avro.encode("Prediction", p.avro()), partition=part))
    return out


def run(kafka, avro, topic_factory, chorus, chorus_config, test_id, actuals, preds, min_models, partitions, workers, name, count):
    inputs = topic_factory(partitions=partitions, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "dlq"))
    produce_to_partitions(kafka, encode(avro, inputs, actuals, preds, partitions > 1))
    group = new_group(test_id, name)
    cfg = config(chorus_config, inputs, outputs, group, f"ec{name}{group[-10:]}", min_models)
    gate = GroupGate(kafka, group, [inputs.predictions, inputs.actuals]) if workers > 1 else None
    procs = [chorus(cfg, name=f"{name}{i}") for i in range(workers)]
    if gate is not None:
        gate.open_when_assigned(procs, 60)
    consume_until(kafka, outputs.forecasts, count, 120, procs[0])
    watcher = GroupWatcher(kafka, group)
    try:
        watcher.wait_caught_up([inputs.predictions, inputs.actuals], 60, procs[0])
    finally:
        watcher.close()
    for p in procs:
        assert p.stop() == 0, p.log_tail(40)
    assert kafka.read_to_end(outputs.dlq) == []
    return kafka.read_to_end(outputs.forecasts)


def check(avro, msgs, want):
    """The forecasts are the reference's: per key the same records in order,
    every field compared."""
    got: dict[str, list[dict]] = {}
    for key, rec, _m in sorted(decode_forecasts(avro, msgs), key=lambda t: (t[2].partition(), t[2].offset())):
        assert key == forecast_key(rec)
        got.setdefault(key, []).append(rec)
    exp: dict[str, list[dict]] = {}
    for f in want:
        exp.setdefault(forecast_key(f), []).append(f)
    assert sorted(got) == sorted(exp), (sorted(set(exp) - set(got))[:5], sorted(set(got) - set(exp))[:5])
    problems = []
    for key in exp:
        if [g["revision"] for g in got[key]] != [e["revision"] for e in exp[key]]:
            problems.append(f"{key}: revisions {[g['revision'] for g in got[key]]}, expected {[e['revision'] for e in exp[key]]}")
            continue
        for g, e in zip(got[key], exp[key]):
            diff = compare_forecast(g, e)
            if diff:
                problems.append(f"{key} r{e['revision']}: {'; '.join(diff)}")
    assert not problems, "\n".join(problems[:20])
    return got


def key(series, horizon, d):
    return f"{series}|{horizon}|{day(d)}"


def test_complete_mode_cases_match_the_reference(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    actuals, preds = complete_history({"ZL": 50.0})
    for min_models in (2, 3):
        want = expected(actuals, preds, min_models)
        msgs = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, actuals, preds, min_models, 1, 1, f"m{min_models}", len(want))
        assert len(msgs) == len(want)
        got = check(avro, msgs, want)
        present = {k: [(f["revision"], f["models_present"], f["complete"]) for f in v] for k, v in got.items()}
        # A complete group: one emission.
        assert present[key("ZL", "1D", 5)] == [(1, ["fair", "good", "poor"], True)]
        assert present[key("ZL", "2D", 5)] == [(1, ["fair", "good", "poor"], True)]
        # Complete, then revised.
        assert present[key("ZL", "1D", REVISION_DAY)] == [(1, ["fair", "good", "poor"], True), (2, ["fair", "good", "poor"], True)]
        if min_models == 2:
            # Closed by an actual with two models.
            assert present[key("ZL", "1D", GAP_DAY)] == [(1, ["fair", "good"], False)]
            assert present[key("ZL", "1D", EARLY_DAY)] == [(1, ["fair", "good"], False)]
            # Only an actual closes the last 1D group; a 2D prediction emits it.
            assert present[key("ZL", "1D", LAST_1D)] == [(1, ["fair", "good"], False)]
            # Closed by a prediction issued after its target time, then revised.
            assert present[key("ZL", "1D", INTRADAY_DAY)] == [(1, ["fair", "good"], False), (2, ["fair", "good", "poor"], True)]
        else:
            for d in (GAP_DAY, EARLY_DAY, LAST_1D):
                assert key("ZL", "1D", d) not in present
            # Closed with too few, made complete by poor's late prediction.
            assert present[key("ZL", "1D", INTRADAY_DAY)] == [(1, ["fair", "good", "poor"], True)]


def test_complete_mode_is_the_same_with_three_partitions_and_two_workers(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    actuals, preds = complete_history(SERIES)
    want = expected(actuals, preds, 2)
    one = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, actuals, preds, 2, 1, 1, "p1", len(want))
    many = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, actuals, preds, 2, 3, 2, "p3", len(want))
    assert len(one) == len(want) and len(many) == len(want)
    check(avro, one, want)
    assert bytes_per_key(one) == bytes_per_key(many)


def test_complete_mode_kill_mid_stream_loses_and_duplicates_nothing(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    actuals, preds = complete_history(SERIES)
    want = expected(actuals, preds, 2)
    inputs = topic_factory(partitions=2, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "dlq"))
    records = encode(avro, inputs, actuals, preds, False)
    # Half the stream first, the rest after the kill: the kill is always
    # inside the stream, however fast the first worker is.
    half = len(records) // 2
    produce_all(kafka, records[:half])
    group = new_group(test_id, "kill")
    cfg = config(chorus_config, inputs, outputs, group, f"eck{group[-10:]}", 2)
    cfg["batch.max_records"] = 7  # many transactions, so the kill lands inside one
    cfg["kafka.session.timeout.ms"] = 6000
    first = chorus(cfg, name="kill1")
    wait_until(lambda: len(kafka.read_to_end(outputs.forecasts, isolation="read_uncommitted")) >= 5, 120,
               "a few forecasts, committed or not", interval=0.2)
    first.kill()
    produce_all(kafka, records[half:])
    second = chorus(cfg, name="kill2")
    consume_until(kafka, outputs.forecasts, len(want), 120, second)
    watcher = GroupWatcher(kafka, group)
    try:
        watcher.wait_caught_up([inputs.predictions, inputs.actuals], 60, second)
    finally:
        watcher.close()
    assert second.stop() == 0
    msgs = kafka.read_to_end(outputs.forecasts)
    assert len(msgs) == len(want), f"{len(msgs)} forecasts, expected {len(want)}: lost or duplicated"
    check(avro, msgs, want)
