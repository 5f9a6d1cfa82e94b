/*
 * Exact summation of doubles (Shewchuk's msum with CPython math.fsum's
 * correctly rounded final step), the C twin of the Lua in
 * src/state/lua/. The tests recompute windows with it and expect the
 * state functions' replies bit for bit.
 *
 * Invariants:
 *  - The partials are non-zero, non-overlapping and in increasing magnitude;
 *    their exact sum is the exact sum of everything added.
 *  - chorus_xsum_round() depends only on that exact value (round to nearest,
 *    ties to even), never on how the partials happen to be split, so a sum
 *    built in any order, with any additions and removals, rounds the same.
 *  - Products are exact two-products (fma), so squares and the centred
 *    second moment lose nothing before their single final rounding; they
 *    are taken of canonical components, so even a product that underflows
 *    (and is then inexact) gives the same bits for the same exact sums.
 */
#include <math.h>
#include <string.h>

#include "chorus/ensemble.h"
#include "ensemble_int.h"

void chorus_xsum_init(chorus_xsum_t *s) {
        s->n = 0;
}

void chorus_xsum_add(chorus_xsum_t *s, double x) {
        size_t i = 0;

        for (size_t j = 0; j < s->n; j++) {
                double y = s->p[j], hi, lo;

                if (fabs(x) < fabs(y)) {
                        double t = x;
                        x = y;
                        y = t;
                }
                hi = x + y;
                lo = y - (hi - x);
                if (lo != 0.0)
                        s->p[i++] = lo;
                x = hi;
        }
        /* i <= old n < CHORUS_XSUM_CAP while the partials stay non-overlapping
         * doubles (at most one per bit position of the range). */
        if (x != 0.0 && i < CHORUS_XSUM_CAP)
                s->p[i++] = x;
        s->n = i;
}

void chorus_xsum_add_square(chorus_xsum_t *s, double x, int sign) {
        double h = x * x, l = fma(x, x, -h);

        chorus_xsum_add(s, sign < 0 ? -h : h);
        if (l != 0.0)
                chorus_xsum_add(s, sign < 0 ? -l : l);
}

double chorus_xsum_round(const chorus_xsum_t *s) {
        size_t n = s->n;
        double hi = 0.0, lo = 0.0;

        if (n == 0)
                return 0.0;
        hi = s->p[--n];
        while (n > 0) {
                double x = hi, y = s->p[--n];

                hi = x + y;
                lo = y - (hi - x);
                if (lo != 0.0)
                        break;
        }
        /* Half-way between two doubles when the partials below say so:
         * round away from the partial's sign only if that is exact. */
        if (n > 0 && ((lo < 0.0 && s->p[n - 1] < 0.0) || (lo > 0.0 && s->p[n - 1] > 0.0))) {
                double y = lo * 2.0, x = hi + y;

                if (y == x - hi)
                        hi = x;
        }
        return hi;
}

size_t chorus_xsum_canon(const chorus_xsum_t *s, double *out, size_t cap) {
        static _Thread_local chorus_xsum_t q;
        size_t k = 0;

        q = *s;
        while (q.n > 0 && k < cap) {
                double r = chorus_xsum_round(&q);

                out[k++] = r;
                chorus_xsum_add(&q, -r);
        }
        return k;
}

double chorus_css_exact(size_t n, const double *c1, size_t k1, const double *c2, size_t k2) {
        static _Thread_local chorus_xsum_t q;
        double dn = (double)n;

        chorus_xsum_init(&q);
        for (size_t i = 0; i < k2; i++) {
                double h = dn * c2[i];

                chorus_xsum_add(&q, h);
                chorus_xsum_add(&q, fma(dn, c2[i], -h));
        }
        for (size_t i = 0; i < k1; i++)
                for (size_t j = 0; j < k1; j++) {
                        double h = c1[i] * c1[j];

                        chorus_xsum_add(&q, -h);
                        chorus_xsum_add(&q, -fma(c1[i], c1[j], -h));
                }
        return chorus_xsum_round(&q);
}

double chorus_xsum_centered(size_t n, const chorus_xsum_t *s1, const chorus_xsum_t *s2) {
        double c1[CHORUS_XSUM_COMPONENTS], c2[CHORUS_XSUM_COMPONENTS];
        size_t k1 = chorus_xsum_canon(s1, c1, CHORUS_XSUM_COMPONENTS);
        size_t k2 = chorus_xsum_canon(s2, c2, CHORUS_XSUM_COMPONENTS);

        return chorus_css_exact(n, c1, k1, c2, k2);
}
