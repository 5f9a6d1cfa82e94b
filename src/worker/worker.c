/*
 * The worker loop: consume -> decode -> one Redis round trip -> compute ->
 * produce -> flush -> commit.
 *
 * Invariants:
 *  - Input offsets are committed only after every output of the records
 *    before them (forecasts and dead letters) has been delivered, so a
 *    crash re-delivers input rather than losing output.
 *  - A committed offset never passes a held prediction: held records keep
 *    their partition's commit point at or below their own offset.
 *  - Records of one series are sent to Redis in consume order, held ones
 *    first, so revisions and tie-breaks follow the input log.
 *  - Nothing here keeps state that matters between batches beyond the held
 *    queue, which is rebuilt from the log after a restart or a rebalance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "chorus/codec.h"
#include "chorus/forecast.h"
#include "chorus/log.h"
#include "chorus/state.h"
#include "chorus/worker.h"

/* One input record on its way through a batch. */
typedef struct entry {
        chorus_topic_role_t role;
        const char *topic; /* the configured topic name: lives as long as cfg */
        int32_t partition;
        int64_t offset;
        int64_t bucket;
        int64_t held_since_ms; /* wall clock of the first hold, 0 if never held */
        union {
                chorus_prediction_t prediction;
                chorus_actual_t actual;
        } rec;
} entry_t;

/* Consume position of one assigned partition. */
typedef struct position {
        const char *topic;
        int32_t partition;
        int64_t next_offset;      /* last consumed + 1 */
        int64_t committed_offset; /* last commit sent */
} position_t;

struct chorus_worker_s {
        const chorus_config_t *cfg;
        rd_kafka_t *consumer;
        rd_kafka_t *producer;
        chorus_codec_t *codec;
        chorus_state_t *state;

        entry_t *fresh; /* records consumed for the next batch */
        size_t n_fresh, fresh_cap;
        entry_t *held; /* held predictions, carried to the next batch */
        size_t n_held, held_cap;
        entry_t *entries; /* the batch: held records first, then fresh ones */
        size_t n_entries, entries_cap;

        position_t *positions;
        size_t n_positions, positions_cap;

        chorus_group_scratch_t scratch;
        chorus_forecast_t forecast;
        chorus_buf_t out;

        int64_t assigned_at_ms; /* last assignment; 0 while unassigned */
        uint64_t batch_seq;
        char instance_id[48];
        int64_t delivery_failures;
        chorus_worker_stats_t stats;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
        size_t ncap;
        void *np;

        if (need <= *cap)
                return p;
        ncap = *cap ? *cap : 64;
        while (ncap < need)
                ncap *= 2;
        np = realloc(p, ncap * elem);
        if (!np) {
                fprintf(stderr, "chorus: out of memory\n");
                abort();
        }
        *cap = ncap;
        return np;
}

static position_t *position_get(chorus_worker_t *w, const char *topic, int32_t partition) {
        for (size_t i = 0; i < w->n_positions; i++)
                if (w->positions[i].partition == partition && !strcmp(w->positions[i].topic, topic))
                        return &w->positions[i];
        w->positions = grow(w->positions, &w->positions_cap, w->n_positions + 1,
                            sizeof(*w->positions));
        w->positions[w->n_positions] = (position_t){topic, partition, -1, -1};
        return &w->positions[w->n_positions++];
}

/* The configured name of the input topic @p name, or NULL. */
static const char *input_role(const chorus_worker_t *w, const char *name,
                              chorus_topic_role_t *role) {
        static const chorus_topic_role_t inputs[] = {CHORUS_TOPIC_PREDICTIONS,
                                                     CHORUS_TOPIC_ACTUALS};
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
                if (!strcmp(w->cfg->topics[inputs[i]].name, name)) {
                        *role = inputs[i];
                        return w->cfg->topics[inputs[i]].name;
                }
        return NULL;
}

/* ------------------------------------------------------------------ */
/* Kafka setup                                                         */
/* ------------------------------------------------------------------ */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        chorus_worker_t *w = opaque;
        (void)rk;
        if (m->err) {
                w->delivery_failures++;
                chorus_log_error("producer", "msg=\"delivery failed\" topic=%s err=\"%s\"",
                                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        }
}

/* Removes from @p arr the entries of partition @p tp; returns the new count. */
static size_t drop_partition(entry_t *arr, size_t n, const rd_kafka_topic_partition_t *tp) {
        size_t kept = 0;
        for (size_t j = 0; j < n; j++)
                if (!(arr[j].partition == tp->partition && !strcmp(arr[j].topic, tp->topic)))
                        arr[kept++] = arr[j];
        return kept;
}

/* Records and positions of revoked partitions are dropped: their new owner
 * re-reads them from the last committed offset. */
static void forget_partitions(chorus_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                size_t kept = 0;

                w->n_held = drop_partition(w->held, w->n_held, tp);
                w->n_fresh = drop_partition(w->fresh, w->n_fresh, tp);
                for (size_t j = 0; j < w->n_positions; j++)
                        if (!(w->positions[j].partition == tp->partition &&
                              !strcmp(w->positions[j].topic, tp->topic)))
                                w->positions[kept++] = w->positions[j];
                w->n_positions = kept;
        }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
        chorus_worker_t *w = opaque;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                chorus_log_info("consumer", "msg=\"partitions assigned\" count=%d", parts->cnt);
                rd_kafka_assign(rk, parts);
                w->assigned_at_ms = now_ms();
        } else {
                chorus_log_info("consumer", "msg=\"partitions revoked\" count=%d", parts->cnt);
                forget_partitions(w, parts);
                rd_kafka_assign(rk, NULL);
                w->assigned_at_ms = 0;
        }
}

/* Applies Chorus's defaults, then the kafka.* passthrough (which wins). */
static rd_kafka_conf_t *make_conf(chorus_worker_t *w, const char *const *defaults,
                                  char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        for (size_t i = 0; defaults[i]; i += 2)
                if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr, errstr_size) !=
                    RD_KAFKA_CONF_OK)
                        goto fail;
        for (size_t i = 0; i < w->cfg->n_kafka; i++)
                if (rd_kafka_conf_set(conf, w->cfg->kafka[i].key, w->cfg->kafka[i].value, errstr,
                                      errstr_size) != RD_KAFKA_CONF_OK)
                        goto fail;
        rd_kafka_conf_set_opaque(conf, w);
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

static chorus_err_t setup_kafka(chorus_worker_t *w, char *errstr, size_t errstr_size) {
        /* Eager assignment: librdkafka 2.0.2's cooperative-sticky assignor
         * aborts when closed before its first assignment (PLATFORM.md). */
        static const char *const consumer_defaults[] = {
            "group.id", "chorus", "enable.auto.commit", "false", "enable.auto.offset.store",
            "false", "auto.offset.reset", "earliest", "isolation.level", "read_committed",
            "partition.assignment.strategy", "range,roundrobin", NULL};
        static const char *const producer_defaults[] = {
            "enable.idempotence", "true", "linger.ms", "5", "message.timeout.ms", "300000", NULL};
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_conf_t *conf;
        rd_kafka_resp_err_t err;

        if (!(conf = make_conf(w, consumer_defaults, errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return CHORUS_ERR_KAFKA;
        }
        rd_kafka_poll_set_consumer(w->consumer);

        if (!(conf = make_conf(w, producer_defaults, errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return CHORUS_ERR_KAFKA;
        }

        topics = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics[CHORUS_TOPIC_PREDICTIONS].name,
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics[CHORUS_TOPIC_ACTUALS].name,
                                          RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(w->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

/* Registers each input topic's reader schema under its id, then the extra
 * writer schemas of schema.<id>.* (older or newer writers). */
static chorus_err_t setup_codec(chorus_worker_t *w, char *errstr, size_t errstr_size) {
        const chorus_config_t *cfg = w->cfg;
        static const chorus_topic_role_t inputs[] = {CHORUS_TOPIC_PREDICTIONS,
                                                     CHORUS_TOPIC_ACTUALS};
        chorus_err_t err;

        if (!(w->codec = chorus_codec_new(errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                const chorus_topic_conf_t *t = &cfg->topics[inputs[i]];
                if ((err = chorus_codec_register(w->codec, t->schema_id, t->type,
                                                 chorus_record_schema_json(t->type), errstr,
                                                 errstr_size)))
                        return err;
        }
        for (size_t i = 0; i < cfg->n_schemas; i++) {
                const chorus_schema_conf_t *s = &cfg->schemas[i];
                FILE *fp = fopen(s->file, "rb");
                char *json;
                long len;

                if (!fp || fseek(fp, 0, SEEK_END) || (len = ftell(fp)) < 0 ||
                    fseek(fp, 0, SEEK_SET)) {
                        snprintf(errstr, errstr_size, "schema.%d.file: cannot read %s",
                                 (int)s->id, s->file);
                        if (fp)
                                fclose(fp);
                        return CHORUS_ERR_CONFIG;
                }
                json = malloc((size_t)len + 1);
                if (!json || fread(json, 1, (size_t)len, fp) != (size_t)len) {
                        free(json);
                        fclose(fp);
                        snprintf(errstr, errstr_size, "schema.%d.file: cannot read %s",
                                 (int)s->id, s->file);
                        return CHORUS_ERR_CONFIG;
                }
                json[len] = '\0';
                fclose(fp);
                err = chorus_codec_register(w->codec, s->id, s->type, json, errstr, errstr_size);
                free(json);
                if (err)
                        return err;
        }
        return CHORUS_OK;
}

chorus_worker_t *chorus_worker_new(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        chorus_worker_t *w = calloc(1, sizeof(*w));

        if (!w) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        w->cfg = cfg;
        snprintf(w->instance_id, sizeof(w->instance_id), "%d-%" PRIx64, (int)getpid(),
                 (uint64_t)time(NULL));
        if (cfg->emit_mode != CHORUS_EMIT_EVERY) {
                snprintf(errstr, errstr_size,
                         "emit.mode=complete is not implemented yet; use emit.mode=every");
                goto fail;
        }
        if (setup_codec(w, errstr, errstr_size))
                goto fail;
        if (!(w->state = chorus_state_new(cfg, errstr, errstr_size)))
                goto fail;
        if (setup_kafka(w, errstr, errstr_size))
                goto fail;
        return w;
fail:
        chorus_worker_destroy(w);
        return NULL;
}

void chorus_worker_destroy(chorus_worker_t *w) {
        if (!w)
                return;
        if (w->consumer) {
                rd_kafka_consumer_close(w->consumer);
                rd_kafka_destroy(w->consumer);
        }
        if (w->producer) {
                rd_kafka_flush(w->producer, 10000);
                rd_kafka_destroy(w->producer);
        }
        chorus_state_destroy(w->state);
        chorus_codec_destroy(w->codec);
        chorus_group_scratch_destroy(&w->scratch);
        chorus_buf_destroy(&w->out);
        free(w->entries);
        free(w->fresh);
        free(w->held);
        free(w->positions);
        free(w);
}

const chorus_worker_stats_t *chorus_worker_stats(const chorus_worker_t *w) {
        return &w->stats;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* Produces with back-pressure: a full local queue is drained, not dropped. */
static chorus_err_t produce(chorus_worker_t *w, const char *topic, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            rd_kafka_headers_t *headers) {
        rd_kafka_resp_err_t err;

        for (;;) {
                err = rd_kafka_producev(
                    w->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                    RD_KAFKA_V_VALUE((void *)value, value_len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                    RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(w->producer, 100);
        }
        if (err) {
                if (headers)
                        rd_kafka_headers_destroy(headers);
                chorus_log_error("producer", "msg=\"produce failed\" topic=%s err=\"%s\"", topic,
                                 rd_kafka_err2str(err));
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

static chorus_err_t dead_letter(chorus_worker_t *w, const rd_kafka_message_t *m,
                                chorus_err_t reason, const char *message) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        const char *code = chorus_err2code(reason);
        char partition[16], offset[24];

        snprintf(partition, sizeof(partition), "%d", (int)m->partition);
        snprintf(offset, sizeof(offset), "%" PRId64, m->offset);
        rd_kafka_header_add(h, "chorus.error", -1, code, -1);
        rd_kafka_header_add(h, "chorus.error.message", -1, message, -1);
        rd_kafka_header_add(h, "chorus.source.topic", -1, rd_kafka_topic_name(m->rkt), -1);
        rd_kafka_header_add(h, "chorus.source.partition", -1, partition, -1);
        rd_kafka_header_add(h, "chorus.source.offset", -1, offset, -1);
        w->stats.dead_letters[reason]++;
        w->stats.records_out[CHORUS_TOPIC_DLQ]++;
        chorus_log_warn("worker",
                        "msg=\"dead letter\" reason=%s topic=%s partition=%d offset=%" PRId64
                        " detail=\"%s\"",
                        code, rd_kafka_topic_name(m->rkt), (int)m->partition, m->offset, message);
        return produce(w, w->cfg->topics[CHORUS_TOPIC_DLQ].name, m->key, m->key_len, m->payload,
                       m->len, h);
}

static chorus_err_t emit_forecast(chorus_worker_t *w, const entry_t *e, const redisReply *r) {
        const chorus_prediction_t *p = &e->rec.prediction;
        const chorus_topic_conf_t *t = &w->cfg->topics[CHORUS_TOPIC_FORECASTS];
        chorus_group_view_t view;
        char key[3 * (CHORUS_NAME_MAX + 1) + 24], errstr[256];
        chorus_err_t err;
        int key_len;

        if ((err = chorus_state_parse_group(r, p->series, p->horizon, e->bucket, &w->scratch,
                                            &view))) {
                chorus_log_error("worker", "msg=\"unexpected state reply\" series=%s", p->series);
                return err;
        }
        if ((err = chorus_forecast_build(w->cfg, &view, &w->forecast))) {
                chorus_log_error("worker",
                                 "msg=\"cannot build forecast\" series=%s horizon=%s models=%zu",
                                 p->series, p->horizon, view.n_models);
                return err;
        }
        chorus_buf_reset(&w->out);
        if ((err = chorus_codec_encode(w->codec, CHORUS_RECORD_FORECAST, t->framing, t->schema_id,
                                       &w->forecast, &w->out, errstr, sizeof(errstr)))) {
                chorus_log_error("worker", "msg=\"encode failed\" err=\"%s\"", errstr);
                return err;
        }
        key_len = snprintf(key, sizeof(key), "%s|%s|%" PRId64, p->series, p->horizon, e->bucket);
        w->stats.records_out[CHORUS_TOPIC_FORECASTS]++;
        return produce(w, t->name, key, (size_t)key_len, w->out.data, w->out.len, NULL);
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

/* Decodes and validates one message into a new entry, or dead-letters it. */
static chorus_err_t admit(chorus_worker_t *w, const rd_kafka_message_t *m) {
        const chorus_config_t *cfg = w->cfg;
        chorus_topic_role_t role;
        const char *topic = input_role(w, rd_kafka_topic_name(m->rkt), &role);
        const chorus_topic_conf_t *t;
        position_t *pos;
        entry_t *e;
        char errstr[256];
        chorus_err_t err;

        if (!topic)
                return CHORUS_OK; /* not subscribed: cannot happen */
        t = &cfg->topics[role];
        pos = position_get(w, topic, m->partition);
        if (m->offset + 1 > pos->next_offset)
                pos->next_offset = m->offset + 1;
        w->stats.records_in[role]++;

        w->fresh = grow(w->fresh, &w->fresh_cap, w->n_fresh + 1, sizeof(*w->fresh));
        e = &w->fresh[w->n_fresh];
        memset(e, 0, sizeof(*e));
        e->role = role;
        e->topic = topic;
        e->partition = m->partition;
        e->offset = m->offset;

        err = chorus_codec_decode(w->codec, t->type, t->framing, t->schema_id, m->payload, m->len,
                                  &e->rec, NULL, errstr, sizeof(errstr));
        if (err)
                return dead_letter(w, m, err, errstr);
        if (role == CHORUS_TOPIC_PREDICTIONS) {
                if (!chorus_config_horizon_allowed(cfg, e->rec.prediction.horizon)) {
                        snprintf(errstr, sizeof(errstr), "horizon %s is not configured",
                                 e->rec.prediction.horizon);
                        return dead_letter(w, m, CHORUS_ERR_UNKNOWN_HORIZON, errstr);
                }
                e->bucket = chorus_bucket_of(e->rec.prediction.target_time,
                                             chorus_config_resolution_ms(cfg, e->rec.prediction.series));
        } else {
                e->bucket = chorus_bucket_of(e->rec.actual.observed_at,
                                             chorus_config_resolution_ms(cfg, e->rec.actual.series));
        }
        w->n_fresh++;
        return CHORUS_OK;
}

static void queue_state_calls(chorus_worker_t *w) {
        int64_t now = now_ms();
        char batch_id[64];

        snprintf(batch_id, sizeof(batch_id), "%s-%" PRIu64, w->instance_id, ++w->batch_seq);
        chorus_state_batch_begin(w->state, batch_id);
        for (size_t i = 0; i < w->n_entries; i++) {
                entry_t *e = &w->entries[i];
                if (e->role == CHORUS_TOPIC_PREDICTIONS) {
                        size_t n_configured;
                        int force = e->held_since_ms &&
                                    now - e->held_since_ms >= w->cfg->join_max_wait_ms;
                        chorus_config_expected_models(w->cfg, e->rec.prediction.horizon,
                                                      &n_configured);
                        chorus_state_add_prediction(w->state, &e->rec.prediction, e->topic,
                                                    e->partition, e->offset, e->bucket, force,
                                                    n_configured == 0);
                } else {
                        chorus_state_add_actual(w->state, &e->rec.actual, e->topic, e->partition,
                                                e->offset, e->bucket);
                }
        }
}

/* Sends the batch's state calls, retrying with backoff while Redis is away:
 * input is never skipped (SPEC §9.4). */
static chorus_err_t exec_state_calls(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        int backoff_ms = 100;
        char errstr[512];

        for (;;) {
                w->stats.redis_round_trips++;
                if (!chorus_state_batch_exec(w->state, errstr, sizeof(errstr)))
                        return CHORUS_OK;
                chorus_log_warn("state", "msg=\"redis unavailable, retrying\" err=\"%s\" backoff_ms=%d",
                                errstr, backoff_ms);
                if (*stop)
                        return CHORUS_ERR_REDIS;
                rd_kafka_poll(w->producer, backoff_ms);
                if (backoff_ms < 5000)
                        backoff_ms *= 2;
                chorus_state_reconnect(w->state, errstr, sizeof(errstr));
        }
}

static chorus_err_t handle_replies(chorus_worker_t *w) {
        int64_t now = now_ms();
        chorus_err_t err;

        w->n_held = 0;
        for (size_t i = 0; i < w->n_entries; i++) {
                entry_t *e = &w->entries[i];
                const redisReply *r = chorus_state_batch_reply(w->state, i);

                switch (chorus_state_reply_status(r)) {
                case CHORUS_APPLY_APPLIED:
                        w->stats.applied++;
                        if (e->role == CHORUS_TOPIC_PREDICTIONS && (err = emit_forecast(w, e, r)))
                                return err;
                        break;
                case CHORUS_APPLY_DUPLICATE:
                        w->stats.duplicates++;
                        break;
                case CHORUS_APPLY_STALE:
                        w->stats.stale++;
                        break;
                case CHORUS_APPLY_REPLAYED:
                        w->stats.replayed++;
                        break;
                case CHORUS_APPLY_HOLD:
                        if (!e->held_since_ms) {
                                e->held_since_ms = now;
                                w->stats.held++;
                        }
                        w->held = grow(w->held, &w->held_cap, w->n_held + 1, sizeof(*w->held));
                        w->held[w->n_held++] = *e;
                        break;
                case CHORUS_APPLY_ERROR:
                        chorus_log_error("state", "msg=\"state function failed\" topic=%s "
                                         "partition=%d offset=%" PRId64 " err=\"%s\"",
                                         e->topic, (int)e->partition, e->offset,
                                         r && r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
                        return CHORUS_ERR_STATE;
                }
        }
        return CHORUS_OK;
}

/* Waits until every output so far is delivered. */
static chorus_err_t flush_outputs(chorus_worker_t *w) {
        while (rd_kafka_outq_len(w->producer) > 0)
                rd_kafka_flush(w->producer, 1000);
        if (w->delivery_failures) {
                chorus_log_error("producer", "msg=\"outputs not delivered; not committing\" "
                                 "failures=%" PRId64, w->delivery_failures);
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

/* Commits, per partition, the offset after the last record whose outputs
 * are delivered, but never beyond a held record. */
static chorus_err_t commit_positions(chorus_worker_t *w) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

        for (size_t i = 0; i < w->n_positions; i++) {
                position_t *pos = &w->positions[i];
                int64_t commit = pos->next_offset;

                for (size_t j = 0; j < w->n_held; j++)
                        if (w->held[j].partition == pos->partition &&
                            !strcmp(w->held[j].topic, pos->topic) && w->held[j].offset < commit)
                                commit = w->held[j].offset;
                if (commit > pos->committed_offset) {
                        rd_kafka_topic_partition_list_add(list, pos->topic, pos->partition)
                            ->offset = commit;
                        pos->committed_offset = commit;
                }
        }
        if (list->cnt)
                err = rd_kafka_commit(w->consumer, list, 0);
        rd_kafka_topic_partition_list_destroy(list);
        if (err) {
                /* The records will be re-delivered and found applied: no loss. */
                chorus_log_warn("consumer", "msg=\"commit failed\" err=\"%s\"",
                                rd_kafka_err2str(err));
        }
        return CHORUS_OK;
}

static chorus_err_t run_batch(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        chorus_err_t err;

        /* Held records first, in their order, then the fresh ones. */
        w->entries = grow(w->entries, &w->entries_cap, w->n_held + w->n_fresh + 1,
                          sizeof(*w->entries));
        memcpy(w->entries, w->held, w->n_held * sizeof(*w->held));
        memcpy(w->entries + w->n_held, w->fresh, w->n_fresh * sizeof(*w->fresh));
        w->n_entries = w->n_held + w->n_fresh;
        w->n_fresh = 0;
        if (w->n_entries == 0)
                return commit_positions(w);
        w->stats.batches++;
        queue_state_calls(w);
        if ((err = exec_state_calls(w, stop)))
                return err;
        if ((err = handle_replies(w)))
                return err;
        if ((err = flush_outputs(w)))
                return err;
        return commit_positions(w);
}

chorus_err_t chorus_worker_run(chorus_worker_t *w, volatile sig_atomic_t *stop,
                               int64_t idle_exit_ms) {
        int64_t last_input = now_ms();
        chorus_err_t err = CHORUS_OK;

        chorus_log_info("worker", "msg=\"started\" instance=%s", w->instance_id);
        while (!*stop) {
                int64_t deadline = now_ms() + w->cfg->batch_max_wait_ms;
                int64_t wait;
                size_t fresh = 0;

                while (fresh < (size_t)w->cfg->batch_max_records && !*stop &&
                       (wait = deadline - now_ms()) >= 0) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, (int)wait);
                        if (!m)
                                continue;
                        if (m->err) {
                                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                        chorus_log_warn("consumer", "msg=\"consume error\" err=\"%s\"",
                                                        rd_kafka_message_errstr(m));
                        } else {
                                fresh++;
                                err = admit(w, m);
                        }
                        rd_kafka_message_destroy(m);
                        if (err)
                                return err;
                }
                if (fresh)
                        last_input = now_ms();
                if ((err = run_batch(w, stop)))
                        return err;
                rd_kafka_poll(w->producer, 0);
                /* Idle is measured from the later of the last input and the
                 * assignment: joining a group can take seconds. */
                if (idle_exit_ms >= 0 && !fresh && !w->n_held && w->assigned_at_ms &&
                    now_ms() - (last_input > w->assigned_at_ms ? last_input : w->assigned_at_ms) >=
                        idle_exit_ms)
                        break;
        }
        chorus_log_info("worker", "msg=\"stopped\" batches=%" PRIu64 " applied=%" PRIu64
                        " forecasts=%" PRIu64,
                        w->stats.batches, w->stats.applied,
                        w->stats.records_out[CHORUS_TOPIC_FORECASTS]);
        return err;
}
