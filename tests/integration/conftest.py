"""Fixtures for the integration tier: a real Kafka broker and a real Redis.

Where the servers come from
    scripts/test.sh starts one broker and one Redis with tests/harness/kafka.sh
    and tests/harness/redis.sh and exports CHORUS_TEST_KAFKA_BOOTSTRAP,
    CHORUS_TEST_KAFKA_DIR and CHORUS_TEST_REDIS_PORT. When those are unset
    (pytest run by hand), the session starts its own servers through the same
    scripts and stops them at the end.

Isolation
    The servers are shared by the whole session, nothing else is: every test
    gets its own topic names, consumer group and Redis key prefix, so tests do
    not see each other's records or state and need no cleanup.

Waiting
    Every wait is bounded and scaled by CHORUS_TIMEOUT_MULT (scaled()); there
    is no fixed sleep anywhere. Poll for a condition instead.

Avro
    Timestamps are plain int milliseconds on both sides: the codec drops the
    timestamp-millis annotation, which does not change the bytes.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import fastavro
import pytest
import redis as redislib
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "harness"
SCHEMA_DIR = REPO / "schemas"

#: Schema ids Chorus assumes when no Schema Registry is configured.
DEFAULT_SCHEMA_IDS = {"Prediction": 1, "Actual": 2, "EnsembleForecast": 5}

#: Topic roles; each maps to the config key topic.<role> (see
#: chorus_topic_role_t in include/chorus/config.h).
TOPIC_ROLES = (
    "predictions",
    "actuals",
    "indicators",
    "feature_importance",
    "forecasts",
    "alerts",
    "regimes",
    "validation",
    "shadow",
    "dlq",
)

#: Signals that mean the worker crashed rather than was stopped.
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


def timeout_mult() -> float:
    return float(os.environ.get("CHORUS_TIMEOUT_MULT", "1") or "1")


def scaled(seconds: float) -> float:
    """A timeout in seconds, stretched by CHORUS_TIMEOUT_MULT."""
    return seconds * timeout_mult()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll predicate until it returns something truthy; return that value.

    timeout is in unscaled seconds. Raises AssertionError naming `what`.
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")
        time.sleep(interval)


def unique(prefix: str, nodeid: str = "") -> str:
    """A short unique name, Kafka- and Redis-safe, with a readable part."""
    readable = re.sub(r"[^A-Za-z0-9]+", "_", nodeid.split("::")[-1])[:40].strip("_")
    return f"{prefix}.{readable}.{uuid.uuid4().hex[:10]}" if readable else f"{prefix}.{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------- Avro --


def _strip_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def frame(schema_id: int, body: bytes) -> bytes:
    """Confluent framing: magic byte 0, 4-byte big-endian schema id, body."""
    return b"\x00" + struct.pack(">I", schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    if len(data) < 5 or data[0] != 0:
        raise ValueError(f"not Confluent-framed: {data[:8]!r}")
    return struct.unpack(">I", data[1:5])[0], data[5:]


class AvroCodec:
    """Encodes and decodes Chorus records with the schemas in schemas/*.avsc.

    Records are addressed by their Avro name ("Prediction") or by their file
    stem ("prediction"). `schema_ids` maps names to the id written in the
    framing; tests may add ids for other record types.
    """

    def __init__(self, schema_dir: Path = SCHEMA_DIR):
        self.raw: dict[str, dict] = {}
        self.parsed: dict[str, Any] = {}
        self.schema_ids: dict[str, int] = dict(DEFAULT_SCHEMA_IDS)
        self._alias: dict[str, str] = {}
        for path in sorted(schema_dir.glob("*.avsc")):
            raw = json.loads(path.read_text())
            name = raw["name"]
            self.raw[name] = raw
            self.parsed[name] = fastavro.parse_schema(_strip_logical_types(raw))
            self._alias[name] = name
            self._alias[path.stem] = name
        if not self.parsed:
            raise RuntimeError(f"no schemas in {schema_dir}")

    def name(self, record_type: str) -> str:
        try:
            return self._alias[record_type]
        except KeyError:
            raise KeyError(f"unknown record type {record_type!r}; have {sorted(self.raw)}") from None

    def encode_body(self, record_type: str, record: dict) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed[self.name(record_type)], record)
        return buf.getvalue()

    def encode(self, record_type: str, record: dict, schema_id: int | None = None) -> bytes:
        """Framed Avro, with the type's default schema id unless one is given."""
        name = self.name(record_type)
        if schema_id is None:
            if name not in self.schema_ids:
                raise KeyError(f"no schema id for {name}; pass schema_id= or set codec.schema_ids")
            schema_id = self.schema_ids[name]
        return frame(schema_id, self.encode_body(name, record))

    def decode_body(self, record_type: str, body: bytes) -> dict:
        buf = io.BytesIO(body)
        rec = fastavro.schemaless_reader(buf, self.parsed[self.name(record_type)])
        if buf.tell() != len(body):
            raise ValueError(f"{len(body) - buf.tell()} trailing bytes after a {record_type}")
        return rec

    def decode(self, data: bytes, record_type: str | None = None) -> dict:
        """Decode a framed record; the type comes from the schema id unless given."""
        schema_id, body = unframe(data)
        if record_type is None:
            by_id = {v: k for k, v in self.schema_ids.items()}
            if schema_id not in by_id:
                raise KeyError(f"unknown schema id {schema_id}")
            record_type = by_id[schema_id]
        return self.decode_body(record_type, body)


# -------------------------------------------------------------------- Kafka --


class KafkaHelper:
    """Topic creation, producing and reading against the test broker."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._producer: Producer | None = None

    def create_topics(self, names: Iterable[str], partitions: int = 1, config: dict | None = None) -> None:
        """Create topics (replication 1) and wait until every partition has a leader."""
        names = list(names)
        futures = self.admin.create_topics(
            [NewTopic(n, partitions, 1, config=dict(config or {})) for n in names],
            operation_timeout=scaled(30),
            request_timeout=scaled(30),
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout=scaled(30))
            except KafkaException as e:
                raise AssertionError(f"creating topic {name}: {e.args[0].str()}") from None

        def ready() -> bool:
            md = self.admin.list_topics(timeout=scaled(10))
            for n in names:
                t = md.topics.get(n)
                if t is None or t.error is not None or len(t.partitions) != partitions:
                    return False
                if any(p.leader < 0 for p in t.partitions.values()):
                    return False
            return True

        wait_until(ready, 30, f"leaders for {names}")

    def partitions(self, topic: str) -> list[int]:
        t = self.admin.list_topics(topic, timeout=scaled(10)).topics[topic]
        if t.error is not None:
            raise AssertionError(f"topic {topic}: {t.error}")
        return sorted(t.partitions)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5}
            )
        return self._producer

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        flush: bool = True,
    ) -> None:
        """Produce one record; with flush (the default) wait until it is acked."""
        errors: list[KafkaError] = []

        def on_delivery(err, _msg):
            if err is not None:
                errors.append(err)

        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        self.producer.produce(topic, **kwargs)
        if flush:
            self.flush()
        if errors:
            raise AssertionError(f"produce to {topic}: {errors[0]}")

    def flush(self) -> None:
        left = self.producer.flush(scaled(30))
        if left:
            raise AssertionError(f"{left} records still unacknowledged after {scaled(30):.0f}s")

    def consumer(self, isolation: str = "read_committed", **conf: Any) -> Consumer:
        base = {
            "bootstrap.servers": self.bootstrap,
            "group.id": unique("it-reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            # Empty fetches return sooner, so reads end sooner.
            "fetch.wait.max.ms": 50,
        }
        base.update(conf)
        return Consumer(base)

    def consume(self, topic: str, count: int, timeout: float = 30, isolation: str = "read_committed") -> list:
        """Read from the beginning until `count` records arrived (fails on timeout)."""
        out: list = []
        c = self.consumer(isolation)
        try:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.partitions(topic)])
            deadline = time.monotonic() + scaled(timeout)
            while len(out) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic}: got {len(out)} of {count} records within {scaled(timeout):.0f}s")
                msg = c.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"{topic}: {msg.error()}")
                out.append(msg)
        finally:
            c.close()
        return out

    def read_to_end(self, topic: str, timeout: float = 30, isolation: str = "read_committed") -> list:
        """Every record currently in the topic (with read_committed: up to the
        last stable offset), read from the beginning until each partition
        reports end-of-partition. No idle timeout is involved."""
        out: list = []
        c = self.consumer(isolation)
        try:
            parts = self.partitions(topic)
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            at_end: set[int] = set()
            deadline = time.monotonic() + scaled(timeout)
            while len(at_end) < len(parts):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic}: partitions {sorted(set(parts) - at_end)} never reached their end")
                msg = c.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise AssertionError(f"{topic}: {msg.error()}")
                at_end.discard(msg.partition())
                out.append(msg)
        finally:
            c.close()
        return out

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(scaled(10))
            self._producer = None


class TopicSet:
    """One test's topics: an attribute per role, e.g. topics.predictions."""

    def __init__(self, base: str, roles: Iterable[str] = TOPIC_ROLES):
        self.names = {role: f"{base}.{role}" for role in roles}

    def __getattr__(self, role: str) -> str:
        try:
            return self.__dict__["names"][role]
        except KeyError:
            raise AttributeError(role) from None

    def config(self) -> dict[str, str]:
        """The topic.<role> settings that point a worker at these topics."""
        return {f"topic.{role}": name for role, name in self.names.items()}


# ------------------------------------------------------------ chorus process --


def _config_value(text: str) -> str:
    # The parser strips surrounding blanks, dequotes a leading '"' and treats
    # ' #' as a comment; quote such values, escaping '"' and '\\'.
    if text != text.strip() or text.startswith('"') or "#" in text or text == "":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write `key = value` lines (the format chorus reads); None values are
    left out, booleans become true/false."""
    lines = ["# written by tests/integration/conftest.py"]
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        if "\n" in key or "\n" in text:
            raise ValueError(f"newline in config {key!r}")
        lines.append(f"{key} = {_config_value(text)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def chorus_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a chorus process: ours, minus everything Chorus
    would read as configuration (CHORUS_* overrides every key, and the seed
    variables of SPEC §8), plus `extra`."""
    seed = re.compile(r"^(CHORUS_|ENABLE_|ENSEMBLE_MODEL_COUNT$|ENSEMBLE_OPTIMIZATION_METHOD$|CANARY_SYMBOLS$)")
    env = {k: v for k, v in os.environ.items() if not seed.match(k)}
    env.update(extra or {})
    return env


class ChorusProcess:
    """A chorus process started by the `chorus` fixture. Its stdout and
    stderr go to `log_path`."""

    def __init__(self, argv: list[str], log_path: Path, config_path: Path | None, env: dict[str, str], name: str):
        self.argv = argv
        self.name = name
        self.log_path = log_path
        self.config_path = config_path
        self._logf = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT, env=env)
        self.needed_sigkill = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 30) -> re.Match:
        """Wait until the log matches the regex `pattern`; fail early if the process exits."""
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            m = rx.search(self.log())
            if m:
                return m
            if not self.alive():
                m = rx.search(self.log())
                if m:
                    return m
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) before logging /{pattern}/:\n{self.log_tail(60)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log /{pattern}/ within {scaled(timeout):.0f}s:\n{self.log_tail(60)}")
            time.sleep(0.05)

    def wait(self, timeout: float = 30) -> int:
        """Wait for a process that exits by itself (e.g. check-config)."""
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {scaled(timeout):.0f}s:\n{self.log_tail(60)}") from None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` (scaled).
        Returns the exit status (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.needed_sigkill = True
                self.proc.kill()
                self.proc.wait(scaled(10))
        self._logf.close()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL at once (crash tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(scaled(10))
        return self.proc.returncode


# ------------------------------------------------------------- server setup --


def _harness(script: str, *args: str) -> str:
    r = subprocess.run([str(HARNESS / script), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"tests/harness/{script} {' '.join(args)} failed:\n{r.stderr}", pytrace=False)
    return r.stdout.strip()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> Iterable[str]:
    """host:port of the test broker."""
    given = os.environ.get("CHORUS_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    d = tmp_path_factory.mktemp("kafka")
    os.environ["CHORUS_TEST_KAFKA_DIR"] = str(d)
    bootstrap = _harness("kafka.sh", "start", str(d))
    try:
        yield bootstrap
    finally:
        _harness("kafka.sh", "stop", str(d))


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory) -> Iterable[int]:
    """Port of the test Redis on 127.0.0.1."""
    given = os.environ.get("CHORUS_TEST_REDIS_PORT")
    if given:
        yield int(given)
        return
    d = tmp_path_factory.mktemp("redis")
    port = int(_harness("redis.sh", "start", str(d)))
    try:
        yield port
    finally:
        _harness("redis.sh", "stop", str(d))


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap) -> Iterable[KafkaHelper]:
    helper = KafkaHelper(kafka_bootstrap)
    yield helper
    helper.close()


@pytest.fixture(scope="session")
def avro() -> AvroCodec:
    return AvroCodec()


@pytest.fixture
def test_id(request) -> str:
    """A unique, readable id for this test (used in topic, group and key names)."""
    return unique("it", request.node.nodeid)


@pytest.fixture
def topic_factory(kafka, test_id) -> Callable[..., TopicSet]:
    """make(partitions=1, roles=TOPIC_ROLES, config=None) -> a new, created TopicSet."""
    made = [0]

    def make(partitions: int = 1, roles: Iterable[str] = TOPIC_ROLES, config: dict | None = None) -> TopicSet:
        made[0] += 1
        ts = TopicSet(f"{test_id}.{made[0]}", roles)
        kafka.create_topics(ts.names.values(), partitions=partitions, config=config)
        return ts

    return make


@pytest.fixture
def topics(topic_factory) -> TopicSet:
    """This test's topics, one partition each, already created."""
    return topic_factory()


@pytest.fixture
def redis_prefix(test_id) -> str:
    """A Redis key prefix no other test uses (no braces: Chorus adds its own)."""
    return "it" + uuid.uuid4().hex[:12]


@pytest.fixture
def redis_client(redis_port) -> Iterable[redislib.Redis]:
    client = redislib.Redis(host="127.0.0.1", port=redis_port, socket_timeout=scaled(10))
    yield client
    client.close()


@pytest.fixture(scope="session")
def chorus_bin() -> Path:
    """The chorus binary (CHORUS_BIN, default build/chorus)."""
    why = os.environ.get("CHORUS_TEST_BIN_UNAVAILABLE")
    if why:
        pytest.fail(f"no chorus binary: {why}", pytrace=False)
    path = Path(os.environ.get("CHORUS_BIN", REPO / "build" / "chorus"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"chorus binary not found at {path}; build it (cmake --build build) or set CHORUS_BIN", pytrace=False)
    return path


@pytest.fixture
def chorus_config(kafka_bootstrap, redis_port, topics, redis_prefix, test_id) -> dict[str, Any]:
    """The worker config for this test, as a dict; change it before starting chorus."""
    cfg: dict[str, Any] = {
        "kafka.bootstrap.servers": kafka_bootstrap,
        "kafka.group.id": f"{test_id}.workers",
        "redis.host": "127.0.0.1",
        "redis.port": redis_port,
        "redis.key_prefix": redis_prefix,
        # A free port each: several workers run at once, and another process
        # of the machine may hold the default 9464.
        "http.listen": "127.0.0.1:0",
        "log.level": "info",
        # Monitoring is on by default; the tests of forecasts compare with
        # reference_model.py, which has no overfitting fallback, so it is
        # off here, and the monitoring tests turn it on.
        "alerts.enabled": 0,
    }
    cfg.update(topics.config())
    return cfg


@pytest.fixture
def chorus(request, tmp_path, chorus_config) -> Iterable[Callable[..., ChorusProcess]]:
    """start(config=None, *, command="run", args=(), env=None, name=None, binary=None)
    -> ChorusProcess running `chorus <command> -c <file> <args>`.

    config defaults to a copy of `chorus_config` taken now. Every process is
    stopped at teardown (SIGTERM, then SIGKILL after a bounded wait); a process
    that died of SIGSEGV/SIGABRT/... fails the test. On failure the report
    shows the end of every process's log."""
    procs: list[ChorusProcess] = []
    request.node._chorus_procs = procs

    def start(
        config: dict[str, Any] | None = None,
        *,
        command: str = "run",
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        name: str | None = None,
        binary: str | os.PathLike | None = None,
    ) -> ChorusProcess:
        if binary is None:
            binary = request.getfixturevalue("chorus_bin")
        name = name or f"chorus-{len(procs) + 1}"
        cfg_path = write_config(tmp_path / f"{name}.conf", dict(chorus_config if config is None else config))
        argv = [str(binary), command, "-c", str(cfg_path), *args]
        p = ChorusProcess(argv, tmp_path / f"{name}.log", cfg_path, chorus_env(env), name)
        procs.append(p)
        return p

    yield start

    crashed = []
    for p in procs:
        p.stop()
        if p.needed_sigkill:
            warnings.warn(f"{p.name} ignored SIGTERM for {scaled(15):.0f}s and was killed (log: {p.log_path})")
        rc = p.proc.returncode
        if rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
            crashed.append(f"{p.name} died of {signal.Signals(-rc).name}:\n{p.log_tail(80)}")
    if crashed:
        pytest.fail("\n\n".join(crashed), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for p in getattr(item, "_chorus_procs", []):
            try:
                tail = p.log_tail(200)
            except OSError as e:
                tail = f"(cannot read {p.log_path}: {e})"
            rep.sections.append((f"{p.name} log, last 200 lines ({p.log_path})", tail))


def pytest_report_header(config):
    return [
        f"chorus: CHORUS_TIMEOUT_MULT={timeout_mult()} python={sys.version.split()[0]}",
        f"kafka={os.environ.get('CHORUS_TEST_KAFKA_BOOTSTRAP', '(started by the session)')} "
        f"redis port={os.environ.get('CHORUS_TEST_REDIS_PORT', '(started by the session)')}",
    ]
