/*
 * The Avro codec: framing, the writer-schema registry, decoding into the
 * plain structs of record.h, and encoding from them.
 *
 * Invariants:
 *   - Avro-C never sees bytes the bounds walk (walk.c) has not accepted, so
 *     its value reader cannot fail, allocate from a hostile length, or leak.
 *   - Each registered writer schema owns one Avro-C generic value, created
 *     at registration and reused for every record; each encodable record
 *     type owns one value of its reader schema. A codec is therefore NOT
 *     thread-safe: use one codec per thread (they are cheap).
 *   - The C structs and the schemas are joined by name through the field
 *     tables below (one row per struct member). chorus_codec_new() checks
 *     every row against the embedded reader schema, so a schema edit that
 *     breaks the mapping fails at startup rather than per record.
 *   - Prediction, Actual, IndicatorObservation, FeatureImportance and
 *     EnsembleForecast decode into their structs; every table type encodes.
 *   - Decoding maps writer fields to struct members by name: fields a newer
 *     writer added are skipped, fields an older writer lacks take the default
 *     from the reader schema JSON (Avro-C drops defaults when it parses), and
 *     numbers are promoted (int -> long, int/long/float -> double).
 *   - Every decoded string is length-checked against its struct limit and
 *     validated (names: SPEC §1; free text: UTF-8 without NUL) using its
 *     Avro length, never strlen(), so an embedded NUL cannot hide anything.
 *   - Encoding appends to the caller's buffer and leaves it unchanged on
 *     error; map entries and arrays are written in the given order, so the
 *     output is byte-identical across runs.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "chorus/codec.h"
#include "chorus/embedded.h"
#include "codec_int.h"

/* ====================================================================== */
/* Field tables: C struct <-> reader schema                               */
/* ====================================================================== */

typedef enum fkind {
        K_NAME,        /* string, a SPEC §1 name (decode validates) */
        K_TEXT,        /* string, free text: valid UTF-8, no NUL */
        K_LABEL,       /* string, an internal label (forecast profile, method) */
        K_TS,          /* long, timestamp in [CHORUS_TS_MIN, CHORUS_TS_MAX) */
        K_LONG,        /* long */
        K_DOUBLE,      /* double; decode requires it finite */
        K_BOOL,        /* boolean <-> int */
        K_WEIGHTS,     /* forecast: map<double>, keys present[], values weight[] */
        K_EXPECTED,    /* forecast: array<string> from expected[] */
        K_PRESENT,     /* forecast: array<string> from present[] */
        K_FALLBACK,    /* forecast: ["null","string"] from chorus_fallback_t */
        K_DETAILS,     /* alert: map<string> <-> detail_key[], detail_value[] */
        K_INT,         /* int <-> int (encode only) */
        K_VW_MODELS,   /* validation window: array<string> from models[] (encode only) */
        K_VW_WEIGHTS,  /* validation window: map<double>, keys models[], values weight[] */
        K_IMPORTANCES, /* feature importance: map<double> <-> feature[], importance[], sorted */
} fkind_t;

typedef struct fdesc {
        const char *name;
        fkind_t kind;
        int optional;   /* the reader type is ["null", T] */
        size_t off;     /* the member */
        size_t has_off; /* optional: the int that says the member is set */
        size_t cap;     /* strings: size of the char array, NUL included */
} fdesc_t;

#define MAX_FIELDS 24

#define REQ(T, m, k)                                                                               \
        { #m, k, 0, offsetof(T, m), 0, sizeof(((T *)0)->m) }
#define OPT(T, m, has, k)                                                                          \
        { #m, k, 1, offsetof(T, m), offsetof(T, has), sizeof(((T *)0)->m) }

static const fdesc_t prediction_fields[] = {
    REQ(chorus_prediction_t, model_id, K_NAME),
    OPT(chorus_prediction_t, model_version, has_model_version, K_TEXT),
    REQ(chorus_prediction_t, series, K_NAME),
    REQ(chorus_prediction_t, horizon, K_NAME),
    REQ(chorus_prediction_t, issued_at, K_TS),
    REQ(chorus_prediction_t, target_time, K_TS),
    REQ(chorus_prediction_t, value, K_DOUBLE),
    OPT(chorus_prediction_t, lower, has_lower, K_DOUBLE),
    OPT(chorus_prediction_t, upper, has_upper, K_DOUBLE),
};

static const fdesc_t actual_fields[] = {
    REQ(chorus_actual_t, series, K_NAME),
    REQ(chorus_actual_t, observed_at, K_TS),
    REQ(chorus_actual_t, value, K_DOUBLE),
    OPT(chorus_actual_t, source, has_source, K_TEXT),
};

static const fdesc_t indicator_fields[] = {
    REQ(chorus_indicator_t, indicator, K_NAME),
    REQ(chorus_indicator_t, observed_at, K_TS),
    REQ(chorus_indicator_t, value, K_DOUBLE),
};

static const fdesc_t feature_importance_fields[] = {
    REQ(chorus_feature_importance_t, model_id, K_NAME),
    OPT(chorus_feature_importance_t, series, has_series, K_NAME),
    REQ(chorus_feature_importance_t, computed_at, K_TS),
    {"importances", K_IMPORTANCES, 0, 0, 0, 0},
};

static const fdesc_t forecast_fields[] = {
    REQ(chorus_forecast_t, series, K_NAME),
    REQ(chorus_forecast_t, horizon, K_NAME),
    REQ(chorus_forecast_t, target_time, K_TS),
    REQ(chorus_forecast_t, issued_at, K_TS),
    REQ(chorus_forecast_t, revision, K_LONG),
    REQ(chorus_forecast_t, value, K_DOUBLE),
    REQ(chorus_forecast_t, raw_value, K_DOUBLE),
    {"weights", K_WEIGHTS, 0, 0, 0, 0},
    {"models_expected", K_EXPECTED, 0, 0, 0, 0},
    {"models_present", K_PRESENT, 0, 0, 0, 0},
    REQ(chorus_forecast_t, complete, K_BOOL),
    REQ(chorus_forecast_t, weighting_method, K_LABEL),
    REQ(chorus_forecast_t, profile, K_LABEL),
    OPT(chorus_forecast_t, regime, has_regime, K_LABEL),
    OPT(chorus_forecast_t, z_score, has_z_score, K_DOUBLE),
    REQ(chorus_forecast_t, z_adjusted, K_BOOL),
    REQ(chorus_forecast_t, clipped, K_BOOL),
    {"fallback", K_FALLBACK, 1, offsetof(chorus_forecast_t, fallback), 0, 0},
};

static const fdesc_t alert_fields[] = {
    REQ(chorus_alert_t, fingerprint, K_TEXT),
    REQ(chorus_alert_t, type, K_LABEL),
    REQ(chorus_alert_t, severity, K_LABEL),
    REQ(chorus_alert_t, state, K_LABEL),
    OPT(chorus_alert_t, series, has_series, K_NAME),
    OPT(chorus_alert_t, horizon, has_horizon, K_NAME),
    OPT(chorus_alert_t, model_id, has_model_id, K_NAME),
    OPT(chorus_alert_t, indicator, has_indicator, K_NAME),
    REQ(chorus_alert_t, value, K_DOUBLE),
    REQ(chorus_alert_t, threshold, K_DOUBLE),
    REQ(chorus_alert_t, event_time, K_TS),
    REQ(chorus_alert_t, message, K_TEXT),
    {"details", K_DETAILS, 0, 0, 0, 0},
};

static const fdesc_t validation_fields[] = {
    REQ(chorus_validation_window_t, series, K_NAME),
    REQ(chorus_validation_window_t, horizon, K_NAME),
    REQ(chorus_validation_window_t, profile, K_LABEL),
    REQ(chorus_validation_window_t, window_id, K_LONG),
    REQ(chorus_validation_window_t, window_start, K_TS),
    REQ(chorus_validation_window_t, window_end, K_TS),
    REQ(chorus_validation_window_t, val_rmse, K_DOUBLE),
    REQ(chorus_validation_window_t, test_rmse, K_DOUBLE),
    REQ(chorus_validation_window_t, equal_test_rmse, K_DOUBLE),
    OPT(chorus_validation_window_t, divergence, has_divergence, K_DOUBLE),
    REQ(chorus_validation_window_t, test_points, K_LONG),
    REQ(chorus_validation_window_t, is_overfitting, K_BOOL),
    REQ(chorus_validation_window_t, model_count, K_INT),
    {"models_used", K_VW_MODELS, 0, 0, 0, 0},
    {"weights", K_VW_WEIGHTS, 0, 0, 0, 0},
};

#define TABLE(t) t, sizeof(t) / sizeof(t[0])

static const struct tdesc {
        const char *file;
        const char *record;
        const fdesc_t *fields; /* NULL: no C struct (yet) */
        size_t n_fields;
        size_t struct_size;
        int decodable;
} types[CHORUS_RECORD__COUNT] = {
    [CHORUS_RECORD_PREDICTION] = {"prediction.avsc", "Prediction", TABLE(prediction_fields),
                                  sizeof(chorus_prediction_t), 1},
    [CHORUS_RECORD_ACTUAL] = {"actual.avsc", "Actual", TABLE(actual_fields),
                              sizeof(chorus_actual_t), 1},
    [CHORUS_RECORD_INDICATOR] = {"indicator_observation.avsc", "IndicatorObservation",
                                 TABLE(indicator_fields), sizeof(chorus_indicator_t), 1},
    [CHORUS_RECORD_FEATURE_IMPORTANCE] = {"feature_importance.avsc", "FeatureImportance",
                                          TABLE(feature_importance_fields),
                                          sizeof(chorus_feature_importance_t), 1},
    [CHORUS_RECORD_FORECAST] = {"ensemble_forecast.avsc", "EnsembleForecast",
                                TABLE(forecast_fields), sizeof(chorus_forecast_t), 1},
    [CHORUS_RECORD_ALERT] = {"alert.avsc", "Alert", TABLE(alert_fields), sizeof(chorus_alert_t), 1},
    [CHORUS_RECORD_REGIME_CHANGE] = {"regime_change.avsc", "RegimeChange", NULL, 0, 0, 0},
    [CHORUS_RECORD_VALIDATION_WINDOW] = {"validation_window.avsc", "ValidationWindow",
                                         TABLE(validation_fields),
                                         sizeof(chorus_validation_window_t), 0},
};

/* ====================================================================== */
/* Codec state                                                            */
/* ====================================================================== */

/* The reader side of one record type. */
typedef struct rtype {
        avro_schema_t schema;
        json_t *json;              /* for defaults */
        avro_value_iface_t *iface; /* encodable types only */
        avro_value_t value;        /* reused for every encode */
        int has_value;
        int idx[MAX_FIELDS];         /* reader field index per table row */
        int null_branch[MAX_FIELDS]; /* optional rows: branch indexes */
        int val_branch[MAX_FIELDS];
        json_t *def[MAX_FIELDS]; /* "default" per row, or NULL (borrowed from json) */
} rtype_t;

/* One registered writer schema. */
typedef struct writer {
        int32_t id;
        chorus_record_type_t type;
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t value; /* reused for every decode */
        int has_value;
        chorus_codec_walk_t *walk;
        int idx[MAX_FIELDS]; /* writer field index per table row, -1 if absent */
} writer_t;

struct chorus_codec_s {
        rtype_t rt[CHORUS_RECORD__COUNT];
        writer_t **writers; /* sorted by id */
        size_t n_writers, cap_writers;
        avro_reader_t reader;
        avro_writer_t writer;
};

static const char empty_buf[1];

const char *chorus_record_type_name(chorus_record_type_t type) {
        if ((unsigned)type >= CHORUS_RECORD__COUNT)
                return "unknown";
        return types[type].record;
}

const char *chorus_record_schema_json(chorus_record_type_t type) {
        const char *s;

        if ((unsigned)type >= CHORUS_RECORD__COUNT)
                return "";
        s = chorus_embedded_get(types[type].file);
        return s ? s : "";
}

/* ====================================================================== */
/* Buffers                                                                */
/* ====================================================================== */

void chorus_buf_reset(chorus_buf_t *buf) {
        if (buf)
                buf->len = 0;
}

void chorus_buf_destroy(chorus_buf_t *buf) {
        if (!buf)
                return;
        free(buf->data);
        buf->data = NULL;
        buf->len = buf->cap = 0;
}

/* Make room for @p extra more bytes. */
static int buf_reserve(chorus_buf_t *buf, size_t extra) {
        size_t ncap;
        unsigned char *nd;

        if (extra <= buf->cap - buf->len)
                return 0;
        if (extra > SIZE_MAX / 2 - buf->len)
                return -1;
        ncap = buf->cap ? buf->cap : 256;
        while (ncap - buf->len < extra)
                ncap *= 2;
        if (!(nd = realloc(buf->data, ncap)))
                return -1;
        buf->data = nd;
        buf->cap = ncap;
        return 0;
}

/* ====================================================================== */
/* Construction                                                           */
/* ====================================================================== */

static avro_schema_t deref(avro_schema_t s) {
        for (int i = 0; s && is_avro_link(s) && i < 100; i++)
                s = avro_schema_link_target(s);
        return s;
}

/* Does the reader type @p s suit table kind @p k? */
static int kind_matches(fkind_t k, avro_schema_t s) {
        avro_type_t t;

        s = deref(s);
        if (!s)
                return 0;
        t = avro_typeof(s);
        switch (k) {
        case K_NAME:
        case K_TEXT:
        case K_LABEL:
        case K_FALLBACK:
                return t == AVRO_STRING;
        case K_TS:
        case K_LONG:
                return t == AVRO_INT64;
        case K_DOUBLE:
                return t == AVRO_DOUBLE;
        case K_BOOL:
                return t == AVRO_BOOLEAN;
        case K_INT:
                return t == AVRO_INT32;
        case K_WEIGHTS:
        case K_VW_WEIGHTS:
        case K_IMPORTANCES:
                return t == AVRO_MAP && is_avro_double(deref(avro_schema_map_values(s)));
        case K_EXPECTED:
        case K_PRESENT:
        case K_VW_MODELS:
                return t == AVRO_ARRAY && is_avro_string(deref(avro_schema_array_items(s)));
        case K_DETAILS:
                return t == AVRO_MAP && is_avro_string(deref(avro_schema_map_values(s)));
        }
        return 0;
}

/* Is JSON default @p d usable for a row of kind @p k? */
static int default_matches(const fdesc_t *fd, json_t *d) {
        if (json_is_null(d))
                return fd->optional;
        switch (fd->kind) {
        case K_NAME:
        case K_TEXT:
        case K_LABEL:
                return json_is_string(d);
        case K_TS:
        case K_LONG:
                return json_is_integer(d);
        case K_DOUBLE:
                return json_is_number(d);
        case K_BOOL:
                return json_is_boolean(d);
        default:
                return 0;
        }
}

static json_t *json_field_obj(json_t *record_json, const char *name) {
        json_t *fields = json_object_get(record_json, "fields");
        size_t i;
        json_t *f;

        json_array_foreach(fields, i, f) {
                json_t *n = json_object_get(f, "name");
                if (json_is_string(n) && !strcmp(json_string_value(n), name))
                        return f;
        }
        return NULL;
}

/* Join table rows to the reader schema; see the invariants at the top. */
static int rtype_bind(rtype_t *rt, const struct tdesc *td, char *errstr, size_t errstr_size) {
        if (td->n_fields > MAX_FIELDS) {
                chorus_seterr(errstr, errstr_size, "%s: too many fields", td->record);
                return -1;
        }
        for (size_t i = 0; i < td->n_fields; i++) {
                const fdesc_t *fd = &td->fields[i];
                avro_schema_t fs;
                json_t *fobj;
                int idx = avro_schema_record_field_get_index(rt->schema, fd->name);

                if (idx < 0) {
                        chorus_seterr(errstr, errstr_size, "%s: reader schema has no field %s",
                                      td->record, fd->name);
                        return -1;
                }
                rt->idx[i] = idx;
                rt->null_branch[i] = rt->val_branch[i] = -1;
                fs = deref(avro_schema_record_field_get_by_index(rt->schema, idx));
                if (fd->optional) {
                        size_t n = is_avro_union(fs) ? avro_schema_union_size(fs) : 0;
                        for (size_t b = 0; b < n; b++) {
                                avro_schema_t bs = deref(avro_schema_union_branch(fs, (int)b));
                                if (is_avro_null(bs))
                                        rt->null_branch[i] = (int)b;
                                else if (kind_matches(fd->kind, bs))
                                        rt->val_branch[i] = (int)b;
                        }
                        if (n != 2 || rt->null_branch[i] < 0 || rt->val_branch[i] < 0) {
                                chorus_seterr(errstr, errstr_size,
                                              "%s: field %s is not [\"null\", T] of the "
                                              "type the C struct expects",
                                              td->record, fd->name);
                                return -1;
                        }
                } else if (!kind_matches(fd->kind, fs)) {
                        chorus_seterr(errstr, errstr_size,
                                      "%s: field %s has a type the C struct cannot hold",
                                      td->record, fd->name);
                        return -1;
                }
                fobj = json_field_obj(rt->json, fd->name);
                rt->def[i] = fobj ? json_object_get(fobj, "default") : NULL;
                if (rt->def[i] && !default_matches(fd, rt->def[i])) {
                        chorus_seterr(errstr, errstr_size,
                                      "%s: field %s has a default the C struct cannot hold",
                                      td->record, fd->name);
                        return -1;
                }
        }
        return 0;
}

static int rtype_init(rtype_t *rt, chorus_record_type_t type, char *errstr, size_t errstr_size) {
        const struct tdesc *td = &types[type];
        const char *text = chorus_embedded_get(td->file);
        json_error_t jerr;

        if (!text) {
                chorus_seterr(errstr, errstr_size, "embedded schema %s is missing", td->file);
                return -1;
        }
        if (avro_schema_from_json_length(text, strlen(text), &rt->schema)) {
                rt->schema = NULL;
                chorus_seterr(errstr, errstr_size, "schema %s: %.200s", td->file, avro_strerror());
                return -1;
        }
        if (!(rt->json = json_loads(text, 0, &jerr))) {
                chorus_seterr(errstr, errstr_size, "schema %s: line %d: %s", td->file, jerr.line,
                              jerr.text);
                return -1;
        }
        if (!is_avro_record(rt->schema) || strcmp(avro_schema_name(rt->schema), td->record)) {
                chorus_seterr(errstr, errstr_size, "schema %s: not a record named %s", td->file,
                              td->record);
                return -1;
        }
        if (td->fields && rtype_bind(rt, td, errstr, errstr_size))
                return -1;
        if (td->fields) {
                if (!(rt->iface = avro_generic_class_from_schema(rt->schema)) ||
                    avro_generic_value_new(rt->iface, &rt->value)) {
                        chorus_seterr(errstr, errstr_size, "schema %s: %.200s", td->file,
                                      avro_strerror());
                        return -1;
                }
                rt->has_value = 1;
        }
        return 0;
}

static void rtype_clear(rtype_t *rt) {
        if (rt->has_value)
                avro_value_decref(&rt->value);
        if (rt->iface)
                avro_value_iface_decref(rt->iface);
        if (rt->schema)
                avro_schema_decref(rt->schema);
        json_decref(rt->json);
        memset(rt, 0, sizeof(*rt));
}

static void writer_destroy(writer_t *w) {
        if (!w)
                return;
        if (w->has_value)
                avro_value_decref(&w->value);
        if (w->iface)
                avro_value_iface_decref(w->iface);
        chorus_codec_walk_destroy(w->walk);
        if (w->schema)
                avro_schema_decref(w->schema);
        free(w);
}

chorus_codec_t *chorus_codec_new(char *errstr, size_t errstr_size) {
        chorus_codec_t *codec = calloc(1, sizeof(*codec));

        if (!codec) {
                chorus_seterr(errstr, errstr_size, "out of memory");
                return NULL;
        }
        for (int t = 0; t < CHORUS_RECORD__COUNT; t++)
                if (rtype_init(&codec->rt[t], (chorus_record_type_t)t, errstr, errstr_size))
                        goto fail;
        if (!(codec->reader = avro_reader_memory(empty_buf, 0)) ||
            !(codec->writer = avro_writer_memory(empty_buf, 0))) {
                chorus_seterr(errstr, errstr_size, "out of memory");
                goto fail;
        }
        return codec;

fail:
        chorus_codec_destroy(codec);
        return NULL;
}

void chorus_codec_destroy(chorus_codec_t *codec) {
        if (!codec)
                return;
        for (size_t i = 0; i < codec->n_writers; i++)
                writer_destroy(codec->writers[i]);
        free(codec->writers);
        for (int t = 0; t < CHORUS_RECORD__COUNT; t++)
                rtype_clear(&codec->rt[t]);
        if (codec->reader)
                avro_reader_free(codec->reader);
        if (codec->writer)
                avro_writer_free(codec->writer);
        free(codec);
}

/* ====================================================================== */
/* Registry                                                               */
/* ====================================================================== */

/* Index of @p id in the sorted registry, or where it would go. */
static size_t writer_pos(const chorus_codec_t *codec, int32_t id) {
        size_t lo = 0, hi = codec->n_writers;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (codec->writers[mid]->id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static writer_t *writer_find(const chorus_codec_t *codec, int32_t id) {
        size_t pos = writer_pos(codec, id);

        if (pos < codec->n_writers && codec->writers[pos]->id == id)
                return codec->writers[pos];
        return NULL;
}

chorus_err_t chorus_codec_register(chorus_codec_t *codec, int32_t schema_id,
                                   chorus_record_type_t type, const char *schema_json, char *errstr,
                                   size_t errstr_size) {
        const struct tdesc *td;
        writer_t *w = NULL;
        json_t *json = NULL;
        json_error_t jerr;
        char why[512];
        size_t pos;

        if (!codec || !schema_json || (unsigned)type >= CHORUS_RECORD__COUNT) {
                chorus_seterr(errstr, errstr_size, "invalid argument");
                return CHORUS_ERR_INVALID_ARG;
        }
        td = &types[type];
        /* jansson first: its syntax errors carry a line and column. */
        if (!(json = json_loads(schema_json, JSON_DECODE_ANY, &jerr))) {
                chorus_seterr(errstr, errstr_size,
                              "schema id %" PRId32 " (%s): invalid JSON at line %d column %d: %s",
                              schema_id, td->record, jerr.line, jerr.column, jerr.text);
                goto fail;
        }
        json_decref(json);
        if (!(w = calloc(1, sizeof(*w)))) {
                chorus_seterr(errstr, errstr_size, "out of memory");
                goto fail;
        }
        w->id = schema_id;
        w->type = type;
        if (avro_schema_from_json_length(schema_json, strlen(schema_json), &w->schema)) {
                w->schema = NULL;
                /* avro_strerror() accumulates old messages; only its start is
                 * this error's. */
                chorus_seterr(errstr, errstr_size,
                              "schema id %" PRId32 " (%s): not a valid Avro schema: %.160s",
                              schema_id, td->record, avro_strerror());
                goto fail;
        }
        if (chorus_codec_resolve_check(w->schema, codec->rt[type].schema, codec->rt[type].json, why,
                                       sizeof(why))) {
                chorus_seterr(errstr, errstr_size, "schema id %" PRId32 " cannot be read as %s: %s",
                              schema_id, td->record, why);
                goto fail;
        }
        if (!(w->walk = chorus_codec_walk_new(w->schema, why, sizeof(why)))) {
                chorus_seterr(errstr, errstr_size, "schema id %" PRId32 " (%s): %s", schema_id,
                              td->record, why);
                goto fail;
        }
        if (!(w->iface = avro_generic_class_from_schema(w->schema)) ||
            avro_generic_value_new(w->iface, &w->value)) {
                chorus_seterr(errstr, errstr_size, "schema id %" PRId32 " (%s): %.160s", schema_id,
                              td->record, avro_strerror());
                goto fail;
        }
        w->has_value = 1;
        for (size_t i = 0; i < td->n_fields; i++) {
                /* The resolve check guarantees a missing field has a default. */
                w->idx[i] =
                    avro_schema_record_field_get_index(deref(w->schema), td->fields[i].name);
        }

        pos = writer_pos(codec, schema_id);
        if (pos < codec->n_writers && codec->writers[pos]->id == schema_id) {
                writer_destroy(codec->writers[pos]);
                codec->writers[pos] = w;
                return CHORUS_OK;
        }
        if (codec->n_writers == codec->cap_writers) {
                size_t ncap = codec->cap_writers ? codec->cap_writers * 2 : 8;
                writer_t **nw = realloc(codec->writers, ncap * sizeof(*nw));
                if (!nw) {
                        chorus_seterr(errstr, errstr_size, "out of memory");
                        goto fail;
                }
                codec->writers = nw;
                codec->cap_writers = ncap;
        }
        memmove(&codec->writers[pos + 1], &codec->writers[pos],
                (codec->n_writers - pos) * sizeof(*codec->writers));
        codec->writers[pos] = w;
        codec->n_writers++;
        return CHORUS_OK;

fail:
        writer_destroy(w);
        return CHORUS_ERR_CONFIG;
}

/* ====================================================================== */
/* Decoding                                                               */
/* ====================================================================== */

/* A field value as read from Avro or from a JSON default, before it is
 * stored into the struct. */
typedef struct scalar {
        enum { S_NULL, S_STR, S_LONG, S_DOUBLE, S_BOOL, S_OTHER } t;
        const char *s;
        size_t n;
        int64_t l;
        double d;
        int b;
        const char *other; /* S_OTHER: the Avro type, for the message */
} scalar_t;

static void scalar_from_value(avro_value_t *v, scalar_t *sc) {
        avro_value_t branch;
        const void *p;
        size_t size;
        int32_t i32;
        float f;
        int b;

        /* A writer union resolves to its current branch. Unions do not nest
         * directly in Avro, so one step is enough; the bound is belt and
         * braces. */
        for (int i = 0; i < 4 && avro_value_get_type(v) == AVRO_UNION; i++) {
                if (avro_value_get_current_branch(v, &branch))
                        break;
                *v = branch;
        }
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                sc->t = S_NULL;
                return;
        case AVRO_STRING:
                /* Avro-C string sizes count the NUL terminator. */
                if (avro_value_get_string(v, (const char **)&p, &size))
                        break;
                sc->t = S_STR;
                sc->s = p;
                sc->n = size ? size - 1 : 0;
                return;
        case AVRO_BYTES:
                if (avro_value_get_bytes(v, &p, &size))
                        break;
                sc->t = S_STR;
                sc->s = p;
                sc->n = size;
                return;
        case AVRO_INT32:
                if (avro_value_get_int(v, &i32))
                        break;
                sc->t = S_LONG;
                sc->l = i32;
                return;
        case AVRO_INT64:
                if (avro_value_get_long(v, &sc->l))
                        break;
                sc->t = S_LONG;
                return;
        case AVRO_FLOAT:
                if (avro_value_get_float(v, &f))
                        break;
                sc->t = S_DOUBLE;
                sc->d = f;
                return;
        case AVRO_DOUBLE:
                if (avro_value_get_double(v, &sc->d))
                        break;
                sc->t = S_DOUBLE;
                return;
        case AVRO_BOOLEAN:
                if (avro_value_get_boolean(v, &b))
                        break;
                sc->t = S_BOOL;
                sc->b = b;
                return;
        default:
                break;
        }
        sc->t = S_OTHER;
        sc->other = "a complex type";
}

static void scalar_from_json(json_t *d, scalar_t *sc) {
        if (json_is_string(d)) {
                sc->t = S_STR;
                sc->s = json_string_value(d);
                sc->n = json_string_length(d);
        } else if (json_is_integer(d)) {
                sc->t = S_LONG;
                sc->l = (int64_t)json_integer_value(d);
        } else if (json_is_real(d)) {
                sc->t = S_DOUBLE;
                sc->d = json_real_value(d);
        } else if (json_is_boolean(d)) {
                sc->t = S_BOOL;
                sc->b = json_is_true(d);
        } else {
                sc->t = S_NULL;
        }
}

static const char *scalar_type(const scalar_t *sc) {
        switch (sc->t) {
        case S_NULL:
                return "null";
        case S_STR:
                return "string";
        case S_LONG:
                return "an integer";
        case S_DOUBLE:
                return "a floating-point number";
        case S_BOOL:
                return "boolean";
        case S_OTHER:
                break;
        }
        return sc->other;
}

/* Store one field into @p out and validate it. */
static chorus_err_t store(const fdesc_t *fd, const scalar_t *sc, unsigned char *out, char *errstr,
                          size_t errstr_size) {
        char why[160];
        chorus_err_t err;

        if (sc->t == S_NULL) {
                if (!fd->optional) {
                        chorus_seterr(errstr, errstr_size,
                                      "field %s: null, but the field is required", fd->name);
                        return CHORUS_ERR_MALFORMED;
                }
                *(int *)(void *)(out + fd->has_off) = 0;
                return CHORUS_OK;
        }
        switch (fd->kind) {
        case K_NAME:
        case K_TEXT:
        case K_LABEL:
                if (sc->t != S_STR)
                        break;
                if (sc->n > fd->cap - 1) {
                        chorus_seterr(errstr, errstr_size, "field %s: %zu bytes exceeds %zu",
                                      fd->name, sc->n, fd->cap - 1);
                        return CHORUS_ERR_ABSURD_LENGTH;
                }
                if (fd->kind == K_NAME)
                        err = chorus_codec_name_explain(sc->s, sc->n, why, sizeof(why));
                else if ((err = chorus_codec_utf8_check(sc->s, sc->n, why, sizeof(why))) ==
                             CHORUS_OK &&
                         sc->n && memchr(sc->s, '\0', sc->n)) {
                        snprintf(why, sizeof(why), "contains a NUL byte");
                        err = CHORUS_ERR_INVALID_UTF8;
                }
                if (err) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s", fd->name, why);
                        return err;
                }
                if (sc->n)
                        memcpy(out + fd->off, sc->s, sc->n);
                out[fd->off + sc->n] = '\0';
                goto present;
        case K_TS:
        case K_LONG:
                if (sc->t != S_LONG)
                        break;
                if (fd->kind == K_TS && (sc->l < CHORUS_TS_MIN || sc->l >= CHORUS_TS_MAX)) {
                        chorus_seterr(errstr, errstr_size,
                                      "field %s: %" PRId64 " ms is outside [1970-01-01, "
                                      "2200-01-01)",
                                      fd->name, sc->l);
                        return CHORUS_ERR_BAD_TIMESTAMP;
                }
                memcpy(out + fd->off, &sc->l, sizeof(int64_t));
                goto present;
        case K_DOUBLE: {
                double d;

                if (sc->t == S_DOUBLE)
                        d = sc->d;
                else if (sc->t == S_LONG)
                        d = (double)sc->l;
                else
                        break;
                if (!isfinite(d)) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s", fd->name,
                                      isnan(d) ? "NaN"
                                      : d > 0  ? "+Inf"
                                               : "-Inf");
                        return CHORUS_ERR_NON_FINITE;
                }
                memcpy(out + fd->off, &d, sizeof(double));
                goto present;
        }
        case K_BOOL:
                if (sc->t != S_BOOL)
                        break;
                *(int *)(void *)(out + fd->off) = sc->b != 0;
                goto present;
        default:
                chorus_seterr(errstr, errstr_size, "field %s: not decodable", fd->name);
                return CHORUS_ERR_UNSUPPORTED;
        }
        chorus_seterr(errstr, errstr_size, "field %s: the writer sent %s", fd->name,
                      scalar_type(sc));
        return CHORUS_ERR_MALFORMED;

present:
        if (fd->optional)
                *(int *)(void *)(out + fd->has_off) = 1;
        return CHORUS_OK;
}

/* Resolve a writer union to its current branch. */
static void unwrap(avro_value_t *v) {
        avro_value_t branch;

        for (int i = 0; i < 4 && avro_value_get_type(v) == AVRO_UNION; i++) {
                if (avro_value_get_current_branch(v, &branch))
                        return;
                *v = branch;
        }
}

/* models_expected / models_present: array<string> into chorus_name_t[]. */
static chorus_err_t store_names(const fdesc_t *fd, avro_value_t *v, chorus_forecast_t *fc,
                                char *errstr, size_t errstr_size) {
        chorus_name_t *names = fd->kind == K_PRESENT ? fc->present : fc->expected;
        size_t *n = fd->kind == K_PRESENT ? &fc->n_present : &fc->n_expected;
        char why[160];
        chorus_err_t err;
        size_t count;

        unwrap(v);
        if (avro_value_get_type(v) != AVRO_ARRAY || avro_value_get_size(v, &count)) {
                chorus_seterr(errstr, errstr_size, "field %s: not an array", fd->name);
                return CHORUS_ERR_MALFORMED;
        }
        if (count > CHORUS_MAX_MODELS) {
                chorus_seterr(errstr, errstr_size, "field %s: %zu models exceeds %d", fd->name,
                              count, CHORUS_MAX_MODELS);
                return CHORUS_ERR_ABSURD_LENGTH;
        }
        for (size_t i = 0; i < count; i++) {
                scalar_t sc = {0};
                avro_value_t e;

                if (avro_value_get_by_index(v, i, &e, NULL))
                        return CHORUS_ERR_MALFORMED;
                scalar_from_value(&e, &sc);
                if (sc.t != S_STR) {
                        chorus_seterr(errstr, errstr_size, "field %s[%zu]: not a string", fd->name,
                                      i);
                        return CHORUS_ERR_MALFORMED;
                }
                if (sc.n > CHORUS_NAME_MAX) {
                        chorus_seterr(errstr, errstr_size, "field %s[%zu]: %zu bytes exceeds %d",
                                      fd->name, i, sc.n, CHORUS_NAME_MAX);
                        return CHORUS_ERR_ABSURD_LENGTH;
                }
                if ((err = chorus_codec_name_explain(sc.s, sc.n, why, sizeof(why)))) {
                        chorus_seterr(errstr, errstr_size, "field %s[%zu]: %s", fd->name, i, why);
                        return err;
                }
                memcpy(names[i], sc.s, sc.n);
                names[i][sc.n] = '\0';
        }
        *n = count;
        return CHORUS_OK;
}

/* weights: map<double> into weight[], aligned with present[] (decoded first). */
static chorus_err_t store_weights(const fdesc_t *fd, avro_value_t *v, chorus_forecast_t *fc,
                                  char *errstr, size_t errstr_size) {
        size_t count;

        unwrap(v);
        if (avro_value_get_type(v) != AVRO_MAP || avro_value_get_size(v, &count)) {
                chorus_seterr(errstr, errstr_size, "field %s: not a map", fd->name);
                return CHORUS_ERR_MALFORMED;
        }
        if (count != fc->n_present) {
                chorus_seterr(errstr, errstr_size, "field %s: %zu entries for %zu models present",
                              fd->name, count, fc->n_present);
                return count > CHORUS_MAX_MODELS ? CHORUS_ERR_ABSURD_LENGTH : CHORUS_ERR_MALFORMED;
        }
        for (size_t i = 0; i < fc->n_present; i++) {
                scalar_t sc = {0};
                avro_value_t e;

                if (avro_value_get_by_name(v, fc->present[i], &e, NULL)) {
                        chorus_seterr(errstr, errstr_size, "field %s: no entry for %s", fd->name,
                                      fc->present[i]);
                        return CHORUS_ERR_MALFORMED;
                }
                scalar_from_value(&e, &sc);
                if (sc.t == S_LONG) {
                        sc.t = S_DOUBLE;
                        sc.d = (double)sc.l;
                }
                if (sc.t != S_DOUBLE) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s is not a number", fd->name,
                                      fc->present[i]);
                        return CHORUS_ERR_MALFORMED;
                }
                if (!isfinite(sc.d)) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s is not finite", fd->name,
                                      fc->present[i]);
                        return CHORUS_ERR_NON_FINITE;
                }
                fc->weight[i] = sc.d;
        }
        return CHORUS_OK;
}

/* details: map<string> into detail_key[] / detail_value[], in writer order. */
static chorus_err_t store_details(const fdesc_t *fd, avro_value_t *v, chorus_alert_t *a,
                                  char *errstr, size_t errstr_size) {
        size_t count;

        unwrap(v);
        if (avro_value_get_type(v) != AVRO_MAP || avro_value_get_size(v, &count)) {
                chorus_seterr(errstr, errstr_size, "field %s: not a map", fd->name);
                return CHORUS_ERR_MALFORMED;
        }
        if (count > CHORUS_ALERT_DETAILS_MAX) {
                chorus_seterr(errstr, errstr_size, "field %s: %zu entries exceeds %d", fd->name,
                              count, CHORUS_ALERT_DETAILS_MAX);
                return CHORUS_ERR_ABSURD_LENGTH;
        }
        for (size_t i = 0; i < count; i++) {
                const char *key = NULL;
                scalar_t sc = {0};
                avro_value_t e;
                size_t klen;

                if (avro_value_get_by_index(v, i, &e, &key) || !key)
                        return CHORUS_ERR_MALFORMED;
                scalar_from_value(&e, &sc);
                klen = strlen(key);
                if (sc.t != S_STR || memchr(sc.s, '\0', sc.n)) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s is not a string", fd->name,
                                      key);
                        return CHORUS_ERR_MALFORMED;
                }
                if (klen > CHORUS_ALERT_DETAIL_KEY_MAX || sc.n > CHORUS_ALERT_DETAIL_VALUE_MAX) {
                        chorus_seterr(errstr, errstr_size, "field %s: entry %zu is too long",
                                      fd->name, i);
                        return CHORUS_ERR_ABSURD_LENGTH;
                }
                memcpy(a->detail_key[i], key, klen + 1);
                memcpy(a->detail_value[i], sc.s, sc.n);
                a->detail_value[i][sc.n] = '\0';
        }
        a->n_details = count;
        return CHORUS_OK;
}

/* importances: map<double> into feature[] / importance[], sorted by name.
 * The map is read in writer order, then each entry is moved to its rank, so
 * the record is the same whatever order the writer used. */
static chorus_err_t store_importances(const fdesc_t *fd, avro_value_t *v,
                                      chorus_feature_importance_t *fi, char *errstr,
                                      size_t errstr_size) {
        size_t rank[CHORUS_MAX_FEATURES];
        char why[160];
        chorus_err_t err;
        size_t count;

        unwrap(v);
        if (avro_value_get_type(v) != AVRO_MAP || avro_value_get_size(v, &count)) {
                chorus_seterr(errstr, errstr_size, "field %s: not a map", fd->name);
                return CHORUS_ERR_MALFORMED;
        }
        if (count > CHORUS_MAX_FEATURES) {
                chorus_seterr(errstr, errstr_size, "field %s: %zu features exceeds %d", fd->name,
                              count, CHORUS_MAX_FEATURES);
                return CHORUS_ERR_ABSURD_LENGTH;
        }
        for (size_t i = 0; i < count; i++) {
                scalar_t sc = {0};
                avro_value_t e;
                const char *key = NULL;
                size_t n;

                if (avro_value_get_by_index(v, i, &e, &key) || !key)
                        return CHORUS_ERR_MALFORMED;
                /* Avro-C keeps map keys as C strings (the walk has bounded
                 * their length): a key with an embedded NUL reads as its
                 * part before the NUL, which the name rules then judge. */
                n = strlen(key);
                if (n > CHORUS_NAME_MAX) {
                        chorus_seterr(errstr, errstr_size,
                                      "field %s: a feature name of %zu bytes exceeds %d", fd->name,
                                      n, CHORUS_NAME_MAX);
                        return CHORUS_ERR_ABSURD_LENGTH;
                }
                if ((err = chorus_codec_name_explain(key, n, why, sizeof(why)))) {
                        chorus_seterr(errstr, errstr_size, "field %s: feature name: %s", fd->name,
                                      why);
                        return err;
                }
                scalar_from_value(&e, &sc);
                if (sc.t == S_LONG) {
                        sc.t = S_DOUBLE;
                        sc.d = (double)sc.l;
                }
                if (sc.t != S_DOUBLE) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s is not a number", fd->name,
                                      key);
                        return CHORUS_ERR_MALFORMED;
                }
                if (!isfinite(sc.d)) {
                        chorus_seterr(errstr, errstr_size, "field %s: %s is %s", fd->name, key,
                                      isnan(sc.d) ? "NaN"
                                      : sc.d > 0  ? "+Inf"
                                                  : "-Inf");
                        return CHORUS_ERR_NON_FINITE;
                }
                memcpy(fi->feature[i], key, n + 1);
                fi->importance[i] = sc.d;
        }
        /* Map keys are unique, so the ranks are a permutation; apply it by
         * following its cycles (at most count swaps). */
        for (size_t i = 0; i < count; i++) {
                rank[i] = 0;
                for (size_t j = 0; j < count; j++)
                        if (strcmp(fi->feature[j], fi->feature[i]) < 0)
                                rank[i]++;
        }
        for (size_t i = 0; i < count; i++)
                while (rank[i] != i) {
                        size_t r = rank[i], tr;
                        chorus_name_t tn;
                        double td;

                        if (rank[r] == r) /* two equal names: cannot happen in a map */
                                return CHORUS_ERR_MALFORMED;
                        memcpy(tn, fi->feature[r], sizeof(tn));
                        memcpy(fi->feature[r], fi->feature[i], sizeof(tn));
                        memcpy(fi->feature[i], tn, sizeof(tn));
                        td = fi->importance[r];
                        fi->importance[r] = fi->importance[i];
                        fi->importance[i] = td;
                        tr = rank[r];
                        rank[r] = r;
                        rank[i] = tr;
                }
        fi->n_features = count;
        return CHORUS_OK;
}

static chorus_err_t store_fallback(const fdesc_t *fd, const scalar_t *sc, chorus_forecast_t *fc,
                                   char *errstr, size_t errstr_size) {
        static const chorus_fallback_t all[] = {
            CHORUS_FALLBACK_COLD_START, CHORUS_FALLBACK_OVERFITTING, CHORUS_FALLBACK_ROLLBACK};

        fc->fallback = CHORUS_FALLBACK_NONE;
        if (sc->t == S_NULL)
                return CHORUS_OK;
        if (sc->t == S_STR)
                for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                        if (strlen(chorus_fallback_name(all[i])) == sc->n &&
                            !memcmp(chorus_fallback_name(all[i]), sc->s, sc->n)) {
                                fc->fallback = all[i];
                                return CHORUS_OK;
                        }
        chorus_seterr(errstr, errstr_size, "field %s: not a known fallback", fd->name);
        return CHORUS_ERR_MALFORMED;
}

/* Decode table row @p i from writer value @p rec (or the reader default). */
static chorus_err_t decode_field(const writer_t *w, const rtype_t *rt, size_t i, avro_value_t *rec,
                                 void *out, char *errstr, size_t errstr_size) {
        const fdesc_t *fd = &types[w->type].fields[i];
        scalar_t sc = {0};
        avro_value_t fv;

        if (w->idx[i] < 0) {
                scalar_from_json(rt->def[i], &sc);
                return store(fd, &sc, out, errstr, errstr_size);
        }
        if (avro_value_get_by_index(rec, (size_t)w->idx[i], &fv, NULL)) {
                chorus_seterr(errstr, errstr_size, "field %s: missing", fd->name);
                return CHORUS_ERR_MALFORMED;
        }
        switch (fd->kind) {
        case K_EXPECTED:
        case K_PRESENT:
                return store_names(fd, &fv, out, errstr, errstr_size);
        case K_WEIGHTS:
                return store_weights(fd, &fv, out, errstr, errstr_size);
        case K_IMPORTANCES:
                return store_importances(fd, &fv, out, errstr, errstr_size);
        case K_DETAILS:
                return store_details(fd, &fv, out, errstr, errstr_size);
        case K_FALLBACK:
                scalar_from_value(&fv, &sc);
                return store_fallback(fd, &sc, out, errstr, errstr_size);
        default:
                scalar_from_value(&fv, &sc);
                return store(fd, &sc, out, errstr, errstr_size);
        }
}

chorus_err_t chorus_codec_decode(chorus_codec_t *codec, chorus_record_type_t type,
                                 chorus_framing_t framing, int32_t bare_schema_id, const void *data,
                                 size_t len, void *out, int32_t *schema_id_out, char *errstr,
                                 size_t errstr_size) {
        const unsigned char *p = data;
        const struct tdesc *td;
        const rtype_t *rt;
        chorus_err_t err;
        writer_t *w;
        int32_t id;

        if (schema_id_out)
                *schema_id_out = -1;
        if (!codec || !out || (!data && len)) {
                chorus_seterr(errstr, errstr_size, "invalid argument");
                return CHORUS_ERR_INVALID_ARG;
        }
        if ((unsigned)type >= CHORUS_RECORD__COUNT || !types[type].decodable) {
                chorus_seterr(errstr, errstr_size, "decoding %s is not supported",
                              chorus_record_type_name(type));
                return CHORUS_ERR_UNSUPPORTED;
        }
        td = &types[type];
        rt = &codec->rt[type];

        if (framing == CHORUS_FRAMING_CONFLUENT) {
                if (len < 5) {
                        chorus_seterr(errstr, errstr_size,
                                      "%zu bytes is shorter than the 5-byte Confluent header", len);
                        return CHORUS_ERR_BAD_FRAMING;
                }
                if (p[0] != 0x00) {
                        chorus_seterr(errstr, errstr_size, "magic byte 0x%02x, expected 0x00",
                                      p[0]);
                        return CHORUS_ERR_BAD_FRAMING;
                }
                id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                               ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
                p += 5;
                len -= 5;
        } else {
                id = bare_schema_id;
        }
        if (schema_id_out)
                *schema_id_out = id;

        if (!(w = writer_find(codec, id))) {
                chorus_seterr(errstr, errstr_size, "schema id %" PRId32 " is not registered", id);
                return CHORUS_ERR_UNKNOWN_SCHEMA;
        }
        if (w->type != type) {
                chorus_seterr(errstr, errstr_size,
                              "schema id %" PRId32 " is registered for %s, not %s", id,
                              chorus_record_type_name(w->type), td->record);
                return CHORUS_ERR_WRONG_RECORD_TYPE;
        }
        if ((err = chorus_codec_walk_check(w->walk, p, len, errstr, errstr_size)))
                return err;

        /* The walk accepted the body, so this cannot fail on input; a failure
         * here would be an Avro-C or walk bug, reported as malformed. */
        avro_reader_memory_set_source(codec->reader, len ? (const char *)p : empty_buf,
                                      (int64_t)len);
        if (avro_value_read(codec->reader, &w->value)) {
                chorus_seterr(errstr, errstr_size, "Avro-C rejected the body: %.160s",
                              avro_strerror());
                return CHORUS_ERR_MALFORMED;
        }

        memset(out, 0, td->struct_size);
        /* Two passes: weights are keyed by the models of models_present, which
         * comes later in the schema. */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < td->n_fields; i++) {
                        if ((td->fields[i].kind == K_WEIGHTS) != pass)
                                continue;
                        if ((err = decode_field(w, rt, i, &w->value, out, errstr, errstr_size)))
                                return err;
                }
        return CHORUS_OK;
}

/* ====================================================================== */
/* Encoding                                                               */
/* ====================================================================== */

static chorus_err_t put_string(avro_value_t *v, const char *s, size_t cap, const char *field,
                               char *errstr, size_t errstr_size) {
        size_t n = strnlen(s, cap);

        if (n == cap) {
                chorus_seterr(errstr, errstr_size, "field %s: not NUL-terminated", field);
                return CHORUS_ERR_INVALID_ARG;
        }
        if (avro_value_set_string_len(v, s, n + 1)) /* the size counts the NUL */
                return CHORUS_ERR_NOMEM;
        return CHORUS_OK;
}

static chorus_err_t put_names(avro_value_t *arr, const chorus_name_t *names, size_t n,
                              const char *field, char *errstr, size_t errstr_size) {
        chorus_err_t err;
        avro_value_t e;

        if (n > CHORUS_MAX_MODELS) {
                chorus_seterr(errstr, errstr_size, "field %s: %zu models exceeds %d", field, n,
                              CHORUS_MAX_MODELS);
                return CHORUS_ERR_INVALID_ARG;
        }
        for (size_t i = 0; i < n; i++) {
                if (avro_value_append(arr, &e, NULL))
                        return CHORUS_ERR_NOMEM;
                if ((err = put_string(&e, names[i], sizeof(names[i]), field, errstr, errstr_size)))
                        return err;
        }
        return CHORUS_OK;
}

/* A map<double> of model -> weight (forecast and validation window weights). */
static chorus_err_t put_weights(avro_value_t *map, const chorus_name_t *models,
                                const double *weight, size_t n, char *errstr, size_t errstr_size) {
        avro_value_t e;
        int is_new;

        if (n > CHORUS_MAX_MODELS) {
                chorus_seterr(errstr, errstr_size, "field weights: %zu models exceeds %d", n,
                              CHORUS_MAX_MODELS);
                return CHORUS_ERR_INVALID_ARG;
        }
        for (size_t i = 0; i < n; i++) {
                if (strnlen(models[i], sizeof(models[i])) == sizeof(models[i])) {
                        chorus_seterr(errstr, errstr_size,
                                      "field weights: model %zu not NUL-terminated", i);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if (avro_value_add(map, models[i], &e, NULL, &is_new))
                        return CHORUS_ERR_NOMEM;
                if (!is_new) {
                        chorus_seterr(errstr, errstr_size, "field weights: model %s appears twice",
                                      models[i]);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if (avro_value_set_double(&e, weight[i]))
                        return CHORUS_ERR_NOMEM;
        }
        return CHORUS_OK;
}

static chorus_err_t put_importances(avro_value_t *map, const chorus_feature_importance_t *fi,
                                    char *errstr, size_t errstr_size) {
        avro_value_t e;
        int is_new;

        if (fi->n_features > CHORUS_MAX_FEATURES) {
                chorus_seterr(errstr, errstr_size, "field importances: %zu features exceeds %d",
                              fi->n_features, CHORUS_MAX_FEATURES);
                return CHORUS_ERR_INVALID_ARG;
        }
        for (size_t i = 0; i < fi->n_features; i++) {
                if (strnlen(fi->feature[i], sizeof(fi->feature[i])) == sizeof(fi->feature[i])) {
                        chorus_seterr(errstr, errstr_size,
                                      "field importances: feature %zu not NUL-terminated", i);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if (avro_value_add(map, fi->feature[i], &e, NULL, &is_new))
                        return CHORUS_ERR_NOMEM;
                if (!is_new) {
                        chorus_seterr(errstr, errstr_size,
                                      "field importances: feature %s appears twice",
                                      fi->feature[i]);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if (avro_value_set_double(&e, fi->importance[i]))
                        return CHORUS_ERR_NOMEM;
        }
        return CHORUS_OK;
}

static chorus_err_t put_details(avro_value_t *map, const chorus_alert_t *a, char *errstr,
                                size_t errstr_size) {
        avro_value_t e;
        chorus_err_t err;
        int is_new;

        if (a->n_details > CHORUS_ALERT_DETAILS_MAX) {
                chorus_seterr(errstr, errstr_size, "field details: %zu entries exceeds %d",
                              a->n_details, CHORUS_ALERT_DETAILS_MAX);
                return CHORUS_ERR_INVALID_ARG;
        }
        for (size_t i = 0; i < a->n_details; i++) {
                const char *k = a->detail_key[i];

                if (strnlen(k, sizeof(a->detail_key[i])) == sizeof(a->detail_key[i])) {
                        chorus_seterr(errstr, errstr_size,
                                      "field details: key %zu not NUL-terminated", i);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if (avro_value_add(map, k, &e, NULL, &is_new))
                        return CHORUS_ERR_NOMEM;
                if (!is_new) {
                        chorus_seterr(errstr, errstr_size, "field details: key %s appears twice",
                                      k);
                        return CHORUS_ERR_INVALID_ARG;
                }
                if ((err = put_string(&e, a->detail_value[i], sizeof(a->detail_value[i]), "details",
                                      errstr, errstr_size)))
                        return err;
        }
        return CHORUS_OK;
}

static chorus_err_t put_field(const fdesc_t *fd, avro_value_t *v, const unsigned char *rec,
                              char *errstr, size_t errstr_size) {
        const void *m = rec + fd->off;
        int64_t l;
        double d;
        int b;

        switch (fd->kind) {
        case K_NAME:
        case K_TEXT:
        case K_LABEL:
                return put_string(v, m, fd->cap, fd->name, errstr, errstr_size);
        case K_TS:
        case K_LONG:
                memcpy(&l, m, sizeof(l));
                return avro_value_set_long(v, l) ? CHORUS_ERR_NOMEM : CHORUS_OK;
        case K_DOUBLE:
                memcpy(&d, m, sizeof(d));
                return avro_value_set_double(v, d) ? CHORUS_ERR_NOMEM : CHORUS_OK;
        case K_BOOL:
                memcpy(&b, m, sizeof(b));
                return avro_value_set_boolean(v, b != 0) ? CHORUS_ERR_NOMEM : CHORUS_OK;
        case K_INT: {
                int i;
                memcpy(&i, m, sizeof(i));
                return avro_value_set_int(v, i) ? CHORUS_ERR_NOMEM : CHORUS_OK;
        }
        case K_WEIGHTS: {
                const chorus_forecast_t *fc = (const chorus_forecast_t *)(const void *)rec;
                return put_weights(v, fc->present, fc->weight, fc->n_present, errstr, errstr_size);
        }
        case K_VW_WEIGHTS: {
                const chorus_validation_window_t *w =
                    (const chorus_validation_window_t *)(const void *)rec;
                return put_weights(v, w->models, w->weight, w->n_models, errstr, errstr_size);
        }
        case K_VW_MODELS: {
                const chorus_validation_window_t *w =
                    (const chorus_validation_window_t *)(const void *)rec;
                return put_names(v, w->models, w->n_models, fd->name, errstr, errstr_size);
        }
        case K_EXPECTED: {
                const chorus_forecast_t *fc = (const chorus_forecast_t *)(const void *)rec;
                return put_names(v, fc->expected, fc->n_expected, fd->name, errstr, errstr_size);
        }
        case K_PRESENT: {
                const chorus_forecast_t *fc = (const chorus_forecast_t *)(const void *)rec;
                return put_names(v, fc->present, fc->n_present, fd->name, errstr, errstr_size);
        }
        case K_FALLBACK: {
                chorus_fallback_t f;
                const char *s;

                memcpy(&f, m, sizeof(f));
                s = chorus_fallback_name(f);
                return s && !avro_value_set_string(v, s) ? CHORUS_OK : CHORUS_ERR_NOMEM;
        }
        case K_DETAILS:
                return put_details(v, (const chorus_alert_t *)(const void *)rec, errstr,
                                   errstr_size);
        case K_IMPORTANCES:
                return put_importances(v, (const chorus_feature_importance_t *)(const void *)rec,
                                       errstr, errstr_size);
        }
        return CHORUS_ERR_UNSUPPORTED;
}

/* Is optional row @p fd set in @p rec? */
static int is_present(const fdesc_t *fd, const unsigned char *rec) {
        int has;

        if (fd->kind == K_FALLBACK) {
                chorus_fallback_t f;
                memcpy(&f, rec + fd->off, sizeof(f));
                return chorus_fallback_name(f) != NULL;
        }
        memcpy(&has, rec + fd->has_off, sizeof(has));
        return has != 0;
}

chorus_err_t chorus_codec_encode(chorus_codec_t *codec, chorus_record_type_t type,
                                 chorus_framing_t framing, int32_t schema_id, const void *rec,
                                 chorus_buf_t *out, char *errstr, size_t errstr_size) {
        const unsigned char *r = rec;
        const struct tdesc *td;
        rtype_t *rt;
        size_t size, hdr = framing == CHORUS_FRAMING_CONFLUENT ? 5 : 0;
        unsigned char *dst;
        chorus_err_t err;

        if (!codec || !rec || !out) {
                chorus_seterr(errstr, errstr_size, "invalid argument");
                return CHORUS_ERR_INVALID_ARG;
        }
        if ((unsigned)type >= CHORUS_RECORD__COUNT || !types[type].fields) {
                chorus_seterr(errstr, errstr_size, "encoding %s is not supported",
                              chorus_record_type_name(type));
                return CHORUS_ERR_UNSUPPORTED;
        }
        td = &types[type];
        rt = &codec->rt[type];

        for (size_t i = 0; i < td->n_fields; i++) {
                const fdesc_t *fd = &td->fields[i];
                avro_value_t fv, bv;

                if (avro_value_get_by_index(&rt->value, (size_t)rt->idx[i], &fv, NULL))
                        goto avro_fail;
                /* Only collections are reset: they would otherwise keep the
                 * previous record's entries. Scalars and strings are simply
                 * overwritten, which lets Avro-C reuse the string buffers
                 * instead of freeing and allocating them per record. */
                if ((fd->kind == K_WEIGHTS || fd->kind == K_EXPECTED || fd->kind == K_PRESENT ||
                     fd->kind == K_DETAILS || fd->kind == K_VW_MODELS || fd->kind == K_VW_WEIGHTS ||
                     fd->kind == K_IMPORTANCES) &&
                    avro_value_reset(&fv))
                        goto avro_fail;
                if (fd->optional) {
                        if (!is_present(fd, r)) {
                                if (avro_value_set_branch(&fv, rt->null_branch[i], &bv) ||
                                    avro_value_set_null(&bv))
                                        goto avro_fail;
                                continue;
                        }
                        if (avro_value_set_branch(&fv, rt->val_branch[i], &bv))
                                goto avro_fail;
                        fv = bv;
                }
                if ((err = put_field(fd, &fv, r, errstr, errstr_size))) {
                        if (err == CHORUS_ERR_NOMEM)
                                goto avro_fail;
                        return err;
                }
        }
        /* Write straight into the spare capacity; only when it is too small
         * (Avro-C's memory writer then fails without writing past it) size the
         * record exactly and write again. That saves a sizing pass per record
         * once the buffer has grown. */
        if (buf_reserve(out, hdr + 64)) {
                chorus_seterr(errstr, errstr_size, "out of memory");
                return CHORUS_ERR_NOMEM;
        }
        for (int attempt = 0;; attempt++) {
                size_t room = out->cap - out->len - hdr;

                dst = out->data + out->len;
                avro_writer_memory_set_dest(codec->writer, (const char *)dst + hdr, (int64_t)room);
                if (!avro_value_write(codec->writer, &rt->value)) {
                        size = (size_t)avro_writer_tell(codec->writer);
                        break;
                }
                if (attempt || avro_value_sizeof(&rt->value, &size))
                        goto avro_fail;
                if (buf_reserve(out, hdr + size)) {
                        chorus_seterr(errstr, errstr_size, "out of memory");
                        return CHORUS_ERR_NOMEM;
                }
        }
        if (hdr) {
                uint32_t id = (uint32_t)schema_id;
                dst[0] = 0x00;
                dst[1] = (unsigned char)(id >> 24);
                dst[2] = (unsigned char)(id >> 16);
                dst[3] = (unsigned char)(id >> 8);
                dst[4] = (unsigned char)id;
        }
        out->len += hdr + size;
        return CHORUS_OK;

avro_fail:
        chorus_seterr(errstr, errstr_size, "%s: Avro-C: %.160s", td->record, avro_strerror());
        return CHORUS_ERR_NOMEM;
}
