"""Redis as production needs it: the checks `chorus run` makes at start
against a real redis-server, and authentication as an ACL user.

Each test starts its own redis-server with tests/harness/redis.sh (the
session's server is shared and must keep noeviction), changes its settings
with CONFIG SET, and points the worker at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pytest
import redis as redislib

from conftest import _harness, scaled
from e2e_support import wait_for_redis_key

#: The Kafka address of a worker refused before it makes any Kafka client.
NO_KAFKA = "127.0.0.1:1"


@pytest.fixture
def private_redis(tmp_path) -> Iterable[redislib.Redis]:
    d = tmp_path / "redis"
    port = int(_harness("redis.sh", "start", str(d)))
    client = redislib.Redis(host="127.0.0.1", port=port, socket_timeout=scaled(10))
    try:
        yield client
    finally:
        client.close()
        _harness("redis.sh", "stop", str(d))


def _port(r: redislib.Redis) -> int:
    return r.connection_pool.connection_kwargs["port"]


def _refusal_config(r: redislib.Redis, prefix: str) -> dict:
    return {
        "kafka.bootstrap.servers": NO_KAFKA,
        "redis.host": "127.0.0.1",
        "redis.port": _port(r),
        "redis.key_prefix": prefix,
        "http.listen": "127.0.0.1:0",
    }


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"])
def test_evicting_policy_is_refused(chorus, private_redis, redis_prefix, policy):
    private_redis.config_set("maxmemory-policy", policy)
    p = chorus(_refusal_config(private_redis, redis_prefix))
    rc = p.wait(timeout=30)
    assert rc == 2, p.log_tail()
    log = p.log()
    assert f"redis maxmemory-policy is {policy}" in log
    assert "set maxmemory-policy noeviction" in log
    # Refused before any Kafka client existed.
    assert "rdkafka" not in log


def _worker_config(chorus_config: dict, r: redislib.Redis) -> dict:
    cfg = dict(chorus_config)
    cfg["redis.port"] = _port(r)
    return cfg


def test_persistence_off_is_a_warning(chorus, chorus_config, private_redis):
    """The harness's server has `save ""` and `appendonly no`: the worker warns and runs."""
    assert private_redis.config_get("appendonly")["appendonly"] == "no"
    p = chorus(_worker_config(chorus_config, private_redis))
    p.wait_for_log(r"level=warn fac=state msg=\"Redis persistence is off")
    p.wait_for_log(r"partitions assigned")


def test_persistence_on_no_warning(chorus, chorus_config, private_redis):
    private_redis.config_set("appendonly", "yes")
    p = chorus(_worker_config(chorus_config, private_redis))
    p.wait_for_log(r"partitions assigned")
    assert "persistence is off" not in p.log()
    assert "cannot read the Redis configuration" not in p.log()


def test_acl_user(chorus, chorus_config, private_redis, redis_prefix):
    """An ACL user that may not run CONFIG (as on managed services): the
    worker warns that it cannot check the policy, authenticates as the user
    and takes its partitions' epochs (a write), so the user's rights suffice."""
    private_redis.execute_command("ACL", "SETUSER", "chorus-w", "on", ">s3cret", f"~{redis_prefix}:*", "+@all", "-config")
    cfg = _worker_config(chorus_config, private_redis)
    cfg.update({"redis.user": "chorus-w", "redis.password": "s3cret"})
    p = chorus(cfg)
    p.wait_for_log(r"cannot read the Redis configuration.*NOPERM")
    wait_for_redis_key(private_redis, f"{redis_prefix}:epoch:*", timeout=60, what="the partition epochs")
    assert p.alive()
    assert any(b"user=chorus-w" in line for line in private_redis.execute_command("CLIENT", "LIST").split(b"\n"))


def test_acl_wrong_password(chorus, private_redis, redis_prefix):
    private_redis.execute_command("ACL", "SETUSER", "chorus-w", "on", ">s3cret", "~*", "+@all")
    cfg = _refusal_config(private_redis, redis_prefix)
    cfg.update({"redis.user": "chorus-w", "redis.password": "wrong"})
    p = chorus(cfg)
    assert p.wait(timeout=30) == 1
    assert "WRONGPASS" in p.log()


def test_tls_is_a_config_error(chorus, tmp_path):
    p = chorus({"redis.tls": "true"}, command="check-config")
    assert p.wait(timeout=30) == 2
    assert "redis.tls: true is not supported" in p.log()
