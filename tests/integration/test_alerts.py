"""Alerts against a real Kafka broker and Redis (SPEC §6, issue 10, in progress).

MAPE_DEGRADATION with a configured baseline: the data makes the ensemble's
daily MAPE exactly known (two models that agree, so every weighting gives
their value; constant actuals, so the z-guard has no spread and never
shrinks), with one day exactly on the threshold, which must not fire.

No test sleeps to synchronise: each waits on a record count or on the
consumer group's committed offsets, with a deadline.
"""

from __future__ import annotations

from e2e_support import HOUR_MS, consume_until, day, encode_actuals, encode_predictions, new_group, produce_all
from reference_model import DAY_MS, Actual, Prediction

ACTUAL = 100.0
#: The ensemble's APE (percent) for targets on day d: the level is 1.0 + 0.5.
#: Days 4-6 are above it (the third fires), day 7 stays above (nothing new),
#: day 8 is exactly on it (1.5 exact in binary: it resolves), then below.
APE = {1: 1.0, 2: 1.0, 3: 1.0, 4: 2.0, 5: 2.0, 6: 2.0, 7: 2.0, 8: 1.5, 9: 1.0, 10: 1.0, 11: 1.0, 12: 1.0}
LAST_DAY = 14


def data(series: str = "ZL"):
    preds, acts = [], []
    for d in range(0, LAST_DAY + 1):
        acts.append(Actual(series, day(d) + 21 * HOUR_MS, ACTUAL))
        target = d + 1
        value = ACTUAL + APE.get(target, 1.0)  # exact: the APE is value - 100 when the actual is 100
        for model in ("arima", "lstm"):
            preds.append(Prediction(model, series, "1D", day(d) + 22 * HOUR_MS, day(target), value))
    return preds, acts


def run(kafka, avro, topic_factory, chorus, chorus_config, test_id, partitions, workers, name):
    inputs = topic_factory(partitions=partitions, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "dlq"))
    preds, acts = data()
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds))
    group = new_group(test_id, name)
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = group
    cfg["redis.key_prefix"] = f"al{name}{group[-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    cfg["alerts.baseline_mape"] = "1.0"
    cfg["alerts.performance_drift.pp"] = 1000  # this test is about MAPE_DEGRADATION
    procs = [chorus(cfg, name=f"{name}{i}") for i in range(workers)]
    # The days up to 12 close once the forecasts issued on day 13 are
    # recorded; those issued on day 14 wait for an actual that never comes.
    consume_until(kafka, outputs.forecasts, 2 * LAST_DAY, 120, procs[0])
    consume_until(kafka, outputs.alerts, 2, 60, procs[0])
    for p in procs:
        assert p.stop() == 0
    return [m for m in kafka.read_to_end(outputs.alerts)]


def test_mape_degradation_fires_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    msgs = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 1, 1, "one")
    alerts = [avro.decode(m.value(), "Alert") for m in msgs]
    got = [(a["type"], a["state"], a["severity"], a["event_time"]) for a in alerts]
    end = lambda d: day(d + 1) - 1  # noqa: E731
    assert got == [
        ("MAPE_DEGRADATION", "firing", "critical", end(6)),
        ("MAPE_DEGRADATION", "resolved", "critical", end(8)),
    ], got
    fire, resolve = alerts
    assert [m.key() for m in msgs] == [b"MAPE_DEGRADATION|ZL|1D||"] * 2
    assert fire["series"] == "ZL" and fire["horizon"] == "1D" and fire["model_id"] is None
    assert fire["value"] == 2.0 and fire["threshold"] == 1.5
    assert fire["details"]["days_above"] == "3" and fire["details"]["day"] == "2024-01-07"
    assert resolve["value"] == 1.5, "a value exactly on the threshold is not above it"
    assert fire["message"] and resolve["message"]


def test_alerts_are_the_same_with_three_partitions_and_two_workers(
    kafka, avro, topic_factory, chorus, chorus_config, test_id
):
    one = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 1, 1, "p1")
    many = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 3, 2, "p3")
    assert [(m.key(), m.value()) for m in one] == [(m.key(), m.value()) for m in many]
    assert len(one) == 2


# DATA_MISSING (SPEC §6.7): four models publish for every next day; on some
# target days some of them do not. With the threshold at 25 % (exact), one
# model of four missing is on it (does not fire), two are above it.
MISSING = {5: ("d",), 6: ("c", "d"), 7: ("c", "d")}
MISSING_LAST_DAY = 10


def missing_data(series: str = "ZL"):
    preds, acts = [], []
    for d in range(0, MISSING_LAST_DAY + 1):
        acts.append(Actual(series, day(d) + 21 * HOUR_MS, ACTUAL))
        target = d + 1
        for model in ("a", "b", "c", "d"):
            if model not in MISSING.get(target, ()):
                preds.append(Prediction(model, series, "1D", day(d) + 22 * HOUR_MS, day(target), ACTUAL + 1))
    return preds, acts


def test_data_missing_fires_above_the_threshold_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    preds, acts = missing_data()
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds))
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = new_group(test_id, "missing")
    cfg["redis.key_prefix"] = f"dm{cfg['kafka.group.id'][-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    cfg["alerts.baseline_mape"] = "1.0"
    cfg["alerts.mape_degradation.pp"] = 1000
    cfg["alerts.performance_drift.pp"] = 1000
    cfg["alerts.data_missing.pct"] = 25
    proc = chorus(cfg, name="missing")
    consume_until(kafka, outputs.forecasts, len(preds), 120, proc)
    msgs = consume_until(kafka, outputs.alerts, 2, 60, proc)
    assert proc.stop() == 0
    msgs = kafka.read_to_end(outputs.alerts) or msgs
    alerts = [avro.decode(m.value(), "Alert") for m in msgs]
    end = lambda d: day(d + 1) - 1  # noqa: E731
    got = [(a["type"], a["state"], a["severity"], a["event_time"], a["value"]) for a in alerts]
    assert got == [
        ("DATA_MISSING", "firing", "warning", end(6), 50.0),
        ("DATA_MISSING", "resolved", "warning", end(8), 0.0),
    ], got
    assert [m.key() for m in msgs] == [b"DATA_MISSING|ZL|1D||"] * 2
    fire = alerts[0]
    assert fire["threshold"] == 25.0
    assert fire["details"]["missing"] == "2" and fire["details"]["expected"] == "4"
    assert fire["details"]["day"] == "2024-01-07"


# WEIGHT_SHIFT (SPEC §6.9): two models with inv_mape over a 3-day window.
# Their errors (APE, against 100) are (1, 3), then (3, 5), then (5, 3): the
# weights go 0.75/0.25, then 0.625/0.375 (a change of exactly 0.125, the
# threshold here: no alert), then 0.375/0.625 (fires; resolves once the
# reference forecast, 7 days back, has caught up).
SHIFT_PHASES = [(14, (1, 3)), (30, (3, 5)), (46, (5, 3))]


def shift_errors(target: int) -> tuple[int, int]:
    for last, errs in SHIFT_PHASES:
        if target <= last:
            return errs
    return SHIFT_PHASES[-1][1]


def expected_weight_shift(forecasts: list[dict], threshold: float, days: int) -> list[tuple[str, int, float]]:
    """The rule, written from the spec: on each complete, non-fallback
    forecast, in the order served, compare with the latest such forecast
    issued at or before issued_at - days."""
    steady, out, firing = [], [], False
    for f in forecasts:
        if not f["complete"] or f["fallback"] is not None:
            continue
        ref = [g for g in steady if g["issued_at"] <= f["issued_at"] - days * DAY_MS]
        steady.append(f)
        if not ref:
            continue
        before, after = ref[-1]["weights"], f["weights"]
        change = max(abs(after.get(m, 0.0) - before.get(m, 0.0)) for m in set(before) | set(after))
        if change > threshold and not firing:
            out.append(("firing", f["issued_at"], change))
        elif change <= threshold and firing:
            out.append(("resolved", f["issued_at"], change))
        firing = change > threshold
    return out


def test_weight_shift_fires_above_the_threshold_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    last_day = SHIFT_PHASES[-1][0]
    preds, acts = [], []
    for d in range(0, last_day + 1):
        acts.append(Actual("ZL", day(d) + 21 * HOUR_MS, ACTUAL))
    for d in range(0, last_day):
        for model, err in zip(("a", "b"), shift_errors(d + 1)):
            preds.append(Prediction(model, "ZL", "1D", day(d) + 22 * HOUR_MS, day(d + 1), ACTUAL + err))
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds))
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = new_group(test_id, "shift")
    cfg["redis.key_prefix"] = f"ws{cfg['kafka.group.id'][-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    cfg["alerts.baseline_mape"] = "1.0"
    cfg["alerts.mape_degradation.pp"] = 1000
    cfg["alerts.performance_drift.pp"] = 1000
    cfg["alerts.weight_shift.max_change"] = 0.125
    cfg["weights.method"] = "inv_mape"
    cfg["weights.min_samples"] = 2
    cfg["window.days"] = 3
    proc = chorus(cfg, name="shift")
    fmsgs = consume_until(kafka, outputs.forecasts, len(preds), 120, proc)
    amsgs = consume_until(kafka, outputs.alerts, 2, 60, proc)
    assert proc.stop() == 0
    forecasts = [avro.decode(m.value(), "EnsembleForecast") for m in kafka.read_to_end(outputs.forecasts) or fmsgs]
    alerts = [avro.decode(m.value(), "Alert") for m in kafka.read_to_end(outputs.alerts) or amsgs]
    want = expected_weight_shift(forecasts, 0.125, 7)
    got = [(a["state"], a["event_time"], a["value"]) for a in alerts]
    assert [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in want], (got, want)
    assert all(abs(g[2] - w[2]) < 1e-12 for g, w in zip(got, want)), (got, want)
    assert [a["type"] for a in alerts] == ["WEIGHT_SHIFT"] * 2 and all(a["severity"] == "info" for a in alerts)
    # Phase 2 reached a change of exactly the threshold, and did not fire.
    steady = [f for f in forecasts if f["complete"] and f["fallback"] is None]
    assert any(f["weights"] == {"a": 0.625, "b": 0.375} for f in steady)
    assert alerts[0]["event_time"] > day(SHIFT_PHASES[1][0]), "phase 2 must not fire"
    assert alerts[0]["details"]["changes"].startswith("a=-") and "weights_before" in alerts[0]["details"]


# PERFORMANCE_DRIFT (SPEC §6.2) over 4 days with a baseline of 1.0 and 0.25
# pp: the rolling MAPE is 1 + (days at 2.0 among the last 4) / 4, exactly
# 1.25 (on the level: nothing) with one, 1.5 (fires) with two.
DRIFT_APE = {6: 2.0, 7: 2.0}
DRIFT_LAST_DAY = 12


def test_performance_drift_fires_above_the_level_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    preds, acts = [], []
    for d in range(0, DRIFT_LAST_DAY + 1):
        acts.append(Actual("ZL", day(d) + 21 * HOUR_MS, ACTUAL))
        for model in ("arima", "lstm"):
            preds.append(Prediction(model, "ZL", "1D", day(d) + 22 * HOUR_MS, day(d + 1), ACTUAL + DRIFT_APE.get(d + 1, 1.0)))
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds))
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = new_group(test_id, "drift")
    cfg["redis.key_prefix"] = f"pd{cfg['kafka.group.id'][-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    cfg["alerts.baseline_mape"] = "1.0"
    cfg["alerts.mape_degradation.pp"] = 1000
    cfg["alerts.performance_drift.pp"] = 0.25
    cfg["alerts.performance_drift.days"] = 4
    cfg["alerts.performance_drift.min_targets"] = 4
    proc = chorus(cfg, name="drift")
    consume_until(kafka, outputs.forecasts, len(preds) - 2, 120, proc)
    msgs = consume_until(kafka, outputs.alerts, 2, 60, proc)
    assert proc.stop() == 0
    alerts = [avro.decode(m.value(), "Alert") for m in kafka.read_to_end(outputs.alerts) or msgs]
    end = lambda d: day(d + 1) - 1  # noqa: E731
    got = [(a["type"], a["state"], a["severity"], a["event_time"], a["value"]) for a in alerts]
    assert got == [
        ("PERFORMANCE_DRIFT", "firing", "warning", end(7), 1.5),
        ("PERFORMANCE_DRIFT", "resolved", "warning", end(10), 1.25),
    ], got
    assert alerts[0]["threshold"] == 1.25 and alerts[0]["details"]["scored_targets"] == "4"
