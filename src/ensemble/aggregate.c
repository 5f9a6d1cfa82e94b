/*
 * Statistics from window aggregates (issue #4): MSE/MAPE from counts and
 * exact sums, σ/σΔ/μ and the median spacing for the z-guard (SPEC §5.2),
 * and the O(n) builders that define what an aggregate of a window is.
 *
 * Invariants:
 *  - The builders use the same terms, thresholds and exact sums as the state
 *    functions (src/state/lua/), so an aggregate returned by Redis and
 *    one built here from the same window are equal bit for bit; the
 *    broker-less tests hold the two to that.
 *  - A sum that is +inf (a term too large to sum) never yields a z-score:
 *    its σ is +inf, which the guard treats as "no z", as it treats any
 *    non-finite spread.
 *  - chorus_guard_apply_agg() and chorus_guard_apply() share the shrink and
 *    clipping code (chorus_guard_finish), so they differ only in how σ and
 *    μ are computed.
 */
#include <math.h>
#include <stdlib.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

/* Thresholds of the state functions (chorus.lua: BIG_TERM, BIG_VALUE). */
#define AGG_BIG_TERM  0x1p960
#define AGG_BIG_VALUE 0x1p400

/* ------------------------------------------------------------------ */
/* Scores                                                              */
/* ------------------------------------------------------------------ */

void chorus_score_stats_from_agg(const chorus_score_agg_t *agg, chorus_model_stats_t *out) {
        out->n_se = agg->n_se;
        out->n_ape = agg->n_ape;
        out->n_zero_actual = agg->n_se >= agg->n_ape ? agg->n_se - agg->n_ape : 0;
        out->mse = agg->n_se ? agg->se_sum / (double)agg->n_se : 0.0;
        out->mape = agg->n_ape ? agg->ape_sum / (double)agg->n_ape : 0.0;
}

void chorus_score_agg_build(const chorus_scored_point_t *points, size_t n,
                            chorus_score_agg_t *out) {
        static _Thread_local chorus_xsum_t se, ape;
        int big_se = 0, big_ape = 0;

        chorus_xsum_init(&se);
        chorus_xsum_init(&ape);
        out->n_se = n;
        out->n_ape = 0;
        for (size_t i = 0; i < n; i++) {
                double e = chorus_score_error(points[i].prediction, points[i].actual);
                double sq = e * e;

                if (sq < AGG_BIG_TERM)
                        chorus_xsum_add(&se, sq);
                else
                        big_se = 1;
                if (points[i].actual != 0.0) {
                        double a = chorus_score_ape(points[i].prediction, points[i].actual);

                        out->n_ape++;
                        if (a < AGG_BIG_TERM)
                                chorus_xsum_add(&ape, a);
                        else
                                big_ape = 1;
                }
        }
        out->se_sum = big_se ? INFINITY : chorus_xsum_round(&se);
        out->ape_sum = big_ape ? INFINITY : chorus_xsum_round(&ape);
}

/* ------------------------------------------------------------------ */
/* Actuals                                                             */
/* ------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

void chorus_actual_agg_build(const chorus_actual_point_t *a, size_t n,
                             chorus_spacing_count_t *spacings_buf, chorus_actual_agg_t *out) {
        static _Thread_local chorus_xsum_t s1, s2, d1, d2;
        int big = 0, dbig = 0;
        size_t k = 0;

        chorus_xsum_init(&s1);
        chorus_xsum_init(&s2);
        chorus_xsum_init(&d1);
        chorus_xsum_init(&d2);
        out->n = n;
        out->n_diff = n ? n - 1 : 0;
        out->last_bucket = n ? a[n - 1].bucket : 0;
        out->last_value = n ? a[n - 1].value : 0.0;
        for (size_t i = 0; i < n; i++) {
                double v = a[i].value;

                if (fabs(v) < AGG_BIG_VALUE) {
                        chorus_xsum_add(&s1, v);
                        chorus_xsum_add_square(&s2, v, 1);
                } else {
                        big = 1;
                }
                if (i > 0) {
                        double d = v - a[i - 1].value;

                        if (fabs(d) < AGG_BIG_VALUE) {
                                chorus_xsum_add(&d1, d);
                                chorus_xsum_add_square(&d2, d, 1);
                        } else {
                                dbig = 1;
                        }
                }
        }
        out->sum = big ? INFINITY : chorus_xsum_round(&s1);
        out->css = big ? INFINITY : chorus_xsum_centered(n, &s1, &s2);
        out->diff_sum = dbig ? INFINITY : chorus_xsum_round(&d1);
        out->diff_css = dbig ? INFINITY : chorus_xsum_centered(out->n_diff, &d1, &d2);

        /* The spacings, sorted, then run-length encoded into the caller's buffer. */
        if (n > 1) {
                int64_t *tmp = malloc((n - 1) * sizeof(*tmp));

                if (tmp) {
                        for (size_t i = 0; i + 1 < n; i++)
                                tmp[i] = a[i + 1].bucket - a[i].bucket;
                        qsort(tmp, n - 1, sizeof(*tmp), cmp_i64);
                        for (size_t i = 0; i + 1 < n; i++) {
                                if (k && spacings_buf[k - 1].spacing == tmp[i]) {
                                        spacings_buf[k - 1].count++;
                                } else {
                                        spacings_buf[k].spacing = tmp[i];
                                        spacings_buf[k].count = 1;
                                        k++;
                                }
                        }
                        free(tmp);
                } else {
                        /* Out of memory: insert each spacing into the sorted
                         * distribution directly; O(n·k), same result. */
                        for (size_t i = 0; i + 1 < n; i++) {
                                int64_t sp = a[i + 1].bucket - a[i].bucket;
                                size_t j = 0;

                                while (j < k && spacings_buf[j].spacing < sp)
                                        j++;
                                if (j < k && spacings_buf[j].spacing == sp) {
                                        spacings_buf[j].count++;
                                        continue;
                                }
                                for (size_t m = k; m > j; m--)
                                        spacings_buf[m] = spacings_buf[m - 1];
                                spacings_buf[j].spacing = sp;
                                spacings_buf[j].count = 1;
                                k++;
                        }
                }
        }
        out->spacings = spacings_buf;
        out->n_spacings = k;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */
/* ------------------------------------------------------------------ */

double chorus_agg_mean(double sum, size_t n) {
        return n ? sum / (double)n : 0.0;
}

double chorus_agg_stddev(double css, size_t n) {
        if (n < 2 || !(css > 0.0))
                return 0.0;
        if (isinf(css))
                return INFINITY;
        /* n(n−1) is exact in a double for any window that fits in memory. */
        return sqrt(css / ((double)n * (double)(n - 1)));
}

/* The k-th smallest spacing (0-based) of the distribution. */
static double agg_spacing_kth(const chorus_spacing_count_t *s, size_t n, size_t k) {
        for (size_t i = 0; i < n; i++) {
                if (k < s[i].count)
                        return (double)s[i].spacing;
                k -= s[i].count;
        }
        return 0.0; /* unreachable when k < the total count */
}

double chorus_agg_median_spacing(const chorus_spacing_count_t *spacings, size_t k) {
        size_t total = 0;
        double lo, hi;

        for (size_t i = 0; i < k; i++)
                total += spacings[i].count;
        if (total == 0)
                return 0.0;
        lo = agg_spacing_kth(spacings, k, (total - 1) / 2);
        if (total % 2)
                return lo;
        hi = agg_spacing_kth(spacings, k, total / 2);
        return (lo + hi) / 2.0; /* spacings are far below overflow */
}

void chorus_guard_apply_agg(const chorus_guard_params_t *params, double raw, int64_t target_bucket,
                            const chorus_actual_agg_t *agg, chorus_guard_result_t *out) {
        double z = 0.0, ref = 0.0;
        int has_z = 0;
        size_t n = agg->n;

        if (n >= 2 && (params->min_samples <= 0 || n >= (size_t)params->min_samples)) {
                if (params->z_reference == CHORUS_ZREF_LEVEL) {
                        double sigma = chorus_agg_stddev(agg->css, n);

                        if (sigma > 0.0 && isfinite(sigma)) {
                                ref = chorus_agg_mean(agg->sum, n);
                                z = (raw - ref) / sigma;
                                has_z = 1;
                        }
                } else {
                        double sigma_d = chorus_agg_stddev(agg->diff_css, agg->n_diff);

                        if (sigma_d > 0.0 && isfinite(sigma_d)) {
                                double med =
                                    chorus_agg_median_spacing(agg->spacings, agg->n_spacings);
                                double k = 1.0;

                                if (med > 0.0) {
                                        /* round(): half away from zero, as chorus_guard_apply. */
                                        double q = round(
                                            ((double)target_bucket - (double)agg->last_bucket) /
                                            med);

                                        if (q > 1.0 && isfinite(q))
                                                k = q;
                                }
                                ref = agg->last_value;
                                z = (raw - ref) / (sigma_d * sqrt(k));
                                has_z = 1;
                        }
                }
                has_z = has_z && isfinite(z);
        }
        chorus_guard_finish(params, raw, has_z, z, ref, out);
}
