/*
 * The benchmark's deterministic workload: series following random walks,
 * actuals once per bucket and the next bucket's predictions from a few
 * models of different skill, encoded as Chorus's input records (Avro binary
 * in the Confluent framing, written by hand: the benchmark does not trust
 * the codec it measures to produce its own input).
 *
 * Every value is a pure function of (seed, series, model, bucket), so a
 * record is the same bytes whichever tool, order or range produces it.
 *
 * Time layout, for a resolution R and bucket k starting at t0 + k·R:
 *   actual of bucket k      observed_at = start(k) + 21/24·R   (21:00 for 1d)
 *   prediction for bucket k issued_at   = start(k−1) + 22/24·R (22:00 the day before)
 *                           target_time = start(k) + 12/24·R
 * so a prediction is released by Chorus (SPEC §9.2 hold) once the actual
 * of its own target bucket has been processed.
 */
#ifndef BENCH_WORKLOAD_H
#define BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WL_MAX_MODELS        8
#define WL_SCHEMA_PREDICTION 1
#define WL_SCHEMA_ACTUAL     2

typedef struct wl {
        char prefix[32]; /* series names: <prefix>NNNN */
        int n_series;
        int n_models;
        char horizon[16];
        int64_t resolution_ms;
        int64_t t0_ms; /* start of bucket 0 */
        uint64_t seed;
        int64_t n_buckets; /* prices are kept for buckets [0, n_buckets) */
        double *price;     /* [n_series][n_buckets] */
} wl_t;

/* One encoded input record. */
typedef struct wl_rec {
        int is_prediction;
        int series, model;
        int64_t bucket;
        char key[40];
        size_t key_len;
        unsigned char value[160];
        size_t value_len;
} wl_rec_t;

/* Record orders (see wl_plan). */
typedef enum wl_order {
        WL_ORDER_NATURAL =
            0,           /* per bucket k in [from,to]: actuals(k), then predictions(k+1) if k<to */
        WL_ORDER_LEAD,   /* per target k in [from,to): per series actual(k), predictions(k) */
        WL_ORDER_PREDS,  /* predictions(k) for k in [from,to) */
        WL_ORDER_ACTS,   /* actuals(k) for k in [from,to) */
        WL_ORDER_SLICES, /* per target k in [from,to): every series' actual(k), then
                            every series' predictions(k): as in live operation, the
                            day's actuals come well before the next day's predictions */
} wl_order_t;

/** @brief Prepare a workload; prices for buckets [0, n_buckets). @returns 0 or -1 (OOM). */
int wl_init(wl_t *wl, const char *prefix, int n_series, int n_models, int64_t resolution_ms,
            int64_t t0_ms, uint64_t seed, int64_t n_buckets);
void wl_destroy(wl_t *wl);

/** @returns the model name of index @p m. */
const char *wl_model_name(int m);

/** @brief The series name of index @p s into @p buf. */
void wl_series_name(const wl_t *wl, int s, char *buf, size_t size);

/** @brief Encode the actual of (@p s, bucket @p k). */
void wl_actual(const wl_t *wl, int s, int64_t k, wl_rec_t *out);

/** @brief Encode model @p m's prediction for (@p s, target bucket @p k). */
void wl_prediction(const wl_t *wl, int s, int m, int64_t k, wl_rec_t *out);

/** @brief The value after option @p name in argv, or @p def. */
const char *wl_arg(int argc, char **argv, const char *name, const char *def);

/** @brief Number of records wl_plan() emits for an order and range. */
size_t wl_plan_count(const wl_t *wl, wl_order_t order, int64_t from, int64_t to);

/**
 * @brief Emit every record of an order over a bucket range, in order,
 *        through @p cb (return non-zero to stop).
 */
int wl_plan(const wl_t *wl, wl_order_t order, int64_t from, int64_t to,
            int (*cb)(const wl_rec_t *rec, void *opaque), void *opaque);

/** @brief Parse "natural", "lead", "preds", "acts", "slices". @returns 0 or -1. */
int wl_order_parse(const char *s, wl_order_t *out);

/** @brief Plain decoded fields of a prediction/actual (for the in-process drivers). */
typedef struct wl_fields {
        int64_t issued_at, target_time, observed_at;
        double value;
} wl_fields_t;
void wl_prediction_fields(const wl_t *wl, int s, int m, int64_t k, wl_fields_t *out);
void wl_actual_fields(const wl_t *wl, int s, int64_t k, wl_fields_t *out);

#endif /* BENCH_WORKLOAD_H */
