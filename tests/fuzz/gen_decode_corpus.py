#!/usr/bin/env python3
"""Regenerate the seed corpus of fuzz_decode (tests/fuzz/corpus/decode/).

Seeds are Avro binary bodies written by hand from the Avro specification,
framed with the Confluent header for the schema ids that fuzz_decode.c
registers (1 Prediction, 2 Actual, 3 IndicatorObservation, 4 Prediction v1,
5 Prediction with extra fields, 6 IndicatorObservation with a recursive
field, 7 EnsembleForecast, 8 FeatureImportance), plus a few bare bodies and a few broken records.

Usage: tests/fuzz/gen_decode_corpus.py [outdir]
"""
import os
import struct
import sys

T0 = 1700000000000


def long(v):
    z = (v << 1) ^ (v >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return long(len(b)) + b


def double(d):
    return struct.pack("<d", d)


def flt(f):
    return struct.pack("<f", f)


def header(schema_id):
    return b"\x00" + struct.pack(">i", schema_id)


def opt(enc):
    return long(0) if enc is None else long(1) + enc


def prediction(model="lstm", version="v4.1", series="ZL", horizon="1w", issued=T0,
               target=T0 + 604800000, value=42.125, lower=40.5, upper=44.25):
    return (string(model) + opt(None if version is None else string(version)) +
            string(series) + string(horizon) + long(issued) + long(target) +
            double(value) + opt(None if lower is None else double(lower)) +
            opt(None if upper is None else double(upper)))


def actual(series="CL", observed=T0, value=-37.63, source="nymex"):
    return (string(series) + long(observed) + double(value) +
            opt(None if source is None else string(source)))


def indicator(name="VIX", observed=T0, value=17.0):
    return string(name) + long(observed) + double(value)


def prediction_v1():
    return (string("gb") + string("AAPL") + string("1D") + long(86400000) +
            long(T0) + flt(191.5))


def prediction_extra():
    return (string(b"lstm") +
            long(-2) + long(5) + string("a") + string("bb") + long(0) +   # tags
            string("ZL") + double(0.93) + string("1w") +
            long(1) + string("k") + long(-7) + long(0) +                   # meta
            long(T0) + long(T0 + 1) +
            long(1) + b"\x01\x02\x03\x04" +                                # kind, hash
            long(1) + double(99.5) +                                       # value
            long(3) + long(0) +                                            # nulls
            long(2) + b"\x01" + string(b"\x00\xff") +                      # extra
            long(1) + double(101.0))                                       # upper


def indicator_recursive(links=3):
    chain = b""
    for i in range(links):
        chain += long(i) + long(1)
    chain += long(links) + long(0)
    return string("VIX") + chain + long(T0) + double(20.0)


def forecast(models=("arima_garch", "gb", "lstm"), weights=(0.25, 0.25, 0.5),
             fallback="rollback"):
    body = (string("ZL") + string("1w") + long(T0) + long(T0 - 1000) + long(3) +
            double(41.5) + double(43.0))
    if models:
        body += long(len(models)) + b"".join(string(m) + double(w)
                                             for m, w in zip(models, weights))
    body += long(0)
    for _ in range(2):  # models_expected, models_present
        if models:
            body += long(len(models)) + b"".join(string(m) for m in models)
        body += long(0)
    body += b"\x01" + string("exp_inv_mape") + string("baseline")
    body += opt(string("high_vol")) + opt(double(-3.5)) + b"\x01" + b"\x00"
    body += opt(None if fallback is None else string(fallback))
    return body


def feature_importance(model="lstm", series="ZL", at=T0, importances=(("vix", 0.5), ("curve", 0.25))):
    body = string(model) + opt(None if series is None else string(series)) + long(at)
    if importances:
        body += long(len(importances))
        for name, v in importances:
            body += string(name) + double(v)
    return body + long(0)


def seeds():
    good = {
        "pred_full": header(1) + prediction(),
        "pred_min": header(1) + prediction(version=None, lower=None, upper=None),
        "pred_unicode": header(1) + prediction(series="caf\u00e9", version="\u2014 r2"),
        "actual": header(2) + actual(),
        "actual_nosource": header(2) + actual(source=None),
        "indicator": header(3) + indicator(),
        "pred_v1": header(4) + prediction_v1(),
        "pred_extra": header(5) + prediction_extra(),
        "indicator_recursive": header(6) + indicator_recursive(),
        "bare_pred": prediction(),
        "bare_indicator": indicator(),
        "forecast": header(7) + forecast(),
        "feature_importance": header(8) + feature_importance(),
        "feature_importance_none": header(8) + feature_importance(series=None, importances=()),
        "forecast_min": header(7) + forecast(models=(), weights=(), fallback=None),
    }
    full = header(1) + prediction()
    bad = {
        "bad_empty": b"",
        "bad_magic": b"\x01" + full[1:],
        "bad_short_header": full[:3],
        "bad_truncated": full[:len(full) // 2],
        "bad_trailing": full + b"\x00",
        "bad_huge_length": header(1) + long(1 << 40) + b"lstm",
        "bad_negative_length": header(1) + long(-4981) + b"lstm",
        "bad_union_index": header(1) + string("lstm") + long(2) + prediction()[6:],
        "bad_overlong_varint": header(3) + string("VIX") + b"\xff" * 11 + b"\x01" + double(1),
        "bad_nan": header(3) + indicator(value=float("nan")),
        "bad_name_space": header(2) + actual(series="B RK"),
        "bad_ts": header(3) + indicator(observed=-1),
        "bad_fi_name": header(8) + feature_importance(importances=(("a|b", 1.0),)),
        "bad_huge_block": header(5) + string(b"m") + long(1 << 30) + string("a") + long(0),
    }
    return {**good, **bad}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "decode")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
