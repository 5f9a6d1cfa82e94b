/*
 * Weights of SPEC §5.1 and the combination Σ wᵢ·pᵢ.
 *
 * The steps run in this order, each on the output of the one before:
 *   1. unnormalised weight per warm model, from its window statistics;
 *   2. cold models take the mean of the warm weights; all cold: every weight
 *      is 1 (cold_start, impossible for `equal`, where every model is warm);
 *   3. regime priors multiply (all zero: equal weights, through step 5);
 *   4. overfitting: every weight is 1 (overfitting replaces cold_start);
 *   5. normalise by the sum, or equal weights when the sum is 0 or not finite.
 *
 * Invariants:
 *  - For any inputs the output is n finite weights in [0, 1] summing to 1
 *    (within rounding): a NaN statistic counts as the worst score, a negative
 *    or NaN prior counts as 0, and a sum that is 0, infinite or NaN gives
 *    equal weights. With the floors (MAPE 0.1 %, MSE 1e-12) the largest
 *    unnormalised weights are exp(10) and 1e12, so no sum of at most
 *    CHORUS_MAX_MODELS of them can overflow without a huge prior.
 *  - Sums run in index order: the caller orders models by id, so the same
 *    group gives the same bits on every worker.
 *  - params->rollback is not read here: a rollback switches the profile (the
 *    caller recomputes with the baseline's parameters) and reports it.
 */
#include <math.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

/* ------------------------------------------------------------------ */
/* Per-model weight                                                    */
/* ------------------------------------------------------------------ */

/*
 * max(x, lo), except that NaN, which fmax() would turn into the floor and so
 * into the best possible score, becomes +Inf: the worst score.
 */
static double weights_floor(double x, double lo) {
        if (isnan(x))
                return INFINITY;
        return x > lo ? x : lo;
}

static double weights_unnormalised(chorus_weights_method_t method, const chorus_model_stats_t *s) {
        switch (method) {
        case CHORUS_WEIGHTS_EXP_INV_MAPE:
                /* The floor caps the exponent at 10: exp(10) ≈ 22026, never Inf. */
                return exp(1.0 / weights_floor(s->mape, 0.1));
        case CHORUS_WEIGHTS_INV_MAPE:
                return 1.0 / weights_floor(s->mape, 0.1);
        case CHORUS_WEIGHTS_INV_MSE:
                return 1.0 / weights_floor(s->mse, 1e-12);
        case CHORUS_WEIGHTS_EQUAL:
                return 1.0;
        }
        /* No default label, so that -Wswitch flags a new method left out. */
        return 1.0;
}

/* Warm: enough points that count for the method (SPEC §4). */
static int weights_is_warm(chorus_weights_method_t method, int min_samples,
                           const chorus_model_stats_t *s) {
        size_t count = 0;

        switch (method) {
        case CHORUS_WEIGHTS_EXP_INV_MAPE:
        case CHORUS_WEIGHTS_INV_MAPE:
                count = s->n_ape;
                break;
        case CHORUS_WEIGHTS_INV_MSE:
                count = s->n_se;
                break;
        case CHORUS_WEIGHTS_EQUAL:
                return 1; /* no statistic, nothing to warm up */
        }
        return min_samples <= 0 || count >= (size_t)min_samples;
}

static void weights_fill(double *w, size_t n, double v) {
        for (size_t i = 0; i < n; i++)
                w[i] = v;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */
/* ------------------------------------------------------------------ */

chorus_fallback_t chorus_weights_compute(const chorus_weight_params_t *params,
                                         const chorus_model_stats_t *stats, size_t n,
                                         double *weights_out) {
        chorus_fallback_t fallback = CHORUS_FALLBACK_NONE;
        double *w = weights_out;
        double warm_sum = 0.0, sum = 0.0;
        size_t n_warm = 0;

        if (n == 0)
                return CHORUS_FALLBACK_NONE;

        /* 1. Warm models first: their mean is what the cold ones get. */
        for (size_t i = 0; i < n; i++) {
                if (!weights_is_warm(params->method, params->min_samples, &stats[i]))
                        continue;
                w[i] = weights_unnormalised(params->method, &stats[i]);
                warm_sum += w[i];
                n_warm++;
        }

        /* 2. Cold models. */
        if (n_warm == 0) {
                weights_fill(w, n, 1.0);
                fallback = CHORUS_FALLBACK_COLD_START;
        } else if (n_warm < n) {
                double cold = warm_sum / (double)n_warm;

                for (size_t i = 0; i < n; i++)
                        if (!weights_is_warm(params->method, params->min_samples, &stats[i]))
                                w[i] = cold;
        }

        /* 3. Regime priors. They also shape the equal weights of a cold
         *    start, exactly as they shape those of the `equal` method. Priors
         *    that zero every weight leave a zero sum: step 5 makes it equal. */
        if (params->priors)
                for (size_t i = 0; i < n; i++) {
                        double p = params->priors[i];

                        w[i] *= p >= 0.0 ? p : 0.0; /* NaN and negatives: 0 */
                }

        /* 4. Overfitting outranks cold_start (SPEC §3 fallback priority). */
        if (params->overfitting) {
                weights_fill(w, n, 1.0);
                fallback = CHORUS_FALLBACK_OVERFITTING;
        }

        /* 5. Normalise. */
        for (size_t i = 0; i < n; i++)
                sum += w[i];
        if (!(sum > 0.0) || !isfinite(sum)) {
                weights_fill(w, n, 1.0 / (double)n);
                return fallback;
        }
        for (size_t i = 0; i < n; i++)
                w[i] /= sum;
        return fallback;
}

double chorus_weights_combine(const double *weights, const double *predictions, size_t n) {
        double raw = 0.0;

        for (size_t i = 0; i < n; i++)
                raw += weights[i] * predictions[i];
        return raw;
}
