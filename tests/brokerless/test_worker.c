/*
 * Broker-less tests of the worker: librdkafka's in-process mock cluster for
 * Kafka and a real redis-server child. They run the production worker loop
 * (including under ASan in CI). They check what does not depend on
 * transactions, which the mock does not implement faithfully:
 * forecasts out for every changed group, dead letters with reason headers,
 * byte-identical output across runs, and replay leaving Redis unchanged.
 * Exact formula checks live in the unit tests and the integration tier.
 */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "chorus/codec.h"
#include "chorus/config.h"
#include "chorus/log.h"
#include "chorus/redis_server.h"
#include "chorus/worker.h"

#define DAY INT64_C(86400000)
#define T0  INT64_C(1704067200000)

static chorus_redis_server_t redis;
static rd_kafka_t *producer;
static rd_kafka_mock_cluster_t *mcluster;
static chorus_codec_t *codec;
static char bootstrap[256];

static void setup(void) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[512];

        chorus_log_level = CHORUS_LOG_ERROR;
        cr_assert_eq(chorus_redis_server_start(&redis, errstr, sizeof(errstr)), 0, "%s", errstr);
        cr_assert_eq(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
        producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        cr_assert_not_null(producer, "%s", errstr);
        mcluster = rd_kafka_handle_mock_cluster(producer);
        snprintf(bootstrap, sizeof(bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(mcluster));
        codec = chorus_codec_new(errstr, sizeof(errstr));
        cr_assert_not_null(codec, "%s", errstr);
        cr_assert_eq(chorus_codec_register(codec, 1, CHORUS_RECORD_PREDICTION,
                                           chorus_record_schema_json(CHORUS_RECORD_PREDICTION),
                                           errstr, sizeof(errstr)),
                     CHORUS_OK);
        cr_assert_eq(chorus_codec_register(codec, 2, CHORUS_RECORD_ACTUAL,
                                           chorus_record_schema_json(CHORUS_RECORD_ACTUAL), errstr,
                                           sizeof(errstr)),
                     CHORUS_OK);
        cr_assert_eq(chorus_codec_register(codec, 5, CHORUS_RECORD_FORECAST,
                                           chorus_record_schema_json(CHORUS_RECORD_FORECAST),
                                           errstr, sizeof(errstr)),
                     CHORUS_OK);
}

static void teardown(void) {
        chorus_codec_destroy(codec);
        if (producer)
                rd_kafka_destroy(producer);
        chorus_redis_server_stop(&redis);
}

TestSuite(worker, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Input                                                               */
/* ------------------------------------------------------------------ */

static void produce(const char *topic, const char *key, const void *val, size_t len) {
        cr_assert_eq(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)val, len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce_record(const char *topic, int32_t id, chorus_record_type_t type,
                           const char *key, const void *rec) {
        chorus_buf_t buf = {0};
        char errstr[256];

        cr_assert_eq(chorus_codec_encode(codec, type, CHORUS_FRAMING_CONFLUENT, id, rec, &buf,
                                         errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        produce(topic, key, buf.data, buf.len);
        chorus_buf_destroy(&buf);
}

static const char *const series_names[] = {"ZL", "BRK.B"};
static const char *const model_names[] = {"good", "fair", "poor"};

/* 2 series x 3 models x `days` days; returns the number of predictions. */
static int produce_dataset(const char *pred_topic, const char *act_topic, int days) {
        int n = 0;
        for (int d = 0; d < days; d++)
                for (int s = 0; s < 2; s++) {
                        double level = (s ? 350.0 : 50.0) * (1.0 + 0.01 * sin(d * 0.7 + s));
                        chorus_actual_t a = {0};
                        snprintf(a.series, sizeof(a.series), "%s", series_names[s]);
                        a.observed_at = T0 + d * DAY + 21 * 3600000;
                        a.value = level;
                        produce_record(act_topic, 2, CHORUS_RECORD_ACTUAL, a.series, &a);
                        for (int m = 0; m < 3 && d > 0; m++) {
                                chorus_prediction_t p = {0};
                                snprintf(p.model_id, sizeof(p.model_id), "%s", model_names[m]);
                                snprintf(p.series, sizeof(p.series), "%s", series_names[s]);
                                snprintf(p.horizon, sizeof(p.horizon), "1d");
                                p.issued_at = T0 + (d - 1) * DAY + 22 * 3600000;
                                p.target_time = T0 + d * DAY;
                                p.value = level * (1.0 + 0.01 * (m * m) * cos(d * 1.3 + m));
                                produce_record(pred_topic, 1, CHORUS_RECORD_PREDICTION, p.series,
                                               &p);
                                n++;
                        }
                }
        cr_assert_eq(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        return n;
}

/* ------------------------------------------------------------------ */
/* Running the worker and reading its output                           */
/* ------------------------------------------------------------------ */

static chorus_config_t *make_config(const char *prefix, const char *group, const char *suffix) {
        chorus_config_t *cfg = chorus_config_new();
        char errstr[512], port[16], topic[4][64];
        const char *roles[4] = {"predictions", "actuals", "forecasts", "dlq"};

        snprintf(port, sizeof(port), "%d", redis.port);
        cr_assert_eq(
            chorus_config_set(cfg, "kafka.bootstrap.servers", bootstrap, errstr, sizeof(errstr)),
            CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_config_set(cfg, "kafka.group.id", group, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(
            chorus_config_set(cfg, "kafka.session.timeout.ms", "6000", errstr, sizeof(errstr)),
            CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_config_set(cfg, "redis.port", port, errstr, sizeof(errstr)), CHORUS_OK,
                     "%s", errstr);
        cr_assert_eq(chorus_config_set(cfg, "redis.key_prefix", prefix, errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        /* Forecasts and dead letters are what these tests check. */
        cr_assert_eq(chorus_config_set(cfg, "alerts.enabled", "0", errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_config_set(cfg, "join.max_wait_ms", "300", errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        for (int i = 0; i < 4; i++) {
                char key[64];
                snprintf(key, sizeof(key), "topic.%s", roles[i]);
                snprintf(topic[i], sizeof(topic[i]), "%s.%s", roles[i], i < 2 ? "in" : suffix);
                cr_assert_eq(chorus_config_set(cfg, key, topic[i], errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
        }
        cr_assert_eq(chorus_config_finalize(cfg, errstr, sizeof(errstr)), CHORUS_OK, "%s", errstr);
        return cfg;
}

static chorus_worker_stats_t run_worker(const chorus_config_t *cfg) {
        static volatile sig_atomic_t never;
        chorus_worker_stats_t stats;
        char errstr[512];
        chorus_worker_t *w = chorus_worker_new(cfg, errstr, sizeof(errstr));

        cr_assert_not_null(w, "%s", errstr);
        cr_assert_eq(chorus_worker_run(w, &never, 2000), CHORUS_OK);
        stats = *chorus_worker_stats(w);
        chorus_worker_destroy(w);
        return stats;
}

typedef struct output {
        size_t n;
        char **keys;
        unsigned char **values;
        size_t *lens;
        char **reasons; /* chorus.error header, for dead letters */
} output_t;

static void output_free(output_t *o) {
        for (size_t i = 0; i < o->n; i++) {
                free(o->keys[i]);
                free(o->values[i]);
                free(o->reasons[i]);
        }
        free(o->keys);
        free(o->values);
        free(o->lens);
        free(o->reasons);
        memset(o, 0, sizeof(*o));
}

/* Reads a whole topic (every partition to its end) into @p o. */
static void read_topic(const char *topic, output_t *o) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
        char errstr[256];
        rd_kafka_t *rk;
        int eof = 0;

        memset(o, 0, sizeof(*o));
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", "test-reader", errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        cr_assert_not_null(rk, "%s", errstr);
        for (int p = 0; p < 3; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        while (eof < 3) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10000);
                rd_kafka_headers_t *hdrs;
                const void *hv;
                size_t hlen;

                cr_assert_not_null(m, "timed out reading %s", topic);
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eof++;
                } else {
                        cr_assert_eq(m->err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s",
                                     rd_kafka_message_errstr(m));
                        o->keys = realloc(o->keys, (o->n + 1) * sizeof(*o->keys));
                        o->values = realloc(o->values, (o->n + 1) * sizeof(*o->values));
                        o->lens = realloc(o->lens, (o->n + 1) * sizeof(*o->lens));
                        o->reasons = realloc(o->reasons, (o->n + 1) * sizeof(*o->reasons));
                        o->keys[o->n] = strndup(m->key ? m->key : "", m->key_len);
                        o->values[o->n] = malloc(m->len + 1);
                        memcpy(o->values[o->n], m->payload, m->len);
                        o->lens[o->n] = m->len;
                        o->reasons[o->n] = NULL;
                        if (!rd_kafka_message_headers(m, &hdrs) &&
                            !rd_kafka_header_get_last(hdrs, "chorus.error", &hv, &hlen))
                                o->reasons[o->n] = strndup(hv, hlen);
                        o->n++;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
}

static void create_topics(const char *suffix) {
        const char *roles[2] = {"forecasts", "dlq"};
        for (int i = 0; i < 2; i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s.%s", roles[i], suffix);
                rd_kafka_mock_topic_create(mcluster, name, 3, 1);
        }
}

static void create_input_topics(void) {
        rd_kafka_mock_topic_create(mcluster, "predictions.in", 3, 1);
        rd_kafka_mock_topic_create(mcluster, "actuals.in", 3, 1);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

Test(worker, forecasts_for_every_changed_group_and_dead_letters_with_reasons) {
        static const unsigned char garbage[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0xff};
        static const unsigned char unknown_id[] = {0x00, 0x00, 0x00, 0x00, 0x63, 0x02};
        chorus_prediction_t p = {0};
        chorus_config_t *cfg;
        chorus_worker_stats_t st;
        output_t fc, dlq;
        int n_pred;

        create_input_topics();
        create_topics("a");
        n_pred = produce_dataset("predictions.in", "actuals.in", 15);

        /* One of each: malformed, unknown schema id, NaN, bad name, and an
         * exact duplicate of a valid prediction (no new forecast). */
        produce("predictions.in", "ZL", garbage, sizeof(garbage));
        produce("predictions.in", "ZL", unknown_id, sizeof(unknown_id));
        snprintf(p.model_id, sizeof(p.model_id), "good");
        snprintf(p.series, sizeof(p.series), "ZL");
        snprintf(p.horizon, sizeof(p.horizon), "1d");
        p.issued_at = T0 + 22 * 3600000;
        p.target_time = T0 + DAY;
        p.value = NAN;
        produce_record("predictions.in", 1, CHORUS_RECORD_PREDICTION, "ZL", &p);
        p.value = 50.0;
        snprintf(p.series, sizeof(p.series), "__reserved");
        produce_record("predictions.in", 1, CHORUS_RECORD_PREDICTION, "x", &p);
        cr_assert_eq(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

        cfg = make_config("t1", "g1", "a");
        st = run_worker(cfg);
        read_topic("forecasts.a", &fc);
        read_topic("dlq.a", &dlq);

        cr_assert_eq(st.records_in[CHORUS_TOPIC_PREDICTIONS], (uint64_t)n_pred + 4);
        cr_assert_eq(fc.n, (size_t)n_pred, "one forecast per changed group: %zu != %d", fc.n,
                     n_pred);
        cr_assert_eq(dlq.n, 4);
        {
                const char *want[] = {"malformed_avro", "unknown_schema_id", "non_finite",
                                      "reserved_name"};
                int seen[4] = {0};
                for (size_t i = 0; i < dlq.n; i++)
                        for (int k = 0; k < 4; k++)
                                if (dlq.reasons[i] && !strcmp(dlq.reasons[i], want[k]))
                                        seen[k]++;
                for (int k = 0; k < 4; k++)
                        cr_expect_eq(seen[k], 1, "dead letter reason %s seen %d times", want[k],
                                     seen[k]);
        }
        /* Each forecast decodes, and its key names its group. */
        for (size_t i = 0; i < fc.n; i++) {
                chorus_forecast_t f;
                char errstr[256], key[400];
                cr_assert_eq(chorus_codec_decode(codec, CHORUS_RECORD_FORECAST,
                                                 CHORUS_FRAMING_CONFLUENT, 5, fc.values[i],
                                                 fc.lens[i], &f, NULL, errstr, sizeof(errstr)),
                             CHORUS_OK, "%s", errstr);
                snprintf(key, sizeof(key), "%s|%s|%" PRId64, f.series, f.horizon, f.target_time);
                cr_expect_str_eq(fc.keys[i], key);
                cr_expect(f.revision >= 1 && f.revision <= 3);
        }
        output_free(&fc);
        output_free(&dlq);
        chorus_config_destroy(cfg);
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Canonical dump of every key under a prefix: sorted "key=DUMP bytes" lines.
 * Transient hold markers (with a TTL) are left out. */
static char *dump_state(const char *prefix) {
        redisContext *c = redisConnect("127.0.0.1", redis.port);
        redisReply *keys = redisCommand(c, "KEYS %s:*", prefix);
        size_t cap = 1 << 16, len = 0;
        char *out = malloc(cap);
        char **names = calloc(keys->elements + 1, sizeof(*names));

        for (size_t i = 0; i < keys->elements; i++)
                names[i] = keys->element[i]->str;
        qsort(names, keys->elements, sizeof(*names), strcmp_ptr);
        out[0] = '\0';
        for (size_t i = 0; i < keys->elements; i++) {
                redisReply *ttl = redisCommand(c, "PTTL %s", names[i]);
                redisReply *d;
                size_t nlen = strlen(names[i]);
                int transient = ttl->integer >= 0;
                freeReplyObject(ttl);
                /* Epochs fence earlier owners: a new owner takes a new one,
                 * which is bookkeeping, not state. */
                if (transient || strstr(names[i], ":epoch:"))
                        continue;
                if (nlen > 3 && !strcmp(names[i] + nlen - 3, ":wm")) {
                        redisReply *h = redisCommand(c, "HGETALL %s", names[i]);
                        for (size_t j = 0; j + 1 < h->elements; j += 2) {
                                if (!strncmp(h->element[j]->str, "e|", 2))
                                        continue;
                                while (len + nlen + h->element[j]->len + h->element[j + 1]->len +
                                           8 >
                                       cap)
                                        out = realloc(out, cap *= 2);
                                len += (size_t)sprintf(out + len, "%s[%s]=%s\n", names[i],
                                                       h->element[j]->str, h->element[j + 1]->str);
                        }
                        freeReplyObject(h);
                        continue;
                }
                d = redisCommand(c, "DUMP %s", names[i]);
                while (len + strlen(names[i]) + 2 * d->len + 4 > cap)
                        out = realloc(out, cap *= 2);
                len += (size_t)sprintf(out + len, "%s=", names[i]);
                for (size_t j = 0; j < d->len; j++)
                        len += (size_t)sprintf(out + len, "%02x", (unsigned char)d->str[j]);
                out[len++] = '\n';
                out[len] = '\0';
                freeReplyObject(d);
        }
        free(names);
        freeReplyObject(keys);
        redisFree(c);
        return out;
}

Test(worker, same_input_twice_gives_byte_identical_forecasts) {
        chorus_config_t *first, *second;
        char errstr[512];
        output_t a, b;

        create_input_topics();
        create_topics("b");
        create_topics("c");
        produce_dataset("predictions.in", "actuals.in", 40);

        /* Two runs, each into its own empty key space, with its own group. */
        first = make_config("t2a", "g2a", "b");
        second = make_config("t2b", "g2b", "c");
        /* Only the last day's predictions, which no actual follows, may be
         * forced out by the wait: with 300 ms a slow (ASan) run could also
         * force one whose actual was not read yet, and differ. */
        cr_assert_eq(chorus_config_set(first, "join.max_wait_ms", "5000", errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        cr_assert_eq(chorus_config_set(second, "join.max_wait_ms", "5000", errstr, sizeof(errstr)),
                     CHORUS_OK, "%s", errstr);
        run_worker(first);
        run_worker(second);
        read_topic("forecasts.b", &a);
        read_topic("forecasts.c", &b);

        cr_assert_gt(a.n, 100);
        cr_assert_eq(a.n, b.n);
        /* Per key, the sequence of revisions must be the same bytes; keys of
         * one group share a partition, so their order is the log order. */
        for (size_t i = 0; i < a.n; i++) {
                size_t ia = 0, ib = 0;
                for (size_t j = 0; j < i; j++)
                        ia += !strcmp(a.keys[j], a.keys[i]);
                for (size_t j = 0; j < b.n; j++) {
                        if (strcmp(b.keys[j], a.keys[i]))
                                continue;
                        if (ib++ == ia) {
                                cr_assert_eq(a.lens[i], b.lens[j], "key %s", a.keys[i]);
                                cr_assert_eq(memcmp(a.values[i], b.values[j], a.lens[i]), 0,
                                             "key %s revision %zu differs", a.keys[i], ia + 1);
                                break;
                        }
                }
                cr_assert_gt(ib, ia, "key %s missing in the second run", a.keys[i]);
        }
        output_free(&a);
        output_free(&b);
        chorus_config_destroy(first);
        chorus_config_destroy(second);
}

Test(worker, replaying_processed_offsets_changes_no_state) {
        chorus_config_t *first, *replay;
        chorus_worker_stats_t st;
        char *before, *after;
        output_t out;

        create_input_topics();
        create_topics("d");
        create_topics("e");
        produce_dataset("predictions.in", "actuals.in", 20);

        first = make_config("t3", "g3", "d");
        st = run_worker(first);
        cr_assert_gt(st.applied, 0);
        before = dump_state("t3");

        /* A new group reads everything again from the earliest offset into
         * the same state: every record must be recognised as applied. */
        replay = make_config("t3", "g3-replay", "e");
        st = run_worker(replay);
        after = dump_state("t3");
        cr_assert_gt(st.replayed, 0);
        cr_assert_eq(st.applied, 0, "%" PRIu64 " records applied twice", st.applied);
        cr_assert_str_eq(before, after, "Redis state changed on replay");
        read_topic("forecasts.e", &out);
        cr_assert_eq(out.n, 0, "replay emitted %zu forecasts", out.n);

        output_free(&out);
        free(before);
        free(after);
        chorus_config_destroy(first);
        chorus_config_destroy(replay);
}

static void redis_command(const char *fmt, const char *arg) {
        redisContext *c = redisConnect("127.0.0.1", redis.port);
        redisReply *r;

        cr_assert(c && !c->err);
        r = redisCommand(c, fmt, arg);
        cr_assert_not_null(r);
        cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s", r->str);
        freeReplyObject(r);
        redisFree(c);
}

Test(worker, poison_pill_goes_to_the_dead_letter_topic_without_stalling_others) {
        chorus_config_t *cfg;
        chorus_worker_stats_t st;
        output_t fc, dlq;
        int n_pred;

        create_input_topics();
        create_topics("p");
        n_pred = produce_dataset("predictions.in", "actuals.in", 8);

        /* A key of the wrong type makes every call for BRK.B fail inside the
         * function (WRONGTYPE): a record-level failure, not a server one. */
        redis_command("SET %s x", "t5:{BRK.B}:wm");
        cfg = make_config("t5", "g5", "p");
        st = run_worker(cfg);
        read_topic("forecasts.p", &fc);
        read_topic("dlq.p", &dlq);

        /* ZL is untouched: its n_pred / 2 predictions all produce forecasts.
         * Every BRK.B record (actuals and predictions) is a poison pill. */
        cr_assert_eq(fc.n, (size_t)n_pred / 2, "%zu forecasts", fc.n);
        cr_assert_eq(dlq.n, (size_t)n_pred / 2 + 8, "%zu dead letters", dlq.n);
        for (size_t i = 0; i < dlq.n; i++) {
                cr_assert_str_eq(dlq.reasons[i], "poison_pill");
                cr_assert_str_eq(dlq.keys[i], "BRK.B");
        }
        cr_assert_eq(st.dead_letters[CHORUS_ERR_POISON], dlq.n);
        output_free(&fc);
        output_free(&dlq);
        chorus_config_destroy(cfg);
}

Test(worker, functions_lost_under_a_running_worker_are_loaded_again) {
        chorus_config_t *cfg = NULL;
        chorus_worker_t *w;
        static volatile sig_atomic_t never;
        char errstr[512];
        output_t fc;
        int n_pred;

        create_input_topics();
        create_topics("f");
        n_pred = produce_dataset("predictions.in", "actuals.in", 10);
        cfg = make_config("t6", "g6", "f");
        w = chorus_worker_new(cfg, errstr, sizeof(errstr));
        cr_assert_not_null(w, "%s", errstr);
        /* The worker loaded the library on connect; an operator flushes it. */
        redis_command("FUNCTION FLUSH %s", "SYNC");
        cr_assert_eq(chorus_worker_run(w, &never, 2000), CHORUS_OK);
        chorus_worker_destroy(w);

        read_topic("forecasts.f", &fc);
        cr_assert_eq(fc.n, (size_t)n_pred);
        output_free(&fc);
        chorus_config_destroy(cfg);
}
