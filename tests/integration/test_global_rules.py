"""Rules on the global watermark against a real Kafka broker and Redis:
EXTREME_PREDICTIONS (SPEC §6.3) and ALERT_STORM (§6.11), issue 10.

Both judge many series at once, so they are the rules most exposed to how
records are spread over partitions and workers: each is run with 1
partition and 1 worker and with 3 partitions per input topic (predictions
and actuals partitioned differently) and 2 workers, and must give the same
alerts. No test sleeps to synchronise: each waits on record counts.
"""

from __future__ import annotations

import time

from e2e_support import HOUR_MS, consume_until, day, encode_actuals, encode_predictions, new_group, produce_all
from reference_model import Actual, Prediction

N_SERIES = 10
LAST_DAY = 16


def run(kafka, avro, topic_factory, chorus, chorus_config, test_id, preds, acts, settings, partitions, workers, name, n_alerts):
    inputs = topic_factory(partitions=partitions, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    # Actuals keyed and ordered as the other tests do; predictions are
    # produced in another order so that the partitioners disagree.
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, list(reversed(preds)) if partitions > 1 else preds))
    group = new_group(test_id, name)
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg.update(settings)
    cfg["kafka.group.id"] = group
    cfg["redis.key_prefix"] = f"gr{name}{group[-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    procs = [chorus(cfg, name=f"{name}{i}") for i in range(workers)]
    consume_until(kafka, outputs.forecasts, len(preds), 180, procs[0])
    consume_until(kafka, outputs.alerts, n_alerts, 120, procs[0])
    for p in procs:
        assert p.stop() == 0
    return [avro.decode(m.value(), "Alert") for m in kafka.read_to_end(outputs.alerts)]


def per_key(alerts):
    out = {}
    for a in alerts:
        out.setdefault(a["fingerprint"], []).append((a["state"], a["severity"], a["event_time"], a["value"], a["message"], tuple(sorted(a["details"].items()))))
    return out


# ----------------------------------------------------- EXTREME_PREDICTIONS --

#: Issue day -> how many of the 10 series forecast an implausible jump.
#: Day 12: 1 of 10 = 10 % exactly (not above 10 %: nothing); day 13: 2 of
#: 10 (fires); day 14: none (resolves).
EXTREME_DAYS = {12: 1, 13: 2}


def extreme_data():
    preds, acts = [], []
    for s in range(N_SERIES):
        series = f"S{s:02d}"
        for d in range(0, LAST_DAY + 1):
            acts.append(Actual(series, day(d) + 21 * HOUR_MS, 100.0 + (d % 2)))  # sigma of the change is 2
        for d in range(0, LAST_DAY):
            jump = s < EXTREME_DAYS.get(d, 0)
            value = 200.0 if jump else 100.5
            for model in ("arima", "lstm"):
                preds.append(Prediction(model, series, "1D", day(d) + 22 * HOUR_MS, day(d + 1), value))
    return preds, acts


EXTREME_SETTINGS = {
    "alerts.baseline_mape": "1.0",
    "alerts.mape_degradation.pp": 1e6,
    "alerts.performance_drift.pp": 1e6,
    "alerts.weight_shift.max_change": 1,
    "alerts.alert_storm.count": 1000,
}


def test_extreme_predictions_fire_above_the_threshold_and_resolve(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    preds, acts = extreme_data()
    one = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, preds, acts, EXTREME_SETTINGS, 1, 1, "x1", 2)
    end = lambda d: day(d + 1) - 1  # noqa: E731
    got = [(a["type"], a["state"], a["severity"], a["horizon"], a["series"], a["event_time"], a["value"]) for a in one]
    assert got == [
        ("EXTREME_PREDICTIONS", "firing", "critical", "1D", None, end(13), 20.0),
        ("EXTREME_PREDICTIONS", "resolved", "critical", "1D", None, end(14), 0.0),
    ], got
    fire = one[0]
    assert fire["fingerprint"] == "EXTREME_PREDICTIONS||1D||"
    assert fire["threshold"] == 10.0
    assert fire["details"]["extreme"] == "2" and fire["details"]["forecasts"] == "10"
    assert fire["details"]["day"] == "2024-01-14"
    many = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, preds, acts, EXTREME_SETTINGS, 3, 2, "x3", 2)
    assert per_key(many) == per_key(one)


# ------------------------------------------------------------ ALERT_STORM --

#: MAPE_DEGRADATION (critical) of series A0..A4 fires at the end of day 6:
#: 5 critical alerts in the hour, exactly the threshold, no storm. That of
#: B0..B5 fires at the end of day 10: 6, a storm, which resolves when the
#: global watermark passes the end of day 10 plus an hour.
def storm_data():
    preds, acts = [], []
    groups = [(f"A{i}", 4) for i in range(5)] + [(f"B{i}", 8) for i in range(6)]
    for series, first_bad in groups:
        for d in range(0, LAST_DAY + 1):
            acts.append(Actual(series, day(d) + 21 * HOUR_MS, 100.0))
        for d in range(0, LAST_DAY):
            target = d + 1
            ape = 2.0 if first_bad <= target < first_bad + 3 else 1.0
            for model in ("arima", "lstm"):
                preds.append(Prediction(model, series, "1D", day(d) + 22 * HOUR_MS, day(target), 100.0 + ape))
    return preds, acts


STORM_SETTINGS = {
    "alerts.baseline_mape": "1.0",
    "alerts.performance_drift.pp": 1e6,
    "alerts.weight_shift.max_change": 1,
}


def test_alert_storm_fires_above_the_threshold_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    preds, acts = storm_data()
    # 11 firings, 11 resolutions, and the storm's two records.
    one = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, preds, acts, STORM_SETTINGS, 1, 1, "s1", 24)
    storms = [a for a in one if a["type"] == "ALERT_STORM"]
    end10 = day(11) - 1
    got = [(a["state"], a["severity"], a["event_time"], a["value"]) for a in storms]
    assert got == [("firing", "critical", end10, 6.0), ("resolved", "critical", end10 + HOUR_MS, 0.0)], got
    fire = storms[0]
    assert fire["fingerprint"] == "ALERT_STORM||||" and fire["threshold"] == 5.0
    assert sorted(fire["details"]["series"].split(",")) == [f"B{i}" for i in range(6)]
    degradations = [a for a in one if a["type"] == "MAPE_DEGRADATION" and a["state"] == "firing"]
    assert sorted(a["event_time"] for a in degradations) == [day(7) - 1] * 5 + [end10] * 6
    many = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, preds, acts, STORM_SETTINGS, 3, 2, "s3", 24)
    assert per_key(many) == per_key(one)


# -------------------------------------------------------------- DATA_STALE --

#: Daily actuals (a 48 h allowed gap: twice the 24 h spacing). "live" runs to
#: day 16, "gone" stops after day 5 (stale), "edge" after day 14: its deadline
#: is exactly the newest event time seen, which is not past it (not stale).
STALE_LAST = {"live": 16, "gone": 5, "edge": 14}


def test_data_stale_fires_on_the_global_watermark_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    acts = [Actual(s, day(d) + 21 * HOUR_MS, 100.0) for s, last in STALE_LAST.items() for d in range(0, last + 1)]
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts))
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = new_group(test_id, "stale")
    cfg["redis.key_prefix"] = f"st{cfg['kafka.group.id'][-10:]}"
    cfg["alerts.enabled"] = 1
    proc = chorus(cfg, name="stale")
    first = consume_until(kafka, outputs.alerts, 1, 120, proc)
    # Actuals again: the stale series resolves at the new actual's observed_at.
    produce_all(kafka, encode_actuals(avro, inputs.actuals, [Actual("gone", day(17) + 21 * HOUR_MS, 100.0)]))
    # The new actual is also the newest event time: "edge" is now past its deadline.
    consume_until(kafka, outputs.alerts, 3, 120, proc)
    assert proc.stop() == 0
    alerts = [avro.decode(m.value(), "Alert") for m in kafka.read_to_end(outputs.alerts)]
    got = [(a["type"], a["state"], a["series"], a["event_time"], a["value"], a["threshold"]) for a in alerts]
    deadline = lambda s: day(STALE_LAST[s]) + 21 * HOUR_MS + 48 * HOUR_MS  # noqa: E731
    assert got == [
        ("DATA_STALE", "firing", "gone", deadline("gone") + 1, (48 * HOUR_MS + 1) / HOUR_MS, 48.0),
        # resolved by an actual 12 days later; the new allowed gap is twice that
        ("DATA_STALE", "resolved", "gone", day(17) + 21 * HOUR_MS, 12 * 24.0, 2 * 12 * 24.0),
        ("DATA_STALE", "firing", "edge", deadline("edge") + 1, (48 * HOUR_MS + 1) / HOUR_MS, 48.0),
    ], got
    # "edge" fires only after the new actual (its deadline was exactly the
    # newest event time before it, not past it): the order above shows it.
    assert first[0].key() == b"DATA_STALE|gone|||"
    assert alerts[0]["details"]["newest_actual"] == str(day(5) + 21 * HOUR_MS)


def test_data_stale_on_the_wall_clock(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    """alerts.data_stale.clock=wall (live input): "gone" is past its deadline
    on the wall clock, though not on the global watermark (the newest event
    time, "live"'s last actual, is before it); "live" is within its own."""
    now = int(time.time() * 1000)
    H = HOUR_MS
    acts = [Actual("live", now - 100 * H, 100.0), Actual("live", now - 50 * H, 100.0),  # allowed gap 100 h
            Actual("gone", now - 61 * H, 100.0), Actual("gone", now - 60 * H, 100.0)]  # allowed gap 24 h
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    produce_all(kafka, encode_actuals(avro, inputs.actuals, sorted(acts, key=lambda a: a.observed_at)))
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = new_group(test_id, "wall")
    cfg["redis.key_prefix"] = f"sw{cfg['kafka.group.id'][-10:]}"
    cfg["alerts.enabled"] = 1
    cfg["alerts.data_stale.clock"] = "wall"
    proc = chorus(cfg, name="wall")
    msgs = consume_until(kafka, outputs.alerts, 1, 120, proc)
    assert proc.stop() == 0
    alerts = [avro.decode(m.value(), "Alert") for m in kafka.read_to_end(outputs.alerts) or msgs]
    assert [(a["type"], a["state"], a["series"], a["event_time"]) for a in alerts] == [
        ("DATA_STALE", "firing", "gone", now - 60 * H + 24 * H + 1)
    ]
    assert now - 60 * H + 24 * H > now - 50 * H, "the watermark would not have fired it"
