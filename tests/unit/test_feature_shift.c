/*
 * Unit tests of the FeatureImportance decode (src/codec) and of its
 * normalisation for FEATURE_SHIFT (src/monitor/feature_shift.c).
 *
 * Bodies are written by hand from the Avro specification (as in
 * test_codec.c), so the decoder is checked against the spec.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chorus/codec.h"
#include "chorus/feature_shift.h"

#define ID_FI 4

static chorus_codec_t *codec;
static chorus_feature_importance_t rec; /* 35 kB: not on the stack */
static char errstr[512];

static void setup(void) {
        char e[512];

        codec = chorus_codec_new(e, sizeof(e));
        cr_assert_not_null(codec, "chorus_codec_new: %s", e);
        cr_assert_eq(chorus_codec_register(
                         codec, ID_FI, CHORUS_RECORD_FEATURE_IMPORTANCE,
                         chorus_record_schema_json(CHORUS_RECORD_FEATURE_IMPORTANCE), e, sizeof(e)),
                     CHORUS_OK, "%s", e);
}

static void teardown(void) {
        chorus_codec_destroy(codec);
        codec = NULL;
}

TestSuite(feature_importance, .init = setup, .fini = teardown);

typedef struct bb {
        unsigned char b[65536];
        size_t n;
} bb_t;

static bb_t body;

static void bb_raw(bb_t *b, const void *p, size_t n) {
        cr_assert_leq(b->n + n, sizeof(b->b));
        memcpy(b->b + b->n, p, n);
        b->n += n;
}

static void bb_long(bb_t *b, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
        unsigned char c;

        while (z & ~UINT64_C(0x7F)) {
                c = (unsigned char)((z & 0x7F) | 0x80);
                bb_raw(b, &c, 1);
                z >>= 7;
        }
        c = (unsigned char)z;
        bb_raw(b, &c, 1);
}

static void bb_str(bb_t *b, const char *s) {
        bb_long(b, (int64_t)strlen(s));
        bb_raw(b, s, strlen(s));
}

static void bb_double(bb_t *b, double d) {
        uint64_t u;
        unsigned char le[8];

        memcpy(&u, &d, sizeof(u));
        for (int i = 0; i < 8; i++)
                le[i] = (unsigned char)(u >> (8 * i));
        bb_raw(b, le, 8);
}

/* Confluent header, model_id, series (union branch), computed_at, then the
 * map's one block of @p n entries; the caller writes the entries and the
 * terminating 0. */
static void bb_head(bb_t *b, const char *model, const char *series, int64_t at, int64_t n) {
        static const unsigned char hdr[] = {0, 0, 0, 0, ID_FI};

        b->n = 0;
        bb_raw(b, hdr, sizeof(hdr));
        bb_str(b, model);
        if (series) {
                bb_long(b, 1);
                bb_str(b, series);
        } else
                bb_long(b, 0);
        bb_long(b, at);
        bb_long(b, n);
}

static void bb_entry(bb_t *b, const char *name, double v) {
        bb_str(b, name);
        bb_double(b, v);
}

static chorus_err_t dec(const bb_t *b) {
        errstr[0] = '\0';
        return chorus_codec_decode(codec, CHORUS_RECORD_FEATURE_IMPORTANCE,
                                   CHORUS_FRAMING_CONFLUENT, 0, b->b, b->n, &rec, NULL, errstr,
                                   sizeof(errstr));
}

Test(feature_importance, valid_record_decodes_sorted_by_name) {
        bb_head(&body, "lstm", "ZL", 1700000000000, 3);
        bb_entry(&body, "vix", 0.5);
        bb_entry(&body, "curve", 0.25);
        bb_entry(&body, "momentum", 1.25);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_str_eq(rec.model_id, "lstm");
        cr_assert(rec.has_series);
        cr_assert_str_eq(rec.series, "ZL");
        cr_assert_eq(rec.computed_at, 1700000000000);
        cr_assert_eq(rec.n_features, 3);
        cr_assert_str_eq(rec.feature[0], "curve");
        cr_assert_str_eq(rec.feature[1], "momentum");
        cr_assert_str_eq(rec.feature[2], "vix");
        cr_assert_eq(rec.importance[0], 0.25);
        cr_assert_eq(rec.importance[1], 1.25);
        cr_assert_eq(rec.importance[2], 0.5);
}

Test(feature_importance, series_is_optional_and_blocks_may_be_split) {
        bb_head(&body, "gb", NULL, 0, 1);
        bb_entry(&body, "b", 2);
        /* A second block with a byte size (negative count). */
        {
                bb_t blk = {.n = 0};
                bb_entry(&blk, "a", 1);
                bb_long(&body, -1);
                bb_long(&body, (int64_t)blk.n);
                bb_raw(&body, blk.b, blk.n);
        }
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_not(rec.has_series);
        cr_assert_eq(rec.n_features, 2);
        cr_assert_str_eq(rec.feature[0], "a");
        cr_assert_str_eq(rec.feature[1], "b");
}

Test(feature_importance, limit_of_features) {
        char name[32];

        bb_head(&body, "lstm", NULL, 1, CHORUS_MAX_FEATURES);
        for (int i = CHORUS_MAX_FEATURES - 1; i >= 0; i--) {
                snprintf(name, sizeof(name), "f%03d", i);
                bb_entry(&body, name, 1);
        }
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(rec.n_features, CHORUS_MAX_FEATURES);
        for (int i = 0; i < CHORUS_MAX_FEATURES; i++) {
                snprintf(name, sizeof(name), "f%03d", i);
                cr_assert_str_eq(rec.feature[i], name);
        }

        bb_head(&body, "lstm", NULL, 1, CHORUS_MAX_FEATURES + 1);
        for (int i = 0; i < CHORUS_MAX_FEATURES + 1; i++) {
                snprintf(name, sizeof(name), "f%03d", i);
                bb_entry(&body, name, 1);
        }
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_ERR_ABSURD_LENGTH, "%s", errstr);
        cr_assert(strstr(errstr, "257 features exceeds 256"), "%s", errstr);
}

Test(feature_importance, non_finite_values) {
        const double bad[] = {NAN, INFINITY, -INFINITY};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                bb_head(&body, "lstm", NULL, 1, 2);
                bb_entry(&body, "a", 1);
                bb_entry(&body, "b", bad[i]);
                bb_long(&body, 0);
                cr_assert_eq(dec(&body), CHORUS_ERR_NON_FINITE, "%s", errstr);
                cr_assert_eq(strcmp(chorus_err2code(CHORUS_ERR_NON_FINITE), "non_finite"), 0);
                cr_assert(strstr(errstr, "importances: b is"), "%s", errstr);
        }
}

Test(feature_importance, bad_feature_names) {
        static const struct {
                const char *name;
                chorus_err_t err;
        } cases[] = {
            {"", CHORUS_ERR_INVALID_NAME},          {"has space", CHORUS_ERR_INVALID_NAME},
            {"a|b", CHORUS_ERR_INVALID_NAME},       {"tab\t", CHORUS_ERR_INVALID_NAME},
            {"__hidden", CHORUS_ERR_RESERVED_NAME}, {"\xff\xfe", CHORUS_ERR_INVALID_UTF8},
        };
        char longname[CHORUS_NAME_MAX + 2];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bb_head(&body, "lstm", NULL, 1, 1);
                bb_entry(&body, cases[i].name, 1);
                bb_long(&body, 0);
                cr_assert_eq(dec(&body), cases[i].err, "case %zu: %s", i, errstr);
        }
        memset(longname, 'x', CHORUS_NAME_MAX + 1);
        longname[CHORUS_NAME_MAX + 1] = '\0';
        bb_head(&body, "lstm", NULL, 1, 1);
        bb_entry(&body, longname, 1);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_ERR_ABSURD_LENGTH, "%s", errstr);
        /* The model and series are names too. */
        bb_head(&body, "__ensemble__", NULL, 1, 1);
        bb_entry(&body, "a", 1);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_ERR_RESERVED_NAME, "%s", errstr);
}

Test(feature_importance, timestamp_and_truncation) {
        bb_head(&body, "lstm", NULL, INT64_C(7258118400000), 1);
        bb_entry(&body, "a", 1);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_ERR_BAD_TIMESTAMP, "%s", errstr);
        bb_head(&body, "lstm", NULL, 1, 1);
        bb_entry(&body, "a", 1);
        cr_assert_eq(dec(&body), CHORUS_ERR_MALFORMED, "%s", errstr); /* no closing 0 */
        bb_head(&body, "lstm", NULL, 1, 1000000);
        cr_assert_eq(dec(&body), CHORUS_ERR_ABSURD_LENGTH, "%s", errstr);
}

Test(feature_importance, encode_round_trip) {
        static chorus_feature_importance_t back;
        chorus_buf_t out = {0};

        bb_head(&body, "lstm", "ZL", 5, 2);
        bb_entry(&body, "b", 0.75);
        bb_entry(&body, "a", 0.25);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_codec_encode(codec, CHORUS_RECORD_FEATURE_IMPORTANCE,
                                         CHORUS_FRAMING_CONFLUENT, ID_FI, &rec, &out, errstr,
                                         sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_FEATURE_IMPORTANCE,
                                         CHORUS_FRAMING_CONFLUENT, 0, out.data, out.len, &back,
                                         NULL, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(back.n_features, 2);
        cr_assert_str_eq(back.feature[0], "a");
        cr_assert_eq(back.importance[1], 0.75);
        chorus_buf_destroy(&out);
}

Test(feature_importance, normalise_sums_to_one_in_name_order) {
        double norm[CHORUS_MAX_FEATURES];

        bb_head(&body, "lstm", NULL, 1, 3);
        bb_entry(&body, "c", 2);
        bb_entry(&body, "a", 1);
        bb_entry(&body, "b", 1);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_feature_shift_normalise(&rec, norm, errstr, sizeof(errstr)), CHORUS_OK);
        cr_assert_eq(norm[0], 0.25);
        cr_assert_eq(norm[1], 0.25);
        cr_assert_eq(norm[2], 0.5);
}

Test(feature_importance, normalise_refuses_what_has_no_share) {
        double norm[CHORUS_MAX_FEATURES];

        cr_assert_str_eq(chorus_err2code(CHORUS_ERR_BAD_IMPORTANCES), "invalid_importances");
        cr_assert(chorus_err_is_input(CHORUS_ERR_BAD_IMPORTANCES));

        bb_head(&body, "lstm", NULL, 1, 2);
        bb_entry(&body, "a", 1);
        bb_entry(&body, "b", -0.5);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr); /* decodes: the rule refuses it */
        cr_assert_eq(chorus_feature_shift_normalise(&rec, norm, errstr, sizeof(errstr)),
                     CHORUS_ERR_BAD_IMPORTANCES);
        cr_assert(strstr(errstr, "b is negative"), "%s", errstr);

        bb_head(&body, "lstm", NULL, 1, 2);
        bb_entry(&body, "a", 0);
        bb_entry(&body, "b", 0);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_feature_shift_normalise(&rec, norm, errstr, sizeof(errstr)),
                     CHORUS_ERR_BAD_IMPORTANCES);

        bb_head(&body, "lstm", NULL, 1, 0); /* an empty map: the 0 count ends it */
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(rec.n_features, 0);
        cr_assert_eq(chorus_feature_shift_normalise(&rec, norm, errstr, sizeof(errstr)),
                     CHORUS_ERR_BAD_IMPORTANCES);

        bb_head(&body, "lstm", NULL, 1, 2);
        bb_entry(&body, "a", 1.5e308);
        bb_entry(&body, "b", 1.5e308);
        bb_long(&body, 0);
        cr_assert_eq(dec(&body), CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_feature_shift_normalise(&rec, norm, errstr, sizeof(errstr)),
                     CHORUS_ERR_BAD_IMPORTANCES);
        cr_assert(strstr(errstr, "overflows"), "%s", errstr);
}
