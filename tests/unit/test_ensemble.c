/*
 * Unit tests of the ensemble math (SPEC §4, §5.1, §5.2): pure functions, no
 * I/O. Every expectation is worked out by hand in the comment above it; the
 * inputs are chosen so that most results are exact in binary floating point
 * (asserted with ==), the others are checked to 1e-12 relative.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "chorus/ensemble.h"
#include "chorus/record.h"
/* The allocation-free median path is internal; it is reached here directly,
 * since a failing malloc cannot be provoked from a unit test. */
#include "../../src/ensemble/ensemble_int.h"

#define DAY INT64_C(86400000)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static int rel_eq(double got, double want, double tol) {
        if (got == want)
                return 1;
        return fabs(got - want) <= tol * fabs(want);
}

#define assert_rel(got, want)                                                                      \
        do {                                                                                       \
                double g_ = (got), w_ = (want);                                                    \
                cr_assert(rel_eq(g_, w_, 1e-12), "%s = %.17g, want %.17g", #got, g_, w_);          \
        } while (0)

#define assert_exact(got, want)                                                                    \
        do {                                                                                       \
                double g_ = (got), w_ = (want);                                                    \
                cr_assert(g_ == w_, "%s = %.17g, want exactly %.17g", #got, g_, w_);               \
        } while (0)

/* Warm-enough stats with both counts = n. */
static chorus_model_stats_t ms(double mape, double mse, size_t n) {
        chorus_model_stats_t s = {
            .n_se = n, .n_ape = n, .n_zero_actual = 0, .mse = mse, .mape = mape};
        return s;
}

static chorus_weight_params_t wparams(chorus_weights_method_t m, int min_samples) {
        chorus_weight_params_t p = {.method = m, .min_samples = min_samples};
        return p;
}

static chorus_guard_params_t gparams(chorus_z_reference_t ref, int min_samples) {
        chorus_guard_params_t p = {
            .z_reference = ref, .min_samples = min_samples, .z_max = 3.0, .shrink = 0.5};
        return p;
}

static void assert_equal_weights(const double *w, size_t n) {
        for (size_t i = 0; i < n; i++)
                assert_exact(w[i], 1.0 / (double)n);
}

static void assert_sane_weights(const double *w, size_t n) {
        double sum = 0.0;

        for (size_t i = 0; i < n; i++) {
                cr_assert(isfinite(w[i]) && w[i] >= 0.0 && w[i] <= 1.0, "w[%zu] = %g", i, w[i]);
                sum += w[i];
        }
        cr_assert(fabs(sum - 1.0) <= 8 * DBL_EPSILON, "sum of weights = %.17g", sum);
}

/* ------------------------------------------------------------------ */
/* Scoring (§4)                                                        */
/* ------------------------------------------------------------------ */

Test(score, error_is_prediction_minus_actual) {
        assert_exact(chorus_score_error(105.0, 100.0), 5.0);
        /* -3 - 2 = -5: the sign says the forecast was low. */
        assert_exact(chorus_score_error(-3.0, 2.0), -5.0);
}

Test(score, ape_in_percent) {
        /* 100·|105 − 100|/|100| = 5 */
        assert_exact(chorus_score_ape(105.0, 100.0), 5.0);
        /* Negative actual (prices can be negative): 100·|90 − (−100)|/|−100| = 190 */
        assert_exact(chorus_score_ape(90.0, -100.0), 190.0);
        /* 100·|−48 − (−50)|/50 = 4 */
        assert_exact(chorus_score_ape(-48.0, -50.0), 4.0);
}

Test(score, ape_undefined_for_zero_actual) {
        cr_assert(isnan(chorus_score_ape(3.0, 0.0)));
        cr_assert(isnan(chorus_score_ape(3.0, -0.0)));
        cr_assert(isnan(chorus_score_ape(0.0, 0.0)));
}

Test(score, stats_zero_actual_counts_in_mse_not_mape) {
        /*   p     a     e    e²   APE
         *  110   100   10   100   10
         *   95   100   -5    25    5
         *    3     0    3     9   (none: data-quality event)
         *  -48   -50    2     4    4
         * mse  = (100 + 25 + 9 + 4)/4 = 138/4 = 34.5
         * mape = (10 + 5 + 4)/3 = 19/3 (each APE and the sum are exact) */
        const chorus_scored_point_t pts[] = {{1 * DAY, 110.0, 100.0},
                                             {2 * DAY, 95.0, 100.0},
                                             {3 * DAY, 3.0, 0.0},
                                             {4 * DAY, -48.0, -50.0}};
        chorus_model_stats_t s;

        chorus_score_stats(pts, 4, &s);
        cr_assert_eq(s.n_se, 4);
        cr_assert_eq(s.n_ape, 3);
        cr_assert_eq(s.n_zero_actual, 1);
        assert_exact(s.mse, 34.5);
        assert_exact(s.mape, 19.0 / 3.0);
}

Test(score, stats_empty_window_is_all_zero) {
        chorus_model_stats_t s;

        memset(&s, 0xff, sizeof(s));
        chorus_score_stats(NULL, 0, &s);
        cr_assert_eq(s.n_se, 0);
        cr_assert_eq(s.n_ape, 0);
        cr_assert_eq(s.n_zero_actual, 0);
        assert_exact(s.mse, 0.0);
        assert_exact(s.mape, 0.0);
}

Test(score, stats_all_zero_actuals_has_no_mape) {
        /* e = 2 and −4: mse = (4 + 16)/2 = 10; no APE at all: mape = 0, n_ape = 0. */
        const chorus_scored_point_t pts[] = {{0, 2.0, 0.0}, {DAY, -4.0, 0.0}};
        chorus_model_stats_t s;

        chorus_score_stats(pts, 2, &s);
        cr_assert_eq(s.n_se, 2);
        cr_assert_eq(s.n_ape, 0);
        cr_assert_eq(s.n_zero_actual, 2);
        assert_exact(s.mse, 10.0);
        assert_exact(s.mape, 0.0);
}

Test(score, stats_sum_in_input_order) {
        /* e = 1e8, 1, 1, so e² = 1e16, 1, 1. In input order 1e16 + 1 is a tie
         * between 1e16 and 1e16 + 2 (the spacing there is 2) and rounds to the
         * even 1e16, twice: mse = 1e16/3 = 3333333333333333.5. Summed in reverse
         * it would be (1 + 1 + 1e16)/3 = 3333333333333334. */
        const chorus_scored_point_t pts[] = {
            {0, 1e8 + 1.0, 1.0}, {DAY, 2.0, 1.0}, {2 * DAY, 2.0, 1.0}};
        chorus_model_stats_t s;

        chorus_score_stats(pts, 3, &s);
        assert_exact(s.mse, 3333333333333333.5);
        cr_assert(s.mse != 3333333333333334.0);
}

/* ------------------------------------------------------------------ */
/* Weights (§5.1)                                                      */
/* ------------------------------------------------------------------ */

Test(weights, exp_inv_mape_three_models) {
        /* MAPE 0.5, 1, 2 → exp(2) = 7.38905609893065, exp(1) = 2.718281828459045,
         * exp(0.5) = 1.6487212707001282; sum = 11.756059198089822.
         * Normalised: 0.6285317192117625, 0.23122389762214907, 0.1402443831660885. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 0.6285317192117625);
        assert_rel(w[1], 0.23122389762214907);
        assert_rel(w[2], 0.1402443831660885);
        assert_sane_weights(w, 3);
}

Test(weights, inv_mape_three_models) {
        /* 1/0.5 = 2, 1/1 = 1, 1/2 = 0.5; sum 3.5 → 4/7, 2/7, 1/7. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 4.0 / 7.0);
        assert_rel(w[1], 2.0 / 7.0);
        assert_rel(w[2], 1.0 / 7.0);
}

Test(weights, inv_mse_three_models) {
        /* 1/0.25 = 4, 1/1 = 1, 1/4 = 0.25; sum 5.25 → 16/21, 4/21, 1/21.
         * The MAPEs are the reverse ranking, to show that MSE alone decides. */
        chorus_model_stats_t st[] = {ms(9.0, 0.25, 10), ms(1.0, 1.0, 10), ms(0.2, 4.0, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 16.0 / 21.0);
        assert_rel(w[1], 4.0 / 21.0);
        assert_rel(w[2], 1.0 / 21.0);
}

Test(weights, equal_three_models) {
        /* Every weight is 1 whatever the scores: 1/3 each. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(50.0, 1e6, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EQUAL, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_equal_weights(w, 3);
}

Test(weights, mape_floor_is_a_tenth_of_a_percent) {
        /* MAPE 0.01, 0.1 and 0 all floor to 0.1 → 1/0.1 = 10; MAPE 1 → 1.
         * Sum 31 → 10/31, 10/31, 10/31, 1/31. A perfect model (MAPE 0) is not
         * given an infinite weight. */
        chorus_model_stats_t st[] = {ms(0.01, 1, 10), ms(0.1, 1, 10), ms(0.0, 1, 10),
                                     ms(1.0, 1, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[4];

        chorus_weights_compute(&p, st, 4, w);
        assert_rel(w[0], 10.0 / 31.0);
        assert_exact(w[0], w[1]);
        assert_exact(w[0], w[2]);
        assert_rel(w[3], 1.0 / 31.0);
}

Test(weights, mape_floor_caps_the_exponent) {
        /* exp(1/max(0.05, 0.1)) = exp(10) = 22026.465794806718 (not exp(20)), the
         * same as MAPE 0.1; MAPE 1 → e. Sum 2·exp(10) + e →
         * 0.49996914945260834, 0.49996914945260834, 6.17010947833302e-05. */
        chorus_model_stats_t st[] = {ms(0.05, 1, 10), ms(0.1, 1, 10), ms(1.0, 1, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[3];

        chorus_weights_compute(&p, st, 3, w);
        assert_rel(w[0], 0.49996914945260834);
        assert_exact(w[0], w[1]);
        assert_rel(w[2], 6.17010947833302e-05);
        assert_sane_weights(w, 3);
}

Test(weights, mse_floor_is_1e_minus_12) {
        /* MSE 0, 1e-13, 1e-12 all floor to 1e-12 → 1e12 each; MSE 1e-6 → 1e6.
         * Sum 3e12 + 1e6 → 1e12/(3e12 + 1e6) = 0.33333322222225925 (×3) and
         * 1e6/(3e12 + 1e6) = 3.3333322222225924e-07. */
        chorus_model_stats_t st[] = {ms(1, 0.0, 10), ms(1, 1e-13, 10), ms(1, 1e-12, 10),
                                     ms(1, 1e-6, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[4];

        chorus_weights_compute(&p, st, 4, w);
        assert_rel(w[0], 0.33333322222225925);
        assert_exact(w[0], w[1]);
        assert_exact(w[0], w[2]);
        assert_rel(w[3], 3.3333322222225924e-07);
}

Test(weights, cold_model_gets_mean_warm_weight) {
        /* min_samples 5. A: MAPE 1, n = 5 (exactly min: warm) → 1.
         * B: MAPE 4, n = 10 → 0.25. C: n = 4 (cold); its own MAPE 0.2 (→ 5) is
         * ignored and it gets (1 + 0.25)/2 = 0.625. Sum 1.875 →
         * 1/1.875 = 8/15, 0.25/1.875 = 2/15, 0.625/1.875 = 1/3. Not a fallback. */
        chorus_model_stats_t st[] = {ms(1.0, 1, 5), ms(4.0, 1, 10), ms(0.2, 1, 4)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 8.0 / 15.0);
        assert_rel(w[1], 2.0 / 15.0);
        assert_rel(w[2], 1.0 / 3.0);
}

Test(weights, cold_model_mean_is_of_unnormalised_exp_weights) {
        /* exp_inv_mape: A MAPE 1 → e, B MAPE 2 → e^0.5, C cold → (e + e^0.5)/2.
         * Total (3/2)(e + e^0.5) = 6.550505649239260 → 0.414972887467903,
         * 0.2516937791987636, 1/3. */
        chorus_model_stats_t st[] = {ms(1.0, 1, 10), ms(2.0, 1, 10), ms(0.5, 1, 1)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 0.414972887467903);
        assert_rel(w[1], 0.2516937791987636);
        assert_rel(w[2], 1.0 / 3.0);
}

Test(weights, warm_count_depends_on_method) {
        /* M0's actuals were all zero: n_se = 10, n_ape = 0, mape = 0, mse = 1.
         * M1: MAPE 2, MSE 4. M2: MAPE 0.5, MSE 16. min_samples 5.
         * inv_mape: M0 is cold (n_ape 0) → mean(1/2, 1/0.5) = 1.25; weights
         *   1.25, 0.5, 2; sum 3.75 → 1/3, 2/15, 8/15. (Were M0 warm, its MAPE 0
         *   would floor to 0.1 and weigh 10.)
         * inv_mse: M0 is warm (n_se 10) → 1, 0.25, 0.0625; sum 1.3125 →
         *   16/21, 4/21, 1/21. */
        chorus_model_stats_t st[] = {
            {.n_se = 10, .n_ape = 0, .n_zero_actual = 10, .mse = 1.0, .mape = 0.0},
            ms(2.0, 4.0, 10),
            ms(0.5, 16.0, 10)};
        chorus_weight_params_t pm = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        chorus_weight_params_t ps = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&pm, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 1.0 / 3.0);
        assert_rel(w[1], 2.0 / 15.0);
        assert_rel(w[2], 8.0 / 15.0);

        cr_assert_eq(chorus_weights_compute(&ps, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 16.0 / 21.0);
        assert_rel(w[1], 4.0 / 21.0);
        assert_rel(w[2], 1.0 / 21.0);
}

Test(weights, all_cold_is_equal_and_cold_start) {
        /* n = 4 < 5 for everyone, under each score-based method: 1/3 each. */
        static const chorus_weights_method_t methods[] = {
            CHORUS_WEIGHTS_EXP_INV_MAPE, CHORUS_WEIGHTS_INV_MAPE, CHORUS_WEIGHTS_INV_MSE};
        chorus_model_stats_t st[] = {ms(0.5, 0.25, 4), ms(1.0, 1.0, 4), ms(2.0, 4.0, 4)};

        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
                chorus_weight_params_t p = wparams(methods[m], 5);
                double w[3];

                cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_COLD_START,
                             "method %d", (int)methods[m]);
                assert_equal_weights(w, 3);
        }
}

Test(weights, equal_never_reports_cold_start) {
        /* No model has a single point, yet `equal` needs none. */
        chorus_model_stats_t st[3] = {{0}};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EQUAL, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_equal_weights(w, 3);
}

Test(weights, priors_multiply) {
        /* inv_mape 2, 1, 0.5 × priors 0.5, 2, 0 → 1, 2, 0; sum 3 → 1/3, 2/3, 0. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        const double priors[] = {0.5, 2.0, 0.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        p.priors = priors;
        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 1.0 / 3.0);
        assert_rel(w[1], 2.0 / 3.0);
        assert_exact(w[2], 0.0);
}

Test(weights, priors_apply_to_equal_method) {
        /* 1, 1 × priors 1, 3 → 1, 3; sum 4 → 0.25, 0.75 (exact). */
        chorus_model_stats_t st[2] = {{0}};
        const double priors[] = {1.0, 3.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EQUAL, 5);
        double w[2];

        p.priors = priors;
        cr_assert_eq(chorus_weights_compute(&p, st, 2, w), CHORUS_FALLBACK_NONE);
        assert_exact(w[0], 0.25);
        assert_exact(w[1], 0.75);
}

Test(weights, all_zero_priors_give_equal_weights) {
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        const double priors[] = {0.0, 0.0, 0.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        p.priors = priors;
        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_equal_weights(w, 3);
}

Test(weights, priors_shape_a_cold_start) {
        /* All cold → 1, 1, 1; × priors 1, 3, 0 → 1, 3, 0; sum 4 → 0.25, 0.75, 0.
         * The fallback is still cold_start. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 1), ms(1.0, 1, 1), ms(2.0, 1, 1)};
        const double priors[] = {1.0, 3.0, 0.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[3];

        p.priors = priors;
        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_COLD_START);
        assert_exact(w[0], 0.25);
        assert_exact(w[1], 0.75);
        assert_exact(w[2], 0.0);
}

Test(weights, invalid_priors_count_as_zero) {
        /* inv_mape 2, 1, 0.5 × priors NaN→0, −1→0, 2 → 0, 0, 1: weights 0, 0, 1. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        const double priors[] = {NAN, -1.0, 2.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        p.priors = priors;
        chorus_weights_compute(&p, st, 3, w);
        assert_exact(w[0], 0.0);
        assert_exact(w[1], 0.0);
        assert_exact(w[2], 1.0);
}

Test(weights, overfitting_forces_equal) {
        /* Scores and priors would give 1/3, 2/3, 0; overfitting overrides both. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        const double priors[] = {0.5, 2.0, 0.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        p.priors = priors;
        p.overfitting = 1;
        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_OVERFITTING);
        assert_equal_weights(w, 3);
}

Test(weights, overfitting_overrides_cold_start) {
        chorus_model_stats_t st[] = {ms(0.5, 1, 1), ms(1.0, 1, 1)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[2];

        p.overfitting = 1;
        cr_assert_eq(chorus_weights_compute(&p, st, 2, w), CHORUS_FALLBACK_OVERFITTING);
        assert_exact(w[0], 0.5);
        assert_exact(w[1], 0.5);
}

Test(weights, rollback_flag_is_the_callers_business) {
        /* Same result as without the flag: 4/7, 2/7, 1/7 and no fallback. */
        chorus_model_stats_t st[] = {ms(0.5, 1, 10), ms(1.0, 1, 10), ms(2.0, 1, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        double w[3];

        p.rollback = 1;
        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_rel(w[0], 4.0 / 7.0);
        assert_rel(w[2], 1.0 / 7.0);
}

Test(weights, no_models_is_a_no_op) {
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        double w[1] = {42.0};

        p.overfitting = 1;
        cr_assert_eq(chorus_weights_compute(&p, NULL, 0, w), CHORUS_FALLBACK_NONE);
        assert_exact(w[0], 42.0);
}

Test(weights, zero_sum_gives_equal_weights) {
        /* MSE +Inf (absurd errors) → 1/Inf = 0 for every model; sum 0 → 1/3 each. */
        chorus_model_stats_t st[] = {ms(1, INFINITY, 10), ms(1, INFINITY, 10), ms(1, INFINITY, 10)};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[3];

        cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
        assert_equal_weights(w, 3);
}

Test(weights, infinite_sum_gives_equal_weights) {
        /* 1e12 (floored MSE) × prior 1e300 overflows to +Inf → equal weights,
         * never Inf/Inf = NaN. */
        chorus_model_stats_t st[] = {ms(1, 0.0, 10), ms(1, 1.0, 10)};
        const double priors[] = {1e300, 1.0};
        chorus_weight_params_t p = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[2];

        p.priors = priors;
        chorus_weights_compute(&p, st, 2, w);
        assert_exact(w[0], 0.5);
        assert_exact(w[1], 0.5);
}

Test(weights, nan_score_is_the_worst_score) {
        /* A NaN MAPE must not pass the floor as 0.1 (the best score):
         * inv_mape: NaN → 1/Inf = 0 and 1 → weights 0, 1.
         * exp_inv_mape: NaN → exp(0) = 1 and e → 1/(1+e) = 0.2689414213699951,
         * e/(1+e) = 0.7310585786300049. */
        chorus_model_stats_t st[] = {ms(NAN, NAN, 10), ms(1.0, 1.0, 10)};
        chorus_weight_params_t pi = wparams(CHORUS_WEIGHTS_INV_MAPE, 5);
        chorus_weight_params_t pe = wparams(CHORUS_WEIGHTS_EXP_INV_MAPE, 5);
        chorus_weight_params_t ps = wparams(CHORUS_WEIGHTS_INV_MSE, 5);
        double w[2];

        chorus_weights_compute(&pi, st, 2, w);
        assert_exact(w[0], 0.0);
        assert_exact(w[1], 1.0);
        chorus_weights_compute(&pe, st, 2, w);
        assert_rel(w[0], 0.2689414213699951);
        assert_rel(w[1], 0.7310585786300049);
        chorus_weights_compute(&ps, st, 2, w);
        assert_exact(w[0], 0.0);
        assert_exact(w[1], 1.0);
}

Test(weights, always_finite_and_summing_to_one) {
        /* Extreme but finite statistics, every method, with and without cold
         * models: weights stay finite, in [0, 1], and sum to 1. */
        static const chorus_weights_method_t methods[] = {
            CHORUS_WEIGHTS_EXP_INV_MAPE, CHORUS_WEIGHTS_EQUAL, CHORUS_WEIGHTS_INV_MAPE,
            CHORUS_WEIGHTS_INV_MSE};
        chorus_model_stats_t st[] = {ms(0.0, 0.0, 10), ms(DBL_MAX, DBL_MAX, 10),
                                     ms(1e-300, 1e-300, 2), ms(3.7, 12.5, 10),
                                     ms(DBL_MIN, 5e-324, 10)};

        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
                chorus_weight_params_t p = wparams(methods[m], 5);
                double w[5];

                chorus_weights_compute(&p, st, 5, w);
                assert_sane_weights(w, 5);
        }
}

Test(weights, poor_model_gets_the_smallest_weight) {
        /* Over 6 buckets with actual 100 (alternating signs of error):
         *   poor: |e| = 50 → MAPE 50, MSE 2500
         *   good: |e| = 1  → MAPE 1,  MSE 1
         *   fair: |e| = 3  → MAPE 3,  MSE 9
         * The poor model is first so that index order cannot favour it. */
        static const double err[] = {50.0, 1.0, 3.0};
        static const chorus_weights_method_t methods[] = {
            CHORUS_WEIGHTS_EXP_INV_MAPE, CHORUS_WEIGHTS_INV_MAPE, CHORUS_WEIGHTS_INV_MSE};
        chorus_model_stats_t st[3];

        for (size_t m = 0; m < 3; m++) {
                chorus_scored_point_t pts[6];

                for (size_t i = 0; i < 6; i++) {
                        pts[i].bucket = (int64_t)i * DAY;
                        pts[i].actual = 100.0;
                        pts[i].prediction = 100.0 + (i % 2 ? -err[m] : err[m]);
                }
                chorus_score_stats(pts, 6, &st[m]);
        }
        assert_exact(st[0].mape, 50.0);
        assert_exact(st[0].mse, 2500.0);

        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
                chorus_weight_params_t p = wparams(methods[k], 5);
                double w[3];

                cr_assert_eq(chorus_weights_compute(&p, st, 3, w), CHORUS_FALLBACK_NONE);
                cr_assert(w[0] < w[1] && w[0] < w[2], "method %d: poor %g, good %g, fair %g",
                          (int)methods[k], w[0], w[1], w[2]);
                cr_assert(w[1] > w[2], "method %d: good must beat fair", (int)methods[k]);
        }
}

Test(weights, combine_is_the_weighted_sum) {
        /* 0.25·100 + 0.5·104 + 0.25·(−8) = 25 + 52 − 2 = 75 (exact). */
        const double w[] = {0.25, 0.5, 0.25};
        const double p[] = {100.0, 104.0, -8.0};

        assert_exact(chorus_weights_combine(w, p, 3), 75.0);
        assert_exact(chorus_weights_combine(w, p, 0), 0.0);
}

/* ------------------------------------------------------------------ */
/* Validation: level reference (§5.2)                                  */
/* ------------------------------------------------------------------ */

/* Values 8, 8, 10, 12, 12: μ = 50/5 = 10; deviations −2, −2, 0, 2, 2;
 * Σd² = 16; σ = √(16/4) = 2. All exact. */
static const chorus_actual_point_t level_window[] = {
    {1 * DAY, 8.0}, {2 * DAY, 8.0}, {3 * DAY, 10.0}, {4 * DAY, 12.0}, {5 * DAY, 12.0}};

/* Prices can be negative: the mirror image, μ = −10, σ = 2. */
static const chorus_actual_point_t level_window_neg[] = {
    {1 * DAY, -8.0}, {2 * DAY, -8.0}, {3 * DAY, -10.0}, {4 * DAY, -12.0}, {5 * DAY, -12.0}};

Test(guard_level, z_with_known_mean_and_sigma) {
        /* z = (13 − 10)/2 = 1.5: inside, value untouched. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 13.0, 6 * DAY, level_window, 5, &r);
        cr_assert(r.has_z);
        assert_exact(r.z, 1.5);
        assert_exact(r.value, 13.0);
        cr_assert_not(r.z_adjusted);
        cr_assert_not(r.clipped);
}

Test(guard_level, shrink_once_above_threshold) {
        /* z = (16.5 − 10)/2 = 3.25 > 3 → 10 + 0.5·6.5 = 13.25. The reported z is
         * the raw one (3.25), not that of 13.25 (1.625): shrunk once, not looped. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 16.5, 6 * DAY, level_window, 5, &r);
        cr_assert(r.has_z);
        assert_exact(r.z, 3.25);
        assert_exact(r.value, 13.25);
        cr_assert(r.z_adjusted);

        /* Below: z = (3 − 10)/2 = −3.5 → 10 + 0.5·(−7) = 6.5. */
        chorus_guard_apply(&p, 3.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.z, -3.5);
        assert_exact(r.value, 6.5);
        cr_assert(r.z_adjusted);
}

Test(guard_level, exactly_z_max_does_not_shrink) {
        /* z = (16 − 10)/2 = 3.0 exactly and (4 − 10)/2 = −3.0: |z| > 3 is false. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 16.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.z, 3.0);
        assert_exact(r.value, 16.0);
        cr_assert_not(r.z_adjusted);

        chorus_guard_apply(&p, 4.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.z, -3.0);
        assert_exact(r.value, 4.0);
        cr_assert_not(r.z_adjusted);
}

Test(guard_level, negative_prices) {
        /* z = (−16.5 − (−10))/2 = −3.25 → −10 + 0.5·(−6.5) = −13.25. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, -16.5, 6 * DAY, level_window_neg, 5, &r);
        assert_exact(r.z, -3.25);
        assert_exact(r.value, -13.25);
        cr_assert(r.z_adjusted);
}

Test(guard_level, shrink_one_leaves_the_value_bit_identical) {
        /* z = (0.3 − 10)/2 = −4.85. With shrink 1 the formula would give
         * 10 + (0.3 − 10) = 0.3000000000000007, not 0.3: shrink 1 means off. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        p.shrink = 1.0;
        chorus_guard_apply(&p, 0.3, 6 * DAY, level_window, 5, &r);
        cr_assert(r.has_z);
        assert_rel(r.z, -4.85);
        assert_exact(r.value, 0.3);
        cr_assert_not(r.z_adjusted);
}

Test(guard_level, shrink_zero_snaps_to_the_reference) {
        /* z = (20 − 10)/2 = 5 → 10 + 0·10 = 10 = μ. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        p.shrink = 0.0;
        chorus_guard_apply(&p, 20.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.value, 10.0);
        cr_assert(r.z_adjusted);
}

Test(guard_level, fewer_than_min_samples_gives_no_z) {
        /* 5 actuals, min_samples 6: no z and no shrink, even for an absurd raw. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 6);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 1000.0, 6 * DAY, level_window, 5, &r);
        cr_assert_not(r.has_z);
        cr_assert_not(r.z_adjusted);
        assert_exact(r.value, 1000.0);
}

Test(guard_level, zero_sigma_gives_no_z) {
        chorus_actual_point_t flat[10];
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 10);
        chorus_guard_result_t r;

        for (int i = 0; i < 10; i++)
                flat[i] = (chorus_actual_point_t){i * DAY, 7.0};
        chorus_guard_apply(&p, 1000.0, 10 * DAY, flat, 10, &r);
        cr_assert_not(r.has_z);
        cr_assert_not(r.z_adjusted);
        assert_exact(r.value, 1000.0);
}

Test(guard_level, empty_window) {
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 0);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 5.0, 0, NULL, 0, &r);
        cr_assert_not(r.has_z);
        assert_exact(r.value, 5.0);
}

/* ------------------------------------------------------------------ */
/* Validation: change reference (§5.2)                                 */
/* ------------------------------------------------------------------ */

/* Values 100, 98, 96, 96, 98, 100 daily: diffs −2, −2, 0, 2, 2; mean 0;
 * Σd² = 16; σΔ = √(16/(5−1)) = 2. last = 100 at day 5; spacing 1 day. */
static const chorus_actual_point_t change_window[] = {{0 * DAY, 100.0}, {1 * DAY, 98.0},
                                                      {2 * DAY, 96.0},  {3 * DAY, 96.0},
                                                      {4 * DAY, 98.0},  {5 * DAY, 100.0}};

Test(guard_change, z_with_k_spacings_ahead) {
        /* Target day 9: k = round(4 days/1 day) = 4, √k = 2.
         * z = (106 − 100)/(2·2) = 1.5. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 6);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 106.0, 9 * DAY, change_window, 6, &r);
        cr_assert(r.has_z);
        assert_exact(r.z, 1.5);
        assert_exact(r.value, 106.0);
        cr_assert_not(r.z_adjusted);
}

Test(guard_change, shrink_toward_last_actual) {
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 6);
        chorus_guard_result_t r;

        /* z = (113 − 100)/4 = 3.25 → 100 + 0.5·13 = 106.5. */
        chorus_guard_apply(&p, 113.0, 9 * DAY, change_window, 6, &r);
        assert_exact(r.z, 3.25);
        assert_exact(r.value, 106.5);
        cr_assert(r.z_adjusted);

        /* z = (112 − 100)/4 = 3.0 exactly: no shrink. */
        chorus_guard_apply(&p, 112.0, 9 * DAY, change_window, 6, &r);
        assert_exact(r.z, 3.0);
        assert_exact(r.value, 112.0);
        cr_assert_not(r.z_adjusted);

        /* z = (86 − 100)/4 = −3.5 → 100 + 0.5·(−14) = 93. */
        chorus_guard_apply(&p, 86.0, 9 * DAY, change_window, 6, &r);
        assert_exact(r.z, -3.5);
        assert_exact(r.value, 93.0);
        cr_assert(r.z_adjusted);
}

Test(guard_change, negative_prices) {
        /* Mirror image: diffs 2, 2, 0, −2, −2, σΔ = 2; last −100; k = 4.
         * z = (−113 + 100)/4 = −3.25 → −100 + 0.5·(−13) = −106.5. */
        chorus_actual_point_t a[6];
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 6);
        chorus_guard_result_t r;

        for (int i = 0; i < 6; i++)
                a[i] = (chorus_actual_point_t){change_window[i].bucket, -change_window[i].value};
        chorus_guard_apply(&p, -113.0, 9 * DAY, a, 6, &r);
        assert_exact(r.z, -3.25);
        assert_exact(r.value, -106.5);
        cr_assert(r.z_adjusted);
}

Test(guard_change, k_rounds_half_away_from_zero) {
        /* Same values, buckets 0, 2, …, 10 (spacing 2); last at 10; raw 110.
         *  target 15: 5/2 = 2.5 → k = 3 (half-even would give 2):
         *     z = 10/(2·√3) = 2.886751345948129 < 3 → not shrunk.
         *  target 13: 3/2 = 1.5 → k = 2: z = 10/(2·√2) = 3.5355339059327373
         *     → shrunk to 100 + 0.5·10 = 105.
         *  target 11: 0.5 → k = 1; target 10: 0 → max(1, 0) = 1; target 4
         *     (before the last actual): −3 → 1. z = 10/2 = 5. */
        chorus_actual_point_t a[6];
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 6);
        chorus_guard_result_t r;

        for (int i = 0; i < 6; i++)
                a[i] = (chorus_actual_point_t){2 * i, change_window[i].value};

        chorus_guard_apply(&p, 110.0, 15, a, 6, &r);
        assert_rel(r.z, 2.886751345948129);
        cr_assert_not(r.z_adjusted);
        assert_exact(r.value, 110.0);

        chorus_guard_apply(&p, 110.0, 13, a, 6, &r);
        assert_rel(r.z, 3.5355339059327373);
        cr_assert(r.z_adjusted);
        assert_exact(r.value, 105.0);

        chorus_guard_apply(&p, 110.0, 11, a, 6, &r);
        assert_exact(r.z, 5.0);
        chorus_guard_apply(&p, 110.0, 10, a, 6, &r);
        assert_exact(r.z, 5.0);
        chorus_guard_apply(&p, 110.0, 4, a, 6, &r);
        assert_exact(r.z, 5.0);
}

Test(guard_change, median_spacing_with_even_count) {
        /* Buckets 0, 3, 4, 9, 10: spacings 3, 1, 5, 1 (four, unsorted) → sorted
         * 1, 1, 3, 5 → median (1 + 3)/2 = 2.
         * Values 10, 13, 12, 11, 10: diffs 3, −1, −1, −1; mean 0; Σd² = 12;
         * σΔ = √(12/3) = 2. last = 10 at 10; target 16: 6/2 = 3 → k = 3.
         * raw 16: z = 6/(2·√3) = √3 = 1.7320508075688772.
         * (lower middle 1 → k = 6, z = 1.2247; upper middle 3 or mean spacing
         *  2.5 → k = 2, z = 2.1213.) */
        const chorus_actual_point_t a[] = {{0, 10.0}, {3, 13.0}, {4, 12.0}, {9, 11.0}, {10, 10.0}};
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 5);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 16.0, 16, a, 5, &r);
        cr_assert(r.has_z);
        assert_rel(r.z, 1.7320508075688772);
}

Test(guard_change, fewer_than_min_samples_gives_no_z) {
        /* 6 actuals, min_samples 10 (the default). */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 10);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 1000.0, 9 * DAY, change_window, 6, &r);
        cr_assert_not(r.has_z);
        cr_assert_not(r.z_adjusted);
        assert_exact(r.value, 1000.0);
}

Test(guard_change, steady_trend_has_zero_sigma) {
        /* Values 1, 2, …, 10: every diff is 1, σΔ = 0 → no z under `change`
         * (while `level` sees σ = √(82.5/9) = 3.0276503540974917 and a z). */
        chorus_actual_point_t a[10];
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 10);
        chorus_guard_result_t r;

        for (int i = 0; i < 10; i++)
                a[i] = (chorus_actual_point_t){i * DAY, (double)(i + 1)};
        chorus_guard_apply(&p, 1000.0, 10 * DAY, a, 10, &r);
        cr_assert_not(r.has_z);
        assert_exact(r.value, 1000.0);

        p.z_reference = CHORUS_ZREF_LEVEL;
        chorus_guard_apply(&p, 1000.0, 10 * DAY, a, 10, &r);
        cr_assert(r.has_z);
        assert_rel(r.z, (1000.0 - 5.5) / 3.0276503540974917);
}

Test(guard_change, two_actuals_have_no_spread) {
        /* One difference has no sample deviation. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 2);
        chorus_guard_result_t r;

        chorus_guard_apply(&p, 1000.0, 9 * DAY, change_window, 2, &r);
        cr_assert_not(r.has_z);
}

/* ------------------------------------------------------------------ */
/* Clipping (§5.2)                                                     */
/* ------------------------------------------------------------------ */

/* No window: clipping alone. */
static chorus_guard_result_t clip(int has_min, double min, int has_max, double max, double raw) {
        chorus_guard_params_t p = gparams(CHORUS_ZREF_CHANGE, 10);
        chorus_guard_result_t r;

        p.has_min = has_min;
        p.min = min;
        p.has_max = has_max;
        p.max = max;
        chorus_guard_apply(&p, raw, 0, NULL, 0, &r);
        cr_assert_not(r.has_z);
        return r;
}

Test(guard_clip, min_only) {
        chorus_guard_result_t r = clip(1, 20.0, 0, 0.0, 15.0);

        assert_exact(r.value, 20.0);
        cr_assert(r.clipped);
        r = clip(1, 20.0, 0, 0.0, 1e9); /* no max: anything above passes */
        assert_exact(r.value, 1e9);
        cr_assert_not(r.clipped);
}

Test(guard_clip, max_only) {
        chorus_guard_result_t r = clip(0, 0.0, 1, 120.0, 130.0);

        assert_exact(r.value, 120.0);
        cr_assert(r.clipped);
        r = clip(0, 0.0, 1, 120.0, -1e9); /* no min: negatives pass */
        assert_exact(r.value, -1e9);
        cr_assert_not(r.clipped);
}

Test(guard_clip, both_bounds) {
        chorus_guard_result_t r = clip(1, 20.0, 1, 120.0, 10.0);

        assert_exact(r.value, 20.0);
        cr_assert(r.clipped);
        r = clip(1, 20.0, 1, 120.0, 200.0);
        assert_exact(r.value, 120.0);
        cr_assert(r.clipped);
}

Test(guard_clip, inside_or_on_a_bound_is_not_clipped) {
        chorus_guard_result_t r = clip(1, 20.0, 1, 120.0, 50.0);

        assert_exact(r.value, 50.0);
        cr_assert_not(r.clipped);
        r = clip(1, 20.0, 1, 120.0, 20.0);
        assert_exact(r.value, 20.0);
        cr_assert_not(r.clipped);
        r = clip(1, 20.0, 1, 120.0, 120.0);
        assert_exact(r.value, 120.0);
        cr_assert_not(r.clipped);
}

Test(guard_clip, negative_bounds) {
        chorus_guard_result_t r = clip(1, -50.0, 1, -10.0, -60.0);

        assert_exact(r.value, -50.0);
        cr_assert(r.clipped);
        r = clip(1, -50.0, 1, -10.0, -5.0);
        assert_exact(r.value, -10.0);
        cr_assert(r.clipped);
}

Test(guard_clip, inverted_bounds_max_wins_and_unchanged_is_not_clipped) {
        /* min 10 > max 5 (the config rejects it; the guard must still be sane):
         * 7 → max(…, 10) = 10 → min(…, 5) = 5. And 5 → 10 → 5: back where it
         * started, so not clipped. */
        chorus_guard_result_t r = clip(1, 10.0, 1, 5.0, 7.0);

        assert_exact(r.value, 5.0);
        cr_assert(r.clipped);
        r = clip(1, 10.0, 1, 5.0, 5.0);
        assert_exact(r.value, 5.0);
        cr_assert_not(r.clipped);
}

Test(guard_clip, after_the_shrink) {
        /* Level window μ = 10, σ = 2; raw 30: z = 10 → 10 + 0.5·20 = 20, then
         * max 15 → 15. Both flags set; z is still the raw one. */
        chorus_guard_params_t p = gparams(CHORUS_ZREF_LEVEL, 5);
        chorus_guard_result_t r;

        p.has_max = 1;
        p.max = 15.0;
        chorus_guard_apply(&p, 30.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.z, 10.0);
        cr_assert(r.z_adjusted);
        assert_exact(r.value, 15.0);
        cr_assert(r.clipped);

        /* The shrink alone brings 22 (z = 6 → 16) … to 16 ≤ 17: not clipped. */
        p.max = 17.0;
        chorus_guard_apply(&p, 22.0, 6 * DAY, level_window, 5, &r);
        assert_exact(r.value, 16.0);
        cr_assert(r.z_adjusted);
        cr_assert_not(r.clipped);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */
/* ------------------------------------------------------------------ */

Test(stat, stddev_sample) {
        /* 2, 4, 4, 4, 5, 5, 7, 9: μ = 40/8 = 5; Σd² = 9+1+1+1+0+0+4+16 = 32;
         * s = √(32/7) = 2.138089935299395 (n − 1, not the population 2). */
        const double x[] = {2, 4, 4, 4, 5, 5, 7, 9};

        assert_rel(chorus_stat_stddev(x, 8), 2.138089935299395);
}

Test(stat, stddev_is_two_pass) {
        /* 1e9 + {4, 7, 13, 16}: μ = 1e9 + 10; d = −6, −3, 3, 6; Σd² = 90;
         * s = √30 = 5.477225575051661. One-pass Σx² − nμ² would lose it
         * (x² ≈ 1e18, beyond 2^53). */
        const double x[] = {1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16};

        assert_rel(chorus_stat_stddev(x, 4), 5.477225575051661);
}

Test(stat, stddev_needs_two_points) {
        const double x[] = {42.0};

        assert_exact(chorus_stat_stddev(x, 1), 0.0);
        assert_exact(chorus_stat_stddev(NULL, 0), 0.0);
}

Test(stat, median_odd_and_even) {
        const double odd[] = {5.0, 1.0, 3.0};
        const double even[] = {4.0, 1.0, 3.0, 2.0};
        const double neg[] = {-7.0, 2.0, -1.0, -1.0};

        assert_exact(chorus_stat_median(odd, 3), 3.0);
        assert_exact(chorus_stat_median(even, 4), 2.5); /* (2 + 3)/2 */
        assert_exact(chorus_stat_median(neg, 4), -1.0); /* sorted −7, −1, −1, 2 */
        assert_exact(chorus_stat_median(NULL, 0), 0.0);
}

Test(stat, median_leaves_its_input_alone) {
        double x[] = {9.0, -3.0, 5.0, 1.0};

        assert_exact(chorus_stat_median(x, 4), 3.0); /* (1 + 5)/2 */
        assert_exact(x[0], 9.0);
        assert_exact(x[1], -3.0);
        assert_exact(x[2], 5.0);
        assert_exact(x[3], 1.0);
}

Test(stat, median_of_huge_values_does_not_overflow) {
        /* (DBL_MAX + DBL_MAX)/2 would be Inf; the midpoint is DBL_MAX. */
        const double x[] = {DBL_MAX, DBL_MAX};

        assert_exact(chorus_stat_median(x, 2), DBL_MAX);
}

static double array_at(const void *ctx, size_t i) {
        return ((const double *)ctx)[i];
}

Test(stat, median_without_allocation_matches_sorting) {
        /* The out-of-memory path must give the very same answer, duplicates,
         * signed zeros and NaN included (NaN sorts last). */
        const double sets[][6] = {{3, 1, 2, 2, 5, 4},
                                  {-1, -1, -1, 7, 7, 0},
                                  {0.0, -0.0, 1, -1, 0.5, -0.5},
                                  {NAN, 1, 2, 3, NAN, 0},
                                  {1e300, -1e300, 1e-300, 0, 5, 5}};

        for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++)
                for (size_t n = 0; n <= 6; n++) {
                        double a = chorus_stat_median_select_at(array_at, sets[s], n);
                        double b = chorus_stat_median(sets[s], n);

                        cr_assert(memcmp(&a, &b, sizeof(a)) == 0 || (isnan(a) && isnan(b)),
                                  "set %zu n %zu: select %g, sort %g", s, n, a, b);
                }
        /* And by hand: 3, 1, 2, 2, 5, 4 → 1, 2, 2, 3, 4, 5 → (2 + 3)/2 = 2.5. */
        assert_exact(chorus_stat_median_select_at(array_at, sets[0], 6), 2.5);
}

/* ------------------------------------------------------------------ */
/* Fallback names                                                      */
/* ------------------------------------------------------------------ */

Test(fallback, names_are_the_wire_strings) {
        cr_assert_null(chorus_fallback_name(CHORUS_FALLBACK_NONE));
        cr_assert_str_eq(chorus_fallback_name(CHORUS_FALLBACK_COLD_START), "cold_start");
        cr_assert_str_eq(chorus_fallback_name(CHORUS_FALLBACK_OVERFITTING), "overfitting");
        cr_assert_str_eq(chorus_fallback_name(CHORUS_FALLBACK_ROLLBACK), "rollback");
}
