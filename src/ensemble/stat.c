/*
 * Descriptive statistics for the ensemble math: mean, sample standard
 * deviation and median.
 *
 * Invariants:
 *  - Every sum runs in index order, so one input gives the same bits on every
 *    run and every worker (callers pass data sorted by bucket).
 *  - The standard deviation is two-pass (mean first, then the squared
 *    deviations): prices sit far from zero, and the one-pass formula
 *    Σx² - n·μ² cancels catastrophically there.
 *  - The median never fails. Sorting a copy is the normal path; when the copy
 *    cannot be allocated, an O(n²) selection over the const input gives the
 *    same answer, because both paths use the one total order below.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

/* ------------------------------------------------------------------ */
/* Ordering                                                            */
/* ------------------------------------------------------------------ */

/*
 * A total order on doubles: -0 before +0, NaN after everything. qsort needs a
 * consistent comparator (an inconsistent one is undefined behaviour), and the
 * selection fallback must pick exactly what the sort would.
 */
static int stat_cmp(double a, double b) {
        int na = isnan(a) != 0, nb = isnan(b) != 0;

        if (na || nb)
                return na - nb;
        if (a < b)
                return -1;
        if (a > b)
                return 1;
        return (signbit(b) != 0) - (signbit(a) != 0);
}

static int stat_qsort_cmp(const void *a, const void *b) {
        return stat_cmp(*(const double *)a, *(const double *)b);
}

/* The k-th smallest (0-based) under stat_cmp, with no allocation. */
static double stat_select_kth(chorus_stat_at_fn at, const void *ctx, size_t n, size_t k) {
        for (size_t i = 0; i < n; i++) {
                double xi = at(ctx, i);
                size_t less = 0, equal = 0;

                for (size_t j = 0; j < n; j++) {
                        int c = stat_cmp(at(ctx, j), xi);

                        if (c < 0)
                                less++;
                        else if (c == 0)
                                equal++;
                }
                if (less <= k && k < less + equal)
                        return xi;
        }
        return NAN; /* unreachable: a total order always has a k-th element */
}

/* Mean of the two middle values; halves first only if the sum overflows. */
static double stat_midpoint(double lo, double hi) {
        double m = (lo + hi) / 2.0;

        if (isinf(m) && isfinite(lo) && isfinite(hi))
                m = lo / 2.0 + hi / 2.0;
        return m;
}

/* ------------------------------------------------------------------ */
/* Accessor forms                                                      */
/* ------------------------------------------------------------------ */

double chorus_stat_mean_at(chorus_stat_at_fn at, const void *ctx, size_t n) {
        double sum = 0.0;

        if (n == 0)
                return 0.0;
        for (size_t i = 0; i < n; i++)
                sum += at(ctx, i);
        return sum / (double)n;
}

double chorus_stat_stddev_at(chorus_stat_at_fn at, const void *ctx, size_t n) {
        double mean, ss = 0.0;

        if (n < 2)
                return 0.0;
        mean = chorus_stat_mean_at(at, ctx, n);
        for (size_t i = 0; i < n; i++) {
                double d = at(ctx, i) - mean;

                ss += d * d;
        }
        return sqrt(ss / (double)(n - 1));
}

double chorus_stat_median_select_at(chorus_stat_at_fn at, const void *ctx, size_t n) {
        double lo;

        if (n == 0)
                return 0.0;
        lo = stat_select_kth(at, ctx, n, (n - 1) / 2);
        if (n % 2)
                return lo;
        return stat_midpoint(lo, stat_select_kth(at, ctx, n, n / 2));
}

double chorus_stat_median_at(chorus_stat_at_fn at, const void *ctx, size_t n) {
        double *buf, lo, hi;

        if (n == 0)
                return 0.0;
        buf = n <= SIZE_MAX / sizeof(*buf) ? malloc(n * sizeof(*buf)) : NULL;
        if (!buf)
                return chorus_stat_median_select_at(at, ctx, n);
        for (size_t i = 0; i < n; i++)
                buf[i] = at(ctx, i);
        qsort(buf, n, sizeof(*buf), stat_qsort_cmp);
        lo = buf[(n - 1) / 2];
        hi = buf[n / 2];
        free(buf);
        return n % 2 ? lo : stat_midpoint(lo, hi);
}

/* ------------------------------------------------------------------ */
/* Array forms (public)                                                */
/* ------------------------------------------------------------------ */

static double stat_array_at(const void *ctx, size_t i) {
        return ((const double *)ctx)[i];
}

double chorus_stat_stddev(const double *x, size_t n) {
        return chorus_stat_stddev_at(stat_array_at, x, n);
}

double chorus_stat_median(const double *x, size_t n) {
        return chorus_stat_median_at(stat_array_at, x, n);
}
