/*
 * Private helpers of the ensemble module (src/ensemble only; the tests may
 * include it to reach the allocation-free median path).
 *
 * The statistics read their input through an accessor so that the guard can
 * feed derived series (consecutive differences, bucket spacings) without
 * building them, and so that the public array forms and the guard share one
 * implementation, hence one rounding behaviour, bit for bit.
 */
#ifndef CHORUS_ENSEMBLE_INT_H
#define CHORUS_ENSEMBLE_INT_H

#include <stddef.h>

/*
 * Bit-reproducibility also needs the compiler not to fuse a*b+c into one FMA
 * on some targets and not on others. GCC already keeps them apart under
 * -std=c11 (-ffp-contract=off in ISO mode) and does not know this pragma;
 * clang contracts within an expression by default, so switch it off there.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/** Element @p i of an input series. */
typedef double (*chorus_stat_at_fn)(const void *ctx, size_t i);

/** @brief Arithmetic mean, summed in index order. @returns 0 when n == 0. */
double chorus_stat_mean_at(chorus_stat_at_fn at, const void *ctx, size_t n);

/** @brief Sample standard deviation (n-1), two-pass. @returns 0 when n < 2. */
double chorus_stat_stddev_at(chorus_stat_at_fn at, const void *ctx, size_t n);

/** @brief Median; sorts a heap copy, or falls back to
 *         chorus_stat_median_select_at() when the copy cannot be allocated.
 *  @returns 0 when n == 0. */
double chorus_stat_median_at(chorus_stat_at_fn at, const void *ctx, size_t n);

/** @brief Median in O(n²) time without allocating: the out-of-memory path of
 *         chorus_stat_median_at(). Same total order (NaN last, -0 before +0),
 *         hence the same result as the sorting path. @returns 0 when n == 0. */
double chorus_stat_median_select_at(chorus_stat_at_fn at, const void *ctx, size_t n);

/**
 * @brief The tail of the z-guard shared by chorus_guard_apply() and
 *        chorus_guard_apply_agg(): with a z (has_z), the single shrink toward
 *        @p ref when |z| > z_max, then clipping. Writes every field of @p out.
 */
struct chorus_guard_params;
struct chorus_guard_result;
void chorus_guard_finish(const struct chorus_guard_params *params, double raw, int has_z, double z,
                         double ref, struct chorus_guard_result *out);

#endif /* CHORUS_ENSEMBLE_INT_H */
