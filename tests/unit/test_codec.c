/*
 * Unit tests of the Avro codec (src/codec): framing, round trips, every
 * malformed-input class, naming rules, schema evolution and a fixed-seed
 * random-corruption loop.
 *
 * Expected bytes are built by hand with a tiny Avro encoder below, written
 * from the Avro specification, so the codec's encoder and decoder are both
 * checked against the spec and not only against each other.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chorus/codec.h"

/* ====================================================================== */
/* Fixture and helpers                                                    */
/* ====================================================================== */

#define ID_PRED 1
#define ID_ACT  2
#define ID_IND  3

static chorus_codec_t *codec;
static char errstr[512];

static void setup(void) {
        char e[512];

        codec = chorus_codec_new(e, sizeof(e));
        cr_assert_not_null(codec, "chorus_codec_new: %s", e);
        cr_assert_eq(chorus_codec_register(codec, ID_PRED, CHORUS_RECORD_PREDICTION,
                                           chorus_record_schema_json(CHORUS_RECORD_PREDICTION), e,
                                           sizeof(e)),
                     CHORUS_OK, "%s", e);
        cr_assert_eq(chorus_codec_register(codec, ID_ACT, CHORUS_RECORD_ACTUAL,
                                           chorus_record_schema_json(CHORUS_RECORD_ACTUAL), e,
                                           sizeof(e)),
                     CHORUS_OK, "%s", e);
        cr_assert_eq(chorus_codec_register(codec, ID_IND, CHORUS_RECORD_INDICATOR,
                                           chorus_record_schema_json(CHORUS_RECORD_INDICATOR), e,
                                           sizeof(e)),
                     CHORUS_OK, "%s", e);
}

static void teardown(void) {
        chorus_codec_destroy(codec);
        codec = NULL;
}

TestSuite(codec, .init = setup, .fini = teardown);

/* A hand-written Avro binary encoder (spec: "Binary Encoding"). */
typedef struct bb {
        unsigned char b[8192];
        size_t n;
} bb_t;

static void bb_byte(bb_t *b, unsigned char c) {
        cr_assert_lt(b->n, sizeof(b->b));
        b->b[b->n++] = c;
}

static void bb_raw(bb_t *b, const void *p, size_t n) {
        cr_assert_leq(b->n + n, sizeof(b->b));
        memcpy(b->b + b->n, p, n);
        b->n += n;
}

static void bb_long(bb_t *b, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        while (z & ~UINT64_C(0x7F)) {
                bb_byte(b, (unsigned char)((z & 0x7F) | 0x80));
                z >>= 7;
        }
        bb_byte(b, (unsigned char)z);
}

static void bb_strn(bb_t *b, const char *s, size_t n) {
        bb_long(b, (int64_t)n);
        bb_raw(b, s, n);
}

static void bb_str(bb_t *b, const char *s) {
        bb_strn(b, s, strlen(s));
}

static void bb_double(bb_t *b, double d) {
        unsigned char le[8];
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int i = 0; i < 8; i++)
                le[i] = (unsigned char)(u >> (8 * i));
        bb_raw(b, le, 8);
}

static void bb_float(bb_t *b, float f) {
        unsigned char le[4];
        uint32_t u;
        memcpy(&u, &f, 4);
        for (int i = 0; i < 4; i++)
                le[i] = (unsigned char)(u >> (8 * i));
        bb_raw(b, le, 4);
}

static void bb_header(bb_t *b, int32_t id) {
        uint32_t u = (uint32_t)id;
        bb_byte(b, 0);
        bb_byte(b, (unsigned char)(u >> 24));
        bb_byte(b, (unsigned char)(u >> 16));
        bb_byte(b, (unsigned char)(u >> 8));
        bb_byte(b, (unsigned char)u);
}

#define T0 INT64_C(1700000000000)

/* A Prediction body in reader-schema order; NULL/NAN-free optionals are
 * written when the pointers are non-NULL. */
static void bb_pred(bb_t *b, const char *model, const char *version, const char *series,
                    const char *horizon, int64_t issued, int64_t target, double value,
                    const double *lower, const double *upper) {
        bb_str(b, model);
        if (version) {
                bb_long(b, 1);
                bb_str(b, version);
        } else {
                bb_long(b, 0);
        }
        bb_str(b, series);
        bb_str(b, horizon);
        bb_long(b, issued);
        bb_long(b, target);
        bb_double(b, value);
        if (lower) {
                bb_long(b, 1);
                bb_double(b, *lower);
        } else {
                bb_long(b, 0);
        }
        if (upper) {
                bb_long(b, 1);
                bb_double(b, *upper);
        } else {
                bb_long(b, 0);
        }
}

/* A framed valid Prediction with every optional field set. */
static void bb_valid_pred(bb_t *b) {
        double lo = 40.5, hi = 44.25;
        bb_header(b, ID_PRED);
        bb_pred(b, "lstm", "v4.1", "ZL", "1w", T0, T0 + 604800000, 42.125, &lo, &hi);
}

static chorus_err_t dec(chorus_record_type_t type, const bb_t *b, void *out) {
        errstr[0] = '\0';
        return chorus_codec_decode(codec, type, CHORUS_FRAMING_CONFLUENT, -1, b->b, b->n, out, NULL,
                                   errstr, sizeof(errstr));
}

static chorus_err_t dec_pred_name(const char *field, const char *s, size_t n) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_header(&b, ID_PRED);
        bb_strn(&b, !strcmp(field, "model_id") ? s : "m", !strcmp(field, "model_id") ? n : 1);
        bb_long(&b, 0);
        bb_strn(&b, !strcmp(field, "series") ? s : "S", !strcmp(field, "series") ? n : 1);
        bb_strn(&b, !strcmp(field, "horizon") ? s : "1d", !strcmp(field, "horizon") ? n : 2);
        bb_long(&b, T0);
        bb_long(&b, T0);
        bb_double(&b, 1.0);
        bb_long(&b, 0);
        bb_long(&b, 0);
        return dec(CHORUS_RECORD_PREDICTION, &b, &p);
}

static chorus_prediction_t mk_pred(void) {
        chorus_prediction_t p;
        memset(&p, 0, sizeof(p));
        strcpy(p.model_id, "arima_garch");
        p.has_model_version = 1;
        strcpy(p.model_version, "2.3.1 (build 7) — ünïcode ok");
        strcpy(p.series, "BRK.B");
        strcpy(p.horizon, "1m");
        p.issued_at = T0;
        p.target_time = T0 + INT64_C(2592000000);
        p.value = -37.63; /* WTI, 2020-04-20 */
        p.has_lower = 1;
        p.lower = -55.0;
        p.has_upper = 1;
        p.upper = 10.5;
        return p;
}

static void assert_pred_eq(const chorus_prediction_t *a, const chorus_prediction_t *b) {
        cr_assert_str_eq(a->model_id, b->model_id);
        cr_assert_eq(a->has_model_version, b->has_model_version);
        if (a->has_model_version)
                cr_assert_str_eq(a->model_version, b->model_version);
        cr_assert_str_eq(a->series, b->series);
        cr_assert_str_eq(a->horizon, b->horizon);
        cr_assert_eq(a->issued_at, b->issued_at);
        cr_assert_eq(a->target_time, b->target_time);
        cr_assert_eq(a->value, b->value);
        cr_assert_eq(a->has_lower, b->has_lower);
        cr_assert_eq(a->has_upper, b->has_upper);
        if (a->has_lower)
                cr_assert_eq(a->lower, b->lower);
        if (a->has_upper)
                cr_assert_eq(a->upper, b->upper);
}

static chorus_err_t reg(int32_t id, chorus_record_type_t type, const char *json) {
        errstr[0] = '\0';
        return chorus_codec_register(codec, id, type, json, errstr, sizeof(errstr));
}

/* ====================================================================== */
/* Round trips                                                            */
/* ====================================================================== */

Test(codec, prediction_round_trip_all_fields) {
        chorus_prediction_t in = mk_pred(), out;
        chorus_buf_t buf = {0};
        int32_t id = 0;

        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                         ID_PRED, &in, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(buf.data[0], 0);
        cr_assert_eq(buf.data[4], ID_PRED);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                         -1, buf.data, buf.len, &out, &id, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(id, ID_PRED);
        assert_pred_eq(&in, &out);
        chorus_buf_destroy(&buf);
}

Test(codec, prediction_round_trip_optionals_absent_bare) {
        chorus_prediction_t in = mk_pred(), out;
        chorus_buf_t buf = {0};
        int32_t id = 0;

        in.has_model_version = in.has_lower = in.has_upper = 0;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 0,
                                         &in, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE,
                                         ID_PRED, buf.data, buf.len, &out, &id, errstr,
                                         sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(id, ID_PRED);
        assert_pred_eq(&in, &out);
        cr_assert_eq(out.has_lower, 0);
        cr_assert_eq(out.model_version[0], '\0');
        chorus_buf_destroy(&buf);
}

Test(codec, prediction_encoding_matches_the_avro_spec) {
        chorus_prediction_t in = mk_pred();
        chorus_buf_t buf = {0};
        bb_t want = {.n = 0};

        bb_header(&want, 77);
        bb_pred(&want, in.model_id, in.model_version, in.series, in.horizon, in.issued_at,
                in.target_time, in.value, &in.lower, &in.upper);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                         77, &in, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK);
        cr_assert_eq(buf.len, want.n);
        cr_assert_arr_eq(buf.data, want.b, want.n);
        chorus_buf_destroy(&buf);
}

Test(codec, actual_round_trip_with_and_without_source) {
        chorus_actual_t in, out;
        chorus_buf_t buf = {0};

        memset(&in, 0, sizeof(in));
        strcpy(in.series, "^VIX");
        in.observed_at = T0;
        in.value = 17.25;
        in.has_source = 1;
        strcpy(in.source, "cboe feed #2");
        for (int pass = 0; pass < 2; pass++) {
                chorus_buf_reset(&buf);
                cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ACTUAL,
                                                 CHORUS_FRAMING_CONFLUENT, ID_ACT, &in, &buf,
                                                 errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_ACTUAL,
                                                 CHORUS_FRAMING_CONFLUENT, -1, buf.data, buf.len,
                                                 &out, NULL, errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                cr_assert_str_eq(out.series, in.series);
                cr_assert_eq(out.observed_at, in.observed_at);
                cr_assert_eq(out.value, in.value);
                cr_assert_eq(out.has_source, in.has_source);
                if (in.has_source)
                        cr_assert_str_eq(out.source, in.source);
                in.has_source = 0;
        }
        chorus_buf_destroy(&buf);
}

Test(codec, indicator_round_trip) {
        chorus_indicator_t in, out;
        chorus_buf_t buf = {0};

        memset(&in, 0, sizeof(in));
        strcpy(in.indicator, "VIX");
        in.observed_at = 0; /* the epoch itself is valid */
        in.value = 82.69;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_INDICATOR, CHORUS_FRAMING_CONFLUENT,
                                         ID_IND, &in, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_INDICATOR, CHORUS_FRAMING_CONFLUENT,
                                         -1, buf.data, buf.len, &out, NULL, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(out.indicator, "VIX");
        cr_assert_eq(out.observed_at, 0);
        cr_assert_eq(out.value, 82.69);
        chorus_buf_destroy(&buf);
}

Test(codec, encode_appends_and_reuses_values) {
        chorus_prediction_t a = mk_pred(), b = mk_pred(), out;
        chorus_buf_t buf = {0};
        size_t first;

        b.has_lower = b.has_upper = b.has_model_version = 0;
        strcpy(b.model_id, "gb");
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 0,
                                         &a, &buf, NULL, 0),
                     CHORUS_OK);
        first = buf.len;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 0,
                                         &b, &buf, NULL, 0),
                     CHORUS_OK);
        cr_assert_gt(buf.len, first);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE,
                                         ID_PRED, buf.data + first, buf.len - first, &out, NULL,
                                         errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        assert_pred_eq(&b, &out);
        /* The whole buffer is two records: one record plus trailing bytes. */
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE,
                                         ID_PRED, buf.data, buf.len, &out, NULL, errstr,
                                         sizeof(errstr)),
                     CHORUS_ERR_TRAILING_BYTES);
        chorus_buf_reset(&buf);
        cr_assert_eq(buf.len, 0);
        chorus_buf_destroy(&buf);
        chorus_buf_destroy(&buf); /* idempotent */
        cr_assert_null(buf.data);
}

static chorus_forecast_t mk_forecast(void) {
        static const char *models[] = {"arima_garch", "gb", "lstm", "v4_1w"};
        static const double w[] = {0.125, 0.25, 0.5, 0.125};
        chorus_forecast_t f;

        memset(&f, 0, sizeof(f));
        strcpy(f.series, "ZL");
        strcpy(f.horizon, "1w");
        f.target_time = T0;
        f.issued_at = T0 - 1000;
        f.revision = 3;
        f.value = 41.5;
        f.raw_value = 43.0;
        f.n_present = 4;
        f.n_expected = 4;
        for (size_t i = 0; i < 4; i++) {
                strcpy(f.present[i], models[i]);
                strcpy(f.expected[i], models[i]);
                f.weight[i] = w[i];
        }
        f.complete = 1;
        strcpy(f.weighting_method, "exp_inv_mape");
        strcpy(f.profile, "baseline");
        f.has_regime = 1;
        strcpy(f.regime, "high_vol");
        f.has_z_score = 1;
        f.z_score = -3.5;
        f.z_adjusted = 1;
        f.clipped = 0;
        f.fallback = CHORUS_FALLBACK_ROLLBACK;
        return f;
}

/* An EnsembleForecast body; the weights map uses @p keys (n_keys of them)
 * instead of present[] when @p keys is non-NULL. */
static void bb_forecast_keys(bb_t *b, const chorus_forecast_t *f, const char *fallback,
                             const char *const *keys, size_t n_keys) {
        size_t nk = keys ? n_keys : f->n_present;

        bb_str(b, f->series);
        bb_str(b, f->horizon);
        bb_long(b, f->target_time);
        bb_long(b, f->issued_at);
        bb_long(b, f->revision);
        bb_double(b, f->value);
        bb_double(b, f->raw_value);
        if (nk) {
                bb_long(b, (int64_t)nk);
                for (size_t i = 0; i < nk; i++) {
                        bb_str(b, keys ? keys[i] : f->present[i]);
                        bb_double(b, f->weight[i]);
                }
        }
        bb_long(b, 0);
        if (f->n_expected) {
                bb_long(b, (int64_t)f->n_expected);
                for (size_t i = 0; i < f->n_expected; i++)
                        bb_str(b, f->expected[i]);
        }
        bb_long(b, 0);
        if (f->n_present) {
                bb_long(b, (int64_t)f->n_present);
                for (size_t i = 0; i < f->n_present; i++)
                        bb_str(b, f->present[i]);
        }
        bb_long(b, 0);
        bb_byte(b, (unsigned char)f->complete);
        bb_str(b, f->weighting_method);
        bb_str(b, f->profile);
        if (f->has_regime) {
                bb_long(b, 1);
                bb_str(b, f->regime);
        } else {
                bb_long(b, 0);
        }
        if (f->has_z_score) {
                bb_long(b, 1);
                bb_double(b, f->z_score);
        } else {
                bb_long(b, 0);
        }
        bb_byte(b, (unsigned char)f->z_adjusted);
        bb_byte(b, (unsigned char)f->clipped);
        if (fallback) {
                bb_long(b, 1);
                bb_str(b, fallback);
        } else {
                bb_long(b, 0);
        }
}

static void bb_forecast(bb_t *b, const chorus_forecast_t *f, const char *fallback) {
        bb_forecast_keys(b, f, fallback, NULL, 0);
}

Test(codec, forecast_with_several_models_is_byte_exact_and_deterministic) {
        chorus_forecast_t f = mk_forecast();
        chorus_buf_t a = {0}, b = {0};
        bb_t want = {.n = 0};

        bb_header(&want, 9);
        bb_forecast(&want, &f, "rollback");
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_CONFLUENT, 9,
                                         &f, &a, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(a.len, want.n);
        cr_assert_arr_eq(a.data, want.b, want.n);
        /* A second encode with the same reused value gives the same bytes. */
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_CONFLUENT, 9,
                                         &f, &b, NULL, 0),
                     CHORUS_OK);
        cr_assert_eq(a.len, b.len);
        cr_assert_arr_eq(a.data, b.data, a.len);
        chorus_buf_destroy(&a);
        chorus_buf_destroy(&b);
}

Test(codec, forecast_round_trip) {
        chorus_forecast_t in = mk_forecast(), out;
        chorus_buf_t buf = {0};

        cr_assert_eq(
            reg(9, CHORUS_RECORD_FORECAST, chorus_record_schema_json(CHORUS_RECORD_FORECAST)),
            CHORUS_OK, "%s", errstr);
        for (int pass = 0; pass < 2; pass++) {
                chorus_buf_reset(&buf);
                cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST,
                                                 CHORUS_FRAMING_CONFLUENT, 9, &in, &buf, errstr,
                                                 sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                memset(&out, 0x5A, sizeof(out));
                cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_FORECAST,
                                                 CHORUS_FRAMING_CONFLUENT, -1, buf.data, buf.len,
                                                 &out, NULL, errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                cr_assert_str_eq(out.series, in.series);
                cr_assert_str_eq(out.horizon, in.horizon);
                cr_assert_eq(out.target_time, in.target_time);
                cr_assert_eq(out.issued_at, in.issued_at);
                cr_assert_eq(out.revision, in.revision);
                cr_assert_eq(out.value, in.value);
                cr_assert_eq(out.raw_value, in.raw_value);
                cr_assert_eq(out.n_present, in.n_present);
                cr_assert_eq(out.n_expected, in.n_expected);
                for (size_t i = 0; i < in.n_present; i++) {
                        cr_assert_str_eq(out.present[i], in.present[i]);
                        cr_assert_eq(out.weight[i], in.weight[i]);
                }
                for (size_t i = 0; i < in.n_expected; i++)
                        cr_assert_str_eq(out.expected[i], in.expected[i]);
                cr_assert_eq(out.complete, in.complete);
                cr_assert_str_eq(out.weighting_method, in.weighting_method);
                cr_assert_str_eq(out.profile, in.profile);
                cr_assert_eq(out.has_regime, in.has_regime);
                if (in.has_regime)
                        cr_assert_str_eq(out.regime, in.regime);
                cr_assert_eq(out.has_z_score, in.has_z_score);
                if (in.has_z_score)
                        cr_assert_eq(out.z_score, in.z_score);
                cr_assert_eq(out.z_adjusted, in.z_adjusted);
                cr_assert_eq(out.clipped, in.clipped);
                cr_assert_eq(out.fallback, in.fallback);
                /* Second pass: optionals absent, one model missing. */
                in.has_regime = in.has_z_score = 0;
                in.fallback = CHORUS_FALLBACK_NONE;
                in.n_present = 3;
                in.complete = 0;
        }
        chorus_buf_destroy(&buf);
}

Test(codec, large_forecast_grows_the_buffer_and_keeps_its_prefix) {
        static chorus_forecast_t in, out;
        chorus_buf_t buf = {0};
        size_t prefix;

        in = mk_forecast();
        in.n_present = in.n_expected = CHORUS_MAX_MODELS;
        for (size_t i = 0; i < CHORUS_MAX_MODELS; i++) {
                memset(in.present[i], 'a' + (int)(i % 26), CHORUS_NAME_MAX);
                snprintf(in.present[i] + CHORUS_NAME_MAX - 3, 4, "%03zu", i);
                strcpy(in.expected[i], in.present[i]);
                in.weight[i] = 1.0 / CHORUS_MAX_MODELS;
        }
        cr_assert_eq(
            reg(9, CHORUS_RECORD_FORECAST, chorus_record_schema_json(CHORUS_RECORD_FORECAST)),
            CHORUS_OK, "%s", errstr);
        /* A small record first, so the large one is appended after it. */
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_INDICATOR, CHORUS_FRAMING_BARE, 0,
                                         &(chorus_indicator_t){"VIX", T0, 1.0}, &buf, errstr,
                                         sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        prefix = buf.len;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_CONFLUENT, 9,
                                         &in, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_gt(buf.len - prefix, 2 * CHORUS_MAX_MODELS * CHORUS_NAME_MAX);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_INDICATOR, CHORUS_FRAMING_BARE,
                                         ID_IND, buf.data, prefix, &out, NULL, errstr,
                                         sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_CONFLUENT,
                                         -1, buf.data + prefix, buf.len - prefix, &out, NULL,
                                         errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(out.n_present, CHORUS_MAX_MODELS);
        for (size_t i = 0; i < CHORUS_MAX_MODELS; i++) {
                cr_assert_str_eq(out.present[i], in.present[i]);
                cr_assert_eq(out.weight[i], in.weight[i]);
        }
        chorus_buf_destroy(&buf);
}

Test(codec, forecast_decode_rejects_inconsistent_weights) {
        static const char *keys[] = {"arima_garch", "gb", "lstm", "zz"};
        chorus_forecast_t f = mk_forecast(), out;
        bb_t b = {.n = 0};

        cr_assert_eq(
            reg(9, CHORUS_RECORD_FORECAST, chorus_record_schema_json(CHORUS_RECORD_FORECAST)),
            CHORUS_OK, "%s", errstr);
        /* A weight keyed by a model that is not in models_present. */
        bb_header(&b, 9);
        bb_forecast_keys(&b, &f, "rollback", keys, 4);
        cr_assert_eq(dec(CHORUS_RECORD_FORECAST, &b, &out), CHORUS_ERR_MALFORMED, "%s", errstr);
        cr_assert(strstr(errstr, "no entry for v4_1w"), "%s", errstr);
        /* One weight too few. */
        b.n = 0;
        bb_header(&b, 9);
        bb_forecast_keys(&b, &f, "rollback", keys, 3);
        cr_assert_eq(dec(CHORUS_RECORD_FORECAST, &b, &out), CHORUS_ERR_MALFORMED, "%s", errstr);
        cr_assert(strstr(errstr, "3 entries for 4 models"), "%s", errstr);
        /* An unknown fallback string. */
        b.n = 0;
        bb_header(&b, 9);
        bb_forecast(&b, &f, "panic");
        cr_assert_eq(dec(CHORUS_RECORD_FORECAST, &b, &out), CHORUS_ERR_MALFORMED, "%s", errstr);
        /* And the well-formed record decodes. */
        b.n = 0;
        bb_header(&b, 9);
        bb_forecast(&b, &f, "rollback");
        cr_assert_eq(dec(CHORUS_RECORD_FORECAST, &b, &out), CHORUS_OK, "%s", errstr);
        cr_assert_eq(out.fallback, CHORUS_FALLBACK_ROLLBACK);
}

Test(codec, forecast_optionals_and_fallbacks) {
        static const struct {
                chorus_fallback_t f;
                const char *s;
        } cases[] = {{CHORUS_FALLBACK_NONE, NULL},
                     {CHORUS_FALLBACK_COLD_START, "cold_start"},
                     {CHORUS_FALLBACK_OVERFITTING, "overfitting"},
                     {CHORUS_FALLBACK_ROLLBACK, "rollback"}};
        chorus_buf_t out = {0};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                chorus_forecast_t f = mk_forecast();
                bb_t want = {.n = 0};

                f.fallback = cases[i].f;
                f.has_regime = f.has_z_score = 0;
                f.n_present = i; /* 0..3 models, fewer than expected */
                f.complete = 0;
                bb_forecast(&want, &f, cases[i].s);
                chorus_buf_reset(&out);
                cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_BARE,
                                                 0, &f, &out, errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                cr_assert_eq(out.len, want.n, "case %zu", i);
                cr_assert_arr_eq(out.data, want.b, want.n, "case %zu", i);
        }
        chorus_buf_destroy(&out);
}

Test(codec, forecast_encode_rejects_bad_structs_without_writing) {
        chorus_forecast_t f = mk_forecast();
        chorus_buf_t out = {0};

        strcpy(f.present[2], f.present[1]);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_BARE, 0, &f,
                                         &out, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        cr_assert(strstr(errstr, "twice"), "%s", errstr);
        cr_assert_eq(out.len, 0);
        f = mk_forecast();
        memset(f.series, 'x', sizeof(f.series)); /* not NUL-terminated */
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_BARE, 0, &f,
                                         &out, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        cr_assert_eq(out.len, 0);
        f = mk_forecast();
        f.n_expected = CHORUS_MAX_MODELS + 1;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_BARE, 0, &f,
                                         &out, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        cr_assert_eq(out.len, 0);
        /* The codec is still usable after a failed encode. */
        f = mk_forecast();
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FORECAST, CHORUS_FRAMING_BARE, 0, &f,
                                         &out, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        chorus_buf_destroy(&out);
}

Test(codec, unsupported_types_and_names) {
        chorus_buf_t out = {0};
        char dummy[64] = {0};
        bb_t b = {.n = 0};

        bb_valid_pred(&b);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_REGIME_CHANGE, CHORUS_FRAMING_BARE, 0,
                                         dummy, &out, errstr, sizeof(errstr)),
                     CHORUS_ERR_UNSUPPORTED);
        cr_assert_eq(dec(CHORUS_RECORD_VALIDATION_WINDOW, &b, dummy), CHORUS_ERR_UNSUPPORTED);
        cr_assert_str_eq(chorus_record_type_name(CHORUS_RECORD_INDICATOR), "IndicatorObservation");
        cr_assert_str_eq(chorus_record_type_name(CHORUS_RECORD__COUNT), "unknown");
        cr_assert(strstr(chorus_record_schema_json(CHORUS_RECORD_VALIDATION_WINDOW),
                         "\"ValidationWindow\""));
        cr_assert_str_eq(chorus_record_schema_json(CHORUS_RECORD__COUNT), "");
        chorus_codec_destroy(NULL);
        chorus_buf_destroy(NULL);
}

static chorus_alert_t mk_alert(void) {
        chorus_alert_t a = {0};

        snprintf(a.fingerprint, sizeof(a.fingerprint), "MAPE_DEGRADATION|ZL|1D||");
        snprintf(a.type, sizeof(a.type), "MAPE_DEGRADATION");
        snprintf(a.severity, sizeof(a.severity), "critical");
        snprintf(a.state, sizeof(a.state), "firing");
        a.has_series = a.has_horizon = 1;
        snprintf(a.series, sizeof(a.series), "ZL");
        snprintf(a.horizon, sizeof(a.horizon), "1D");
        a.value = 3.25;
        a.threshold = 2.5;
        a.event_time = 1700006400000;
        snprintf(a.message, sizeof(a.message), "ZL 1D: daily MAPE above 2.5 %% for 3 days");
        a.n_details = 2;
        snprintf(a.detail_key[0], sizeof(a.detail_key[0]), "days");
        snprintf(a.detail_value[0], sizeof(a.detail_value[0]), "2023-11-13,2023-11-14");
        snprintf(a.detail_key[1], sizeof(a.detail_key[1]), "baseline_mape");
        snprintf(a.detail_value[1], sizeof(a.detail_value[1]), "2");
        return a;
}

/* Against a hand encoding of the Avro spec: unions ["null", T] take branch
 * 0 or 1, and the map is one block, then a 0 count. */
Test(codec, alert_encoding_matches_the_avro_spec) {
        chorus_alert_t a = mk_alert();
        chorus_buf_t buf = {0};
        bb_t want = {.n = 0};

        bb_header(&want, 9);
        bb_str(&want, a.fingerprint);
        bb_str(&want, "MAPE_DEGRADATION");
        bb_str(&want, "critical");
        bb_str(&want, "firing");
        bb_long(&want, 1);
        bb_str(&want, "ZL");
        bb_long(&want, 1);
        bb_str(&want, "1D");
        bb_long(&want, 0);
        bb_long(&want, 0);
        bb_double(&want, 3.25);
        bb_double(&want, 2.5);
        bb_long(&want, 1700006400000);
        bb_str(&want, a.message);
        bb_long(&want, 2);
        bb_str(&want, "days");
        bb_str(&want, "2023-11-13,2023-11-14");
        bb_str(&want, "baseline_mape");
        bb_str(&want, "2");
        bb_long(&want, 0);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_CONFLUENT, 9,
                                         &a, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(buf.len, want.n);
        cr_assert_arr_eq(buf.data, want.b, want.n);
        /* A second record with no details leaves no entries behind. */
        a.n_details = 0;
        buf.len = 0;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_BARE, 0, &a,
                                         &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(buf.data[buf.len - 1], 0);
        chorus_buf_destroy(&buf);
}

/* What the codec writes it reads back (the demo and tools read chorus.alerts). */
Test(codec, alert_round_trip) {
        chorus_alert_t a = mk_alert(), got;
        chorus_buf_t buf = {0};
        char e[512];

        cr_assert_eq(chorus_codec_register(codec, 9, CHORUS_RECORD_ALERT,
                                           chorus_record_schema_json(CHORUS_RECORD_ALERT), e,
                                           sizeof(e)),
                     CHORUS_OK, "%s", e);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_CONFLUENT, 9,
                                         &a, &buf, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        memset(&got, 0xab, sizeof(got));
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_CONFLUENT, -1,
                                         buf.data, buf.len, &got, NULL, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(got.fingerprint, a.fingerprint);
        cr_assert_str_eq(got.state, "firing");
        cr_assert(got.has_series && !strcmp(got.series, "ZL"));
        cr_assert(!got.has_model_id && !got.has_indicator);
        cr_assert(got.value == 3.25 && got.threshold == 2.5 && got.event_time == a.event_time);
        cr_assert_str_eq(got.message, a.message);
        cr_assert_eq(got.n_details, 2);
        cr_assert_str_eq(got.detail_key[1], "baseline_mape");
        cr_assert_str_eq(got.detail_value[0], "2023-11-13,2023-11-14");
        chorus_buf_destroy(&buf);
}

Test(codec, alert_encode_rejects_bad_details) {
        chorus_alert_t a = mk_alert();
        chorus_buf_t buf = {0};

        snprintf(a.detail_key[1], sizeof(a.detail_key[1]), "days");
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_BARE, 0, &a,
                                         &buf, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        cr_assert(strstr(errstr, "appears twice"), "%s", errstr);
        a = mk_alert();
        a.n_details = CHORUS_ALERT_DETAILS_MAX + 1;
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_BARE, 0, &a,
                                         &buf, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        a = mk_alert();
        memset(a.detail_value[0], 'x', sizeof(a.detail_value[0]));
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_ALERT, CHORUS_FRAMING_BARE, 0, &a,
                                         &buf, errstr, sizeof(errstr)),
                     CHORUS_ERR_INVALID_ARG);
        chorus_buf_destroy(&buf);
}

/* ====================================================================== */
/* Framing errors                                                         */
/* ====================================================================== */

Test(codec, empty_message) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_BAD_FRAMING);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE,
                                         ID_PRED, NULL, 0, &p, NULL, errstr, sizeof(errstr)),
                     CHORUS_ERR_MALFORMED);
}

Test(codec, bad_magic) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_valid_pred(&b);
        b.b[0] = 0x01;
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_BAD_FRAMING);
        cr_assert(strstr(errstr, "magic byte 0x01"), "%s", errstr);
        b.b[0] = '{'; /* a JSON message on an Avro topic */
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_BAD_FRAMING);
}

Test(codec, short_header) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_valid_pred(&b);
        for (size_t n = 0; n < 5; n++) {
                b.n = n;
                cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_BAD_FRAMING,
                             "len %zu", n);
        }
        b.n = 5; /* a header and no body */
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
}

Test(codec, unknown_schema_id) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};
        int32_t id = 0;

        bb_valid_pred(&b);
        b.b[4] = 99;
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_CONFLUENT,
                                         -1, b.b, b.n, &p, &id, errstr, sizeof(errstr)),
                     CHORUS_ERR_UNKNOWN_SCHEMA);
        cr_assert_eq(id, 99);
        cr_assert(strstr(errstr, "99"), "%s", errstr);
        b.b[1] = 0x80; /* a negative id */
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_UNKNOWN_SCHEMA);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 4242,
                                         b.b + 5, b.n - 5, &p, &id, errstr, sizeof(errstr)),
                     CHORUS_ERR_UNKNOWN_SCHEMA);
        cr_assert_eq(id, 4242);
}

Test(codec, wrong_record_type) {
        chorus_actual_t a;
        bb_t b = {.n = 0};

        bb_valid_pred(&b);
        cr_assert_eq(dec(CHORUS_RECORD_ACTUAL, &b, &a), CHORUS_ERR_WRONG_RECORD_TYPE);
        cr_assert(strstr(errstr, "Prediction"), "%s", errstr);
        cr_assert_eq(dec(CHORUS_RECORD_INDICATOR, &b, &a), CHORUS_ERR_WRONG_RECORD_TYPE);
}

/* ====================================================================== */
/* Body errors                                                            */
/* ====================================================================== */

Test(codec, truncated_at_every_offset) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};
        size_t full;

        bb_valid_pred(&b);
        full = b.n;
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        for (size_t n = 0; n < full; n++) {
                chorus_err_t e;

                b.n = n;
                e = dec(CHORUS_RECORD_PREDICTION, &b, &p);
                cr_assert(e == CHORUS_ERR_BAD_FRAMING || e == CHORUS_ERR_MALFORMED ||
                              e == CHORUS_ERR_ABSURD_LENGTH,
                          "truncated to %zu of %zu: %s (%s)", n, full, chorus_err2code(e), errstr);
                if (n >= 5) {
                        e = chorus_codec_decode(codec, CHORUS_RECORD_PREDICTION,
                                                CHORUS_FRAMING_BARE, ID_PRED, b.b + 5, n - 5, &p,
                                                NULL, errstr, sizeof(errstr));
                        cr_assert(e == CHORUS_ERR_MALFORMED || e == CHORUS_ERR_ABSURD_LENGTH,
                                  "bare, truncated to %zu: %s", n - 5, chorus_err2code(e));
                }
        }
}

Test(codec, string_length_beyond_buffer) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_header(&b, ID_PRED);
        bb_long(&b, 1000000); /* model_id length */
        bb_raw(&b, "lstm", 4);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert(strstr(errstr, "field model_id"), "%s", errstr);
        b.n = 5;
        bb_long(&b, INT64_MAX);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
}

Test(codec, negative_length) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_header(&b, ID_PRED);
        bb_long(&b, -4981); /* the length that made Avro-C malloc(-4981) */
        bb_raw(&b, "lstm", 4);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert(strstr(errstr, "negative"), "%s", errstr);
        b.n = 5;
        bb_long(&b, INT64_MIN);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
}

/* A newer Prediction writer: extra fields of every complex kind, one of
 * them ("confidence") in the middle of the reader's fields. */
static const char *writer_extra =
    "{\"type\":\"record\",\"name\":\"Prediction\",\"namespace\":\"chorus.v3\",\"fields\":["
    "{\"name\":\"model_id\",\"type\":\"string\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"series\",\"type\":\"string\"},"
    "{\"name\":\"confidence\",\"type\":\"double\"},"
    "{\"name\":\"horizon\",\"type\":\"string\"},"
    "{\"name\":\"meta\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"issued_at\",\"type\":\"long\"},"
    "{\"name\":\"target_time\",\"type\":\"long\"},"
    "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"hash\",\"type\":{\"type\":\"fixed\",\"name\":\"H4\",\"size\":4}},"
    "{\"name\":\"value\",\"type\":\"double\"},"
    "{\"name\":\"extra\",\"type\":[\"null\",\"int\",{\"type\":\"record\",\"name\":\"X\","
    "\"fields\":[{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"raw\",\"type\":\"bytes\"}]}]},"
    "{\"name\":\"upper\",\"type\":[\"null\",\"double\"]}"
    "]}";

#define ID_EXTRA 12

/* Writes a writer_extra record, with the tags/meta blocks supplied. */
static void bb_extra(bb_t *b, void (*tags)(bb_t *), void (*meta)(bb_t *)) {
        bb_header(b, ID_EXTRA);
        bb_str(b, "lstm");
        tags(b);
        bb_str(b, "ZL");
        bb_double(b, 0.93);
        bb_str(b, "1w");
        meta(b);
        bb_long(b, T0);
        bb_long(b, T0 + 1);
        bb_long(b, 1); /* enum B */
        bb_raw(b, "\x01\x02\x03\x04", 4);
        bb_double(b, 99.5);
        bb_long(b, 2); /* extra: record X */
        bb_byte(b, 1);
        bb_strn(b, "\x00\xff", 2);
        bb_long(b, 1);
        bb_double(b, 101.0);
}

static void tags_two(bb_t *b) {
        bb_long(b, 2);
        bb_str(b, "a");
        bb_str(b, "bb");
        bb_long(b, 0);
}
static void tags_negative_block(bb_t *b) {
        bb_long(b, -2); /* two items ... */
        bb_long(b, 5);  /* ... in 5 bytes: "\x02a" "\x04bb" */
        bb_str(b, "a");
        bb_str(b, "bb");
        bb_long(b, 0);
}
static void tags_huge(bb_t *b) {
        bb_long(b, 1000000000);
        bb_str(b, "a");
        bb_long(b, 0);
}
static void tags_negative_huge_size(bb_t *b) {
        bb_long(b, -1);
        bb_long(b, 1000000);
        bb_str(b, "a");
        bb_long(b, 0);
}
static void tags_negative_wrong_size(bb_t *b) {
        bb_long(b, -2);
        bb_long(b, 4); /* the items take 5 */
        bb_str(b, "a");
        bb_str(b, "bb");
        bb_long(b, 0);
}
static void tags_int64_min(bb_t *b) {
        bb_long(b, INT64_MIN);
        bb_long(b, 0);
}
static void meta_one(bb_t *b) {
        bb_long(b, 1);
        bb_str(b, "k");
        bb_long(b, -7);
        bb_long(b, 0);
}
static void meta_huge(bb_t *b) {
        bb_long(b, INT64_C(4000000000000));
        bb_str(b, "k");
        bb_long(b, 1);
        bb_long(b, 0);
}
static void empty_block(bb_t *b) {
        bb_long(b, 0);
}

Test(codec, newer_writer_extra_fields_are_skipped) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(ID_EXTRA, CHORUS_RECORD_PREDICTION, writer_extra), CHORUS_OK, "%s",
                     errstr);
        bb_extra(&b, tags_two, meta_one);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(p.model_id, "lstm");
        cr_assert_str_eq(p.series, "ZL");
        cr_assert_str_eq(p.horizon, "1w");
        cr_assert_eq(p.issued_at, T0);
        cr_assert_eq(p.target_time, T0 + 1);
        cr_assert_eq(p.value, 99.5);
        cr_assert_eq(p.has_model_version, 0);
        cr_assert_eq(p.has_lower, 0);
        cr_assert_eq(p.has_upper, 1);
        cr_assert_eq(p.upper, 101.0);
        /* Negative block counts (with a byte size) are valid Avro. */
        b.n = 0;
        bb_extra(&b, tags_negative_block, empty_block);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        cr_assert_eq(p.value, 99.5);
}

Test(codec, huge_array_and_map_block_counts) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(ID_EXTRA, CHORUS_RECORD_PREDICTION, writer_extra), CHORUS_OK, "%s",
                     errstr);
        bb_extra(&b, tags_huge, empty_block);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert(strstr(errstr, "field tags"), "%s", errstr);
        b.n = 0;
        bb_extra(&b, empty_block, meta_huge);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert(strstr(errstr, "field meta"), "%s", errstr);
        b.n = 0;
        bb_extra(&b, tags_negative_huge_size, empty_block);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        b.n = 0;
        bb_extra(&b, tags_int64_min, empty_block);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        b.n = 0;
        bb_extra(&b, tags_negative_wrong_size, empty_block);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
}

Test(codec, bad_union_index) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};
        size_t at;

        bb_header(&b, ID_PRED);
        bb_str(&b, "lstm");
        at = b.n;
        bb_long(&b, 2); /* model_version: ["null","string"] has branches 0 and 1 */
        bb_str(&b, "v1");
        bb_str(&b, "ZL");
        bb_str(&b, "1w");
        bb_long(&b, T0);
        bb_long(&b, T0);
        bb_double(&b, 1);
        bb_long(&b, 0);
        bb_long(&b, 0);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
        cr_assert(strstr(errstr, "union index 2"), "%s", errstr);
        b.b[at] = 0x01; /* zigzag -1 */
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
        b.b[at] = 0x02; /* 1: valid again */
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
}

Test(codec, overlong_varint) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};
        size_t at;

        bb_header(&b, ID_PRED);
        bb_str(&b, "lstm");
        bb_long(&b, 0);
        bb_str(&b, "ZL");
        bb_str(&b, "1w");
        at = b.n;
        for (int i = 0; i < 11; i++) /* issued_at: 11 continuation bytes */
                bb_byte(&b, 0xFF);
        bb_byte(&b, 0x01);
        bb_long(&b, T0);
        bb_double(&b, 1);
        bb_long(&b, 0);
        bb_long(&b, 0);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
        cr_assert(strstr(errstr, "field issued_at"), "%s", errstr);
        /* Ten bytes whose last one carries bits beyond 64. */
        b.b[at + 9] = 0x02;
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_MALFORMED);
}

Test(codec, varint_at_the_64_bit_limit_is_accepted_then_range_checked) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        /* INT64_MAX takes the full 10 bytes; it is well-formed Avro and
         * fails only the timestamp range. */
        cr_assert_eq(
            reg(40, CHORUS_RECORD_PREDICTION, chorus_record_schema_json(CHORUS_RECORD_PREDICTION)),
            CHORUS_OK);
        bb_header(&b, 40);
        bb_pred(&b, "m", NULL, "S", "1d", INT64_MAX, T0, 1.0, NULL, NULL);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_BAD_TIMESTAMP);
}

Test(codec, trailing_bytes) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_valid_pred(&b);
        bb_byte(&b, 0);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_TRAILING_BYTES);
        cr_assert(strstr(errstr, "1 bytes left"), "%s", errstr);
}

static chorus_err_t dec_pred_values(double value, double lower, int64_t issued, int64_t target) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_header(&b, ID_PRED);
        bb_pred(&b, "m", NULL, "S", "1d", issued, target, value, &lower, NULL);
        return dec(CHORUS_RECORD_PREDICTION, &b, &p);
}

Test(codec, nan_value) {
        cr_assert_eq(dec_pred_values(NAN, 0, T0, T0), CHORUS_ERR_NON_FINITE);
        cr_assert(strstr(errstr, "field value: NaN"), "%s", errstr);
        cr_assert_eq(dec_pred_values(1, NAN, T0, T0), CHORUS_ERR_NON_FINITE);
        cr_assert(strstr(errstr, "field lower"), "%s", errstr);
}

Test(codec, positive_infinity) {
        cr_assert_eq(dec_pred_values(INFINITY, 0, T0, T0), CHORUS_ERR_NON_FINITE);
        cr_assert(strstr(errstr, "+Inf"), "%s", errstr);
}

Test(codec, negative_infinity) {
        cr_assert_eq(dec_pred_values(-INFINITY, 0, T0, T0), CHORUS_ERR_NON_FINITE);
        cr_assert(strstr(errstr, "-Inf"), "%s", errstr);
        cr_assert_eq(dec_pred_values(1, -INFINITY, T0, T0), CHORUS_ERR_NON_FINITE);
}

Test(codec, timestamp_before_1970) {
        cr_assert_eq(dec_pred_values(1, 0, -1, T0), CHORUS_ERR_BAD_TIMESTAMP);
        cr_assert(strstr(errstr, "field issued_at"), "%s", errstr);
        cr_assert_eq(dec_pred_values(1, 0, T0, INT64_MIN), CHORUS_ERR_BAD_TIMESTAMP);
        cr_assert_eq(dec_pred_values(1, 0, 0, 0), CHORUS_OK, "%s", errstr);
}

Test(codec, timestamp_at_or_after_2200) {
        cr_assert_eq(dec_pred_values(1, 0, T0, CHORUS_TS_MAX), CHORUS_ERR_BAD_TIMESTAMP);
        cr_assert(strstr(errstr, "field target_time"), "%s", errstr);
        cr_assert_eq(dec_pred_values(1, 0, T0, CHORUS_TS_MAX - 1), CHORUS_OK, "%s", errstr);
}

static chorus_err_t dec_actual_at(int64_t observed_at) {
        chorus_actual_t a;
        bb_t b = {.n = 0};

        bb_header(&b, ID_ACT);
        bb_str(&b, "ZL");
        bb_long(&b, observed_at);
        bb_double(&b, 1.0);
        bb_long(&b, 0); /* source: null */
        return dec(CHORUS_RECORD_ACTUAL, &b, &a);
}

/* SPEC §9.3, with the bounds written out rather than through the macros, so
 * that a wrong CHORUS_TS_MIN/MAX cannot pass its own test: valid is exactly
 * 0 <= t < 7258118400000 ms, and 2200-01-01T00:00Z itself is rejected. */
Test(codec, timestamp_bounds_exact) {
        static const struct {
                int64_t t;
                chorus_err_t want;
        } cases[] = {
            {INT64_MIN, CHORUS_ERR_BAD_TIMESTAMP},
            {-86400000, CHORUS_ERR_BAD_TIMESTAMP},
            {-1, CHORUS_ERR_BAD_TIMESTAMP},
            {0, CHORUS_OK}, /* 1970-01-01T00:00:00.000Z */
            {1, CHORUS_OK},
            {INT64_C(7258118399999), CHORUS_OK},                /* 2199-12-31T23:59:59.999Z */
            {INT64_C(7258118400000), CHORUS_ERR_BAD_TIMESTAMP}, /* 2200-01-01T00:00Z */
            {INT64_C(7258118400001), CHORUS_ERR_BAD_TIMESTAMP},
            {INT64_MAX, CHORUS_ERR_BAD_TIMESTAMP},
        };

        cr_assert_eq(CHORUS_TS_MIN, INT64_C(0));
        cr_assert_eq(CHORUS_TS_MAX, INT64_C(7258118400000));
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t t = cases[i].t;

                cr_assert_eq(dec_pred_values(1, 0, t, T0), cases[i].want,
                             "issued_at %" PRId64 ": %s", t, errstr);
                cr_assert_eq(dec_pred_values(1, 0, T0, t), cases[i].want,
                             "target_time %" PRId64 ": %s", t, errstr);
                cr_assert_eq(dec_actual_at(t), cases[i].want, "observed_at %" PRId64 ": %s", t,
                             errstr);
                if (cases[i].want != CHORUS_OK) {
                        cr_assert(strstr(errstr, "field observed_at"), "%s", errstr);
                        cr_assert(strstr(errstr, "outside [1970-01-01, 2200-01-01)"), "%s", errstr);
                }
        }
        cr_assert_str_eq(chorus_err2code(CHORUS_ERR_BAD_TIMESTAMP), "timestamp_out_of_range");
}

Test(codec, invalid_utf8_name) {
        static const char *bad[] = {
            "\xC3\x28",         /* bad continuation */
            "\xC0\xAF",         /* overlong '/' */
            "\xE0\x80\xAF",     /* overlong, 3 bytes */
            "\xED\xA0\x80",     /* UTF-16 surrogate U+D800 */
            "\xF4\x90\x80\x80", /* U+110000 */
            "\xF8\x88\x80\x80\x80",
            "ab\xE2\x82", /* truncated sequence */
            "\xFF",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cr_assert_eq(dec_pred_name("series", bad[i], strlen(bad[i])),
                             CHORUS_ERR_INVALID_UTF8, "case %zu: %s", i, errstr);
                cr_assert(strstr(errstr, "field series"), "%s", errstr);
        }
        /* Valid multi-byte names pass: U+00E9, U+20AC, U+1F600. */
        cr_assert_eq(dec_pred_name("series", "caf\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 12),
                     CHORUS_OK, "%s", errstr);
}

Test(codec, name_with_space) {
        static const char *bad[] = {"B RK",
                                    "\tx",
                                    "x\n",
                                    ("a\xC2\xA0"
                                     "b"),
                                    "a\xE3\x80\x80",
                                    "a\xE2\x80\xA8",
                                    "\xE2\x80\x80",
                                    "a\xE1\x9A\x80",
                                    "a\xE2\x81\x9F",
                                    "a\xC2\x85",
                                    "a\xE2\x80\xAF"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert_eq(dec_pred_name("model_id", bad[i], strlen(bad[i])),
                             CHORUS_ERR_INVALID_NAME, "case %zu: %s", i, errstr);
}

Test(codec, name_with_control_characters) {
        cr_assert_eq(dec_pred_name("horizon", "1\x7F", 2), CHORUS_ERR_INVALID_NAME);
        cr_assert_eq(dec_pred_name("horizon", "1\xC2\x9F", 3), CHORUS_ERR_INVALID_NAME);
        cr_assert_eq(dec_pred_name("horizon", "1\x1B", 2), CHORUS_ERR_INVALID_NAME);
        /* An embedded NUL must not truncate the name into a valid one. */
        cr_assert_eq(dec_pred_name("horizon", "1w\0evil", 7), CHORUS_ERR_INVALID_NAME);
        cr_assert(strstr(errstr, "U+0000"), "%s", errstr);
}

Test(codec, name_with_pipe) {
        cr_assert_eq(dec_pred_name("series", "ZL|1w", 5), CHORUS_ERR_INVALID_NAME);
        cr_assert(strstr(errstr, "'|'"), "%s", errstr);
}

Test(codec, name_starting_with_double_underscore) {
        cr_assert_eq(dec_pred_name("model_id", "__ensemble__", 12), CHORUS_ERR_RESERVED_NAME);
        cr_assert(strstr(errstr, "field model_id: names beginning with \"__\" are reserved"), "%s",
                  errstr);
        cr_assert_eq(dec_pred_name("series", "__ZL", 4), CHORUS_ERR_RESERVED_NAME, "%s", errstr);
        cr_assert_eq(dec_pred_name("horizon", "__", 2), CHORUS_ERR_RESERVED_NAME, "%s", errstr);
        cr_assert_eq(dec_pred_name("model_id", "_x_", 3), CHORUS_OK, "%s", errstr);
        cr_assert_eq(dec_pred_name("model_id", "x__", 3), CHORUS_OK, "%s", errstr);
        cr_assert_eq(dec_pred_name("model_id", "_", 1), CHORUS_OK, "%s", errstr);
}

/* SPEC §2: reserved_name is its own dead-letter reason, distinct from
 * invalid_name, and an input error like every other reason. */
Test(codec, reserved_name_reason_code) {
        cr_assert_str_eq(chorus_err2code(CHORUS_ERR_RESERVED_NAME), "reserved_name");
        cr_assert_str_eq(chorus_err2code(CHORUS_ERR_INVALID_NAME), "invalid_name");
        cr_assert_neq(CHORUS_ERR_RESERVED_NAME, CHORUS_ERR_INVALID_NAME);
        cr_assert(chorus_err_is_input(CHORUS_ERR_RESERVED_NAME));
        cr_assert(strstr(chorus_err2str(CHORUS_ERR_RESERVED_NAME), "reserved"));
}

/* A "__" name that also breaks a rule is invalid_name: reserved_name only
 * ever means a well-formed name in the reserved namespace. */
Test(codec, reserved_prefix_on_a_malformed_name_is_invalid_name) {
        char big[200];

        cr_assert_eq(dec_pred_name("series", "__a b", 5), CHORUS_ERR_INVALID_NAME, "%s", errstr);
        cr_assert(strstr(errstr, "whitespace"), "%s", errstr);
        cr_assert_eq(dec_pred_name("series", "__a|b", 5), CHORUS_ERR_INVALID_NAME, "%s", errstr);
        cr_assert_eq(dec_pred_name("series", "__\x01", 3), CHORUS_ERR_INVALID_NAME, "%s", errstr);
        cr_assert_eq(dec_pred_name("series", "__\xFF", 3), CHORUS_ERR_INVALID_UTF8, "%s", errstr);
        memset(big, '_', sizeof(big));
        cr_assert_eq(chorus_name_check(big, 129), CHORUS_ERR_INVALID_NAME);
        cr_assert_eq(chorus_name_check(big, 128), CHORUS_ERR_RESERVED_NAME);
}

/* Every error has a distinct, non-empty code: they are a wire contract. */
Test(codec, error_codes_distinct) {
        for (int a = 0; a < CHORUS_ERR__COUNT; a++) {
                const char *ca = chorus_err2code((chorus_err_t)a);
                cr_assert(ca && *ca && strcmp(ca, "unknown"), "error %d has no code", a);
                cr_assert(chorus_err2str((chorus_err_t)a)[0], "error %d has no description", a);
                for (int b = 0; b < a; b++)
                        cr_assert_str_neq(ca, chorus_err2code((chorus_err_t)b), "errors %d and %d",
                                          a, b);
        }
}

Test(codec, empty_name) {
        cr_assert_eq(dec_pred_name("series", "", 0), CHORUS_ERR_INVALID_NAME);
        cr_assert(strstr(errstr, "field series: empty"), "%s", errstr);
}

Test(codec, name_of_129_bytes) {
        char name[300];

        memset(name, 'a', sizeof(name));
        cr_assert_eq(dec_pred_name("series", name, 128), CHORUS_OK, "%s", errstr);
        cr_assert_eq(dec_pred_name("series", name, 129), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert_str_eq(errstr, "field series: 129 bytes exceeds 128");
        cr_assert_eq(dec_pred_name("series", name, 300), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert_str_eq(errstr, "field series: 300 bytes exceeds 128");
}

Test(codec, free_text_rules) {
        chorus_prediction_t p;
        char text[300];
        bb_t b = {.n = 0};

        memset(text, 'v', sizeof(text));
        text[256] = '\0';
        bb_header(&b, ID_PRED);
        bb_pred(&b, "m", text, "S", "1d", T0, T0, 1.0, NULL, NULL);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        cr_assert_eq(strlen(p.model_version), 256);
        /* Spaces and '|' are fine in free text. */
        b.n = 0;
        bb_header(&b, ID_PRED);
        bb_pred(&b, "m", "v 1 | rc", "S", "1d", T0, T0, 1.0, NULL, NULL);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        text[256] = 'v';
        text[257] = '\0';
        b.n = 0;
        bb_header(&b, ID_PRED);
        bb_pred(&b, "m", text, "S", "1d", T0, T0, 1.0, NULL, NULL);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_ABSURD_LENGTH);
        cr_assert_str_eq(errstr, "field model_version: 257 bytes exceeds 256");
        b.n = 0;
        bb_header(&b, ID_PRED);
        bb_pred(&b, "m", "v\xC0\x80", "S", "1d", T0, T0, 1.0, NULL, NULL);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_INVALID_UTF8);
}

Test(codec, actual_source_with_nul_is_rejected) {
        chorus_actual_t a;
        bb_t b = {.n = 0};

        bb_header(&b, ID_ACT);
        bb_str(&b, "ZL");
        bb_long(&b, T0);
        bb_double(&b, 1.0);
        bb_long(&b, 1);
        bb_strn(&b, "cme\0x", 5);
        cr_assert_eq(dec(CHORUS_RECORD_ACTUAL, &b, &a), CHORUS_ERR_INVALID_UTF8);
        cr_assert(strstr(errstr, "field source"), "%s", errstr);
}

Test(codec, name_check_table) {
        static const struct {
                const char *s;
                chorus_err_t want;
        } cases[] = {
            {"ZL", CHORUS_OK},
            {"BRK.B", CHORUS_OK},
            {"^VIX", CHORUS_OK},
            {"v4_1w", CHORUS_OK},
            {"\xE6\x97\xA5\xE7\xB5\x8C", CHORUS_OK}, /* 日経 */
            {"", CHORUS_ERR_INVALID_NAME},
            {"a b", CHORUS_ERR_INVALID_NAME},
            {"a|b", CHORUS_ERR_INVALID_NAME},
            {"__x", CHORUS_ERR_RESERVED_NAME},
            {"__ensemble__", CHORUS_ERR_RESERVED_NAME},
            {"__ a", CHORUS_ERR_INVALID_NAME}, /* malformed first, reserved second */
            {"_x", CHORUS_OK},
            {"\xE2\x80\x8A", CHORUS_ERR_INVALID_NAME}, /* U+200A */
            {"\xE2\x80\xA9", CHORUS_ERR_INVALID_NAME}, /* U+2029 */
            {"\xC2\x80", CHORUS_ERR_INVALID_NAME},     /* C1 */
            {"\x80", CHORUS_ERR_INVALID_UTF8},
            {"\xEF\xBF\xBF", CHORUS_OK}, /* U+FFFF is valid UTF-8 */
            {"\xF0\x8F\xBF\xBF", CHORUS_ERR_INVALID_UTF8},
        };
        char big[129];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                cr_assert_eq(chorus_name_check(cases[i].s, strlen(cases[i].s)), cases[i].want,
                             "case %zu", i);
        memset(big, 'x', sizeof(big));
        cr_assert_eq(chorus_name_check(big, 128), CHORUS_OK);
        cr_assert_eq(chorus_name_check(big, 129), CHORUS_ERR_INVALID_NAME);
        cr_assert_eq(chorus_name_check(NULL, 0), CHORUS_ERR_INVALID_NAME);
}

/* ====================================================================== */
/* Schema evolution                                                       */
/* ====================================================================== */

static const char *writer_v1 =
    "{\"type\":\"record\",\"name\":\"Prediction\",\"namespace\":\"chorus\",\"fields\":["
    "{\"name\":\"model_id\",\"type\":\"string\"},"
    "{\"name\":\"series\",\"type\":\"string\"},"
    "{\"name\":\"horizon\",\"type\":\"string\"},"
    "{\"name\":\"issued_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"target_time\",\"type\":\"long\"},"
    "{\"name\":\"value\",\"type\":\"double\"}]}";

Test(codec, older_writer_gets_reader_defaults) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(11, CHORUS_RECORD_PREDICTION, writer_v1), CHORUS_OK, "%s", errstr);
        bb_header(&b, 11);
        bb_str(&b, "gb");
        bb_str(&b, "AAPL");
        bb_str(&b, "1D");
        bb_long(&b, T0);
        bb_long(&b, T0 + 86400000);
        bb_double(&b, 191.5);
        /* Poison the struct to prove absent fields are reset. */
        memset(&p, 0x5A, sizeof(p));
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(p.model_id, "gb");
        cr_assert_str_eq(p.series, "AAPL");
        cr_assert_str_eq(p.horizon, "1D");
        cr_assert_eq(p.target_time, T0 + 86400000);
        cr_assert_eq(p.value, 191.5);
        cr_assert_eq(p.has_model_version, 0);
        cr_assert_eq(p.has_lower, 0);
        cr_assert_eq(p.has_upper, 0);
        /* The v1 body under the v2 id is misread and must be rejected. */
        b.b[4] = ID_PRED;
        cr_assert_neq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK);
}

Test(codec, writer_float_and_int_promote) {
        static const char *w = "{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
                               "{\"name\":\"model_id\",\"type\":\"bytes\"},"
                               "{\"name\":\"series\",\"type\":\"string\"},"
                               "{\"name\":\"horizon\",\"type\":\"string\"},"
                               "{\"name\":\"issued_at\",\"type\":\"int\"},"
                               "{\"name\":\"target_time\",\"type\":\"long\"},"
                               "{\"name\":\"value\",\"type\":\"float\"},"
                               "{\"name\":\"lower\",\"type\":\"long\"},"
                               "{\"name\":\"upper\",\"type\":[\"null\",\"int\",\"float\"]}]}";
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(13, CHORUS_RECORD_PREDICTION, w), CHORUS_OK, "%s", errstr);
        bb_header(&b, 13);
        bb_str(&b, "lstm"); /* as bytes */
        bb_str(&b, "ZL");
        bb_str(&b, "1w");
        bb_long(&b, 86400000);
        bb_long(&b, T0);
        bb_float(&b, 1.5f);
        bb_long(&b, -3);
        bb_long(&b, 2);
        bb_float(&b, 0.25f);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(p.model_id, "lstm");
        cr_assert_eq(p.issued_at, 86400000);
        cr_assert_eq(p.value, 1.5);
        cr_assert_eq(p.has_lower, 1);
        cr_assert_eq(p.lower, -3.0);
        cr_assert_eq(p.has_upper, 1);
        cr_assert_eq(p.upper, 0.25);
        /* A float NaN is caught after promotion. */
        b.n = 0;
        bb_header(&b, 13);
        bb_str(&b, "lstm");
        bb_str(&b, "ZL");
        bb_str(&b, "1w");
        bb_long(&b, 86400000);
        bb_long(&b, T0);
        bb_float(&b, NAN);
        bb_long(&b, 0);
        bb_long(&b, 0);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_ERR_NON_FINITE);
}

Test(codec, writer_optional_for_required_field) {
        static const char *w =
            "{\"type\":\"record\",\"name\":\"Actual\",\"fields\":["
            "{\"name\":\"series\",\"type\":\"string\"},"
            "{\"name\":\"observed_at\",\"type\":\"long\"},"
            "{\"name\":\"value\",\"type\":[\"null\",\"double\"],\"default\":null},"
            "{\"name\":\"source\",\"type\":\"string\"}]}";
        chorus_actual_t a;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(14, CHORUS_RECORD_ACTUAL, w), CHORUS_OK, "%s", errstr);
        bb_header(&b, 14);
        bb_str(&b, "ZL");
        bb_long(&b, T0);
        bb_long(&b, 1);
        bb_double(&b, 55.5);
        bb_str(&b, "cme");
        cr_assert_eq(dec(CHORUS_RECORD_ACTUAL, &b, &a), CHORUS_OK, "%s", errstr);
        cr_assert_eq(a.value, 55.5);
        cr_assert_eq(a.has_source, 1);
        cr_assert_str_eq(a.source, "cme");
        /* The same writer sending null for the required value. */
        b.n = 0;
        bb_header(&b, 14);
        bb_str(&b, "ZL");
        bb_long(&b, T0);
        bb_long(&b, 0);
        bb_str(&b, "cme");
        cr_assert_eq(dec(CHORUS_RECORD_ACTUAL, &b, &a), CHORUS_ERR_MALFORMED);
        cr_assert(strstr(errstr, "field value: null"), "%s", errstr);
}

Test(codec, incompatible_writers_are_rejected_at_register) {
        static const struct {
                const char *json;
                const char *why;
        } cases[] = {
            {"{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
             "{\"name\":\"model_id\",\"type\":\"string\"},{\"name\":\"series\",\"type\":\"string\"}"
             ","
             "{\"name\":\"horizon\",\"type\":\"string\"},{\"name\":\"issued_at\",\"type\":\"long\"}"
             ","
             "{\"name\":\"target_time\",\"type\":\"long\"}]}",
             "field value: missing"},
            {"{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
             "{\"name\":\"model_id\",\"type\":\"string\"},{\"name\":\"series\",\"type\":\"string\"}"
             ","
             "{\"name\":\"horizon\",\"type\":\"string\"},{\"name\":\"issued_at\",\"type\":\"long\"}"
             ","
             "{\"name\":\"target_time\",\"type\":\"double\"},{\"name\":\"value\",\"type\":"
             "\"double\"}]}",
             "field target_time: writer type double cannot be read as long"},
            {"{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
             "{\"name\":\"model_id\",\"type\":\"string\"},{\"name\":\"series\",\"type\":\"string\"}"
             ","
             "{\"name\":\"horizon\",\"type\":\"string\"},{\"name\":\"issued_at\",\"type\":\"long\"}"
             ","
             "{\"name\":\"target_time\",\"type\":\"long\"},{\"name\":\"value\",\"type\":\"string\"}"
             "]}",
             "field value"},
            {"{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
             "{\"name\":\"model_id\",\"type\":\"string\"},{\"name\":\"series\",\"type\":\"string\"}"
             ","
             "{\"name\":\"horizon\",\"type\":\"string\"},{\"name\":\"issued_at\",\"type\":\"long\"}"
             ","
             "{\"name\":\"target_time\",\"type\":\"long\"},{\"name\":\"value\",\"type\":\"double\"}"
             ","
             "{\"name\":\"lower\",\"type\":\"string\"}]}",
             "field lower"},
            {"{\"type\":\"record\",\"name\":\"Forecast\",\"fields\":[{\"name\":\"x\",\"type\":"
             "\"int\"}]}",
             "record Forecast"},
            {"\"string\"", "writer schema is string"},
            {"{\"type\":\"record\",\"name\":\"Prediction\"", "invalid JSON"},
            {"{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":[{\"name\":\"a\",\"type\":"
             "\"nope\"}]}",
             "not a valid Avro schema"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert_eq(reg(20, CHORUS_RECORD_PREDICTION, cases[i].json), CHORUS_ERR_CONFIG,
                             "case %zu", i);
                cr_assert(strstr(errstr, cases[i].why), "case %zu: %s", i, errstr);
        }
        /* A Prediction schema cannot be registered as an Actual. */
        cr_assert_eq(
            reg(21, CHORUS_RECORD_ACTUAL, chorus_record_schema_json(CHORUS_RECORD_PREDICTION)),
            CHORUS_ERR_CONFIG);
        cr_assert_eq(reg(21, CHORUS_RECORD__COUNT, writer_v1), CHORUS_ERR_INVALID_ARG);
}

Test(codec, every_embedded_schema_registers_as_its_own_writer) {
        for (int t = 0; t < CHORUS_RECORD__COUNT; t++)
                cr_assert_eq(reg(100 + t, (chorus_record_type_t)t,
                                 chorus_record_schema_json((chorus_record_type_t)t)),
                             CHORUS_OK, "%s: %s", chorus_record_type_name((chorus_record_type_t)t),
                             errstr);
}

Test(codec, register_replaces_an_id) {
        chorus_prediction_t p;
        bb_t b = {.n = 0};

        bb_header(&b, ID_PRED);
        bb_str(&b, "gb");
        bb_str(&b, "AAPL");
        bb_str(&b, "1D");
        bb_long(&b, T0);
        bb_long(&b, T0);
        bb_double(&b, 1.0);
        cr_assert_neq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK);
        cr_assert_eq(reg(ID_PRED, CHORUS_RECORD_PREDICTION, writer_v1), CHORUS_OK, "%s", errstr);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
        /* A failed re-register leaves the old entry in place. */
        cr_assert_eq(reg(ID_PRED, CHORUS_RECORD_PREDICTION, "{"), CHORUS_ERR_CONFIG);
        cr_assert_eq(dec(CHORUS_RECORD_PREDICTION, &b, &p), CHORUS_OK, "%s", errstr);
}

Test(codec, recursive_writer_schema_depth_is_bounded) {
        static const char *rec =
            "{\"type\":\"record\",\"name\":\"IndicatorObservation\",\"fields\":["
            "{\"name\":\"indicator\",\"type\":\"string\"},"
            "{\"name\":\"chain\",\"type\":{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
            "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}},"
            "{\"name\":\"observed_at\",\"type\":\"long\"},"
            "{\"name\":\"value\",\"type\":\"double\"}]}";
        chorus_indicator_t ind;
        bb_t b = {.n = 0};

        cr_assert_eq(reg(30, CHORUS_RECORD_INDICATOR, rec), CHORUS_OK, "%s", errstr);
        for (int links = 0; links < 100; links += 99) {
                b.n = 0;
                bb_header(&b, 30);
                bb_str(&b, "VIX");
                for (int i = 0; i < links; i++)
                        bb_long(&b, 1);
                bb_long(&b, 0);
                bb_long(&b, T0);
                bb_double(&b, 20.0);
                if (links == 0) {
                        cr_assert_eq(dec(CHORUS_RECORD_INDICATOR, &b, &ind), CHORUS_OK, "%s",
                                     errstr);
                        cr_assert_eq(ind.value, 20.0);
                } else {
                        cr_assert_eq(dec(CHORUS_RECORD_INDICATOR, &b, &ind), CHORUS_ERR_MALFORMED);
                        cr_assert(strstr(errstr, "nesting"), "%s", errstr);
                }
        }
}

/* ====================================================================== */
/* Random corruption                                                      */
/* ====================================================================== */

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rng(void) { /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static void check_decoded(chorus_record_type_t type, const void *out) {
        if (type == CHORUS_RECORD_PREDICTION) {
                const chorus_prediction_t *p = out;
                cr_assert_eq(chorus_name_check(p->model_id, strlen(p->model_id)), CHORUS_OK);
                cr_assert_eq(chorus_name_check(p->series, strlen(p->series)), CHORUS_OK);
                cr_assert_eq(chorus_name_check(p->horizon, strlen(p->horizon)), CHORUS_OK);
                cr_assert(p->issued_at >= CHORUS_TS_MIN && p->issued_at < CHORUS_TS_MAX);
                cr_assert(p->target_time >= CHORUS_TS_MIN && p->target_time < CHORUS_TS_MAX);
                cr_assert(isfinite(p->value));
                cr_assert(!p->has_lower || isfinite(p->lower));
                cr_assert(!p->has_upper || isfinite(p->upper));
        } else if (type == CHORUS_RECORD_ACTUAL) {
                const chorus_actual_t *a = out;
                cr_assert_eq(chorus_name_check(a->series, strlen(a->series)), CHORUS_OK);
                cr_assert(isfinite(a->value));
        } else {
                const chorus_indicator_t *i = out;
                cr_assert_eq(chorus_name_check(i->indicator, strlen(i->indicator)), CHORUS_OK);
                cr_assert(isfinite(i->value));
        }
}

Test(codec, random_corruption_never_crashes) {
        union {
                chorus_prediction_t p;
                chorus_actual_t a;
                chorus_indicator_t i;
        } out;
        struct seed {
                chorus_record_type_t type;
                bb_t b;
        } seeds[4];
        size_t counts[CHORUS_ERR__COUNT] = {0};
        bb_t m;

        cr_assert_eq(reg(ID_EXTRA, CHORUS_RECORD_PREDICTION, writer_extra), CHORUS_OK, "%s",
                     errstr);
        memset(seeds, 0, sizeof(seeds));
        seeds[0].type = CHORUS_RECORD_PREDICTION;
        bb_valid_pred(&seeds[0].b);
        seeds[1].type = CHORUS_RECORD_PREDICTION;
        bb_extra(&seeds[1].b, tags_negative_block, meta_one);
        seeds[2].type = CHORUS_RECORD_ACTUAL;
        bb_header(&seeds[2].b, ID_ACT);
        bb_str(&seeds[2].b, "CL");
        bb_long(&seeds[2].b, T0);
        bb_double(&seeds[2].b, -37.63);
        bb_long(&seeds[2].b, 1);
        bb_str(&seeds[2].b, "nymex");
        seeds[3].type = CHORUS_RECORD_INDICATOR;
        bb_header(&seeds[3].b, ID_IND);
        bb_str(&seeds[3].b, "VIX");
        bb_long(&seeds[3].b, T0);
        bb_double(&seeds[3].b, 17.0);
        for (int s = 0; s < 4; s++)
                cr_assert_eq(dec(seeds[s].type, &seeds[s].b, &out), CHORUS_OK, "seed %d: %s", s,
                             errstr);

        for (int iter = 0; iter < 20000; iter++) {
                const struct seed *sd = &seeds[iter % 4];
                int nmut = 1 + (int)(rng() % 4);
                chorus_err_t e;

                m = sd->b;
                for (int k = 0; k < nmut; k++) {
                        size_t at = m.n ? (size_t)(rng() % m.n) : 0;
                        switch (rng() % 6) {
                        case 0: /* flip a bit, but keep the header mostly intact */
                                if (m.n)
                                        m.b[at] ^= (unsigned char)(1u << (rng() % 8));
                                break;
                        case 1: /* random byte */
                                if (m.n)
                                        m.b[at] = (unsigned char)rng();
                                break;
                        case 2: /* interesting byte */
                                if (m.n) {
                                        static const unsigned char v[] = {0x00, 0x01, 0x7F, 0x80,
                                                                          0xFF, 0x81, 0xFE};
                                        m.b[at] = v[rng() % sizeof(v)];
                                }
                                break;
                        case 3: /* truncate */
                                m.n = at;
                                break;
                        case 4: /* insert a byte */
                                if (m.n < sizeof(m.b) - 1) {
                                        memmove(m.b + at + 1, m.b + at, m.n - at);
                                        m.b[at] = (unsigned char)rng();
                                        m.n++;
                                }
                                break;
                        default: /* delete a byte */
                                if (m.n) {
                                        memmove(m.b + at, m.b + at + 1, m.n - at - 1);
                                        m.n--;
                                }
                                break;
                        }
                }
                e = dec(sd->type, &m, &out);
                cr_assert(e == CHORUS_OK || chorus_err_is_input(e), "iter %d: %s (%s)", iter,
                          chorus_err2code(e), errstr);
                cr_assert(e == CHORUS_OK || errstr[0], "iter %d: no reason for %s", iter,
                          chorus_err2code(e));
                if (e == CHORUS_OK)
                        check_decoded(sd->type, &out);
                counts[e]++;
                /* The same body, bare, under the seed's id. */
                if (m.n >= 5) {
                        e = chorus_codec_decode(codec, sd->type, CHORUS_FRAMING_BARE,
                                                iter % 4 == 1 ? ID_EXTRA : (int32_t)sd->b.b[4],
                                                m.b + 5, m.n - 5, &out, NULL, errstr,
                                                sizeof(errstr));
                        cr_assert(e == CHORUS_OK || chorus_err_is_input(e), "iter %d bare: %s",
                                  iter, chorus_err2code(e));
                        if (e == CHORUS_OK)
                                check_decoded(sd->type, &out);
                }
        }
        /* The loop must reach the deep error classes, not only framing. */
        cr_assert_gt(counts[CHORUS_OK], 0);
        cr_assert_gt(counts[CHORUS_ERR_MALFORMED], 0);
        cr_assert_gt(counts[CHORUS_ERR_ABSURD_LENGTH], 0);
        cr_assert_gt(counts[CHORUS_ERR_TRAILING_BYTES], 0);
        cr_assert_gt(counts[CHORUS_ERR_INVALID_NAME] + counts[CHORUS_ERR_INVALID_UTF8], 0);
}
