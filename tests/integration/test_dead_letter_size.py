"""Oversized bad input (issue 14, in part) against a real broker and Redis.

A prediction with a 5 MB model_id (the input topic accepts it; the broker's
default limit for the dead-letter topic is about 1 MB) and one whose string
length prefix claims 2^62 bytes, each followed by valid records in the same
partition. Every valid record is processed; each bad one has exactly one
dead letter, the oversized one cut to dlq.max_value_bytes with headers that
say so; a kill -9 in the middle changes nothing (read_committed).
"""

from __future__ import annotations

from confluent_kafka import Producer

from conftest import scaled
from e2e_support import HOUR_MS, Sent, consume_until, day, encode_actuals, new_group, zigzag
from reference_model import Actual, Prediction

DAYS = 12
LIMIT = 262144  # dlq.max_value_bytes, the default
BIG = 5 * 1024 * 1024



def test_oversized_and_absurd_records_are_dead_lettered_once(
    kafka, avro, topic_factory, chorus, chorus_config, test_id
):
    big_topic = {"max.message.bytes": str(8 * 1024 * 1024)}
    inputs = topic_factory(partitions=1, roles=("predictions", "actuals"), config=big_topic)
    outputs = topic_factory(partitions=1, roles=("forecasts", "dlq"))

    acts = [Actual("ZL", day(d) + 21 * HOUR_MS, 50.0 + d) for d in range(DAYS + 1)]
    stream = encode_actuals(avro, inputs.actuals, acts)
    big = Prediction("x" * BIG, "ZL", "1D", day(0) + 22 * HOUR_MS, day(1), 50.0)
    big_value = avro.encode("Prediction", big.avro())
    good = avro.encode_body("Prediction", Prediction("a", "ZL", "1D", day(0), day(1), 1.0).avro())
    absurd_value = big_value[:5] + zigzag(1 << 62) + good[2:]
    for d in range(DAYS):
        for model in ("arima", "lstm"):
            p = Prediction(model, "ZL", "1D", day(d) + 22 * HOUR_MS, day(d + 1), 50.0 + d)
            stream.append(Sent(inputs.predictions, b"ZL", avro.encode("Prediction", p.avro())))
        if d == 2:
            stream.append(Sent(inputs.predictions, b"big", big_value))
        if d == 6:
            stream.append(Sent(inputs.predictions, b"absurd", absurd_value))

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True,
                         "message.max.bytes": 8 * 1024 * 1024})
    errors = []
    for rec in stream:
        producer.produce(rec.topic, rec.value, rec.key,
                         on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(scaled(60)) == 0 and not errors, errors

    group = new_group(test_id, "workers")
    cfg = dict(chorus_config)
    cfg.update(inputs.config())
    cfg.update(outputs.config())
    cfg["kafka.group.id"] = group
    cfg["join.max_wait_ms"] = 60000
    cfg["batch.max_records"] = 5  # many transactions, so that the kill lands mid-sequence
    worker = chorus(cfg, name="first")
    consume_until(kafka, outputs.forecasts, 4, 60, worker)
    worker.kill()
    worker = chorus(cfg, name="second")
    expected = 2 * DAYS
    consume_until(kafka, outputs.forecasts, expected, 120, worker)
    consume_until(kafka, outputs.dlq, 2, 60, worker)
    assert worker.alive()
    assert worker.stop() == 0

    forecasts = kafka.read_to_end(outputs.forecasts)
    keys = [(m.key(), avro.decode(m.value(), "EnsembleForecast")["revision"]) for m in forecasts]
    assert len(keys) == expected and len(set(keys)) == expected, "a forecast was lost or duplicated"

    dlq = {m.key(): m for m in kafka.read_to_end(outputs.dlq)}
    assert sorted(dlq) == [b"absurd", b"big"], sorted(dlq)
    assert len(kafka.read_to_end(outputs.dlq)) == 2, "a dead letter was written twice"
    big_h = dict(dlq[b"big"].headers())
    assert big_h["chorus.error"] == b"too_long" or big_h["chorus.error"].startswith(b"absurd"), big_h
    assert big_h["chorus.error.truncated"] == b"true"
    assert big_h["chorus.source.value_bytes"] == str(len(big_value)).encode()
    assert dlq[b"big"].value() == big_value[:LIMIT]
    absurd_h = dict(dlq[b"absurd"].headers())
    assert "chorus.error.truncated" not in absurd_h
    assert dlq[b"absurd"].value() == absurd_value
    for h in (big_h, absurd_h):
        assert {"chorus.error.message", "chorus.source.topic", "chorus.source.partition",
                "chorus.source.offset"} <= set(h)
