/*
 * Deterministic workload (see workload.h). Values come from a counter-based
 * generator (splitmix64 of a hash of the coordinates), so any sub-range can
 * be produced on its own and still be byte-identical to a full run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

/* Relative noise and bias of each model's prediction of the next bucket. */
static const struct {
        const char *name;
        double noise, bias;
} wl_models[WL_MAX_MODELS] = {
    {"arima", 0.004, 0.0}, {"gb", 0.008, 0.0},   {"lstm", 0.012, 0.002}, {"naive", 0.030, 0.020},
    {"m4", 0.006, -0.001}, {"m5", 0.010, 0.001}, {"m6", 0.015, 0.0},     {"m7", 0.020, 0.004},
};

#define DAY_MS 86400000.0

static uint64_t mix(uint64_t z) {
        z += UINT64_C(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

/* A standard normal deviate that depends only on its coordinates. */
static double gauss_at(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
        uint64_t h = mix(seed ^ mix(a ^ mix(b ^ mix(c))));
        double u1 = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(mix(h) >> 11) + 0.5) / 9007199254740992.0;
        return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int wl_init(wl_t *wl, const char *prefix, int n_series, int n_models, int64_t resolution_ms,
            int64_t t0_ms, uint64_t seed, int64_t n_buckets) {
        double vol;

        memset(wl, 0, sizeof(*wl));
        snprintf(wl->prefix, sizeof(wl->prefix), "%s", prefix);
        snprintf(wl->horizon, sizeof(wl->horizon), "1D");
        wl->n_series = n_series;
        wl->n_models = n_models > WL_MAX_MODELS ? WL_MAX_MODELS : n_models;
        wl->resolution_ms = resolution_ms;
        wl->t0_ms = t0_ms;
        wl->seed = seed;
        wl->n_buckets = n_buckets;
        wl->price = malloc(sizeof(double) * (size_t)n_series * (size_t)n_buckets);
        if (!wl->price)
                return -1;
        /* 1.5 % daily volatility, scaled to the resolution. */
        vol = 0.015 * sqrt((double)resolution_ms / DAY_MS);
        for (int s = 0; s < n_series; s++) {
                double *p = wl->price + (size_t)s * (size_t)n_buckets;
                double level = 20.0 + (double)(mix(seed ^ (uint64_t)s) % 50000) / 100.0;
                for (int64_t k = 0; k < n_buckets; k++) {
                        level *= exp(vol * gauss_at(seed, 1, (uint64_t)s, (uint64_t)k));
                        p[k] = level;
                }
        }
        return 0;
}

void wl_destroy(wl_t *wl) {
        free(wl->price);
        wl->price = NULL;
}

const char *wl_model_name(int m) {
        return wl_models[m].name;
}

void wl_series_name(const wl_t *wl, int s, char *buf, size_t size) {
        snprintf(buf, size, "%s%04d", wl->prefix, s);
}

static double price_at(const wl_t *wl, int s, int64_t k) {
        if (k < 0)
                k = 0;
        if (k >= wl->n_buckets)
                k = wl->n_buckets - 1;
        return wl->price[(size_t)s * (size_t)wl->n_buckets + (size_t)k];
}

void wl_actual_fields(const wl_t *wl, int s, int64_t k, wl_fields_t *out) {
        memset(out, 0, sizeof(*out));
        out->observed_at = wl->t0_ms + k * wl->resolution_ms + wl->resolution_ms / 24 * 21;
        out->value = price_at(wl, s, k);
}

void wl_prediction_fields(const wl_t *wl, int s, int m, int64_t k, wl_fields_t *out) {
        memset(out, 0, sizeof(*out));
        out->issued_at = wl->t0_ms + (k - 1) * wl->resolution_ms + wl->resolution_ms / 24 * 22;
        out->target_time = wl->t0_ms + k * wl->resolution_ms + wl->resolution_ms / 2;
        out->value = price_at(wl, s, k) * (1.0 + wl_models[m].bias +
                                           wl_models[m].noise * gauss_at(wl->seed, 2 + (uint64_t)m,
                                                                         (uint64_t)s, (uint64_t)k));
}

/* ------------------------------------------------------------------ */
/* Avro binary, by hand                                                */
/* ------------------------------------------------------------------ */

static size_t put_long(unsigned char *p, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        size_t n = 0;
        while (z & ~UINT64_C(0x7f)) {
                p[n++] = (unsigned char)((z & 0x7f) | 0x80);
                z >>= 7;
        }
        p[n++] = (unsigned char)z;
        return n;
}

static size_t put_string(unsigned char *p, const char *s) {
        size_t len = strlen(s), n = put_long(p, (int64_t)len);
        memcpy(p + n, s, len);
        return n + len;
}

static size_t put_double(unsigned char *p, double d) {
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++)
                p[i] = (unsigned char)(u >> (8 * i)); /* little-endian */
        return 8;
}

static size_t put_frame(unsigned char *p, uint32_t schema_id) {
        p[0] = 0;
        p[1] = (unsigned char)(schema_id >> 24);
        p[2] = (unsigned char)(schema_id >> 16);
        p[3] = (unsigned char)(schema_id >> 8);
        p[4] = (unsigned char)schema_id;
        return 5;
}

void wl_actual(const wl_t *wl, int s, int64_t k, wl_rec_t *out) {
        wl_fields_t f;
        char series[40];
        unsigned char *p = out->value;
        size_t n = 0;

        wl_actual_fields(wl, s, k, &f);
        wl_series_name(wl, s, series, sizeof(series));
        out->is_prediction = 0;
        out->series = s;
        out->model = -1;
        out->bucket = k;
        out->key_len = (size_t)snprintf(out->key, sizeof(out->key), "%s", series);
        n += put_frame(p + n, WL_SCHEMA_ACTUAL);
        n += put_string(p + n, series);      /* series */
        n += put_long(p + n, f.observed_at); /* observed_at */
        n += put_double(p + n, f.value);     /* value */
        n += put_long(p + n, 0);             /* source: null */
        out->value_len = n;
}

void wl_prediction(const wl_t *wl, int s, int m, int64_t k, wl_rec_t *out) {
        wl_fields_t f;
        char series[40];
        unsigned char *p = out->value;
        size_t n = 0;

        wl_prediction_fields(wl, s, m, k, &f);
        wl_series_name(wl, s, series, sizeof(series));
        out->is_prediction = 1;
        out->series = s;
        out->model = m;
        out->bucket = k;
        out->key_len = (size_t)snprintf(out->key, sizeof(out->key), "%s", series);
        n += put_frame(p + n, WL_SCHEMA_PREDICTION);
        n += put_string(p + n, wl_models[m].name); /* model_id */
        n += put_long(p + n, 0);                   /* model_version: null */
        n += put_string(p + n, series);            /* series */
        n += put_string(p + n, wl->horizon);       /* horizon */
        n += put_long(p + n, f.issued_at);
        n += put_long(p + n, f.target_time);
        n += put_double(p + n, f.value);
        if (m == 0) { /* the best model publishes an interval */
                n += put_long(p + n, 1);
                n += put_double(p + n, f.value * 0.98);
                n += put_long(p + n, 1);
                n += put_double(p + n, f.value * 1.02);
        } else {
                n += put_long(p + n, 0); /* lower: null */
                n += put_long(p + n, 0); /* upper: null */
        }
        out->value_len = n;
}

/* ------------------------------------------------------------------ */
/* Orders                                                              */
/* ------------------------------------------------------------------ */

int wl_order_parse(const char *s, wl_order_t *out) {
        static const char *names[] = {"natural", "lead", "preds", "acts", "slices"};
        for (int i = 0; i < 5; i++)
                if (!strcmp(s, names[i])) {
                        *out = (wl_order_t)i;
                        return 0;
                }
        return -1;
}

size_t wl_plan_count(const wl_t *wl, wl_order_t order, int64_t from, int64_t to) {
        size_t ns = (size_t)wl->n_series, nm = (size_t)wl->n_models;
        size_t nb = to > from ? (size_t)(to - from) : 0;

        switch (order) {
        case WL_ORDER_NATURAL:
                return to >= from ? (nb + 1) * ns + nb * ns * nm : 0;
        case WL_ORDER_LEAD:
        case WL_ORDER_SLICES:
                return nb * ns * (1 + nm);
        case WL_ORDER_PREDS:
                return nb * ns * nm;
        case WL_ORDER_ACTS:
                return nb * ns;
        }
        return 0;
}

int wl_plan(const wl_t *wl, wl_order_t order, int64_t from, int64_t to,
            int (*cb)(const wl_rec_t *rec, void *opaque), void *opaque) {
        wl_rec_t r;
        int rc;

        switch (order) {
        case WL_ORDER_NATURAL:
                for (int64_t k = from; k <= to; k++) {
                        for (int s = 0; s < wl->n_series; s++) {
                                wl_actual(wl, s, k, &r);
                                if ((rc = cb(&r, opaque)))
                                        return rc;
                        }
                        if (k == to)
                                break;
                        for (int s = 0; s < wl->n_series; s++)
                                for (int m = 0; m < wl->n_models; m++) {
                                        wl_prediction(wl, s, m, k + 1, &r);
                                        if ((rc = cb(&r, opaque)))
                                                return rc;
                                }
                }
                return 0;
        case WL_ORDER_LEAD:
                for (int64_t k = from; k < to; k++)
                        for (int s = 0; s < wl->n_series; s++) {
                                wl_actual(wl, s, k, &r);
                                if ((rc = cb(&r, opaque)))
                                        return rc;
                                for (int m = 0; m < wl->n_models; m++) {
                                        wl_prediction(wl, s, m, k, &r);
                                        if ((rc = cb(&r, opaque)))
                                                return rc;
                                }
                        }
                return 0;
        case WL_ORDER_SLICES:
                for (int64_t k = from; k < to; k++) {
                        for (int s = 0; s < wl->n_series; s++) {
                                wl_actual(wl, s, k, &r);
                                if ((rc = cb(&r, opaque)))
                                        return rc;
                        }
                        for (int s = 0; s < wl->n_series; s++)
                                for (int m = 0; m < wl->n_models; m++) {
                                        wl_prediction(wl, s, m, k, &r);
                                        if ((rc = cb(&r, opaque)))
                                                return rc;
                                }
                }
                return 0;
        case WL_ORDER_PREDS:
                for (int64_t k = from; k < to; k++)
                        for (int s = 0; s < wl->n_series; s++)
                                for (int m = 0; m < wl->n_models; m++) {
                                        wl_prediction(wl, s, m, k, &r);
                                        if ((rc = cb(&r, opaque)))
                                                return rc;
                                }
                return 0;
        case WL_ORDER_ACTS:
                for (int64_t k = from; k < to; k++)
                        for (int s = 0; s < wl->n_series; s++) {
                                wl_actual(wl, s, k, &r);
                                if ((rc = cb(&r, opaque)))
                                        return rc;
                        }
                return 0;
        }
        return -1;
}

const char *wl_arg(int argc, char **argv, const char *name, const char *def) {
        for (int i = 1; i < argc - 1; i++)
                if (!strcmp(argv[i], name))
                        return argv[i + 1];
        return def;
}
