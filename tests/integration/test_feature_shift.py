"""FEATURE_SHIFT (SPEC §6.6) against a real Kafka broker and Redis.

Feature importances on chorus.feature-importance, keyed by model. The
expected alerts come from the rule written again here from the spec
(`expected_alerts`), with the same arithmetic in the same order, so values
are compared exactly; the scenario also lists them by hand, with one change
exactly on the threshold (0.25, exact in binary), which must not fire.

No test sleeps to synchronise: each waits on a record count or on the
consumer group's committed offsets, with a deadline.
"""

from __future__ import annotations

from e2e_support import HOUR_MS, GroupWatcher, Sent, bytes_per_key, consume_until, day, new_group, produce_all
from conftest import wait_until
from reference_model import DAY_MS

FI_SCHEMA_ID = 4
THRESHOLD = 0.25


def fi(model, series, d, importances, hour=12):
    return {"model_id": model, "series": series, "computed_at": day(d) + hour * HOUR_MS, "importances": importances}


def encode(avro, topic, recs) -> list[Sent]:
    return [Sent(topic, r["model_id"].encode(), avro.encode("FeatureImportance", r, schema_id=FI_SCHEMA_ID)) for r in recs]


def expected_alerts(recs, threshold, top_n=10, days=30):
    """The rule, from SPEC §6.6 and docs/alerts.md: per (model, series), the
    reference is the mean normalised importance over the stored records with
    computed_at in [t - days, t); a late record is stored, not judged."""
    stored, newest, firing, out = {}, {}, {}, []
    for r in recs:
        k = (r["model_id"], r["series"])
        t = r["computed_at"]
        names = sorted(r["importances"])
        total = 0.0
        for n in names:
            total += r["importances"][n]
        cur = {n: r["importances"][n] / total for n in names}
        mine = stored.setdefault(k, [])
        window = [s for s in mine if t - days * DAY_MS <= s[0] < t]  # stored in (t, arrival) order below
        mine.append((t, len(mine), cur))
        mine.sort(key=lambda s: (s[0], s[1]))
        late = k in newest and t < newest[k]
        if not late:
            newest[k] = t
        if late or not window:
            continue
        sums: dict[str, float] = {}
        for _, _, v in window:
            for n in v:
                sums[n] = sums.get(n, 0.0) + v[n]
        ref = {n: s / len(window) for n, s in sums.items()}
        ranked = sorted(ref, key=lambda n: (-ref[n], n))[:top_n]
        changes = {n: abs(cur.get(n, 0.0) - ref[n]) / ref[n] for n in ranked if ref[n] > 0}
        largest = max(changes.values())
        holds = any(c > threshold for c in changes.values())
        if holds != firing.get(k, False):
            out.append((r["model_id"], r["series"], "firing" if holds else "resolved", t, largest))
        firing[k] = holds
    return out


def scenario():
    """lstm on ZL: steady, exactly on the threshold, above it, back; a late
    record; gb with no series: a feature that disappears."""
    recs = [fi("lstm", "ZL", d, {"a": 1.0, "b": 1.0}) for d in range(3)]
    recs.append(fi("lstm", "ZL", 3, {"a": 0.625, "b": 0.375}))  # 0.5 -> 0.625: change exactly 0.25
    recs.append(fi("lstm", "ZL", 4, {"a": 3.0, "b": 1.0}))  # fires
    recs.append(fi("lstm", "ZL", 5, {"a": 0.75, "b": 0.75}))  # resolves
    # Late: judged, it would fire (0.9 against 0.5); it is stored, and the
    # next record's reference holds it (a 0.61, b 0.39), so that 0.6/0.4 is
    # close to it and nothing changes.
    recs.append(fi("lstm", "ZL", 2, {"a": 9.0, "b": 1.0}, hour=1))
    recs.append(fi("lstm", "ZL", 6, {"a": 0.6, "b": 0.4}))
    recs += [fi("gb", None, d, {"x": 2.0, "y": 1.0, "z": 1.0}) for d in range(2)]
    recs.append(fi("gb", None, 2, {"x": 2.0, "y": 1.0}))  # z missing: counts as 0, change 1
    return recs


def config(chorus_config, inputs, outputs, group, prefix):
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = group
    cfg["redis.key_prefix"] = prefix
    cfg["alerts.enabled"] = 1
    cfg["alerts.feature_shift.change"] = THRESHOLD
    return cfg


def run(kafka, avro, topic_factory, chorus, chorus_config, test_id, recs, partitions, workers, name, count):
    inputs = topic_factory(partitions=partitions, roles=("predictions", "actuals", "feature_importance"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    produce_all(kafka, encode(avro, inputs.feature_importance, recs))
    group = new_group(test_id, name)
    cfg = config(chorus_config, inputs, outputs, group, f"fs{name}{group[-10:]}")
    procs = [chorus(cfg, name=f"{name}{i}") for i in range(workers)]
    consume_until(kafka, outputs.alerts, count, 120, procs[0])
    watcher = GroupWatcher(kafka, group)
    try:
        watcher.wait_caught_up([inputs.feature_importance], 60, procs[0])
    finally:
        watcher.close()
    for p in procs:
        assert p.stop() == 0
    return kafka.read_to_end(outputs.alerts), outputs


def test_feature_shift_fires_above_the_threshold_and_resolves(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    recs = scenario()
    want = expected_alerts(recs, THRESHOLD)
    assert [(m, s, st, t) for m, s, st, t, _ in want] == [
        ("lstm", "ZL", "firing", day(4) + 12 * HOUR_MS),
        ("lstm", "ZL", "resolved", day(5) + 12 * HOUR_MS),
        ("gb", None, "firing", day(2) + 12 * HOUR_MS),
    ], want
    msgs, _ = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, recs, 1, 1, "one", len(want))
    alerts = [avro.decode(m.value(), "Alert") for m in msgs]
    got = [(a["model_id"], a["series"], a["state"], a["event_time"], a["value"]) for a in alerts]
    assert got == want, got
    assert [m.key() for m in msgs] == [b"FEATURE_SHIFT|ZL||lstm|"] * 2 + [b"FEATURE_SHIFT|||gb|"]
    fire, resolve, gone = alerts
    assert all(a["type"] == "FEATURE_SHIFT" and a["severity"] == "critical" for a in alerts)
    assert fire["threshold"] == THRESHOLD and fire["horizon"] is None and fire["indicator"] is None
    d = fire["details"]
    assert d["max_feature"] in ("a", "b") and d["reference_records"] == "4" and d["top_n"] == "10"
    assert set(f.split("=")[0] for f in d["shifted"].split(",")) == {"a", "b"}
    assert d["reference_from"] == str(day(4) + 12 * HOUR_MS - 30 * DAY_MS)
    assert float(d["max_change"]) == fire["value"]
    assert resolve["details"]["shifted"] == "" and resolve["value"] <= THRESHOLD
    assert gone["details"]["max_feature"] == "z" and gone["value"] == 1.0
    assert gone["details"]["current"].endswith("z=0")
    assert fire["message"] and resolve["message"] and len(fire["message"]) < 512


def test_feature_shift_bad_records_are_dead_letters(kafka, avro, topic_factory, chorus, chorus_config, test_id):
    recs = [fi("lstm", None, 0, {"a": 1.0, "b": -0.5}), fi("lstm", None, 0, {"a": 0.0}),
            fi("lstm", None, 0, {"bad name": 1.0})]
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals", "feature_importance"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    produce_all(kafka, encode(avro, inputs.feature_importance, recs))
    group = new_group(test_id, "dlq")
    proc = chorus(config(chorus_config, inputs, outputs, group, f"fsd{group[-10:]}"), name="dlq")
    msgs = consume_until(kafka, outputs.dlq, 3, 60, proc)
    assert proc.stop() == 0
    reasons = [dict(m.headers())["chorus.error"] for m in sorted(msgs, key=lambda m: m.offset())]
    assert reasons == [b"invalid_importances", b"invalid_importances", b"invalid_name"], reasons
    assert all(dict(m.headers())["chorus.source.topic"] == inputs.feature_importance.encode() for m in msgs)


def many_models():
    """Eight models (half with a series), each shifting at its own day, so
    that alerts interleave across partitions and workers."""
    recs = []
    for day_no in range(10):
        for i in range(8):
            model, series = f"m{i}", (f"S{i}" if i % 2 else None)
            shifted = day_no in (3 + i % 4, 4 + i % 4)
            imp = {"a": 3.0, "b": 1.0, "c": 1.0} if shifted else {"a": 1.0, "b": 1.0, "c": 1.0}
            recs.append(fi(model, series, day_no, imp, hour=i + 1))
    return recs


def test_feature_shift_is_the_same_with_three_partitions_and_two_workers(
    kafka, avro, topic_factory, chorus, chorus_config, test_id
):
    recs = many_models()
    want = expected_alerts(recs, THRESHOLD)
    assert len(want) >= 16, want
    one, _ = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, recs, 1, 1, "p1", len(want))
    many, _ = run(kafka, avro, topic_factory, chorus, chorus_config, test_id, recs, 3, 2, "p3", len(want))
    assert len(one) == len(want) and len(many) == len(want)
    assert bytes_per_key(one) == bytes_per_key(many)
    got = sorted((a["model_id"], a["event_time"], a["state"]) for a in (avro.decode(m.value(), "Alert") for m in one))
    assert got == sorted((m, t, st) for m, _, st, t, _ in want)


def test_feature_shift_kill_mid_stream_loses_and_duplicates_nothing(
    kafka, avro, topic_factory, chorus, chorus_config, test_id
):
    recs = many_models()
    want = expected_alerts(recs, THRESHOLD)
    inputs = topic_factory(partitions=2, roles=("predictions", "actuals", "feature_importance"))
    outputs = topic_factory(partitions=1, roles=("forecasts", "alerts", "validation", "dlq"))
    # Half the stream first, the rest after the kill: the kill is always
    # inside the stream, however fast the first worker is.
    half = len(recs) // 2
    produce_all(kafka, encode(avro, inputs.feature_importance, recs[:half]))
    group = new_group(test_id, "kill")
    cfg = config(chorus_config, inputs, outputs, group, f"fsk{group[-10:]}")
    cfg["batch.max_records"] = 3  # many transactions, so the kill lands inside the stream
    cfg["kafka.session.timeout.ms"] = 6000  # the dead member's partitions move sooner
    first = chorus(cfg, name="kill1")
    # The kill comes as soon as an alert is produced, possibly in a
    # transaction that has not committed yet.
    wait_until(lambda: len(kafka.read_to_end(outputs.alerts, isolation="read_uncommitted")) >= 1, 120,
               "a first alert, committed or not", interval=0.2)
    first.kill()
    produce_all(kafka, encode(avro, inputs.feature_importance, recs[half:]))
    second = chorus(cfg, name="kill2")
    consume_until(kafka, outputs.alerts, len(want), 120, second)
    watcher = GroupWatcher(kafka, group)
    try:
        watcher.wait_caught_up([inputs.feature_importance], 60, second)
    finally:
        watcher.close()
    assert second.stop() == 0
    msgs = kafka.read_to_end(outputs.alerts)
    got = sorted((a["model_id"], a["event_time"], a["state"], a["value"]) for a in (avro.decode(m.value(), "Alert") for m in msgs))
    assert got == sorted((m, t, st, v) for m, _, st, t, v in want), "lost or duplicated alerts"
