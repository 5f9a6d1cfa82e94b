/*
 * libFuzzer target for the codec's decode path (and, for inputs that
 * decode, the encode path).
 *
 * Each input is decoded as every decodable record type, with Confluent
 * framing (the id comes from the input) and bare (the id is implied), under
 * the reader schemas (ids 1..3 Prediction, Actual, IndicatorObservation; 7
 * EnsembleForecast) and under writer schemas that exercise schema evolution
 * and every Avro type the bounds walk handles (ids 4..6).
 *
 * Properties checked, besides "no crash, no leak, no UB":
 *   - every failure is an input error with a non-empty reason;
 *   - every success satisfies the codec's output contract (valid names,
 *     timestamps in range, finite values);
 *   - a record decoded under its reader schema re-encodes and decodes to
 *     the same struct.
 * Run: ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
 *        ./fuzz_decode tests/fuzz/corpus/decode
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus/codec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_options(void);

/*
 * Avro-C's avro_generic_value_new() puts a 4-byte refcount in front of each
 * value, so every pointer inside a generic value is misaligned and LeakSanitizer
 * (which by default scans aligned words only) reports the codec's long-lived,
 * reused values as leaks. Scanning unaligned words makes them reachable again;
 * real leaks are still reported.
 */
const char *__lsan_default_options(void) {
        return "use_unaligned=1";
}

static chorus_codec_t *codec;
static chorus_buf_t buf;

/* Prediction v1: no model_version, lower or upper. */
static const char *writer_v1 = "{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
                               "{\"name\":\"model_id\",\"type\":\"string\"},"
                               "{\"name\":\"series\",\"type\":\"string\"},"
                               "{\"name\":\"horizon\",\"type\":\"string\"},"
                               "{\"name\":\"issued_at\",\"type\":\"int\"},"
                               "{\"name\":\"target_time\",\"type\":\"long\"},"
                               "{\"name\":\"value\",\"type\":\"float\"}]}";

/* A newer Prediction with extra fields of every complex type. */
static const char *writer_extra =
    "{\"type\":\"record\",\"name\":\"Prediction\",\"fields\":["
    "{\"name\":\"model_id\",\"type\":\"bytes\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"series\",\"type\":\"string\"},"
    "{\"name\":\"confidence\",\"type\":\"double\"},"
    "{\"name\":\"horizon\",\"type\":\"string\"},"
    "{\"name\":\"meta\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"issued_at\",\"type\":\"long\"},"
    "{\"name\":\"target_time\",\"type\":\"long\"},"
    "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"hash\",\"type\":{\"type\":\"fixed\",\"name\":\"H4\",\"size\":4}},"
    "{\"name\":\"value\",\"type\":[\"null\",\"double\",\"int\"]},"
    "{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
    "{\"name\":\"extra\",\"type\":[\"null\",\"int\",{\"type\":\"record\",\"name\":\"X\","
    "\"fields\":[{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"raw\",\"type\":\"bytes\"}]}]},"
    "{\"name\":\"upper\",\"type\":[\"null\",\"double\"]}]}";

/* An IndicatorObservation with a recursive extra field. */
static const char *writer_recursive =
    "{\"type\":\"record\",\"name\":\"IndicatorObservation\",\"fields\":["
    "{\"name\":\"indicator\",\"type\":\"string\"},"
    "{\"name\":\"chain\",\"type\":{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
    "{\"name\":\"v\",\"type\":\"int\"},"
    "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}},"
    "{\"name\":\"observed_at\",\"type\":\"long\"},"
    "{\"name\":\"value\",\"type\":\"double\"}]}";

static void must(int ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "fuzz_decode: %s\n", what);
                abort();
        }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        char e[512];

        (void)argc;
        (void)argv;
        codec = chorus_codec_new(e, sizeof(e));
        must(codec != NULL, e);
        for (int t = 0; t < 3; t++)
                must(chorus_codec_register(codec, t + 1, (chorus_record_type_t)t,
                                           chorus_record_schema_json((chorus_record_type_t)t), e,
                                           sizeof(e)) == CHORUS_OK,
                     e);
        must(chorus_codec_register(codec, 4, CHORUS_RECORD_PREDICTION, writer_v1, e, sizeof(e)) ==
                 CHORUS_OK,
             e);
        must(chorus_codec_register(codec, 5, CHORUS_RECORD_PREDICTION, writer_extra, e,
                                   sizeof(e)) == CHORUS_OK,
             e);
        must(chorus_codec_register(codec, 6, CHORUS_RECORD_INDICATOR, writer_recursive, e,
                                   sizeof(e)) == CHORUS_OK,
             e);
        must(chorus_codec_register(codec, 7, CHORUS_RECORD_FORECAST,
                                   chorus_record_schema_json(CHORUS_RECORD_FORECAST), e,
                                   sizeof(e)) == CHORUS_OK,
             e);
        must(chorus_codec_register(codec, 8, CHORUS_RECORD_FEATURE_IMPORTANCE,
                                   chorus_record_schema_json(CHORUS_RECORD_FEATURE_IMPORTANCE), e,
                                   sizeof(e)) == CHORUS_OK,
             e);
        return 0;
}

static int name_ok(const char *s) {
        return chorus_name_check(s, strlen(s)) == CHORUS_OK;
}

static int ts_ok(int64_t t) {
        return t >= CHORUS_TS_MIN && t < CHORUS_TS_MAX;
}

static void check_output(chorus_record_type_t type, const void *out) {
        if (type == CHORUS_RECORD_PREDICTION) {
                const chorus_prediction_t *p = out;
                must(name_ok(p->model_id) && name_ok(p->series) && name_ok(p->horizon), "name");
                must(ts_ok(p->issued_at) && ts_ok(p->target_time), "timestamp");
                must(isfinite(p->value), "value");
                must(!p->has_lower || isfinite(p->lower), "lower");
                must(!p->has_upper || isfinite(p->upper), "upper");
        } else if (type == CHORUS_RECORD_ACTUAL) {
                const chorus_actual_t *a = out;
                must(name_ok(a->series) && ts_ok(a->observed_at) && isfinite(a->value), "actual");
        } else if (type == CHORUS_RECORD_INDICATOR) {
                const chorus_indicator_t *i = out;
                must(name_ok(i->indicator) && ts_ok(i->observed_at) && isfinite(i->value),
                     "indicator");
        } else if (type == CHORUS_RECORD_FEATURE_IMPORTANCE) {
                const chorus_feature_importance_t *fi = out;
                must(name_ok(fi->model_id) && (!fi->has_series || name_ok(fi->series)) &&
                         ts_ok(fi->computed_at) && fi->n_features <= CHORUS_MAX_FEATURES,
                     "feature importance");
                for (size_t k = 0; k < fi->n_features; k++)
                        must(name_ok(fi->feature[k]) && isfinite(fi->importance[k]) &&
                                 (k == 0 || strcmp(fi->feature[k - 1], fi->feature[k]) < 0),
                             "feature: a name, finite, sorted and unique");
        } else {
                const chorus_forecast_t *f = out;
                must(name_ok(f->series) && name_ok(f->horizon), "forecast name");
                must(ts_ok(f->target_time) && ts_ok(f->issued_at), "forecast timestamp");
                must(isfinite(f->value) && isfinite(f->raw_value), "forecast value");
                must(!f->has_z_score || isfinite(f->z_score), "forecast z");
                must(f->n_present <= CHORUS_MAX_MODELS && f->n_expected <= CHORUS_MAX_MODELS,
                     "forecast model count");
                for (size_t k = 0; k < f->n_present; k++)
                        must(name_ok(f->present[k]) && isfinite(f->weight[k]), "forecast model");
                for (size_t k = 0; k < f->n_expected; k++)
                        must(name_ok(f->expected[k]), "forecast expected");
        }
}

typedef union out {
        chorus_prediction_t p;
        chorus_actual_t a;
        chorus_indicator_t i;
        chorus_forecast_t f;
        chorus_feature_importance_t fi;
} out_t;

static const int32_t reader_id[] = {
    [CHORUS_RECORD_PREDICTION] = 1, [CHORUS_RECORD_ACTUAL] = 2,
    [CHORUS_RECORD_INDICATOR] = 3,  [CHORUS_RECORD_FEATURE_IMPORTANCE] = 8,
    [CHORUS_RECORD_FORECAST] = 7,
};

static size_t struct_size(chorus_record_type_t type) {
        switch (type) {
        case CHORUS_RECORD_PREDICTION:
                return sizeof(chorus_prediction_t);
        case CHORUS_RECORD_ACTUAL:
                return sizeof(chorus_actual_t);
        case CHORUS_RECORD_INDICATOR:
                return sizeof(chorus_indicator_t);
        case CHORUS_RECORD_FEATURE_IMPORTANCE:
                return sizeof(chorus_feature_importance_t);
        default:
                return sizeof(chorus_forecast_t);
        }
}

static chorus_err_t one(chorus_record_type_t type, chorus_framing_t framing, int32_t bare_id,
                        const uint8_t *data, size_t size, out_t *out) {
        char e[512] = "";
        chorus_err_t err =
            chorus_codec_decode(codec, type, framing, bare_id, data, size, out, NULL, e, sizeof(e));

        if (err == CHORUS_OK)
                check_output(type, out);
        else
                must(chorus_err_is_input(err) && e[0], "error class or reason");
        return err;
}

/* Re-encode a decoded record with the reader schema and decode it again. */
static void round_trip(chorus_record_type_t type, const out_t *in) {
        out_t again;
        char e[512];

        chorus_buf_reset(&buf);
        must(chorus_codec_encode(codec, type, CHORUS_FRAMING_CONFLUENT, reader_id[type], in, &buf,
                                 e, sizeof(e)) == CHORUS_OK,
             e);
        must(chorus_codec_decode(codec, type, CHORUS_FRAMING_CONFLUENT, -1, buf.data, buf.len,
                                 &again, NULL, e, sizeof(e)) == CHORUS_OK,
             e);
        /* decode zeroes the struct first, so padding and string tails compare. */
        must(!memcmp(in, &again, struct_size(type)), "round trip changed the record");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        out_t out;

        static const chorus_record_type_t decodable[] = {
            CHORUS_RECORD_PREDICTION, CHORUS_RECORD_ACTUAL, CHORUS_RECORD_INDICATOR,
            CHORUS_RECORD_FEATURE_IMPORTANCE, CHORUS_RECORD_FORECAST};

        for (size_t t = 0; t < sizeof(decodable) / sizeof(decodable[0]); t++) {
                chorus_record_type_t type = decodable[t];

                one(type, CHORUS_FRAMING_CONFLUENT, -1, data, size, &out);
                if (one(type, CHORUS_FRAMING_BARE, reader_id[type], data, size, &out) == CHORUS_OK)
                        round_trip(type, &out);
        }
        one(CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 4, data, size, &out);
        one(CHORUS_RECORD_PREDICTION, CHORUS_FRAMING_BARE, 5, data, size, &out);
        one(CHORUS_RECORD_INDICATOR, CHORUS_FRAMING_BARE, 6, data, size, &out);
        return 0;
}
