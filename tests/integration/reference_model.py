"""An independent Python model of the Chorus ensemble (SPEC §1, §4, §5, §9.2).

The end-to-end tests feed the same records to the real worker and to this
model and compare every EnsembleForecast field by field. It is written from
SPEC.md only, in plain Python, with one small function per formula, so that a
shared misreading of the C code cannot make both sides agree.

Processing model (SPEC §9.2 "Replay is deterministic")
    A prediction issued at I is processed only after every actual of its
    series observed at or before I. Actuals observed later may or may not have
    been processed by then, but the as-of rule (SPEC §1 "as of I", §4 "No
    look-ahead") hides them, so the model simply resolves actuals as of I from
    the full list of the series' actuals. Predictions of one series are
    processed in the order they were produced (one series = one Kafka key =
    one partition), which fixes the tie-breaks "later arrival wins" and the
    revision numbers.

Decisions where SPEC.md leaves room (kept explicit so a reader can check them)
    * models_expected (§5, no configured list): the models of the (series,
      horizon) whose predictions processed so far, superseded, stale and
      duplicate records included, have issued_at in (I - 30 d, I].
    * The winning actual of a bucket as of I is chosen among the bucket's
      actuals observed at or before I (latest observed_at, ties to the later
      arrival). This is the only reading under which SPEC §9.2 holds when a
      correction observed after I (inside the same bucket) is delivered
      late. Where a bucket has no actual observed after I, it equals the
      reading "the bucket's current winner, counted if observed at or before
      I"; only test_late_correction_replays_like_the_live_run relies on the
      difference.
    * k in the `change` z-score rounds half away from zero (SPEC says
      "round"; exact halves do not occur in the test data).
    * An exact duplicate is a record equal in every field (value, interval,
      model_version, times) to the model's current prediction for the group.

emit.mode=complete (SPEC §5; the same decisions as docs/redis-keys.md)
    * `revision` counts the group's emissions, from 1.
    * A group closes at the earlier of: the observed_at of the first actual
      of the series with bucket >= the group's bucket, and the issued_at of
      the first prediction of (series, horizon) issued at or after the
      bucket start. The close is emitted (with at least emit.min_models
      present) by the first applied prediction of the series (any horizon)
      issued at or after that instant, with the group as it is then: the
      predictions before it in the stream, and that prediction itself when
      it is in the group. So at a prediction issued at I the groups of its
      horizon with bucket <= I close, and those of any horizon with bucket
      <= B(I), the bucket of the newest actual observed at or before I
      (every such actual is processed before it: the hold).
    * Duplicates and older revisions emit nothing and close nothing.
    * A group emits when it becomes complete (every configured model
      present, others allowed), when it closes with at least min_models
      present, and on every change after its first emission. A group closed
      with fewer models emits at the first change that gives it min_models
      (or makes it complete).
    * The emissions of one prediction: the groups it closes, by bucket then
      horizon (bytewise), then its own group.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Optional

DAY_MS = 86_400_000

#: SPEC §5.1 floors.
MAPE_FLOOR = 0.1
MSE_FLOOR = 1e-12

#: SPEC §5.1 method aliases: `simple_avg` is `equal`.
METHOD_ALIASES = {"simple_avg": "equal"}
MAPE_METHODS = ("exp_inv_mape", "inv_mape")


# ----------------------------------------------------------------- records --


@dataclass(frozen=True)
class Prediction:
    """SPEC §3 `Prediction`."""

    model_id: str
    series: str
    horizon: str
    issued_at: int
    target_time: int
    value: float
    model_version: Optional[str] = None
    lower: Optional[float] = None
    upper: Optional[float] = None

    def avro(self) -> dict:
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "series": self.series,
            "horizon": self.horizon,
            "issued_at": self.issued_at,
            "target_time": self.target_time,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
        }


@dataclass(frozen=True)
class Actual:
    """SPEC §3 `Actual`."""

    series: str
    observed_at: int
    value: float
    source: Optional[str] = None

    def avro(self) -> dict:
        return {"series": self.series, "observed_at": self.observed_at, "value": self.value, "source": self.source}


@dataclass
class Config:
    """The settings of SPEC §4-§5 that the model needs, with SPEC defaults."""

    weights_method: str = "exp_inv_mape"
    weights_min_samples: int = 5
    validation_min_samples: int = 10
    z_reference: str = "change"
    z_max: float = 3.0
    shrink: float = 0.5
    window_days: int = 30
    resolution_ms: int = DAY_MS
    series_min: dict = field(default_factory=dict)
    series_max: dict = field(default_factory=dict)

    @property
    def window_ms(self) -> int:
        return self.window_days * DAY_MS

    @property
    def method(self) -> str:
        return METHOD_ALIASES.get(self.weights_method, self.weights_method)


# ------------------------------------------------------------- §1 buckets --


def bucket_of(t: int, resolution_ms: int = DAY_MS) -> int:
    """SPEC §1 bucket: floor(t / resolution) * resolution."""
    return (t // resolution_ms) * resolution_ms


def in_window(t: int, asof: int, window_ms: int) -> bool:
    """SPEC §4: the window as of I is (I - 30 d, I]."""
    return asof - window_ms < t <= asof


def bytewise_sorted(names: Iterable[str]) -> list[str]:
    """Names in ascending byte order of their UTF-8 encoding."""
    return sorted(names, key=lambda s: s.encode("utf-8"))


# ------------------------------------------------------------- §4 scoring --


def error(p: float, a: float) -> float:
    """SPEC §4: e = p - a."""
    return p - a


def squared_error(p: float, a: float) -> float:
    """SPEC §4: e²."""
    e = error(p, a)
    return e * e


def ape(p: float, a: float) -> Optional[float]:
    """SPEC §4: APE = 100·|e|/|a| in percent; undefined (None) when a = 0."""
    if a == 0:
        return None
    return 100.0 * abs(error(p, a)) / abs(a)


@dataclass(frozen=True)
class WindowStats:
    """SPEC §4 window statistics of one model: counts and means."""

    n_se: int
    mse: Optional[float]
    n_ape: int
    mape: Optional[float]


def window_stats(points: list[tuple[float, float]]) -> WindowStats:
    """SPEC §4: recent_mape = mean APE over the window (pairs with a = 0
    excluded), mse = mean squared error over every scored pair."""
    ses = [squared_error(p, a) for p, a in points]
    apes = [x for x in (ape(p, a) for p, a in points) if x is not None]
    return WindowStats(
        n_se=len(ses),
        mse=math.fsum(ses) / len(ses) if ses else None,
        n_ape=len(apes),
        mape=math.fsum(apes) / len(apes) if apes else None,
    )


# ------------------------------------------------------------- §5.1 weights --


def sample_count(method: str, st: WindowStats) -> int:
    """SPEC §4 'scored points that count for its method': APE pairs for the
    MAPE methods, every scored pair for inv_mse (and for equal)."""
    return st.n_ape if method in MAPE_METHODS else st.n_se


def unnormalised_weight(method: str, st: WindowStats) -> float:
    """SPEC §5.1 table, for a warm model."""
    if method == "exp_inv_mape":
        return math.exp(1.0 / max(st.mape, MAPE_FLOOR))
    if method == "inv_mape":
        return 1.0 / max(st.mape, MAPE_FLOOR)
    if method == "inv_mse":
        return 1.0 / max(st.mse, MSE_FLOOR)
    if method == "equal":
        return 1.0
    raise ValueError(f"weights.method {method!r} is not modelled")


def weights(method: str, min_samples: int, stats: dict[str, WindowStats]) -> tuple[dict[str, float], Optional[str]]:
    """SPEC §5.1: normalised weights over the models present, and the fallback.

    Warm models get the method's weight; cold ones (fewer than min_samples
    counting points) the mean unnormalised weight of the warm ones. With no
    warm model the weights are equal and the fallback is cold_start, except
    for `equal`, which never reports it. Regime priors and overrides (§7, §8,
    §6.4) are off in these tests.
    """
    models = bytewise_sorted(stats)
    if method == "equal":
        raw = {m: 1.0 for m in models}
        fallback = None
    else:
        warm = {m: unnormalised_weight(method, stats[m]) for m in models if sample_count(method, stats[m]) >= min_samples}
        if warm:
            cold_weight = math.fsum(warm.values()) / len(warm)
            raw = {m: warm.get(m, cold_weight) for m in models}
            fallback = None
        else:
            raw = {m: 1.0 for m in models}
            fallback = "cold_start"
    total = math.fsum(raw.values())
    return {m: raw[m] / total for m in models}, fallback


def combine(w: dict[str, float], values: dict[str, float]) -> float:
    """SPEC §5.1 'The combination': raw_value = Σ wᵢ·pᵢ."""
    return math.fsum(w[m] * values[m] for m in bytewise_sorted(w))


# ------------------------------------------------------------ §5.2 guard --


def sample_std(xs: list[float]) -> Optional[float]:
    """Sample standard deviation (n-1); None with fewer than two values."""
    if len(xs) < 2:
        return None
    return statistics.stdev(xs)


def round_half_away(x: float) -> int:
    """Round to the nearest integer, halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


@dataclass(frozen=True)
class Guard:
    """The outcome of SPEC §5.2 for one raw value."""

    value: float
    z_score: Optional[float]
    z_adjusted: bool
    clipped: bool


def z_reference_change(raw: float, target_bucket: int, actuals: list[tuple[int, float]]) -> Optional[tuple[float, float]]:
    """SPEC §5.2 `change`: (z, ref) with ref = the last actual,
    z = (raw - last) / (σΔ·√k); None when σΔ is undefined or 0."""
    values = [v for _, v in actuals]
    diffs = [b - a for a, b in zip(values, values[1:])]
    sigma = sample_std(diffs)
    if not sigma:
        return None
    last_bucket, last = actuals[-1]
    spacing = statistics.median([b - a for (a, _), (b, _) in zip(actuals, actuals[1:])])
    k = max(1, round_half_away((target_bucket - last_bucket) / spacing))
    return (raw - last) / (sigma * math.sqrt(k)), last


def z_reference_level(raw: float, actuals: list[tuple[int, float]]) -> Optional[tuple[float, float]]:
    """SPEC §5.2 `level`: (z, μ) with z = (raw - μ) / σ; None when σ is 0."""
    values = [v for _, v in actuals]
    sigma = sample_std(values)
    if not sigma:
        return None
    mu = statistics.fmean(values)
    return (raw - mu) / sigma, mu


def clip(value: float, lo: Optional[float], hi: Optional[float]) -> float:
    """SPEC §5.2 step 3: clip to the configured bounds (either may be absent)."""
    if lo is not None and value < lo:
        value = lo
    if hi is not None and value > hi:
        value = hi
    return value


def guard(cfg: Config, series: str, raw: float, target_bucket: int, actuals: list[tuple[int, float]]) -> Guard:
    """SPEC §5.2: z-score (with at least validation.min_samples actuals),
    one shrink toward the reference when |z| > z_max, then clipping."""
    z = None
    value = raw
    adjusted = False
    if len(actuals) >= cfg.validation_min_samples and len(actuals) >= 2:
        if cfg.z_reference == "change":
            zr = z_reference_change(raw, target_bucket, actuals)
        elif cfg.z_reference == "level":
            zr = z_reference_level(raw, actuals)
        else:
            raise ValueError(f"validation.z_reference {cfg.z_reference!r}")
        if zr is not None and math.isfinite(zr[0]):
            z, ref = zr
            if abs(z) > cfg.z_max:
                value = ref + cfg.shrink * (raw - ref)
                adjusted = True
    final = clip(value, cfg.series_min.get(series), cfg.series_max.get(series))
    return Guard(value=final, z_score=z, z_adjusted=adjusted, clipped=final != value)


# -------------------------------------------------------------- the model --


@dataclass
class _Winning:
    record: Prediction
    arrival: int


class SeriesModel:
    """The state of one series: its actuals and its processed predictions."""

    def __init__(self, cfg: Config, series: str, actuals: list[Actual]):
        self.cfg = cfg
        self.series = series
        self.actuals = [(i, a) for i, a in enumerate(actuals) if a.series == series]
        # (horizon, model, bucket) -> the winning prediction
        self.current: dict[tuple[str, str, int], _Winning] = {}
        # (horizon, bucket) -> revisions emitted so far
        self.revisions: dict[tuple[str, int], int] = {}
        # (horizon, model) -> issued_at of every record processed
        self.published: dict[tuple[str, str], list[int]] = {}
        self.arrivals = 0
        # emit.mode=complete: (horizon, bucket) -> emissions; closed without
        # emission; neither emitted nor closed
        self.emissions: dict[tuple[str, int], int] = {}
        self.closed: set[tuple[str, int]] = set()
        self.open: set[tuple[str, int]] = set()

    # --- actuals as of I (SPEC §1 bucket, "as of I") ---

    def actuals_asof(self, asof: int) -> dict[int, float]:
        """Winning actual value per bucket among actuals observed <= asof
        (latest observed_at wins; on a tie the later arrival)."""
        best: dict[int, tuple[int, int, float]] = {}
        for arrival, a in self.actuals:
            if a.observed_at > asof:
                continue
            b = bucket_of(a.observed_at, self.cfg.resolution_ms)
            cand = (a.observed_at, arrival, a.value)
            if b not in best or cand[:2] > best[b][:2]:
                best[b] = cand
        return {b: v for b, (_, _, v) in best.items()}

    def window_actuals(self, asof: int, actual_by_bucket: dict[int, float]) -> list[tuple[int, float]]:
        """SPEC §5.2: the window's actuals as of I, in bucket order."""
        return sorted((b, v) for b, v in actual_by_bucket.items() if in_window(b, asof, self.cfg.window_ms))

    def model_points(self, horizon: str, model: str, asof: int, actual_by_bucket: dict[int, float]) -> list[tuple[float, float]]:
        """SPEC §4 rolling window of one model as of I: (prediction, actual)
        for every bucket in (I-30d, I] with the model's current prediction and
        a winning actual observed at or before I, in bucket order."""
        pts = []
        for (h, m, b), win in self.current.items():
            if h == horizon and m == model and in_window(b, asof, self.cfg.window_ms) and b in actual_by_bucket:
                pts.append((b, win.record.value, actual_by_bucket[b]))
        return [(p, a) for _, p, a in sorted(pts)]

    def expected_models(self, horizon: str, asof: int) -> list[str]:
        """SPEC §5 models_expected without a configured list."""
        return bytewise_sorted(
            m
            for (h, m), times in self.published.items()
            if h == horizon and any(in_window(t, asof, self.cfg.window_ms) for t in times)
        )

    # --- predictions (SPEC §4 revisions, §5 emit.mode=every) ---

    def apply(self, p: Prediction) -> Optional[dict]:
        """Process one prediction; return the forecast it emits, or None for
        an exact duplicate or an older revision."""
        rev = self._take(p)
        if rev is None:
            return None
        return self.forecast(p.horizon, bucket_of(p.target_time, self.cfg.resolution_ms), rev)

    def _take(self, p: Prediction) -> Optional[int]:
        """Record one prediction; its group's new change count, or None for
        an exact duplicate or an older revision."""
        assert p.series == self.series
        self.arrivals += 1
        b = bucket_of(p.target_time, self.cfg.resolution_ms)
        self.published.setdefault((p.horizon, p.model_id), []).append(p.issued_at)
        key = (p.horizon, p.model_id, b)
        cur = self.current.get(key)
        if cur is not None:
            if cur.record == p:
                return None  # exact duplicate changes nothing
            if cur.record.issued_at > p.issued_at:
                return None  # an older revision loses
        self.current[key] = _Winning(p, self.arrivals)
        rev = self.revisions.get((p.horizon, b), 0) + 1
        self.revisions[(p.horizon, b)] = rev
        return rev

    # --- emit.mode=complete (SPEC §5; the decisions in the module doc) ---

    def newest_actual_bucket(self, t: int) -> Optional[int]:
        """B(t): the bucket of the newest actual observed at or before t."""
        seen = [bucket_of(a.observed_at, self.cfg.resolution_ms) for _, a in self.actuals if a.observed_at <= t]
        return max(seen) if seen else None

    def group_models(self, horizon: str, bucket: int) -> list[str]:
        return [m for (h, m, b) in self.current if h == horizon and b == bucket]

    def apply_complete(self, p: Prediction, models: list[str], min_models: int) -> list[dict]:
        """Process one prediction in emit.mode=complete; the forecasts it
        emits, in order. `models` is the configured list of its horizon (the
        same list for every horizon in these tests)."""
        if self._take(p) is None:
            return []
        h, b, issued = p.horizon, bucket_of(p.target_time, self.cfg.resolution_ms), p.issued_at
        seen = self.newest_actual_bucket(issued)
        out = []

        def emit(g):
            self.open.discard(g)
            self.emissions[g] = self.emissions.get(g, 0) + 1
            out.append(self.forecast(g[0], g[1], self.emissions[g], expected=models))

        others = sorted((g for g in self.open if g != (h, b) and g[1] <= issued), key=lambda g: (g[1], f"{g[1]}|{g[0]}".encode()))
        for g in others:
            if g[0] == h or (seen is not None and g[1] <= seen):
                if len(self.group_models(*g)) >= min_models:
                    emit(g)
                else:
                    self.open.discard(g)
                    self.closed.add(g)
        own = (h, b)
        present = self.group_models(h, b)
        complete = set(models) <= set(present)
        closed = own in self.closed or issued >= b or (seen is not None and b <= seen)
        if own in self.emissions or complete or (closed and len(present) >= min_models):
            emit(own)
        elif closed:
            self.open.discard(own)
            self.closed.add(own)
        else:
            self.open.add(own)
        return out

    def forecast(self, horizon: str, bucket: int, revision: int, expected: Optional[list[str]] = None) -> dict:
        """SPEC §5: the EnsembleForecast of group (series, horizon, bucket)."""
        group = {m: w.record for (h, m, b), w in self.current.items() if h == horizon and b == bucket}
        present = bytewise_sorted(group)
        asof = max(r.issued_at for r in group.values())
        act = self.actuals_asof(asof)
        stats = {m: window_stats(self.model_points(horizon, m, asof, act)) for m in present}
        w, fallback = weights(self.cfg.method, self.cfg.weights_min_samples, stats)
        raw = combine(w, {m: group[m].value for m in present})
        g = guard(self.cfg, self.series, raw, bucket, self.window_actuals(asof, act))
        expected = bytewise_sorted(expected) if expected else self.expected_models(horizon, asof)
        return {
            "series": self.series,
            "horizon": horizon,
            "target_time": bucket,
            "issued_at": asof,
            "revision": revision,
            "value": g.value,
            "raw_value": raw,
            "weights": w,
            "models_expected": expected,
            "models_present": present,
            "complete": set(expected) <= set(present),
            "weighting_method": self.cfg.weights_method,
            "profile": "baseline",
            "regime": None,
            "z_score": g.z_score,
            "z_adjusted": g.z_adjusted,
            "clipped": g.clipped,
            "fallback": fallback,
            # not part of the record: what the tests use to explain a mismatch
            "_stats": stats,
        }


def forecast_key(f: dict) -> str:
    """SPEC §2: the forecasts topic's key, series|horizon|target_time_ms."""
    return f"{f['series']}|{f['horizon']}|{f['target_time']}"


def expected_forecasts(
    cfg: Config,
    predictions: list[Prediction],
    actuals: list[Actual],
    emit_mode: str = "every",
    models: Optional[list[str]] = None,
    min_models: int = 1,
) -> list[dict]:
    """Every forecast the input should produce, per series in processing
    order. `predictions` is the produce order (per series it is the
    consume order); `actuals` likewise. emit_mode="complete" needs the
    configured `models` (SPEC §5)."""
    series: dict[str, SeriesModel] = {}
    out = []
    for p in predictions:
        sm = series.get(p.series)
        if sm is None:
            sm = series[p.series] = SeriesModel(cfg, p.series, actuals)
        if emit_mode == "complete":
            assert models, "emit.mode=complete needs a configured model list"
            out.extend(sm.apply_complete(p, models, min_models))
            continue
        f = sm.apply(p)
        if f is not None:
            out.append(f)
    return out


# ------------------------------------------------ §6.8 validation windows --


@dataclass(frozen=True)
class ValidationConfig:
    """The settings of SPEC §6.8, with SPEC defaults."""

    window_days: int = 30
    min_test_points: int = 15
    divergence_max: float = 0.20


def _window_closes(actuals: list[Actual], length_ms: int) -> list[tuple[int, int]]:
    """(window id, close instant) per window, in stream order: a window
    closes as of the observed_at of the first actual that passes its end."""
    closes, newest = [], None
    for a in actuals:
        if newest is not None and a.observed_at > newest:
            for k in range(newest // length_ms, a.observed_at // length_ms):
                closes.append((k, a.observed_at))
        if newest is None or a.observed_at > newest:
            newest = a.observed_at
    return closes


def validation_windows(cfg: Config, vcfg: ValidationConfig, series: str, horizon: str, predictions: list[Prediction], actuals: list[Actual]) -> list[dict]:
    """SPEC §6.8: the ValidationWindow records of (series, horizon), in order.

    Decisions where SPEC.md leaves room (the same as docs/alerts.md):
      * the in-sample period is the `window.days` before the window start;
      * equal_test_rmse is the plain mean of the errors of the models the
        frozen weights use (renormalised over those present at a target);
      * errors use each bucket's actual as of the close and the current
        predictions issued at or before it.
    """
    length = vcfg.window_days * DAY_MS
    series_actuals = [a for a in actuals if a.series == series]
    model = SeriesModel(cfg, series, actuals)
    for p in predictions:
        if p.series == series:
            model.apply(p)
    models = bytewise_sorted({m for (h, m, _b) in model.current if h == horizon})
    out = []
    for k, close in _window_closes(series_actuals, length):
        start, end = k * length, (k + 1) * length
        at_start = model.actuals_asof(start)
        raw = {}
        for m in models:
            st = window_stats(model.model_points(horizon, m, start, at_start))
            if cfg.method == "equal":
                if st.n_se > 0:
                    raw[m] = 1.0
            elif sample_count(cfg.method, st) >= cfg.weights_min_samples:
                raw[m] = unnormalised_weight(cfg.method, st)
        if not raw:
            continue
        total = math.fsum(raw.values())
        w = {m: raw[m] / total for m in raw}
        at_close = model.actuals_asof(close)
        val, test, equal = [], [], []
        for b in sorted(b for b in at_close if start - cfg.window_ms <= b < end):
            errs = {}
            for m in w:
                win = model.current.get((horizon, m, b))
                if win is not None and win.record.issued_at <= close:
                    errs[m] = win.record.value - at_close[b]
            if not errs:
                continue
            combo = math.fsum(w[m] * errs[m] for m in errs) / math.fsum(w[m] for m in errs)
            if b < start:
                val.append(combo)
            else:
                test.append(combo)
                equal.append(math.fsum(errs.values()) / len(errs))
        if not test:
            continue
        rmse = lambda xs: math.sqrt(math.fsum(x * x for x in xs) / len(xs)) if xs else 0.0  # noqa: E731
        v, t, e = rmse(val), rmse(test), rmse(equal)
        div = (t - v) / v if v > 0 else None
        out.append(
            {
                "series": series,
                "horizon": horizon,
                "profile": "baseline",
                "window_id": k,
                "window_start": start,
                "window_end": end,
                "val_rmse": v,
                "test_rmse": t,
                "equal_test_rmse": e,
                "divergence": div,
                "test_points": len(test),
                "is_overfitting": div is not None and div > vcfg.divergence_max and t > e and len(test) >= vcfg.min_test_points,
                "model_count": len(w),
                "models_used": sorted(w),
                "weights": w,
                "_close": close,
            }
        )
    return out
