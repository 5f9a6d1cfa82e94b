"""The harness itself, against the real broker and the real Redis: if these
fail, no other integration test means anything. None needs the chorus binary."""

from __future__ import annotations

import os
import stat
import subprocess
import textwrap
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from conftest import HARNESS, AvroCodec, frame, scaled, unframe, unique, wait_until, write_config


def _prediction(i: int) -> dict:
    return {
        "model_id": "lstm",
        "model_version": None,
        "series": "BRK.B",
        "horizon": "1D",
        "issued_at": 1_700_000_000_000 + i,
        "target_time": 1_700_086_400_000,
        "value": 100.25 + i,
        "lower": 99.0,
        "upper": None,
    }


def test_kafka_framed_avro_roundtrip(kafka, topic_factory, avro):
    ts = topic_factory(partitions=2, roles=("predictions",))
    sent = [_prediction(i) for i in range(4)]
    for i, rec in enumerate(sent):
        kafka.produce(
            ts.predictions,
            avro.encode("Prediction", rec),
            key=rec["series"],
            headers=[("n", str(i).encode())],
            partition=i % 2,
            flush=False,
        )
    kafka.flush()

    msgs = kafka.consume(ts.predictions, 4)
    assert sorted(m.partition() for m in msgs) == [0, 0, 1, 1]
    got = sorted((avro.decode(m.value()) for m in msgs), key=lambda r: r["issued_at"])
    assert got == sent
    for m in msgs:
        assert m.key() == b"BRK.B"
        assert unframe(m.value())[0] == 1
        assert dict(m.headers())["n"] in {b"0", b"1", b"2", b"3"}
    assert len(kafka.read_to_end(ts.predictions)) == 4


def test_kafka_transactions_and_read_committed(kafka, topic_factory, test_id):
    """The broker's transaction coordinator works (the exactly-once tests need it)."""
    ts = topic_factory(roles=("forecasts",))
    p = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "transactional.id": f"{test_id}.tx",
            "transaction.timeout.ms": 60000,
        }
    )
    p.init_transactions(scaled(30))
    p.begin_transaction()
    p.produce(ts.forecasts, b"committed-1")
    p.produce(ts.forecasts, b"committed-2")
    p.commit_transaction(scaled(30))
    p.begin_transaction()
    p.produce(ts.forecasts, b"aborted")
    p.flush(scaled(30))  # on the broker, not purged locally by the abort
    p.abort_transaction(scaled(30))

    committed = [m.value() for m in kafka.read_to_end(ts.forecasts)]
    assert committed == [b"committed-1", b"committed-2"]
    everything = [m.value() for m in kafka.read_to_end(ts.forecasts, isolation="read_uncommitted")]
    assert everything == [b"committed-1", b"committed-2", b"aborted"]


def test_kafka_consumer_group_commits_offsets(kafka, topic_factory, test_id):
    """Group membership and offset commits work, and a group forms quickly."""
    ts = topic_factory(roles=("actuals",))
    for i in range(3):
        kafka.produce(ts.actuals, f"v{i}".encode(), flush=False)
    kafka.flush()

    group = f"{test_id}.group"
    c = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        c.subscribe([ts.actuals])
        seen = []

        def three():
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen.append(m)
            return len(seen) == 3

        wait_until(three, 30, "three records through a consumer group")
        c.commit(message=seen[-1], asynchronous=False)
    finally:
        c.close()

    c2 = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    try:
        from confluent_kafka import TopicPartition

        (tp,) = c2.committed([TopicPartition(ts.actuals, 0)], timeout=scaled(30))
        assert tp.offset == 3
    finally:
        c2.close()


def test_harness_create_topic_command(kafka):
    # The kafka fixture has set CHORUS_TEST_KAFKA_DIR if it started the broker.
    if not os.environ.get("CHORUS_TEST_KAFKA_DIR"):
        pytest.skip("the broker was not started by tests/harness/kafka.sh")
    name = unique("it.cli")
    subprocess.run(
        [str(HARNESS / "kafka.sh"), "create-topic", os.environ["CHORUS_TEST_KAFKA_DIR"], name, "3"],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=scaled(60),
    )
    assert kafka.partitions(name) == [0, 1, 2]


def test_redis_ping_set_get(redis_client, redis_prefix):
    assert redis_client.ping() is True
    key = f"{redis_prefix}:smoke"
    value = b"binary\x00safe\xff|value"
    assert redis_client.set(key, value) is True
    assert redis_client.get(key) == value
    # The harness's settings: state must never be evicted, nor persisted.
    assert redis_client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert redis_client.config_get("save") == {"save": ""}
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}


def _sample(schema, named: dict):
    """A valid, non-trivial value for an Avro schema (non-null union branches)."""
    if isinstance(schema, str):
        prim = {
            "string": "x.y",
            "long": 1_700_000_000_123,
            "int": 7,
            "double": -1.25,
            "float": 0.5,
            "boolean": True,
            "null": None,
            "bytes": b"\x00\x01",
        }
        if schema in prim:
            return prim[schema]
        return _sample(named[schema.split(".")[-1]], named)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"] or schema
        return _sample(branches[-1], named)
    t = schema["type"]
    if t == "record":
        named[schema["name"]] = schema
        return {f["name"]: _sample(f["type"], named) for f in schema["fields"]}
    if t == "map":
        return {"a": _sample(schema["values"], named), "b.c": _sample(schema["values"], named)}
    if t == "array":
        return [_sample(schema["items"], named)]
    if t == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    if t == "fixed":
        named[schema["name"]] = schema
        return b"\x00" * schema["size"]
    return _sample(t, named)


def test_avro_codec_roundtrips_every_schema(avro: AvroCodec):
    assert {"Prediction", "Actual", "EnsembleForecast"} <= set(avro.raw)
    for name, raw in avro.raw.items():
        rec = _sample(raw, {})
        body = avro.encode_body(name, rec)
        assert avro.decode_body(name, body) == rec, name
        framed = avro.encode(name, rec, schema_id=4242)
        assert framed[:5] == b"\x00\x00\x00\x10\x92"
        assert unframe(framed) == (4242, body)


def test_avro_confluent_framing(avro: AvroCodec):
    rec = _prediction(0)
    data = avro.encode("prediction", rec)
    assert data[:5] == frame(1, b"")
    assert avro.decode(data) == rec
    assert avro.decode(avro.encode("Actual", {"series": "ZL", "observed_at": 0, "value": 1.0, "source": None}))[
        "series"
    ] == "ZL"
    with pytest.raises(KeyError):
        avro.decode(frame(999, b""))
    with pytest.raises(ValueError):
        avro.decode(b"\x01\x00\x00\x00\x01")


def _stand_in(tmp_path, body: str):
    """A shell script that stands in for the chorus binary."""
    path = tmp_path / f"stand-in-{uuid.uuid4().hex[:6]}"
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_chorus_process_fixture(chorus, chorus_config, tmp_path, kafka_bootstrap, redis_port):
    """Config file, argv, environment, log capture and SIGTERM handling of the
    `chorus` fixture, with a stand-in for the binary."""
    well_behaved = _stand_in(
        tmp_path,
        """
        echo "argv: $*"
        cat "$3"
        env | grep -E '^(CHORUS_|ENABLE_)' | sed 's/^/leaked env: /'
        echo "to stderr" >&2
        trap 'echo "got TERM"; kill $!; exit 0' TERM
        echo ready
        sleep 600 & wait $!
        """,
    )
    chorus_config["weights.method"] = "equal"
    os.environ["ENABLE_LSTM"] = "true"  # must not reach the process
    try:
        w = chorus(binary=well_behaved, env={"EXTRA": "1"})
    finally:
        del os.environ["ENABLE_LSTM"]
    w.wait_for_log(r"^ready$")
    log = w.log()
    assert f"argv: run -c {w.config_path}" in log
    assert f"kafka.bootstrap.servers = {kafka_bootstrap}" in log
    assert f"redis.port = {redis_port}" in log
    assert f"topic.predictions = {chorus_config['topic.predictions']}" in log
    assert "weights.method = equal" in log
    assert "to stderr" in log
    assert "leaked env" not in log
    assert w.stop() == 0
    assert "got TERM" in w.log()

    stubborn = _stand_in(
        tmp_path,
        """
        trap '' TERM
        echo ready
        exec sleep 600
        """,
    )
    s = chorus(binary=stubborn, name="stubborn")
    s.wait_for_log("ready")
    assert s.stop(timeout=0.5) == -9
    assert s.needed_sigkill
    s.needed_sigkill = False  # expected here; keep the teardown quiet

    quitter = _stand_in(tmp_path, "echo bye; exit 3\n")
    q = chorus(binary=quitter, name="quitter")
    assert q.wait() == 3
    with pytest.raises(AssertionError, match="exited"):
        q.wait_for_log("never printed", timeout=5)


def test_write_config_quotes_what_the_parser_would_change(tmp_path):
    path = write_config(
        tmp_path / "c.conf",
        {"a": "plain", "b": " padded ", "c": "x #y", "d": '"q"', "e": True, "f": None, "g": 3, "h": ""},
    )
    assert path.read_text().splitlines()[1:] == [
        "a = plain",
        'b = " padded "',
        'c = "x #y"',
        'd = "\\"q\\""',
        "e = true",
        "g = 3",
        'h = ""',
    ]
    with pytest.raises(ValueError):
        write_config(tmp_path / "bad.conf", {"a": "x\ny"})
