/*
 * The ensemble math of SPEC §4–§5: pure functions over plain structs, with
 * no I/O, so that every formula is unit-testable without servers.
 *
 * Determinism: every sum runs in ascending bucket order over its input (the
 * caller passes points sorted by bucket), so the same window always gives
 * the same bits, whatever order the records arrived in.
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

#endif /* CHORUS_ENSEMBLE_H */
