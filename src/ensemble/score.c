/*
 * Scoring of SPEC §4: the error and APE of one (prediction, actual) pair, and
 * the window statistics of one model.
 *
 * Invariants:
 *  - A pair whose actual is zero (or -0) has no APE: it counts in MSE and in
 *    n_zero_actual, never in MAPE, so one zero price cannot make a model's
 *    MAPE infinite.
 *  - Sums run in input order (ascending bucket), so a window gives the same
 *    bits whatever order its records arrived in.
 *  - An empty set has mse = mape = 0 with zero counts; the weights treat a
 *    model with too few counts as cold, so these zeros are never used as
 *    evidence.
 */
#include <math.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

double chorus_score_error(double prediction, double actual) {
        return prediction - actual;
}

double chorus_score_ape(double prediction, double actual) {
        if (actual == 0.0)
                return NAN;
        return 100.0 * fabs(prediction - actual) / fabs(actual);
}

void chorus_score_stats(const chorus_scored_point_t *points, size_t n, chorus_model_stats_t *out) {
        double se_sum = 0.0, ape_sum = 0.0;
        size_t n_ape = 0, n_zero = 0;

        for (size_t i = 0; i < n; i++) {
                double e = chorus_score_error(points[i].prediction, points[i].actual);

                se_sum += e * e;
                if (points[i].actual == 0.0) {
                        n_zero++;
                        continue;
                }
                ape_sum += chorus_score_ape(points[i].prediction, points[i].actual);
                n_ape++;
        }
        out->n_se = n;
        out->n_ape = n_ape;
        out->n_zero_actual = n_zero;
        out->mse = n ? se_sum / (double)n : 0.0;
        out->mape = n_ape ? ape_sum / (double)n_ape : 0.0;
}
