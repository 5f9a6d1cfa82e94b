/*
 * Validation of the combined value, SPEC §5.2: z-score, a single shrink
 * toward the reference, then clipping to the series bounds.
 *
 * Invariants:
 *  - The z-score is computed on the raw combination and is the one reported,
 *    even when the value is then shrunk; shrinking happens at most once, so a
 *    forecast is never pulled twice toward the past.
 *  - No z (has_z = 0, hence no shrink) when the window holds fewer than
 *    min_samples actuals, when the spread is 0, or when z would not be
 *    finite (only possible with absurd magnitudes): a z that cannot be
 *    trusted must not move the value. Clipping still applies.
 *  - |z| == z_max does not shrink: the rule is a strict |z| > z_max.
 *  - shrink = 1 turns the shrink off: the value stays bit-identical to raw
 *    (ref + 1·(raw − ref) need not round back to raw) and z_adjusted stays 0.
 *  - `clipped` is set only when clipping changed the value.
 *  - Derived series (differences, spacings) are read through accessors in
 *    bucket order, not copied, so the sums match chorus_stat_* bit for bit.

 *  - The shrink and clipping tail (chorus_guard_finish) is shared with the
 *    aggregate form (aggregate.c), so both forms decide alike given a z.
 */
#include <math.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

/* ------------------------------------------------------------------ */
/* Views of the window                                                 */
/* ------------------------------------------------------------------ */

static double guard_value_at(const void *ctx, size_t i) {
        return ((const chorus_actual_point_t *)ctx)[i].value;
}

/* d_i = v[i+1] - v[i], i in [0, n-1). */
static double guard_diff_at(const void *ctx, size_t i) {
        const chorus_actual_point_t *a = ctx;

        return a[i + 1].value - a[i].value;
}

/* s_i = bucket[i+1] - bucket[i]. Subtracting as doubles cannot overflow, and
 * is exact for every valid timestamp (< 2^53 ms). */
static double guard_spacing_at(const void *ctx, size_t i) {
        const chorus_actual_point_t *a = ctx;

        return (double)a[i + 1].bucket - (double)a[i].bucket;
}

/* ------------------------------------------------------------------ */
/* z-score                                                             */
/* ------------------------------------------------------------------ */

/* level: z = (raw − μ)/σ over the values; ref = μ. */
static int guard_z_level(double raw, const chorus_actual_point_t *a, size_t n, double *z,
                         double *ref) {
        double sigma = chorus_stat_stddev_at(guard_value_at, a, n);
        double mu;

        if (!(sigma > 0.0) || !isfinite(sigma))
                return 0;
        mu = chorus_stat_mean_at(guard_value_at, a, n);
        *z = (raw - mu) / sigma;
        *ref = mu;
        return 1;
}

/*
 * change: z = (raw − last)/(σΔ·√k), k = max(1, round(Δt / median spacing));
 * ref = last. The √k scales the one-step spread to the forecast's distance,
 * as for a random walk.
 */
static int guard_z_change(double raw, int64_t target_bucket, const chorus_actual_point_t *a,
                          size_t n, double *z, double *ref) {
        const chorus_actual_point_t *last = &a[n - 1];
        double sigma_d = chorus_stat_stddev_at(guard_diff_at, a, n - 1);
        double med, k = 1.0;

        if (!(sigma_d > 0.0) || !isfinite(sigma_d))
                return 0;
        med = chorus_stat_median_at(guard_spacing_at, a, n - 1);
        if (med > 0.0) {
                /* round(): half away from zero, so 2.5 spacings ahead is k = 3. */
                double q = round(((double)target_bucket - (double)last->bucket) / med);

                if (q > 1.0 && isfinite(q))
                        k = q;
        }
        *z = (raw - last->value) / (sigma_d * sqrt(k));
        *ref = last->value;
        return 1;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */
/* ------------------------------------------------------------------ */

void chorus_guard_apply(const chorus_guard_params_t *params, double raw, int64_t target_bucket,
                        const chorus_actual_point_t *actuals, size_t n,
                        chorus_guard_result_t *out) {
        double z = 0.0, ref = 0.0;
        int has_z = 0;

        /* Fewer than 2 points have no spread at all, whatever min_samples says. */
        if (n >= 2 && (params->min_samples <= 0 || n >= (size_t)params->min_samples)) {
                if (params->z_reference == CHORUS_ZREF_LEVEL)
                        has_z = guard_z_level(raw, actuals, n, &z, &ref);
                else
                        has_z = guard_z_change(raw, target_bucket, actuals, n, &z, &ref);
                has_z = has_z && isfinite(z);
        }

        chorus_guard_finish(params, raw, has_z, z, ref, out);
}

void chorus_guard_finish(const chorus_guard_params_t *params, double raw, int has_z, double z,
                         double ref, chorus_guard_result_t *out) {
        double value = raw;

        out->has_z = 0;
        out->z = 0.0;
        out->z_adjusted = 0;
        out->clipped = 0;
        if (has_z) {
                out->has_z = 1;
                out->z = z;
                if (fabs(z) > params->z_max && params->shrink < 1.0) {
                        value = ref + params->shrink * (raw - ref);
                        out->z_adjusted = 1;
                }
        }

        /* Clipping. A bound is assigned only when strictly beyond the value, so
         * a NaN is never "clipped"; the final comparison covers min > max (which
         * the config rejects), where max wins and may land back on the value. */
        {
                double before = value;
                int hit = 0;

                if (params->has_min && value < params->min) {
                        value = params->min;
                        hit = 1;
                }
                if (params->has_max && value > params->max) {
                        value = params->max;
                        hit = 1;
                }
                out->clipped = hit && value != before;
        }
        out->value = value;
}
