/*
 * Unit tests of the window-aggregate math (issue #4): exact summation
 * (chorus_xsum_*: CPython's math.fsum cases, order independence, removal),
 * the exact centred sums of squares, the statistics taken from aggregates,
 * the aggregate builders, and chorus_guard_apply_agg() against the
 * point-based chorus_guard_apply(). Pure functions, no I/O.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/ensemble.h"

#define DAY INT64_C(86400000)

static chorus_xsum_t xs; /* 16 kB: static, not on the stack */

static double fsum(const double *x, size_t n) {
        chorus_xsum_init(&xs);
        for (size_t i = 0; i < n; i++)
                chorus_xsum_add(&xs, x[i]);
        return chorus_xsum_round(&xs);
}

static int same_bits(double a, double b) {
        return !memcmp(&a, &b, sizeof(a));
}

#define assert_bits(got, want)                                                                     \
        do {                                                                                       \
                double g_ = (got), w_ = (want);                                                    \
                cr_assert(same_bits(g_, w_), "%s = %a (%.17g), want %a (%.17g)", #got, g_, g_, w_, \
                          w_);                                                                     \
        } while (0)

#define assert_rel(got, want, tol)                                                                 \
        do {                                                                                       \
                double g_ = (got), w_ = (want);                                                    \
                cr_assert(g_ == w_ || fabs(g_ - w_) <= (tol)*fabs(w_), "%s = %.17g, want %.17g",   \
                          #got, g_, w_);                                                           \
        } while (0)

static uint64_t rng = 88172645463325252ULL;

static double unif(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (double)(rng >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------------------ */
/* Exact summation                                                     */
/* ------------------------------------------------------------------ */

/* The cases of CPython's test_math.testFsum (results known exactly). */
Test(xsum, matches_python_fsum) {
        static double harmonic[1000], alternating[1000], wide[1024];
        size_t nw = 0;
        const double c1[] = {1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50};
        const double c2[] = {0x1p53, -0.5, -0x1p-54};
        const double c3[] = {0x1p53, 1.0, 0x1p-100};
        const double c4[] = {0x1p53 + 10.0, 1.0, 0x1p-100};
        const double c5[] = {0x1p53 - 4.0, 0.5, 0x1p-54};
        const double c6[] = {1e16, 1.0, 1e-16};
        const double c7[] = {1e16 - 2.0, 1.0 - 0x1p-53, -(1e16 - 2.0), -(1.0 - 0x1p-53)};
        double tenth[10];

        assert_bits(fsum(NULL, 0), 0.0);
        assert_bits(fsum(c1, 7), 1e-100);
        assert_bits(fsum(c2, 3), 0x1p53 - 1.0);
        assert_bits(fsum(c3, 3), 0x1p53 + 2.0);
        assert_bits(fsum(c4, 3), 0x1p53 + 12.0);
        assert_bits(fsum(c5, 3), 0x1p53 - 3.0);
        assert_bits(fsum(c6, 3), 10000000000000002.0);
        assert_bits(fsum(c7, 4), 0.0);
        for (int i = 0; i < 10; i++)
                tenth[i] = 0.1;
        assert_bits(fsum(tenth, 10), 1.0);
        for (int n = 1; n <= 1000; n++) {
                harmonic[n - 1] = 1.0 / n;
                alternating[n - 1] = (n % 2 ? -1.0 : 1.0) / n;
        }
        assert_bits(fsum(harmonic, 1000), 0x1.df11f45f4e61ap+2);
        assert_bits(fsum(alternating, 1000), -0x1.62a2af1bd3624p-1);
        /* Many partials: terms spread over the whole exponent range. */
        for (int n = -1074; n < 972; n += 2)
                wide[nw++] = ldexp(1.0, n) - ldexp(1.0, n + 50) + ldexp(1.0, n + 52);
        wide[nw++] = -0x1p1022;
        assert_bits(fsum(wide, nw), 0x1.5555555555555p+970);
}

/* Exact halves round to even, and anything below a half decides. */
Test(xsum, rounds_half_to_even_across_partials) {
        const double tie_down[] = {1.0, 0x1p-53};
        const double tie_up[] = {1.0 + 0x1p-52, 0x1p-53};
        const double above[] = {1.0, 0x1p-53, 0x1p-100};
        const double below[] = {1.0 + 0x1p-52, 0x1p-53, -0x1p-100};

        assert_bits(fsum(tie_down, 2), 1.0);
        assert_bits(fsum(tie_up, 2), 1.0 + 0x1p-51);
        assert_bits(fsum(above, 3), 1.0 + 0x1p-52);
        assert_bits(fsum(below, 3), 1.0 + 0x1p-52);
}

/* The rounded sum of a set does not depend on the order of additions, nor
 * on other values added and removed again: what the state functions rely on. */
Test(xsum, order_and_removals_do_not_change_the_result) {
        static double x[500], junk[200];
        static chorus_xsum_t a, b;

        for (int i = 0; i < 500; i++)
                x[i] = (unif() - 0.5) * pow(10.0, (int)(unif() * 20) - 10);
        for (int i = 0; i < 200; i++)
                junk[i] = (unif() - 0.5) * pow(10.0, (int)(unif() * 30) - 15);
        chorus_xsum_init(&a);
        for (int i = 0; i < 500; i++)
                chorus_xsum_add(&a, x[i]);
        /* b: junk first, x backwards with the junk removed along the way
         * (in another order), and some of x removed and added again. */
        chorus_xsum_init(&b);
        for (int i = 0; i < 200; i++)
                chorus_xsum_add(&b, junk[i]);
        for (int i = 499; i >= 0; i--) {
                chorus_xsum_add(&b, x[i]);
                if (i < 200)
                        chorus_xsum_add(&b, -junk[(i * 7) % 200]); /* 7 is coprime to 200 */
                if (i % 5 == 0) {
                        chorus_xsum_add(&b, -x[i]);
                        chorus_xsum_add(&b, x[i]);
                }
        }
        assert_bits(chorus_xsum_round(&b), chorus_xsum_round(&a));
}

Test(xsum, canonical_components) {
        static chorus_xsum_t a, b;
        double c[CHORUS_XSUM_COMPONENTS], d[CHORUS_XSUM_COMPONENTS];
        size_t k, l;

        chorus_xsum_init(&a);
        cr_assert_eq(chorus_xsum_canon(&a, c, CHORUS_XSUM_COMPONENTS), 0);
        chorus_xsum_add(&a, 1.0);
        chorus_xsum_add(&a, 0x1p-60);
        chorus_xsum_add(&a, 0x1p-130);
        k = chorus_xsum_canon(&a, c, CHORUS_XSUM_COMPONENTS);
        cr_assert_eq(k, 3);
        assert_bits(c[0], 1.0);
        assert_bits(c[1], 0x1p-60);
        assert_bits(c[2], 0x1p-130);
        /* The same exact value built otherwise gives the same components. */
        chorus_xsum_init(&b);
        chorus_xsum_add(&b, 0x1p-130);
        chorus_xsum_add(&b, 3.0);
        chorus_xsum_add(&b, 0x1p-61);
        chorus_xsum_add(&b, -2.0);
        chorus_xsum_add(&b, 0x1p-61);
        l = chorus_xsum_canon(&b, d, CHORUS_XSUM_COMPONENTS);
        cr_assert_eq(l, k);
        for (size_t i = 0; i < k; i++)
                assert_bits(d[i], c[i]);
}

/* ------------------------------------------------------------------ */
/* Centred sums of squares                                             */
/* ------------------------------------------------------------------ */

static double css_of(const double *x, size_t n) {
        static chorus_xsum_t s1, s2;

        chorus_xsum_init(&s1);
        chorus_xsum_init(&s2);
        for (size_t i = 0; i < n; i++) {
                chorus_xsum_add(&s1, x[i]);
                chorus_xsum_add_square(&s2, x[i], 1);
        }
        return chorus_xsum_centered(n, &s1, &s2);
}

Test(css, exact_on_small_integers) {
        const double x[] = {1, 2, 3, 4};

        /* 4·30 − 10² = 20; σ² = 20/12. */
        assert_bits(css_of(x, 4), 20.0);
        assert_rel(chorus_agg_stddev(20.0, 4), sqrt(20.0 / 12.0), 1e-15);
}

/* Equal values have exactly zero spread, even when x² is inexact in
 * doubles and the mean of the doubles is not x: SPEC §5.2 "σ = 0 means
 * no z". A two-pass sum gets a tiny non-zero σ here. */
Test(css, zero_for_equal_values) {
        static double x[1000];

        for (int i = 0; i < 1000; i++)
                x[i] = 0.1;
        assert_bits(css_of(x, 1000), 0.0);
        for (int i = 0; i < 1000; i++)
                x[i] = 4321.987654321;
        assert_bits(css_of(x, 1000), 0.0);
        cr_assert_eq(chorus_agg_stddev(0.0, 1000), 0.0);
}

/* Against a long-double two-pass reference, far from zero (prices). */
Test(css, accurate_far_from_zero) {
        static double x[2000];

        for (int trial = 0; trial < 20; trial++) {
                double level = pow(10.0, trial % 6), spread = pow(10.0, -(trial % 5));
                long double mean = 0, ss = 0;
                int n = 50 + trial * 97;

                for (int i = 0; i < n; i++)
                        x[i] = level + spread * (unif() - 0.5);
                for (int i = 0; i < n; i++)
                        mean += x[i];
                mean /= n;
                for (int i = 0; i < n; i++)
                        ss += (x[i] - mean) * (x[i] - mean);
                assert_rel(chorus_agg_stddev(css_of(x, (size_t)n), (size_t)n),
                           (double)sqrtl(ss / (n - 1)), 1e-12);
        }
}

Test(css, stddev_edges) {
        cr_assert_eq(chorus_agg_stddev(5.0, 0), 0.0);
        cr_assert_eq(chorus_agg_stddev(5.0, 1), 0.0);
        cr_assert_eq(chorus_agg_stddev(-1e-30, 10), 0.0);
        cr_assert_eq(chorus_agg_stddev(NAN, 10), 0.0);
        cr_assert(isinf(chorus_agg_stddev(INFINITY, 10)));
        cr_assert_eq(chorus_agg_mean(10.0, 0), 0.0);
        cr_assert_eq(chorus_agg_mean(10.0, 4), 2.5);
}

/* ------------------------------------------------------------------ */
/* Median spacing                                                      */
/* ------------------------------------------------------------------ */

Test(median_spacing, from_the_distribution) {
        const chorus_spacing_count_t one[] = {{10, 1}};
        const chorus_spacing_count_t two[] = {{10, 1}, {20, 1}};
        const chorus_spacing_count_t odd[] = {{10, 2}, {20, 1}};
        const chorus_spacing_count_t even[] = {{5, 1}, {10, 2}, {40, 1}};
        const chorus_spacing_count_t split[] = {{5, 2}, {10, 2}};
        const chorus_spacing_count_t days[] = {{DAY, 20}, {3 * DAY, 4}, {2 * DAY, 1}};

        cr_assert_eq(chorus_agg_median_spacing(NULL, 0), 0.0);
        cr_assert_eq(chorus_agg_median_spacing(one, 1), 10.0);
        cr_assert_eq(chorus_agg_median_spacing(two, 2), 15.0);
        cr_assert_eq(chorus_agg_median_spacing(odd, 2), 10.0);
        cr_assert_eq(chorus_agg_median_spacing(even, 3), 10.0);
        cr_assert_eq(chorus_agg_median_spacing(split, 2), 7.5);
        cr_assert_eq(chorus_agg_median_spacing(days, 3), (double)DAY);
}

/* ------------------------------------------------------------------ */
/* Scores                                                              */
/* ------------------------------------------------------------------ */

Test(score_agg, stats_from_aggregates) {
        chorus_score_agg_t a = {.n_se = 4, .se_sum = 2.0, .n_ape = 3, .ape_sum = 1.5};
        chorus_score_agg_t empty = {0};
        chorus_model_stats_t s;

        chorus_score_stats_from_agg(&a, &s);
        cr_assert_eq(s.n_se, 4);
        cr_assert_eq(s.n_ape, 3);
        cr_assert_eq(s.n_zero_actual, 1);
        cr_assert_eq(s.mse, 0.5);
        cr_assert_eq(s.mape, 0.5);
        chorus_score_stats_from_agg(&empty, &s);
        cr_assert(s.n_se == 0 && s.mse == 0.0 && s.mape == 0.0);
        a.se_sum = INFINITY;
        chorus_score_stats_from_agg(&a, &s);
        cr_assert(isinf(s.mse));
}

/* The builder sums the terms chorus_score_error/_ape give, exactly; its
 * means agree with the in-order chorus_score_stats() to rounding. */
Test(score_agg, build_matches_point_stats) {
        static chorus_scored_point_t pts[700];
        chorus_score_agg_t agg;
        chorus_model_stats_t want, got;
        double se[700];

        for (int i = 0; i < 700; i++) {
                pts[i].bucket = i * DAY;
                pts[i].actual = i % 50 == 7 ? 0.0 : 100.0 + 10.0 * unif();
                pts[i].prediction = 100.0 + 10.0 * unif();
                se[i] = (pts[i].prediction - pts[i].actual) * (pts[i].prediction - pts[i].actual);
        }
        chorus_score_agg_build(pts, 700, &agg);
        cr_assert_eq(agg.n_se, 700);
        cr_assert_eq(agg.n_ape, 700 - 14);
        assert_bits(agg.se_sum, fsum(se, 700));
        chorus_score_stats(pts, 700, &want);
        chorus_score_stats_from_agg(&agg, &got);
        cr_assert_eq(got.n_zero_actual, want.n_zero_actual);
        assert_rel(got.mse, want.mse, 1e-13);
        assert_rel(got.mape, want.mape, 1e-13);
}

Test(score_agg, huge_terms_give_inf) {
        const chorus_scored_point_t pts[] = {{0, 1e300, -1e300}, {DAY, 1.0, 2.0}};
        chorus_score_agg_t agg;

        chorus_score_agg_build(pts, 2, &agg);
        cr_assert(isinf(agg.se_sum) && agg.se_sum > 0);
        assert_bits(agg.ape_sum, 200.0 + 50.0);
}

/* ------------------------------------------------------------------ */
/* Actuals and the guard                                               */
/* ------------------------------------------------------------------ */

static chorus_guard_params_t gparams(chorus_z_reference_t ref, int min_samples) {
        chorus_guard_params_t p = {
            .z_reference = ref, .min_samples = min_samples, .z_max = 3.0, .shrink = 0.5};
        return p;
}

Test(actual_agg, build) {
        const chorus_actual_point_t a[] = {
            {0, 10.0}, {DAY, 12.0}, {2 * DAY, 11.0}, {4 * DAY, 15.0}, {5 * DAY, 14.0}};
        chorus_spacing_count_t buf[5];
        chorus_actual_agg_t agg;

        chorus_actual_agg_build(a, 5, buf, &agg);
        cr_assert_eq(agg.n, 5);
        cr_assert_eq(agg.n_diff, 4);
        cr_assert_eq(agg.last_bucket, 5 * DAY);
        cr_assert_eq(agg.last_value, 14.0);
        cr_assert_eq(agg.sum, 62.0);
        /* 5·(100+144+121+225+196) − 62² = 3930 − 3844 = 86 */
        cr_assert_eq(agg.css, 86.0);
        /* d = 2, −1, 4, −1: Σd = 4, 4·22 − 16 = 72 */
        cr_assert_eq(agg.diff_sum, 4.0);
        cr_assert_eq(agg.diff_css, 72.0);
        cr_assert_eq(agg.n_spacings, 2);
        cr_assert(agg.spacings[0].spacing == DAY && agg.spacings[0].count == 3);
        cr_assert(agg.spacings[1].spacing == 2 * DAY && agg.spacings[1].count == 1);
}

Test(actual_agg, empty_and_single) {
        const chorus_actual_point_t a[] = {{7 * DAY, 3.5}};
        chorus_spacing_count_t buf[1];
        chorus_actual_agg_t agg;

        chorus_actual_agg_build(NULL, 0, buf, &agg);
        cr_assert(agg.n == 0 && agg.n_diff == 0 && agg.n_spacings == 0 && agg.sum == 0.0);
        chorus_actual_agg_build(a, 1, buf, &agg);
        cr_assert(agg.n == 1 && agg.n_diff == 0 && agg.last_bucket == 7 * DAY &&
                  agg.last_value == 3.5 && agg.css == 0.0);
}

Test(actual_agg, huge_values_mean_no_z) {
        chorus_actual_point_t a[12];
        chorus_spacing_count_t buf[12];
        chorus_actual_agg_t agg;
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 10);
        chorus_guard_result_t r;

        for (int i = 0; i < 12; i++) {
                a[i].bucket = i * DAY;
                a[i].value = i == 3 ? 1e200 : 100.0 + i;
        }
        chorus_actual_agg_build(a, 12, buf, &agg);
        cr_assert(isinf(agg.css) && isinf(agg.diff_css));
        chorus_guard_apply_agg(&p, 1e6, 12 * DAY, &agg, &r);
        cr_assert(!r.has_z && r.value == 1e6);
        p.z_reference = CHORUS_ZREF_CHANGE;
        chorus_guard_apply_agg(&p, 1e6, 12 * DAY, &agg, &r);
        cr_assert(!r.has_z);
}

/* The aggregate guard decides as the point guard does, with z to ~1e-12. */
Test(guard_agg, agrees_with_point_guard) {
        static chorus_actual_point_t a[800];
        static chorus_spacing_count_t buf[800];

        for (int trial = 0; trial < 400; trial++) {
                chorus_z_reference_t ref = trial % 2 ? CHORUS_ZREF_LEVEL : CHORUS_ZREF_CHANGE;
                chorus_guard_params_t p = gparams(ref, 10);
                chorus_guard_result_t want, got;
                chorus_actual_agg_t agg;
                size_t n = 2 + (size_t)(unif() * 700);
                double level = pow(10.0, (int)(unif() * 5)), v = level;
                int64_t b = 0;
                double raw;

                for (size_t i = 0; i < n; i++) {
                        b += DAY * (unif() < 0.8 ? 1 : 1 + (int64_t)(unif() * 4));
                        v += level * 0.01 * (unif() - 0.5);
                        a[i].bucket = b;
                        a[i].value = v;
                }
                raw = v + level * 0.05 * (unif() - 0.5) * (trial % 5 + 1);
                if (trial % 7 == 0) {
                        p.has_min = 1;
                        p.min = v;
                }
                chorus_guard_apply(&p, raw, b + DAY * (1 + trial % 4), a, n, &want);
                chorus_actual_agg_build(a, n, buf, &agg);
                chorus_guard_apply_agg(&p, raw, b + DAY * (1 + trial % 4), &agg, &got);
                cr_assert_eq(got.has_z, want.has_z, "trial %d", trial);
                if (!want.has_z)
                        continue;
                assert_rel(got.z, want.z, 1e-12);
                if (fabs(fabs(want.z) - p.z_max) < 1e-9)
                        continue; /* on the threshold: rounding may decide */
                cr_assert_eq(got.z_adjusted, want.z_adjusted, "trial %d", trial);
                cr_assert_eq(got.clipped, want.clipped, "trial %d", trial);
                assert_rel(got.value, want.value, 1e-12);
        }
}

/* A perfectly linear series has σΔ = 0 exactly: no z (the change reference). */
Test(guard_agg, constant_steps_give_no_z) {
        chorus_actual_point_t a[30];
        chorus_spacing_count_t buf[30];
        chorus_actual_agg_t agg;
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 10);
        chorus_guard_result_t r;

        for (int i = 0; i < 30; i++) {
                a[i].bucket = i * DAY;
                a[i].value = 100.0 + 0.25 * i;
        }
        chorus_actual_agg_build(a, 30, buf, &agg);
        cr_assert_eq(agg.diff_css, 0.0);
        chorus_guard_apply_agg(&p, 500.0, 30 * DAY, &agg, &r);
        cr_assert(!r.has_z && !r.z_adjusted && r.value == 500.0);
}

Test(guard_agg, min_samples_and_k) {
        chorus_actual_point_t a[12];
        chorus_spacing_count_t buf[12];
        chorus_actual_agg_t agg;
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 13);
        chorus_guard_result_t r;

        /* Diffs alternate +1, −1: σΔ over 11 diffs, mean 1/11. */
        for (int i = 0; i < 12; i++) {
                a[i].bucket = i * DAY;
                a[i].value = 100.0 + (i % 2);
        }
        chorus_actual_agg_build(a, 12, buf, &agg);
        chorus_guard_apply_agg(&p, 110.0, 12 * DAY, &agg, &r);
        cr_assert(!r.has_z, "12 actuals < min_samples 13");
        p.min_samples = 12;
        chorus_guard_apply_agg(&p, 110.0, 11 * DAY + 4 * DAY, &agg, &r);
        cr_assert(r.has_z);
        {
                /* k = round(4 days / 1 day) = 4; σΔ = sqrt((11·11 − 1)/(11·10)). */
                double sigma = sqrt(120.0 / 110.0);
                assert_rel(r.z, (110.0 - 101.0) / (sigma * 2.0), 1e-15);
        }
        cr_assert(r.z_adjusted);
        assert_rel(r.value, 101.0 + 0.5 * 9.0, 1e-15);
}
