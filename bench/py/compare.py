"""The benchmark's correctness gate: compare the forecasts of two runs.

    compare.py bytes  --bootstrap B TOPIC_A TOPIC_B
        The multisets of (key, value bytes) must be equal: two Chorus runs on
        the same input (different batch sizes or worker counts) must produce
        the same records, byte for byte.
    compare.py fields --bootstrap B [--sample N] [--rel 1e-9] TOPIC_A TOPIC_B
        Decode both (fastavro) and compare every field of the records with
        the same (key, revision): strings, integers, booleans and lists
        exactly, doubles (value, raw_value, z_score, weights) within a
        relative 1e-9 (absolute for |x| < 1e-9). With --sample N only keys
        whose CRC32 is 0 mod N are compared (both sides sample the same keys).

Reads with isolation.level=read_committed. Prints one JSON object; exits 1
on a mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import zlib

import benchlib as bl


def multiset(bootstrap: str, topic: str) -> tuple[list[bytes], int]:
    out = []
    for m in bl.read_topic(bootstrap, topic):
        out.append(hashlib.blake2b((m.key() or b"") + b"\0" + (m.value() or b""), digest_size=16).digest())
    out.sort()
    return out, len(out)


def cmd_bytes(a) -> dict:
    ha, na = multiset(a.bootstrap, a.topic_a)
    hb, nb = multiset(a.bootstrap, a.topic_b)
    only_a = only_b = 0
    i = j = 0
    while i < na and j < nb:
        if ha[i] == hb[j]:
            i += 1
            j += 1
        elif ha[i] < hb[j]:
            only_a += 1
            i += 1
        else:
            only_b += 1
            j += 1
    only_a += na - i
    only_b += nb - j
    return {"mode": "bytes", "a": a.topic_a, "b": a.topic_b, "records_a": na, "records_b": nb,
            "only_in_a": only_a, "only_in_b": only_b, "match": only_a == 0 and only_b == 0 and na > 0}


def decoded(bootstrap: str, topic: str, sample: int) -> dict:
    import fastavro

    schema = bl.parsed_schema("ensemble_forecast")
    out = {}
    dups = 0
    for m in bl.read_topic(bootstrap, topic):
        key = m.key() or b""
        if sample > 1 and zlib.crc32(key) % sample:
            continue
        rec = fastavro.schemaless_reader(io.BytesIO(m.value()[5:]), schema)
        k = (key.decode(), rec["revision"])
        if k in out:
            dups += 1
        out[k] = rec
    return out, dups


def close(x, y, rel) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if x == y:
        return True
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return abs(x - y) <= rel * max(abs(x), abs(y), 1.0)


def cmd_fields(a) -> dict:
    ra, dup_a = decoded(a.bootstrap, a.topic_a, a.sample)
    rb, dup_b = decoded(a.bootstrap, a.topic_b, a.sample)
    keys = set(ra) | set(rb)
    missing_a = sum(1 for k in keys if k not in ra)
    missing_b = sum(1 for k in keys if k not in rb)
    diffs, examples, exact, max_rel = 0, [], 0, 0.0
    for k in sorted(set(ra) & set(rb)):
        x, y = ra[k], rb[k]
        bad = []
        for f in x:
            if f in ("value", "raw_value", "z_score"):
                if not close(x[f], y[f], a.rel):
                    bad.append(f)
                elif x[f] is not None and y[f] is not None and x[f] != y[f]:
                    max_rel = max(max_rel, abs(x[f] - y[f]) / max(abs(x[f]), abs(y[f]), 1.0))
            elif f == "weights":
                if set(x[f]) != set(y[f]) or not all(close(x[f][m], y[f][m], a.rel) for m in x[f]):
                    bad.append(f)
            elif x[f] != y[f]:
                bad.append(f)
        if bad:
            diffs += 1
            if len(examples) < 5:
                examples.append({"key": k, "fields": bad, "a": {f: x[f] for f in bad}, "b": {f: y[f] for f in bad}})
        elif x == y:
            exact += 1
    compared = len(set(ra) & set(rb))
    return {"mode": "fields", "a": a.topic_a, "b": a.topic_b, "sample": a.sample, "compared": compared,
            "bit_identical": exact, "max_rel_diff": max_rel, "only_in_a": missing_b, "only_in_b": missing_a,
            "duplicates_a": dup_a, "duplicates_b": dup_b, "mismatched": diffs, "examples": examples,
            "match": compared > 0 and diffs == 0 and missing_a == 0 and missing_b == 0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["bytes", "fields"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--sample", type=int, default=1)
    ap.add_argument("--rel", type=float, default=1e-9)
    ap.add_argument("topic_a")
    ap.add_argument("topic_b")
    a = ap.parse_args()
    out = cmd_bytes(a) if a.mode == "bytes" else cmd_fields(a)
    print(json.dumps(out, default=str))
    return 0 if out["match"] else 1


if __name__ == "__main__":
    sys.exit(main())
