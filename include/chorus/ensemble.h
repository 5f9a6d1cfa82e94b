/*
 * The ensemble math of SPEC §4–§5: pure functions over plain structs, with
 * no I/O, so that every formula is unit-testable without servers.
 *
 * Determinism: every sum over points runs in ascending bucket order over its
 * input (the caller passes points sorted by bucket), and every sum that the
 * state functions keep incrementally is exact and rounded once (see "Window
 * aggregates" below), so the same window always gives the same bits,
 * whatever order the records arrived in.
 */
#ifndef CHORUS_ENSEMBLE_H
#define CHORUS_ENSEMBLE_H

#include <stddef.h>
#include <stdint.h>

#include "chorus/config.h"
#include "chorus/record.h"

/* ------------------------------------------------------------------ */
/* Scoring (§4)                                                        */
/* ------------------------------------------------------------------ */

/** One scored bucket of one model: its winning prediction and the bucket's winning actual. */
typedef struct chorus_scored_point {
        int64_t bucket;
        double prediction;
        double actual;
} chorus_scored_point_t;

/** Window statistics of one model. */
typedef struct chorus_model_stats {
        size_t n_se;          /**< scored pairs: count in MSE */
        size_t n_ape;         /**< pairs with actual != 0: count in MAPE */
        size_t n_zero_actual; /**< pairs with actual == 0 (data-quality events) */
        double mse;           /**< mean squared error; 0 when n_se == 0 */
        double mape;          /**< mean APE in percent; 0 when n_ape == 0 */
} chorus_model_stats_t;

/** @brief e = p - a. */
double chorus_score_error(double prediction, double actual);

/** @brief APE = 100·|p - a|/|a| in percent. @returns NAN when a == 0 (or -0). */
double chorus_score_ape(double prediction, double actual);

/**
 * @brief Window statistics over @p n points (sorted by bucket).
 *
 * Every point counts in n_se and MSE; a point with actual == 0 counts in
 * n_zero_actual instead of MAPE. Sums run in input order, so the result is
 * bit-reproducible for a given window. n == 0 gives all zeros.
 */
void chorus_score_stats(const chorus_scored_point_t *points, size_t n, chorus_model_stats_t *out);

/* ------------------------------------------------------------------ */
/* Weights (§5.1)                                                      */
/* ------------------------------------------------------------------ */

typedef struct chorus_weight_params {
        chorus_weights_method_t method;
        int min_samples;      /**< weights.min_samples: below it a model is cold */
        const double *priors; /**< n per-model regime priors (>= 0), or NULL for all 1;
                                   a negative or NaN prior counts as 0 */
        int overfitting;      /**< an overfitting flag holds: equal weights */
        int rollback;         /**< reserved for §8; not read here: the caller switches
                                   to the baseline profile and reports the fallback */
} chorus_weight_params_t;

/**
 * @brief Normalised weights for the @p n models present (n >= 1).
 *
 * Unnormalised weight by method: exp_inv_mape exp(1/max(mape, 0.1));
 * equal 1; inv_mape 1/max(mape, 0.1); inv_mse 1/max(mse, 1e-12).
 * A model with fewer than min_samples points that count for the method
 * (n_ape for the MAPE methods, n_se for inv_mse) is cold and gets the mean
 * unnormalised weight of the warm models; if every model is cold the weights
 * are equal and the result is CHORUS_FALLBACK_COLD_START (never for `equal`).
 * Priors multiply next (also the equal weights of a cold start, as they do
 * for `equal`); if they zero every weight, weights become equal.
 * Overfitting then forces equal weights (CHORUS_FALLBACK_OVERFITTING wins
 * over cold_start). Last, the weights are divided by their sum (index
 * order); a sum that is 0 or not finite gives equal weights.
 *
 * @remark Never NaN or Inf: a NaN mape/mse counts as the worst score.
 * @remark n == 0 writes nothing and returns CHORUS_FALLBACK_NONE.
 *
 * @param weights_out  n normalised weights summing to 1 (within rounding).
 * @returns the fallback that applied, or CHORUS_FALLBACK_NONE.
 */
chorus_fallback_t chorus_weights_compute(const chorus_weight_params_t *params,
                                         const chorus_model_stats_t *stats, size_t n,
                                         double *weights_out);

/** @brief raw = Σ wᵢ·pᵢ, summed in index order. */
double chorus_weights_combine(const double *weights, const double *predictions, size_t n);

/* ------------------------------------------------------------------ */
/* Validation of the combined value (§5.2)                             */
/* ------------------------------------------------------------------ */

/** One winning actual in the window. */
typedef struct chorus_actual_point {
        int64_t bucket;
        double value;
} chorus_actual_point_t;

typedef struct chorus_guard_params {
        chorus_z_reference_t z_reference;
        int min_samples; /**< validation.min_samples */
        double z_max;
        double shrink;
        int has_min, has_max;
        double min, max;
} chorus_guard_params_t;

typedef struct chorus_guard_result {
        double value; /**< final */
        int has_z;
        double z; /**< signed */
        int z_adjusted;
        int clipped; /**< only if the value changed */
} chorus_guard_result_t;

/**
 * @brief z-score, single shrink and clipping of @p raw.
 *
 * No z when n < max(2, min_samples), when σ (level) or σΔ (change) is 0, or
 * when z is not finite. `change`: ref = the last actual, σΔ the sample std of
 * the n-1 consecutive differences, k = max(1, round(Δbuckets / median
 * spacing)) with round() half away from zero. `level`: ref = μ, σ the sample
 * std of the values. If |z| > z_max (strictly) and shrink < 1, value =
 * ref + shrink·(raw − ref) and z_adjusted = 1; shrink = 1 leaves raw untouched
 * and z_adjusted = 0. Then clipping to the bounds present; clipped = 1 only
 * when that changed the value. out->z is the z of @p raw.
 *
 * @param target_bucket the group's bucket (for k in the `change` reference).
 * @param actuals       the window's actuals as of issued_at, ascending by bucket,
 *                      one per bucket.
 */
void chorus_guard_apply(const chorus_guard_params_t *params, double raw, int64_t target_bucket,
                        const chorus_actual_point_t *actuals, size_t n, chorus_guard_result_t *out);

/** @brief Sample standard deviation (n-1), two-pass. @returns 0 when n < 2. */
double chorus_stat_stddev(const double *x, size_t n);

/** @brief Median of @p x (sorts a copy; mean of the middle two when n is even).
 *  @remark Never fails: if the copy cannot be allocated it selects in O(n²)
 *          without allocating, with the same result. NaN sorts last.
 *  @returns 0 when n == 0. */
double chorus_stat_median(const double *x, size_t n);

/* ------------------------------------------------------------------ */
/* Window aggregates (issue #4)                                        */
/* ------------------------------------------------------------------ */

/*
 * The worker does not read a window's points. The state functions
 * (src/state/chorus.lua) keep, per window, counts and exact sums that they
 * update as points enter and leave, and return them; the statistics are
 * computed here from those. Every sum is exact (a list of non-overlapping
 * partials, as in Python's math.fsum) and is returned correctly rounded, so
 * it depends only on the set of terms, never on the order of additions and
 * removals: the same window gives the same bits in every run.
 *
 * Formula variants and their accuracy:
 *  - MSE = round(Σ e²)/n_se and MAPE = round(Σ APE)/n_ape, each term being
 *    the double that chorus_score_error/_ape give. Identical to fsum(x)/n;
 *    at most 1 ulp from the exact mean of the terms (the in-order sum of
 *    chorus_score_stats() is up to n·ε off).
 *  - Sample standard deviations (level σ, change σΔ) use
 *    σ² = (n·Σx² − (Σx)²) / (n(n−1)), where the numerator ("css") is
 *    computed exactly from exact squares and rounded once. No shift and no
 *    cancellation: σ is within about 2 ulp (~4e-16 relative) of the exact
 *    sample standard deviation of the doubles, for any mean/spread ratio,
 *    and it is 0 exactly when all values are equal. The two-pass
 *    chorus_stat_stddev() agrees with it to ~1e-15·(1 + |mean|/σ)
 *    relative; the tests hold the two to 1e-12. (A first-value shift, the
 *    usual fix for the one-pass formula, would depend on which actual
 *    arrived first, and so on arrival order.)
 *  - μ = round(Σv)/n, as Python's statistics.fmean.
 *  - Terms too large to sum safely are counted instead: an APE or e² of at
 *    least 2^960 makes that sum +inf; a value or difference of magnitude at
 *    least 2^400 makes the corresponding sum and css +inf, which means no
 *    z-score (as a non-finite σ always did).
 */

/** Window aggregates of one model as of a time (SPEC §4). */
typedef struct chorus_score_agg {
        size_t n_se;    /**< scored pairs */
        double se_sum;  /**< Σ e², correctly rounded; +inf when a term was >= 2^960 */
        size_t n_ape;   /**< pairs with actual != 0 */
        double ape_sum; /**< Σ APE likewise */
} chorus_score_agg_t;

/** @brief MSE, MAPE and the counts from the aggregates. Means are 0 with a zero count. */
void chorus_score_stats_from_agg(const chorus_score_agg_t *agg, chorus_model_stats_t *out);

/** @brief The aggregates of @p n points (any order): the reference that the
 *         state functions' incremental aggregates must equal bit for bit. */
void chorus_score_agg_build(const chorus_scored_point_t *points, size_t n, chorus_score_agg_t *out);

/** How often one bucket spacing occurs between consecutive actuals. */
typedef struct chorus_spacing_count {
        int64_t spacing; /**< ms */
        size_t count;
} chorus_spacing_count_t;

/** The actuals of a window as of a time, aggregated for the z-guard (SPEC §5.2). */
typedef struct chorus_actual_agg {
        size_t n;            /**< actuals in the window */
        int64_t last_bucket; /**< the latest of them (0 when n == 0) */
        double last_value;
        double sum;      /**< Σv, correctly rounded (+inf: too large) */
        double css;      /**< n·Σv² − (Σv)², exact then rounded (+inf: too large);
                              computed by chorus_css_exact() from the reply's
                              components of Σv and Σv² (v² exact) */
        size_t n_diff;   /**< consecutive differences d = v[i] − v[i−1]: n − 1, or 0 */
        double diff_sum; /**< Σd, correctly rounded (+inf: too large) */
        double diff_css; /**< n_diff·Σd² − (Σd)², likewise */
        size_t n_spacings;
        const chorus_spacing_count_t *spacings; /**< ascending; the counts sum to n_diff */
} chorus_actual_agg_t;

/**
 * @brief The aggregates of @p n actuals (ascending by bucket, one per bucket).
 * @param spacings_buf room for max(n − 1, 1) entries; @p out points into it.
 */
void chorus_actual_agg_build(const chorus_actual_point_t *actuals, size_t n,
                             chorus_spacing_count_t *spacings_buf, chorus_actual_agg_t *out);

/** @brief sum/n. @returns 0 when n == 0. */
double chorus_agg_mean(double sum, size_t n);

/** @brief Sample standard deviation sqrt(css / (n(n−1))).
 *  @returns 0 when n < 2 or css <= 0 (or NaN); +inf when css is +inf. */
double chorus_agg_stddev(double css, size_t n);

/** @brief Median of the spacings described by @p k (spacing, count) pairs in
 *         ascending order; the mean of the middle two when the total is even.
 *  @returns 0 when the total count is 0. */
double chorus_agg_median_spacing(const chorus_spacing_count_t *spacings, size_t k);

/**
 * @brief chorus_guard_apply() from the window's aggregates instead of its points.
 *
 * Same rules: no z when n < max(2, min_samples), when σ (level) or σΔ
 * (change; needs n_diff >= 2) is 0 or not finite, or when z is not finite;
 * `change`: z = (raw − last)/(σΔ·√k), k = max(1, round((target − last
 * bucket)/median spacing)); `level`: z = (raw − μ)/σ. σ, σΔ and μ are the
 * variants described above, so z agrees with chorus_guard_apply() to ~1e-12
 * relative, and shrink and clipping are the same code.
 */
void chorus_guard_apply_agg(const chorus_guard_params_t *params, double raw, int64_t target_bucket,
                            const chorus_actual_agg_t *agg, chorus_guard_result_t *out);

/* ------------------------------------------------------------------ */
/* Exact summation                                                     */
/* ------------------------------------------------------------------ */

/** Room for the worst case: one partial per bit position of the double range. */
#define CHORUS_XSUM_CAP 2100

/**
 * An exact sum of doubles: non-overlapping partials in increasing magnitude
 * (Shewchuk's msum, as in CPython's math.fsum), the algorithm the state
 * functions run in Lua. Adding −x removes x exactly.
 * @remark Exact while every partial sum stays below 2^1023 in magnitude;
 *         the caller keeps terms small enough (the thresholds above).
 */
typedef struct chorus_xsum {
        size_t n;
        double p[CHORUS_XSUM_CAP];
} chorus_xsum_t;

void chorus_xsum_init(chorus_xsum_t *s);

/** @brief s += x, exactly (x finite). */
void chorus_xsum_add(chorus_xsum_t *s, double x);

/** @brief s += x·x, exactly (two products, via fma). */
void chorus_xsum_add_square(chorus_xsum_t *s, double x, int sign);

/** @brief The exact sum, correctly rounded (round half to even), as math.fsum. */
double chorus_xsum_round(const chorus_xsum_t *s);

/** Enough for the canonical components of any exact sum of doubles. */
#define CHORUS_XSUM_COMPONENTS 48

/**
 * @brief The exact sum as canonical components, largest first: r1 = round(s),
 *        r2 = round(s − r1), ..., until nothing is left (at most @p cap).
 *
 * Unlike the partials, they depend only on the exact value; r1 is the
 * correctly rounded sum. The state functions return sums in this form.
 * @returns the number of components (0 for an exact zero).
 */
size_t chorus_xsum_canon(const chorus_xsum_t *s, double *out, size_t cap);

/**
 * @brief n·S2 − S1², exactly, then correctly rounded, where S1 and S2 are
 *        the exact sums of the components @p c1 and @p c2 (from
 *        chorus_xsum_canon() or a state-function reply).
 *
 * With S1 = Σx and S2 = Σx² this is n(n−1) times the sample variance.
 * @remark Exact while the products stay in the normal range (|components|
 *         roughly between 2^-480 and 2^480; the state functions' thresholds
 *         keep them below); outside it still the same bits for the same input.
 */
double chorus_css_exact(size_t n, const double *c1, size_t k1, const double *c2, size_t k2);

/** @brief chorus_css_exact() of two exact sums. */
double chorus_xsum_centered(size_t n, const chorus_xsum_t *s1, const chorus_xsum_t *s2);

#endif /* CHORUS_ENSEMBLE_H */
