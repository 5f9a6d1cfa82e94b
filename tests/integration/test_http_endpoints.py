"""The HTTP endpoints of `chorus run` (SPEC §10, §9.4) during a real run:
real Kafka, a real Redis, a real HTTP client (urllib) and an independent
parser of the exposition format (prometheus_client's).

* /metrics: the counters agree with what the run produced (records in per
  partition, forecasts and dead letters out, dead letters by reason,
  transactions), and the histograms and gauges are well-formed;
* /readyz: 503 with the reason while Redis is stopped, 200 again after;
* /healthz: 200 while the loop turns.

Waits poll with a deadline (scaled()); there is no fixed sleep.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

import pytest
import redis as redislib
from prometheus_client.parser import text_string_to_metric_families

from conftest import _harness, scaled
from e2e_support import GroupWatcher, Sent, consume_until, encode_actuals, encode_predictions, make_series, produce_all

INPUT_ROLES = ("predictions", "actuals")
OUTPUT_ROLES = ("forecasts", "dlq")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=scaled(10)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def total(m: dict, name: str, **labels) -> float:
    """Sum over the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))


def poll(what: str, fn: Callable[[], object], timeout: float, proc=None):
    deadline = time.monotonic() + scaled(timeout)
    last = None
    while True:
        last = fn()
        if last:
            return last
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail(60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.0f}s waiting for {what}")
        time.sleep(0.1)


def http_port(proc) -> int:
    m = proc.wait_for_log(r'fac=http msg="serving /metrics, /healthz, /readyz" listen=\S+ port=(\d+)')
    return int(m.group(1))


class PrivateRedis:
    """A harness redis-server that the test may stop and start again on the
    same port (the session's server is shared and must stay up)."""

    def __init__(self, d: Path):
        self.dir = d
        self.port = int(_harness("redis.sh", "start", str(d)))

    def client(self) -> redislib.Redis:
        return redislib.Redis(host="127.0.0.1", port=self.port, socket_timeout=scaled(5))

    def stop(self) -> None:
        pid = int((self.dir / "pid").read_text())
        c = self.client()
        try:
            c.shutdown(nosave=True)
        except redislib.exceptions.ConnectionError:
            pass  # the server closes the connection as it exits
        c.close()

        def gone() -> bool:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().split()[2] == "Z"
            except FileNotFoundError:
                return True

        poll("redis-server to exit", gone, 20)

    def start(self) -> None:
        p = subprocess.Popen(
            ["redis-server", str(self.dir / "redis.conf")],
            stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "redis.stdout", "ab"),
            stderr=subprocess.STDOUT,
        )
        (self.dir / "pid").write_text(f"{p.pid}\n")  # the harness stops this one

        def pong() -> bool:
            c = self.client()
            try:
                return bool(c.ping())
            except redislib.exceptions.ConnectionError:
                return False
            finally:
                c.close()

        poll("redis-server to answer PING", pong, 20)

    def close(self) -> None:
        _harness("redis.sh", "stop", str(self.dir))


@pytest.fixture
def private_redis(tmp_path) -> Iterable[PrivateRedis]:
    r = PrivateRedis(tmp_path / "redis")
    try:
        yield r
    finally:
        r.close()


def test_metrics_readiness_and_health(kafka, avro, topic_factory, chorus, chorus_config, private_redis, test_id):
    inputs = topic_factory(partitions=2, roles=INPUT_ROLES)
    outputs = topic_factory(partitions=1, roles=OUTPUT_ROLES)
    group = f"{test_id}.http"
    cfg = dict(chorus_config)
    cfg.update({f"topic.{r}": getattr(inputs, r) for r in INPUT_ROLES})
    cfg.update({f"topic.{r}": getattr(outputs, r) for r in OUTPUT_ROLES})
    cfg.update(
        {
            "kafka.group.id": group,
            "redis.port": private_redis.port,
            "http.listen": "127.0.0.1:0",
            "kafka.statistics.interval.ms": 500,
            "join.max_wait_ms": 0,
        }
    )
    worker = chorus(cfg, name="worker")
    port = http_port(worker)
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/nope")[0] == 404

    # Ready once Kafka statistics arrived and partitions are assigned.
    poll("/readyz 200", lambda: get(port, "/readyz")[0] == 200, 60, worker)

    series = make_series("ZL", 50.0, 12, seed=3)
    records = encode_actuals(avro, inputs.actuals, series.actuals) + encode_predictions(
        avro, inputs.predictions, series.predictions
    )
    bad = [Sent(inputs.predictions, b"ZL", b"not avro at all " + bytes([i])) for i in range(5)]
    sent = produce_all(kafka, records + bad)

    watch = GroupWatcher(kafka, group)
    try:
        watch.wait_caught_up([inputs.predictions, inputs.actuals], 120, worker)
    finally:
        watch.close()
    dead = consume_until(kafka, outputs.dlq, len(bad), 60, worker)
    forecasts = kafka.read_to_end(outputs.forecasts)
    assert forecasts, "the run produced no forecasts"

    # The consumer lag comes from librdkafka statistics (every 500 ms here):
    # wait until every partition that had records shows 0 (one without a
    # committed offset has no lag to show).
    used = {(s.topic, str(s.partition)) for s in sent}
    seen: dict = {}

    def lag_zero():
        m = scrape(port)
        seen.clear()
        seen.update({(dict(ls)["topic"], dict(ls)["partition"]): v for (n, ls), v in m.items() if n == "chorus_consumer_lag"})
        return m if used <= set(seen) and not any(seen.values()) else None

    try:
        m = poll(f"consumer lag 0 on {sorted(used)}", lag_zero, 30, worker)
    except AssertionError as e:
        raise AssertionError(f"{e}; last lags {seen}") from None

    # Records in, per topic and partition, as produced.
    for topic in (inputs.predictions, inputs.actuals):
        for p in (0, 1):
            n = sum(1 for s in sent if s.topic == topic and s.partition == p)
            assert total(m, "chorus_records_in_total", topic=topic, partition=str(p)) == n, (topic, p)
    assert total(m, "chorus_records_in_total") == len(sent)
    # Records out and dead letters, as read back (read_committed).
    assert value(m, "chorus_records_out_total", topic=outputs.forecasts) == len(forecasts)
    assert value(m, "chorus_records_out_total", topic=outputs.dlq) == len(dead) == len(bad)
    assert value(m, "chorus_dead_letters_total", reason="bad_framing") == len(bad)
    assert total(m, "chorus_dead_letters_total") == len(bad)
    # Transactions: none aborted, at least one committed.
    assert value(m, "chorus_transactions_total", result="aborted") == 0
    assert value(m, "chorus_transactions_total", result="committed") >= 1
    assert value(m, "chorus_rebalances_total", type="assign") >= 1
    assert value(m, "chorus_assigned_partitions") == 4
    assert value(m, "chorus_late_records_total") == 0
    assert value(m, "chorus_ready") == 1
    # Histograms: every batch counted, as many records as went in at least.
    batches = value(m, "chorus_batch_records_count")
    assert batches >= 1
    assert value(m, "chorus_batch_records_sum") >= len(sent)
    assert value(m, "chorus_batch_records_bucket", le="+Inf") == batches
    assert value(m, "chorus_batch_duration_seconds_count") == batches
    trips = value(m, "chorus_redis_round_trips_total", result="ok")
    assert trips >= 1 and value(m, "chorus_redis_round_trips_total", result="error") == 0
    assert value(m, "chorus_redis_round_trip_duration_seconds_count") == trips

    # Redis stopped: /readyz says so, /healthz stays 200 (the loop turns).
    private_redis.stop()

    def not_ready():
        status, body = get(port, "/readyz")
        return body if status == 503 and "redis" in body else None

    body = poll("/readyz 503 while Redis is stopped", not_ready, 30, worker)
    assert "redis: unavailable" in body
    assert get(port, "/healthz")[0] == 200
    assert value(scrape(port), "chorus_ready") == 0

    private_redis.start()
    poll("/readyz 200 after Redis is back", lambda: get(port, "/readyz")[0] == 200, 30, worker)
    assert worker.alive()
    assert worker.stop() == 0
