"""Redis memory of a key prefix, broken down by key type, per window.

    mem.py --redis-port P --prefix PFX --series-prefix S --series N --models M
           [--sample 20]

MEMORY USAGE (SAMPLES 0: exact) of every key of --sample series, grouped by
the key's role in docs/redis-keys.md (act, p:<bucket>, sc:<h>|<m>, pub:...,
snap:..., ...), scaled to bytes per (series, horizon, model) window.
One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import redis


def role(key: str, base: str) -> str:
    rest = key[len(base) + 1 :]
    m = re.match(r"([a-z]+)", rest)
    return m.group(1) if m else rest


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--series-prefix", default="S")
    ap.add_argument("--series", type=int, required=True)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--sample", type=int, default=20)
    a = ap.parse_args()
    r = redis.Redis(host="127.0.0.1", port=a.redis_port, decode_responses=True)
    step = max(1, a.series // a.sample)
    sampled = list(range(0, a.series, step))[: a.sample]
    by_role: dict[str, list[int]] = {}
    for s in sampled:
        base = f"{a.prefix}:{{{a.series_prefix}{s:04d}}}"
        for key in r.scan_iter(match=base.replace("{", "\\{").replace("}", "\\}") + ":*", count=1000):
            size = r.memory_usage(key, samples=0) or 0
            entry = by_role.setdefault(role(key, base), [0, 0])
            entry[0] += 1
            entry[1] += size
    per_window = {k: round(v[1] / (len(sampled) * a.models)) for k, v in sorted(by_role.items())}
    keys_per_series = {k: round(v[0] / len(sampled), 1) for k, v in sorted(by_role.items())}
    print(json.dumps({"prefix": a.prefix, "sampled_series": len(sampled),
                      "bytes_per_window_by_key": per_window, "keys_per_series": keys_per_series,
                      "bytes_per_window": sum(per_window.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
