"""End to end: real Kafka, real Redis, the real `chorus run` worker.

Every forecast the worker emits is checked field by field against
reference_model.py, an independent implementation of SPEC §4-§5 written from
the spec. The tests also check the guarantees of SPEC §9: deterministic
output (§9.2), replay without effect (§9.1) and dead letters (§2, §9.3).

No test sleeps to synchronise: each waits, with a bounded deadline, on a
condition (a record count, committed offsets reaching the log end, a key in
Redis).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from conftest import frame
from e2e_support import (
    HOUR_MS,
    GroupWatcher,
    Sent,
    bytes_per_key,
    consume_until,
    day,
    decode_forecasts,
    dump_state,
    encode_actuals,
    encode_predictions,
    make_series,
    new_group,
    produce_all,
    quantile,
    zigzag,
)
from reference_model import Actual, Config, Prediction, expected_forecasts, forecast_key

REL = 1e-9
INPUT_ROLES = ("predictions", "actuals")
OUTPUT_ROLES = ("forecasts", "dlq")

#: Exact fields: compared with ==.
EXACT_FIELDS = (
    "series",
    "horizon",
    "target_time",
    "issued_at",
    "revision",
    "models_expected",
    "models_present",
    "complete",
    "weighting_method",
    "profile",
    "regime",
    "z_adjusted",
    "clipped",
    "fallback",
)


# ---------------------------------------------------------------- helpers --


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def compare_forecast(got: dict, exp: dict) -> list[str]:
    """Differences between a decoded forecast and the reference's, as text."""
    out = []
    for f in EXACT_FIELDS:
        if got[f] != exp[f]:
            out.append(f"{f}: got {got[f]!r}, expected {exp[f]!r}")
    if list(got["weights"]) != exp["models_present"]:
        out.append(f"weights keys/order: got {list(got['weights'])}, expected {exp['models_present']}")
    for m, w in exp["weights"].items():
        if m in got["weights"] and not close(got["weights"][m], w):
            out.append(f"weights[{m}]: got {got['weights'][m]!r}, expected {w!r}")
    if not close(math.fsum(got["weights"].values()), 1.0):
        out.append(f"weights sum to {math.fsum(got['weights'].values())!r}")
    for f in ("raw_value", "value"):
        if not close(got[f], exp[f]):
            out.append(f"{f}: got {got[f]!r}, expected {exp[f]!r}")
    gz, ez = got["z_score"], exp["z_score"]
    if (gz is None) != (ez is None) or (gz is not None and not math.isclose(gz, ez, rel_tol=REL, abs_tol=1e-9)):
        out.append(f"z_score: got {gz!r}, expected {ez!r}")
    return out


def check_against_reference(avro, msgs: list, expected: list[dict]) -> dict[str, list[dict]]:
    """Assert the forecast messages are exactly the reference's forecasts:
    the same keys, per key the revisions 1..n in log order, and every field.
    Returns the decoded forecasts per key."""
    got: dict[str, list[dict]] = {}
    for key, rec, _m in sorted(decode_forecasts(avro, msgs), key=lambda t: (t[2].partition(), t[2].offset())):
        assert key == forecast_key(rec), f"message key {key!r} does not match its record"
        got.setdefault(key, []).append(rec)
    want: dict[str, list[dict]] = {}
    for f in expected:
        want.setdefault(forecast_key(f), []).append(f)

    assert sorted(got) == sorted(want), (
        f"forecast keys differ: missing {sorted(set(want) - set(got))[:10]}, unexpected {sorted(set(got) - set(want))[:10]}"
    )
    problems = []
    for key in sorted(want):
        revs = [g["revision"] for g in got[key]]
        if revs != list(range(1, len(revs) + 1)) or len(revs) != len(want[key]):
            problems.append(f"{key}: revisions in log order {revs}, expected 1..{len(want[key])}")
            continue
        for g, e in zip(got[key], want[key]):
            diff = compare_forecast(g, e)
            if diff:
                stats = {m: (s.n_ape, s.mape, s.n_se, s.mse) for m, s in e["_stats"].items()}
                problems.append(f"{key} rev {e['revision']}: " + "; ".join(diff) + f"  [reference window stats {stats}]")
    assert not problems, f"{len(problems)} forecasts differ from the reference:\n" + "\n".join(problems[:25])
    return got


def base_config(chorus_config: dict, group: str, *topic_sets) -> dict[str, Any]:
    cfg = dict(chorus_config)
    for ts in topic_sets:
        cfg.update(ts.config())
    cfg["kafka.group.id"] = group
    # Predictions wait for their actuals (SPEC §9.2). Every prediction in
    # these tests has a later actual, so the wait always ends on data; a long
    # bound keeps wall-clock time out of the results.
    cfg["join.max_wait_ms"] = 60000
    return cfg


def dataset(days: int, seed: int = 20240101):
    zl = make_series("ZL", 50.0, days, seed, shock_day=days - 12)
    brk = make_series("BRK.B", 350.0, days, seed, shock_day=days - 5)
    return zl, brk


# ------------------------------------------------------------------ tests --


CASES = [
    pytest.param("exp_inv_mape", "change", 60, id="exp_inv_mape-change-60d"),
    pytest.param("exp_inv_mape", "level", 40, id="exp_inv_mape-level-40d"),
    pytest.param("inv_mape", "change", 40, id="inv_mape-change-40d"),
    pytest.param("inv_mse", "change", 40, id="inv_mse-change-40d"),
    pytest.param("equal", "change", 40, id="equal-change-40d"),
]


@pytest.mark.parametrize("method,z_reference,days", CASES)
def test_forecasts_match_reference(
    method, z_reference, days, kafka, avro, topic_factory, chorus, chorus_config, redis_client, redis_prefix, test_id
):
    """Two series x three models, produced in opposite orders: ZL's actuals
    reach the worker before its predictions, BRK.B's predictions before its
    actuals (they are held until the actuals arrive). Every forecast must
    equal the reference's, which does not depend on that order."""
    inputs = topic_factory(partitions=3, roles=INPUT_ROLES)
    outputs = topic_factory(partitions=3, roles=OUTPUT_ROLES)
    zl, brk = dataset(days)

    zl_max = round(quantile([p.value for p in zl.predictions if p.model_id == "good"], 0.8), 2)
    brk_min = round(quantile([p.value for p in brk.predictions if p.model_id == "good"], 0.2), 2)
    ref_cfg = Config(
        weights_method=method,
        z_reference=z_reference,
        series_max={"ZL": zl_max},
        series_min={"BRK.B": brk_min},
    )
    expected = expected_forecasts(ref_cfg, zl.predictions + brk.predictions, zl.actuals + brk.actuals)

    # The data must exercise what the test claims to check.
    assert any(f["clipped"] for f in expected), "the data never clips"
    assert any(f["fallback"] == "cold_start" for f in expected) == (method != "equal")
    assert any(not f["complete"] for f in expected) and any(f["complete"] for f in expected)
    assert any(f["z_score"] is not None for f in expected)
    if z_reference == "change":
        assert any(f["z_adjusted"] for f in expected), "the data never triggers the z-guard"
    n_preds = len(zl.predictions) + len(brk.predictions)
    assert len(expected) == n_preds - 4, "duplicate and older revision of each series must emit nothing"
    intraday = [f for f in expected if f["issued_at"] % 86_400_000 == 10 * HOUR_MS]
    assert intraday and all(f["target_time"] <= f["issued_at"] for f in intraday)

    group = new_group(test_id, "workers")
    cfg = base_config(chorus_config, group, inputs, outputs)
    cfg.update(
        {
            "weights.method": method,
            "weights.min_samples": 5,
            "validation.min_samples": 10,
            "validation.z_reference": z_reference,
            "validation.z_max": 3.0,
            "validation.shrink": 0.5,
            "series.ZL.max": repr(zl_max),
            'series."BRK.B".min': repr(brk_min),
            "batch.max_records": 50,
            "log.level": "debug",
        }
    )
    worker = chorus(cfg)
    watch = GroupWatcher(kafka, group)
    try:
        # Phase 1: ZL's actuals and BRK.B's predictions only.
        produce_all(
            kafka,
            encode_actuals(avro, inputs.actuals, zl.actuals) + encode_predictions(avro, inputs.predictions, brk.predictions),
        )
        watch.wait_caught_up([inputs.actuals], 60, worker)
        # Held in the worker (it reads BRK.B's actual watermark each batch):
        # its debug log names the first hold of each prediction.
        worker.wait_for_log(r'msg="holding" series=BRK\.B ', 60)

        # Phase 2: ZL's predictions (its actuals are all in) and BRK.B's actuals.
        produce_all(
            kafka,
            encode_predictions(avro, inputs.predictions, zl.predictions) + encode_actuals(avro, inputs.actuals, brk.actuals),
        )
        consume_until(kafka, outputs.forecasts, len(expected), 120, worker)
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, worker)
    finally:
        watch.close()
    msgs = kafka.read_to_end(outputs.forecasts)
    assert len(msgs) == len(expected), f"{len(msgs)} forecasts, expected {len(expected)}"
    assert kafka.read_to_end(outputs.dlq) == [], "valid input was dead-lettered"
    assert worker.alive()

    got = check_against_reference(avro, msgs, expected)

    flat = [f for revs in got.values() for f in revs]
    assert any(f["clipped"] for f in flat)
    for series in ("ZL", "BRK.B"):
        full = [f for f in flat if f["series"] == series and len(f["models_present"]) == 3]
        last = max(full, key=lambda f: (f["issued_at"], f["target_time"], f["revision"]))
        w = last["weights"]
        if method == "equal":
            assert all(close(v, 1 / 3) for v in w.values()), w
        else:
            assert w["poor"] < min(w["good"], w["fair"]), f"{series}: poor is not the lightest model: {w}"
    for data in (zl, brk):
        rev = data.notes["revision"]
        key = f"{data.series}|1D|{(rev.target_time // 86_400_000) * 86_400_000}"
        issued = [f["issued_at"] for f in got[key]]
        assert rev.issued_at in issued, "the later revision did not take over its group"
        assert issued[-1] == data.notes["intraday_revision"].issued_at, issued


def test_same_input_twice_gives_identical_bytes(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    """SPEC §9.2: the same input, replayed into an empty Redis, gives the same
    forecasts, byte for byte, whatever the batching (1000 vs 7 records)."""
    inputs = topic_factory(partitions=3, roles=INPUT_ROLES)
    zl, brk = dataset(35, seed=7)
    expected = expected_forecasts(Config(), zl.predictions + brk.predictions, zl.actuals + brk.actuals)
    # BRK.B's predictions first, then everything else.
    produce_all(
        kafka,
        encode_predictions(avro, inputs.predictions, brk.predictions)
        + encode_actuals(avro, inputs.actuals, zl.actuals + brk.actuals)
        + encode_predictions(avro, inputs.predictions, zl.predictions),
    )

    runs = []
    for i, batch in enumerate((1000, 7), start=1):
        outputs = topic_factory(partitions=3, roles=OUTPUT_ROLES)
        group = new_group(test_id, f"run{i}")
        cfg = base_config(chorus_config, group, inputs, outputs)
        cfg["redis.key_prefix"] = f"e2e{i}{group[-10:]}"
        cfg["batch.max_records"] = batch
        worker = chorus(cfg, name=f"run{i}")
        watch = GroupWatcher(kafka, group)
        try:
            consume_until(kafka, outputs.forecasts, len(expected), 120, worker)
            watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, worker)
        finally:
            watch.close()
        assert worker.stop() == 0
        msgs = kafka.read_to_end(outputs.forecasts)
        assert len(msgs) == len(expected)
        runs.append(msgs)

    first, second = (bytes_per_key(m) for m in runs)
    assert sorted(first) == sorted(second), "the runs forecast different keys"
    differing = [k for k in first if first[k] != second[k]]
    assert not differing, f"{len(differing)} keys differ between runs, e.g. {differing[:5]}"
    check_against_reference(avro, runs[0], expected)


def test_replay_changes_no_state(kafka, avro, topic_factory, chorus, chorus_config, redis_client, redis_prefix, test_id):
    """SPEC §9.1: re-reading input that was already applied (a second
    consumer group from the earliest offsets, same Redis prefix) changes no
    state and emits nothing."""
    inputs = topic_factory(partitions=3, roles=INPUT_ROLES)
    outputs = topic_factory(partitions=3, roles=OUTPUT_ROLES)
    zl, brk = dataset(30, seed=11)
    expected = expected_forecasts(Config(), zl.predictions + brk.predictions, zl.actuals + brk.actuals)
    produce_all(
        kafka,
        encode_actuals(avro, inputs.actuals, zl.actuals + brk.actuals)
        + encode_predictions(avro, inputs.predictions, zl.predictions + brk.predictions),
    )

    first_group = new_group(test_id, "first")
    cfg = base_config(chorus_config, first_group, inputs, outputs)
    worker = chorus(cfg, name="first")
    watch = GroupWatcher(kafka, first_group)
    try:
        consume_until(kafka, outputs.forecasts, len(expected), 120, worker)
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, worker)
    finally:
        watch.close()
    assert worker.stop() == 0
    before = dump_state(redis_client, redis_prefix)
    assert before, f"no state under {redis_prefix}:"
    assert all(k.startswith(f"{redis_prefix}:{{".encode()) for k in before)
    assert not [k for k, (_t, _v, ttl) in before.items() if ttl], "durable state must not expire"
    n_forecasts = len(kafka.read_to_end(outputs.forecasts))
    assert n_forecasts == len(expected)

    replay_group = new_group(test_id, "replay")
    cfg = base_config(chorus_config, replay_group, inputs, outputs)
    replay = chorus(cfg, name="replay")
    watch = GroupWatcher(kafka, replay_group)
    try:
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 120, replay)
    finally:
        watch.close()
    assert replay.alive()
    after = dump_state(redis_client, redis_prefix)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"replay changed {len(changed)} keys, e.g. {changed[:5]}"
    assert replay.stop() == 0
    assert len(kafka.read_to_end(outputs.forecasts)) == n_forecasts, "the replay emitted forecasts"
    assert kafka.read_to_end(outputs.dlq) == []


def test_two_workers_match_reference(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    """SPEC §2 / §9.2 with N workers: two workers share the consumer group,
    so a series' predictions and actuals may be read by different workers
    (the hold then works through Redis). The output must still be exactly
    the reference's forecasts, each once."""
    inputs = topic_factory(partitions=4, roles=INPUT_ROLES)
    outputs = topic_factory(partitions=3, roles=OUTPUT_ROLES)
    zl, brk = dataset(40, seed=23)
    cl = make_series("CL", 80.0, 40, seed=23, shock_day=30)
    preds = zl.predictions + brk.predictions + cl.predictions
    acts = zl.actuals + brk.actuals + cl.actuals
    expected = expected_forecasts(Config(), preds, acts)

    group = new_group(test_id, "workers")
    cfg = base_config(chorus_config, group, inputs, outputs)
    cfg["batch.max_records"] = 25
    workers = [chorus(cfg, name=f"worker{i}") for i in (1, 2)]
    for w in workers:
        w.wait_for_log(r"partitions assigned\"? count=[1-9]", 60)
    produce_all(kafka, encode_predictions(avro, inputs.predictions, preds) + encode_actuals(avro, inputs.actuals, acts))
    watch = GroupWatcher(kafka, group)
    try:
        consume_until(kafka, outputs.forecasts, len(expected), 120)
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 60)
    finally:
        watch.close()
    assert all(w.alive() for w in workers)
    msgs = kafka.read_to_end(outputs.forecasts)
    assert len(msgs) == len(expected), f"{len(msgs)} forecasts, expected {len(expected)}"
    check_against_reference(avro, msgs, expected)
    for w in workers:
        assert w.stop() == 0


# ------------------------------------------------------------ dead letters --

TS_2200 = 7_258_118_400_000  # 2200-01-01T00:00:00Z, the first invalid instant



def bad_records(avro, inputs) -> list[tuple[Sent, str]]:
    """(record, expected chorus.error) for each kind of bad input of SPEC §2,
    §9.3 and the stable codes of include/chorus/err.h."""
    P, A = inputs.predictions, inputs.actuals
    base = Prediction("good", "ZL", "1D", day(3) + 22 * HOUR_MS, day(4) + 12 * HOUR_MS, 50.0)
    act = Actual("ZL", day(3) + 21 * HOUR_MS, 50.0)

    def pred(**kw) -> bytes:
        return avro.encode("Prediction", {**base.avro(), **kw})

    def actual(**kw) -> bytes:
        return avro.encode("Actual", {**act.avro(), **kw})

    body = avro.encode_body("Prediction", base.avro())
    abody = avro.encode_body("Actual", act.avro())
    # model_id is the first field: "XX" -> an invalid UTF-8 pair of the same length
    utf8_body = avro.encode_body("Prediction", {**base.avro(), "model_id": "XX"})
    assert utf8_body[:3] == b"\x04XX"
    bad_utf8 = utf8_body[:1] + b"\xc3\x28" + utf8_body[3:]
    huge_len = zigzag(1 << 40) + body[1:]  # model_id "good": 1 length byte

    cases = [
        (P, b"this is not avro", "bad_framing"),
        (P, None, "bad_framing"),
        (P, b"\x00\x00\x00", "bad_framing"),
        (P, b"\x01" + struct.pack(">I", 1) + body, "bad_framing"),
        (P, frame(99, body), "unknown_schema_id"),
        (P, frame(2, abody), "wrong_record_type"),
        (P, frame(1, body[:-5]), "malformed_avro"),
        (P, frame(1, body + b"\x00"), "trailing_bytes"),
        (P, pred(value=float("nan")), "non_finite"),
        (P, pred(value=float("inf")), "non_finite"),
        (P, pred(lower=float("-inf")), "non_finite"),
        (P, pred(series="Z L"), "invalid_name"),
        (P, pred(model_id="bad model"), "invalid_name"),
        (P, pred(series="__ZL"), "reserved_name"),
        (P, pred(horizon="1|D"), "invalid_name"),
        (P, pred(issued_at=-1), "timestamp_out_of_range"),
        (P, pred(target_time=TS_2200), "timestamp_out_of_range"),
        (P, pred(series="S" * 300), "absurd_length"),
        (P, frame(1, bad_utf8), "invalid_utf8"),
        (P, frame(1, huge_len), "absurd_length"),
        (P, pred(horizon="1W"), "unknown_horizon"),
        (A, b"\xff" * 10, "bad_framing"),
        (A, frame(1, body), "wrong_record_type"),
        (A, actual(value=float("nan")), "non_finite"),
        (A, actual(value=float("-inf")), "non_finite"),
        (A, actual(observed_at=-86_400_000), "timestamp_out_of_range"),
        (A, actual(observed_at=TS_2200 + 1), "timestamp_out_of_range"),
        (A, actual(series="__x"), "reserved_name"),
        (A, frame(2, abody[:-3]), "malformed_avro"),
    ]
    return [(Sent(t, f"bad-{i:02d}".encode(), v, label=f"bad-{i:02d} {code}"), code) for i, (t, v, code) in enumerate(cases)]


def test_bad_records_dead_lettered(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    """SPEC §2 / §9.3: every bad record goes to the dead-letter topic with its
    reason code, source topic, partition and offset, its original key and
    bytes; the worker keeps running and the valid records between them still
    produce exactly the reference's forecasts."""
    inputs = topic_factory(partitions=3, roles=INPUT_ROLES)
    outputs = topic_factory(partitions=2, roles=OUTPUT_ROLES)
    zl = make_series("ZL", 50.0, 14, seed=3)
    # Boundary values that are valid: the epoch itself, the last ms before 2200.
    edge_actual = Actual("ZL", 0, 49.0)
    edge_pred = Prediction("good", "ZL", "1D", day(13) + 22 * HOUR_MS, 7_258_118_399_999, 51.0)
    preds = zl.predictions + [edge_pred]
    acts = [edge_actual] + zl.actuals
    expected = expected_forecasts(Config(), preds, acts)

    valid = encode_actuals(avro, inputs.actuals, acts) + encode_predictions(avro, inputs.predictions, preds)
    bad = bad_records(avro, inputs)
    stream: list[Sent] = []
    step = max(1, len(valid) // len(bad))
    bad_iter = iter(bad)
    for i, rec in enumerate(valid):
        stream.append(rec)
        if i % step == step - 1:
            nxt = next(bad_iter, None)
            if nxt:
                stream.append(nxt[0])
    stream.extend(rec for rec, _ in bad_iter)
    produce_all(kafka, stream)

    group = new_group(test_id, "workers")
    cfg = base_config(chorus_config, group, inputs, outputs)
    cfg["horizons"] = "1D"
    worker = chorus(cfg)
    watch = GroupWatcher(kafka, group)
    try:
        consume_until(kafka, outputs.forecasts, len(expected), 120, worker)
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, worker)
    finally:
        watch.close()
    assert worker.alive(), "the worker died on bad input"

    dlq = kafka.read_to_end(outputs.dlq)
    by_key = {m.key(): m for m in dlq}
    assert len(by_key) == len(dlq), "a record was dead-lettered twice"
    problems = []
    for rec, code in bad:
        m = by_key.pop(rec.key, None)
        if m is None:
            problems.append(f"{rec.label}: not in the dead-letter topic")
            continue
        h = {k: v for k, v in (m.headers() or [])}
        want = {
            "chorus.error": code.encode(),
            "chorus.source.topic": rec.topic.encode(),
            "chorus.source.partition": str(rec.partition).encode(),
            "chorus.source.offset": str(rec.offset).encode(),
        }
        for k, v in want.items():
            if h.get(k) != v:
                problems.append(f"{rec.label}: header {k} = {h.get(k)!r}, expected {v!r}")
        if not h.get("chorus.error.message"):
            problems.append(f"{rec.label}: empty chorus.error.message")
        if m.value() != rec.value:
            problems.append(f"{rec.label}: value {m.value()!r:.60} is not the original {rec.value!r:.60}")
    assert not by_key, f"unexpected dead letters: {[(k, dict(m.headers() or [])) for k, m in by_key.items()]}"
    assert not problems, "\n".join(problems)

    msgs = kafka.read_to_end(outputs.forecasts)
    assert len(msgs) == len(expected)
    check_against_reference(avro, msgs, expected)
    assert worker.stop() == 0


# ------------------------------------------------- late actual corrections --


def test_late_correction_replays_like_the_live_run(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    """SPEC §9.2 with a correction delivered late. CL's day-15 actual is
    observed at 09:00; `good` revises its day-15 prediction at 10:00 (inside
    the bucket); the feed corrects day 15 with a record observed at 15:00,
    but delivers it after day 16's actual. Live, the 10:00 revision is
    processed before the correction exists. Every prediction is still
    processed after every actual observed at or before its issued_at (the
    correction is observed after 10:00, and the later predictions are
    produced only once it is applied), so SPEC §9.2 promises that a replay
    from the start gives the live run's forecasts. As of 10:00 the winning
    actual of day 15 is the 09:00 one (SPEC §1 "as of", §4 "No look-ahead"),
    which is what the reference computes."""
    inputs = topic_factory(partitions=2, roles=INPUT_ROLES)
    cl = make_series("CL", 80.0, 14, seed=5)
    last = cl.actuals[-1].value

    def batch(d: int, level: float) -> list[Prediction]:
        """The three models' predictions for day d, issued at 22:00 the day before."""
        return [
            Prediction(m, "CL", "1D", day(d - 1) + 22 * HOUR_MS, day(d) + 12 * HOUR_MS, level * f)
            for m, f in (("good", 1.001), ("fair", 0.992), ("poor", 1.04))
        ]

    a15 = Actual("CL", day(15) + 9 * HOUR_MS, last * 1.01)
    revision = Prediction("good", "CL", "1D", day(15) + 10 * HOUR_MS, day(15) + 12 * HOUR_MS, last * 1.012)
    a16 = Actual("CL", day(16) + 21 * HOUR_MS, last * 1.02)
    late_fix = Actual("CL", day(15) + 15 * HOUR_MS, last * 1.05)  # delivered after a16
    a17 = Actual("CL", day(17) + 21 * HOUR_MS, last * 1.03)
    phase1_actuals = cl.actuals + [a15, a16]
    phase1_preds = cl.predictions + batch(15, last) + [revision]
    phase2_preds = batch(16, last * 1.01) + batch(17, last * 1.02)
    actuals = phase1_actuals + [late_fix, a17]
    predictions = phase1_preds + phase2_preds
    expected = expected_forecasts(Config(), predictions, actuals)
    n_phase1 = len(expected_forecasts(Config(), phase1_preds, actuals))

    runs = []
    for name in ("live", "replay"):
        outputs = topic_factory(partitions=2, roles=OUTPUT_ROLES)
        group = new_group(test_id, name)
        cfg = base_config(chorus_config, group, inputs, outputs)
        cfg["redis.key_prefix"] = f"e2e{name}{group[-10:]}"
        worker = chorus(cfg, name=name)
        watch = GroupWatcher(kafka, group)
        try:
            if name == "live":
                produce_all(
                    kafka,
                    encode_actuals(avro, inputs.actuals, phase1_actuals)
                    + encode_predictions(avro, inputs.predictions, phase1_preds),
                )
                consume_until(kafka, outputs.forecasts, n_phase1, 120, worker)
                produce_all(kafka, encode_actuals(avro, inputs.actuals, [late_fix]))
                watch.wait_caught_up([inputs.actuals], 60, worker)
                produce_all(
                    kafka,
                    encode_actuals(avro, inputs.actuals, [a17]) + encode_predictions(avro, inputs.predictions, phase2_preds),
                )
            consume_until(kafka, outputs.forecasts, len(expected), 120, worker)
            watch.wait_caught_up([inputs.predictions, inputs.actuals], 60, worker)
        finally:
            watch.close()
        assert worker.stop() == 0
        runs.append(kafka.read_to_end(outputs.forecasts))

    live, replay = (bytes_per_key(m) for m in runs)
    assert sorted(live) == sorted(replay)
    differing = sorted(k.decode() for k in live if live[k] != replay[k])
    verdicts = []
    for name, msgs in zip(("live run", "replay"), runs):
        try:
            check_against_reference(avro, msgs, expected)
            verdicts.append(f"the {name} matches the reference")
        except AssertionError as e:
            verdicts.append(f"the {name} differs from the reference: {e}")
    assert not differing and not any("differs" in v for v in verdicts), (
        f"replay differs from the live run for {differing}\n" + "\n".join(verdicts)
    )
