"""Walk-forward validation windows and OVERFITTING against a real Kafka broker
and Redis (SPEC §6.4, §6.8, issue 10).

The data makes every verdict exact in binary floating point. Two models
predict a constant actual of 100, so an error is the prediction minus 100
and its APE is the error itself. With `inv_mape`, `window.days=4` and
`validation.window_days=8`, every window ends with 4 days in which `arima`
is off by 1 and `lstm` by 3: the next window's frozen weights are exactly
0.75 / 0.25 and its in-sample RMSE exactly 1.5. The first 4 days of each
window carry its pattern:

    window  arima  lstm   divergence   verdict (divergence_max 4, critical 28)
    0       1      3      0            not overfitting
    1       14     0      4 (exact)    at the threshold: not overfitting
    2       40     0      13.2...      overfitting, warning: fires
    3       82     0      28 (exact)   at the critical threshold: stays warning
    4       108    0      37.2...      critical: fires again with the new severity
    5       20     40     shock        worse, but lost to equal weights: resolves

No test sleeps to synchronise: each waits on a record count, with a deadline.
"""

from __future__ import annotations

import math

from e2e_support import HOUR_MS, consume_until, day, encode_actuals, encode_predictions, new_group, produce_all
from reference_model import Actual, Config, Prediction, ValidationConfig, validation_windows

#: Windows are aligned to the epoch: EPOCH_2024 is day 19723 = 8 * 2465 + 3,
#: so window j (id 2466 + j) starts on day 5 + 8 j of the data.
FIRST_WINDOW_DAY = 5
FIRST_WINDOW_ID = 2466
PATTERNS = [(1, 3), (14, 0), (40, 0), (82, 0), (108, 0), (20, 40)]
#: The actual of this day closes the last window; a prediction issued after
#: it (for the next day, whose actual comes too) lets it settle.
LAST_CLOSE = FIRST_WINDOW_DAY + 8 * len(PATTERNS)
SETTINGS = {
    "weights.method": "inv_mape",
    "weights.min_samples": 3,
    "window.days": 4,
    "validation.window_days": 8,
    "validation.min_test_points": 5,
    "validation.divergence_max": 4,
    "alerts.overfitting.critical_divergence": 28,
    # this test is about OVERFITTING: the day-close rules stay quiet
    "alerts.mape_degradation.pp": 1e6,
    "alerts.performance_drift.pp": 1e6,
    "alerts.weight_shift.max_change": 1,
}


def errors_of_target(d: int) -> tuple[int, int]:
    j, offset = divmod(d - FIRST_WINDOW_DAY, 8)
    if 0 <= j < len(PATTERNS) and offset < 4:
        return PATTERNS[j]
    return (1, 3)


def data(series: str = "ZL"):
    preds, acts = [], []
    for d in range(0, LAST_CLOSE + 2):
        acts.append(Actual(series, day(d) + 21 * HOUR_MS, 100.0))
    for d in range(0, LAST_CLOSE + 1):
        target = d + 1
        for model, err in zip(("arima", "lstm"), errors_of_target(target)):
            preds.append(Prediction(model, series, "1D", day(d) + 22 * HOUR_MS, day(target), 100.0 + err))
    return preds, acts


def close_of(j: int) -> int:
    return day(FIRST_WINDOW_DAY + 8 * (j + 1)) + 21 * HOUR_MS


def run(kafka, avro, topic_factory, chorus, chorus_config, test_id, partitions, workers, name):
    inputs = topic_factory(partitions=partitions, roles=("predictions", "actuals"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    preds, acts = data()
    produce_all(kafka, encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds))
    group = new_group(test_id, name)
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg.update(SETTINGS)
    cfg["kafka.group.id"] = group
    cfg["redis.key_prefix"] = f"vw{name}{group[-10:]}"
    cfg["join.max_wait_ms"] = 60000
    cfg["alerts.enabled"] = 1
    procs = [chorus(cfg, name=f"{name}{i}") for i in range(workers)]
    # Every prediction is applied (the last actual is past the last issued_at).
    forecasts = consume_until(kafka, outputs.forecasts, len(preds), 120, procs[0])
    windows = consume_until(kafka, outputs.validation, len(PATTERNS), 60, procs[0])
    alerts = consume_until(kafka, outputs.alerts, 3, 60, procs[0])
    for p in procs:
        assert p.stop() == 0
    return (
        kafka.read_to_end(outputs.forecasts) or forecasts,
        kafka.read_to_end(outputs.validation) or windows,
        kafka.read_to_end(outputs.alerts) or alerts,
    )


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_validation_windows_and_overfitting_lifecycle(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    fmsgs, wmsgs, amsgs = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 1, 1, "one")
    windows = [avro.decode(m.value(), "ValidationWindow") for m in wmsgs]
    preds, acts = data()
    ref = validation_windows(
        Config(weights_method="inv_mape", weights_min_samples=3, window_days=4),
        ValidationConfig(window_days=8, min_test_points=5, divergence_max=4.0),
        "ZL",
        "1D",
        preds,
        acts,
    )
    assert [w["window_id"] for w in windows] == [FIRST_WINDOW_ID + j for j in range(len(PATTERNS))]
    assert [w["window_id"] for w in ref] == [w["window_id"] for w in windows]
    for got, want in zip(windows, ref):
        what = f"window {got['window_id']}: {got} != {want}"
        for f in ("series", "horizon", "profile", "window_start", "window_end", "test_points", "is_overfitting", "model_count", "models_used"):
            assert got[f] == want[f], what
        for f in ("val_rmse", "test_rmse", "equal_test_rmse"):
            assert close(got[f], want[f]), what
        assert (got["divergence"] is None) == (want["divergence"] is None), what
        if want["divergence"] is not None:
            assert close(got["divergence"], want["divergence"]), what
        assert set(got["weights"]) == set(want["weights"]) and all(close(got["weights"][m], want["weights"][m]) for m in want["weights"]), what
    assert [m.key() for m in wmsgs] == [b"ZL|1D"] * len(PATTERNS)

    # The designed values, exact: frozen weights 0.75 / 0.25, in-sample 1.5.
    assert all(w["weights"] == {"arima": 0.75, "lstm": 0.25} and w["val_rmse"] == 1.5 for w in windows)
    assert [w["divergence"] for w in windows][:2] == [0.0, 4.0]
    assert windows[3]["divergence"] == 28.0
    assert [w["is_overfitting"] for w in windows] == [False, False, True, True, True, False]
    assert windows[5]["test_rmse"] > windows[5]["val_rmse"] and windows[5]["test_rmse"] < windows[5]["equal_test_rmse"]

    alerts = [avro.decode(m.value(), "Alert") for m in amsgs]
    got = [(a["type"], a["state"], a["severity"], a["event_time"]) for a in alerts]
    assert got == [
        ("OVERFITTING", "firing", "warning", close_of(2)),
        ("OVERFITTING", "firing", "critical", close_of(4)),
        ("OVERFITTING", "resolved", "critical", close_of(5)),
    ], got
    assert [m.key() for m in amsgs] == [b"OVERFITTING|ZL|1D||"] * 3
    warn, crit, _ = alerts
    assert warn["threshold"] == 4.0 and crit["threshold"] == 28.0
    assert close(warn["value"], windows[2]["divergence"]) and close(crit["value"], windows[4]["divergence"])
    assert warn["details"]["window_id"] == str(FIRST_WINDOW_ID + 2)
    assert warn["details"]["weights_before"] == "arima=0.75,lstm=0.25"
    assert warn["details"]["weights_after"] == "arima=0.5,lstm=0.5"
    assert "overfitting" in warn["message"]

    # The fallback (SPEC §5.1): forecasts issued after an overfitting
    # window closed, until a window that is not, have equal weights.
    forecasts = [avro.decode(m.value(), "EnsembleForecast") for m in fmsgs]
    for f in forecasts:
        overfit = close_of(2) <= f["issued_at"] < close_of(5)
        assert (f["fallback"] == "overfitting") == overfit, f
        if overfit:
            assert f["weights"] == {m: 1 / len(f["models_present"]) for m in f["models_present"]}, f
    assert any(f["fallback"] == "overfitting" for f in forecasts)


def test_validation_is_the_same_with_three_partitions_and_two_workers(
    kafka, avro, topic_factory, chorus, chorus_config, test_id
):
    one = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 1, 1, "p1")
    many = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, 3, 2, "p3")
    for a, b in zip(one[1:], many[1:]):
        assert [(m.key(), m.value()) for m in a] == [(m.key(), m.value()) for m in b]
    per_key = lambda msgs: sorted((m.key(), m.value()) for m in msgs)  # noqa: E731
    assert per_key(one[0]) == per_key(many[0])
