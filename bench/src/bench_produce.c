/*
 * bench_produce: writes a range of the benchmark workload (workload.h) into
 * the input topics, either as fast as possible (the preload, which doubles
 * as the produce-only ceiling) or paced at a fixed rate (the latency run).
 *
 * Every record is encoded into memory first, so the timed part is only
 * produce() + flush: the rate printed is the producer's, not the encoder's.
 * Paced records carry their own CreateTime (the wall clock when they are
 * handed to librdkafka), which is what end-to-end latency is measured from;
 * --ts-file writes "key<TAB>revision<TAB>create_time_ms" per prediction so an
 * output forecast can be traced back to the input that triggered it.
 *
 * Output: one JSON object on stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "workload.h"

typedef struct msg {
        int is_prediction;
        int64_t bucket;
        uint32_t key_off, key_len, val_off, val_len;
} msg_t;

typedef struct arena {
        unsigned char *data;
        size_t len, cap;
        msg_t *msgs;
        size_t n, cap_msgs;
} arena_t;

static long long delivery_errors;

static void die(const char *fmt, const char *arg) {
        fprintf(stderr, "bench_produce: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(1);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int collect(const wl_rec_t *r, void *opaque) {
        arena_t *a = opaque;
        msg_t *m;

        if (a->len + r->key_len + r->value_len > a->cap) {
                while (a->len + r->key_len + r->value_len > a->cap)
                        a->cap = a->cap ? a->cap * 2 : 1 << 20;
                if (!(a->data = realloc(a->data, a->cap)))
                        die("%s", "out of memory");
        }
        if (a->n == a->cap_msgs) {
                a->cap_msgs = a->cap_msgs ? a->cap_msgs * 2 : 1 << 16;
                if (!(a->msgs = realloc(a->msgs, a->cap_msgs * sizeof(*a->msgs))))
                        die("%s", "out of memory");
        }
        m = &a->msgs[a->n++];
        m->is_prediction = r->is_prediction;
        m->bucket = r->bucket;
        m->key_off = (uint32_t)a->len;
        m->key_len = (uint32_t)r->key_len;
        memcpy(a->data + a->len, r->key, r->key_len);
        a->len += r->key_len;
        m->val_off = (uint32_t)a->len;
        m->val_len = (uint32_t)r->value_len;
        memcpy(a->data + a->len, r->value, r->value_len);
        a->len += r->value_len;
        return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        (void)rk;
        (void)opaque;
        if (m->err) {
                if (delivery_errors++ < 5)
                        fprintf(stderr, "bench_produce: delivery failed: %s\n",
                                rd_kafka_err2str(m->err));
        }
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
        char err[512];
        if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
                die("%s", err);
}

int main(int argc, char **argv) {
        const char *brokers = wl_arg(argc, argv, "--brokers", NULL);
        const char *pred_topic = wl_arg(argc, argv, "--pred-topic", "chorus.predictions");
        const char *act_topic = wl_arg(argc, argv, "--act-topic", "chorus.actuals");
        const char *ts_file = wl_arg(argc, argv, "--ts-file", NULL);
        int n_series = atoi(wl_arg(argc, argv, "--series", "1000"));
        int n_models = atoi(wl_arg(argc, argv, "--models", "4"));
        int64_t res = strtoll(wl_arg(argc, argv, "--resolution-ms", "86400000"), NULL, 10);
        int64_t t0 = strtoll(wl_arg(argc, argv, "--t0", "1577836800000"), NULL, 10);
        uint64_t seed = strtoull(wl_arg(argc, argv, "--seed", "4"), NULL, 10);
        int64_t from = strtoll(wl_arg(argc, argv, "--from", "0"), NULL, 10);
        int64_t to = strtoll(wl_arg(argc, argv, "--to", "400"), NULL, 10);
        double rate = atof(wl_arg(argc, argv, "--rate", "0"));
        const char *order_s = wl_arg(argc, argv, "--order", "natural");
        const char *prefix = wl_arg(argc, argv, "--prefix", "S");
        rd_kafka_topic_t *tp_pred, *tp_act;
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        wl_order_t order;
        arena_t a = {0};
        wl_t wl;
        FILE *tsf = NULL;
        double t_enc0, t_enc1, t_start, t_end;
        char err[512], last_key[64] = "";
        int revision = 0;

        if (!brokers)
                die("%s", "--brokers is required");
        if (wl_order_parse(order_s, &order))
                die("unknown --order %s", order_s);
        if (wl_init(&wl, prefix, n_series, n_models, res, t0, seed, to + 2))
                die("%s", "out of memory");

        t_enc0 = now_s();
        wl_plan(&wl, order, from, to, collect, &a);
        t_enc1 = now_s();

        conf = rd_kafka_conf_new();
        set(conf, "bootstrap.servers", brokers);
        set(conf, "enable.idempotence", "true");
        set(conf, "linger.ms", wl_arg(argc, argv, "--linger-ms", "5"));
        set(conf, "batch.size", "1000000");
        set(conf, "queue.buffering.max.messages", "2000000");
        set(conf, "queue.buffering.max.kbytes", "2097151");
        set(conf, "compression.type", wl_arg(argc, argv, "--compression", "none"));
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))))
                die("%s", err);
        tp_pred = rd_kafka_topic_new(rk, pred_topic, NULL);
        tp_act = rd_kafka_topic_new(rk, act_topic, NULL);
        if (ts_file && !(tsf = fopen(ts_file, "w")))
                die("cannot write %s", ts_file);

        /* Metadata first, so the timed part does not include connecting. */
        {
                const struct rd_kafka_metadata *md;
                if (rd_kafka_metadata(rk, 0, tp_pred, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        rd_kafka_metadata_destroy(md);
                if (rd_kafka_metadata(rk, 0, tp_act, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                        rd_kafka_metadata_destroy(md);
        }

        t_start = now_s();
        for (size_t i = 0; i < a.n; i++) {
                msg_t *m = &a.msgs[i];
                int64_t ts = 0;
                rd_kafka_resp_err_t e;

                if (rate > 0) {
                        double due = t_start + (double)i / rate, wait = due - now_s();
                        if (wait > 0) {
                                struct timespec d = {(time_t)wait,
                                                     (long)((wait - (double)(time_t)wait) * 1e9)};
                                while (nanosleep(&d, &d) && errno == EINTR)
                                        ;
                        }
                        ts = wall_ms();
                }
                for (;;) {
                        e = rd_kafka_producev(rk,
                                              RD_KAFKA_V_RKT(m->is_prediction ? tp_pred : tp_act),
                                              RD_KAFKA_V_KEY(a.data + m->key_off, m->key_len),
                                              RD_KAFKA_V_VALUE(a.data + m->val_off, m->val_len),
                                              RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
                        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                break;
                        rd_kafka_poll(rk, 10);
                }
                if (e)
                        die("produce: %s", rd_kafka_err2str(e));
                if (tsf && m->is_prediction) {
                        /* Forecast key series|horizon|bucket_ms; in the lead and slices
                         * orders the predictions of a group are contiguous, so the n-th
                         * of a run triggers revision n of a fresh group. */
                        char key[64];
                        snprintf(key, sizeof(key), "%.*s|%s|%" PRId64, (int)m->key_len,
                                 (const char *)a.data + m->key_off, wl.horizon,
                                 t0 + m->bucket * res);
                        revision = strcmp(key, last_key) ? 1 : revision + 1;
                        snprintf(last_key, sizeof(last_key), "%s", key);
                        fprintf(tsf, "%s\t%d\t%" PRId64 "\n", key, revision, ts);
                }
                if ((i & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
        while (rd_kafka_outq_len(rk) > 0)
                rd_kafka_flush(rk, 1000);
        t_end = now_s();
        if (tsf)
                fclose(tsf);

        printf("{\"records\": %zu, \"bytes\": %zu, \"encode_s\": %.3f, \"produce_s\": %.3f, "
               "\"rate\": %.1f, \"delivery_errors\": %lld}\n",
               a.n, a.len, t_enc1 - t_enc0, t_end - t_start, (double)a.n / (t_end - t_start),
               delivery_errors);
        rd_kafka_topic_destroy(tp_pred);
        rd_kafka_topic_destroy(tp_act);
        rd_kafka_destroy(rk);
        free(a.data);
        free(a.msgs);
        wl_destroy(&wl);
        return delivery_errors ? 1 : 0;
}
