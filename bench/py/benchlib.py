"""Shared helpers of the benchmark's Python tools (bench/py/*.py).

Measurements read the kernel's own accounting: CPU time is utime+stime from
/proc/PID/stat (so it counts every thread of the process), peak memory is
VmHWM from /proc/PID/status, Redis's CPU and memory come from INFO.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[2]


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields after the comm: state(0) ... utime(11) stime(12)
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_cpu_precise_s(pid: int) -> float:
    """CPU time of the live threads of a process, in seconds, with nanosecond
    resolution (/proc/PID/task/*/schedstat); for short intervals, where
    utime+stime's clock ticks are too coarse. Threads that already exited
    are not counted, so use it for deltas over a steady process."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def redis_info(port: int) -> dict:
    import redis

    r = redis.Redis(host="127.0.0.1", port=port)
    info = r.info()
    r.close()
    return info


def redis_cpu_s(info: dict) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Lag:
    """Committed offsets of a consumer group against the log end offsets,
    read without joining the group."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]):
        from confluent_kafka import Consumer, TopicPartition

        self.TopicPartition = TopicPartition
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        md = self.c.list_topics(timeout=30)
        self.tps = [TopicPartition(t, p) for t in topics for p in sorted(md.topics[t].partitions)]
        self.end = {}

    def refresh_end(self) -> int:
        for tp in self.tps:
            _lo, hi = self.c.get_watermark_offsets(tp, timeout=30, cached=False)
            self.end[(tp.topic, tp.partition)] = hi
        return sum(self.end.values())

    def committed(self) -> int:
        """Records at or below the committed offsets (log starts at 0 here).
        Retries while the group coordinator is loading or moving."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + 60
        while True:
            try:
                return sum(max(0, tp.offset) for tp in self.c.committed(self.tps, timeout=30))
            except KafkaException as e:
                if time.monotonic() > deadline or not (e.args[0].retriable() or e.args[0].code() in (14, 15, 16)):
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.c.close()


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed", timeout: float = 600):
    """Yield every message of a topic from the beginning to its end (per
    partition end-of-partition), with read_committed by default."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-reader-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 50,
            "queued.max.messages.kbytes": 262144,
        }
    )
    try:
        parts = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
        ends = {}
        for p in parts:
            _lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
            ends[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_end = {p for p in parts if ends[p] == 0}
        deadline = time.monotonic() + timeout
        while len(at_end) < len(parts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: partitions {sorted(set(parts) - at_end)} never reached their end")
            for msg in c.consume(num_messages=10000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise RuntimeError(f"{topic}: {msg.error()}")
                yield msg
    finally:
        c.close()


# ----------------------------------------------------------- Avro, by hand --


def read_long(b: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), i


def forecast_head(value: bytes) -> tuple[str, str, int, int, int]:
    """(series, horizon, target_time, issued_at, revision) of a framed
    EnsembleForecast: its first five fields, without a full decode."""
    i = 5
    n, i = read_long(value, i)
    series = value[i : i + n].decode()
    i += n
    n, i = read_long(value, i)
    horizon = value[i : i + n].decode()
    i += n
    target, i = read_long(value, i)
    issued, i = read_long(value, i)
    revision, i = read_long(value, i)
    return series, horizon, target, issued, revision


def strip_logical_types(node):
    if isinstance(node, dict):
        return {k: strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical_types(v) for v in node]
    return node


def parsed_schema(stem: str):
    import fastavro

    return fastavro.parse_schema(strip_logical_types(json.loads((REPO / "schemas" / f"{stem}.avsc").read_text())))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in [0, 100])."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q / 100.0 * len(sorted_values) // 1)) - 1))
    return sorted_values[k]


def worker_phases(log_path: str) -> dict | None:
    """The batch phase timings of the worker's "stopped" log line (ms)."""
    keys = ("batches", "redis_ms", "produce_ms", "commit_ms", "release_ms", "redis_max_ms", "commit_max_ms",
            "batch_max_ms")
    try:
        lines = open(log_path, errors="replace").read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if 'msg="stopped"' in line:
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            return {k: int(fields[k]) for k in keys if k in fields}
    return None

