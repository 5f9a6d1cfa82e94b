/*
 * The worker loop: consume -> decode -> one Redis round trip -> compute ->
 * produce -> commit (in one Kafka transaction with the input offsets).
 *
 * Invariants:
 *  - Outputs of a batch (forecasts and dead letters) and the input offsets
 *    after it commit together: in one transaction (exactly_once), or offsets
 *    only after every output is delivered (at_least_once).
 *  - Redis is applied before the transaction commits. If the transaction
 *    aborts or the worker dies, the records come back, Redis answers
 *    "reemit" with the snapshot their outputs were computed from, and the
 *    same bytes are produced again. Snapshots are released (in the next
 *    batch's round trip) only after their outputs committed.
 *  - A committed offset never passes a held or retried record.
 *  - Records of one series are sent to Redis in consume order, held ones
 *    first, so revisions and tie-breaks follow the input log.
 *  - Nothing here outlives a batch except the held queue and the pending
 *    releases, both of which are rebuilt from the log and Redis after a
 *    restart or a rebalance.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "chorus/codec.h"
#include "chorus/commit_meta.h"
#include "chorus/dead_letter.h"
#include "chorus/feature_shift.h"
#include "chorus/forecast.h"
#include "chorus/identity.h"
#include "chorus/log.h"
#include "chorus/global.h"
#include "chorus/monitor.h"
#include "chorus/state.h"
#include "chorus/telemetry.h"
#include "chorus/util.h"
#include "chorus/worker.h"
#include "series_map.h"

#define TXN_TIMEOUT_MS 30000

/* One input record on its way through a batch. It owns a copy of the raw
 * key and value, for a dead letter should processing fail repeatedly. */
typedef struct entry {
        chorus_topic_role_t role;
        const char *topic; /* the configured topic name: lives as long as cfg */
        int32_t partition;
        int64_t offset;
        int64_t bucket;
        int64_t held_since_ms; /* wall clock of the first hold, 0 if never held */
        int attempts;          /* failed processing attempts */
        size_t reply;          /* index of its reply in the batch; NO_REPLY if not sent */
        unsigned char *raw;    /* key bytes, then value bytes */
        size_t key_len, value_len;
        int has_key, has_value;
        chorus_err_t dead; /* an input error: this record is a dead letter */
        char dead_msg[256];
        union {
                chorus_prediction_t prediction;
                chorus_actual_t actual;
                /* A FeatureImportance is too large to keep per entry (up to
                 * 256 features): its model and event time only, and it is
                 * decoded again from raw when its state call is queued. */
                struct {
                        chorus_name_t model;
                        int64_t computed_at;
                } fi;
        } rec;
} entry_t;

/* A dead letter waiting for the batch's transaction. */
typedef struct dead_letter {
        const char *topic;
        int32_t partition;
        int64_t offset;
        chorus_err_t reason;
        char message[256];
        unsigned char *raw;
        size_t key_len, value_len;
        int has_key, has_value; /* a null key or value stays null, not empty */
} dead_letter_t;

/* Snapshots to release once their outputs are committed. */
typedef struct release {
        chorus_name_t series; /* or, with fi, a FeatureImportance model */
        int fi;               /* the model's base key, {fi|<model>} */
        const char *topic;
        int32_t partition;
        int64_t offset;
} release_t;

/* A dead letter whose transaction committed, to record in Redis with the
 * next round trip so that a re-read of its offset is recognised. */
typedef struct dlq_done {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t committed; /* the partition's committed offset after it */
} dlq_done_t;

#define NO_REPLY ((size_t)-1)

/* An assigned input partition: the epoch that fences its previous owners'
 * Redis writes, and the batches named in its committed offset's metadata
 * (their snapshots are committed outputs). */
typedef struct owned {
        const char *topic;
        int32_t partition;
        int64_t epoch; /* 0 until taken */
        chorus_commit_meta_t committed;
        char committed_ids[CHORUS_COMMIT_META_MAX * (CHORUS_COMMIT_META_ID_MAX + 1) + 2];
} owned_t;

/* Consume position of one assigned partition. */
typedef struct position {
        const char *topic;
        int32_t partition;
        int64_t next_offset;      /* last consumed + 1 */
        int64_t committed_offset; /* last commit sent */
} position_t;

#define VEC(type, name)                                                                            \
        type *name;                                                                                \
        size_t n_##name, name##_cap

struct chorus_worker_s {
        const chorus_config_t *cfg;
        rd_kafka_t *consumer;
        rd_kafka_t *producer;
        chorus_codec_t *codec;
        chorus_state_t *state;
        chorus_identity_t *identity; /* worker.id, or this host's lowest free slot */
        int transactional;

        VEC(entry_t, fresh);   /* consumed for the next batch */
        VEC(entry_t, held);    /* held or retried, carried to the next batch */
        VEC(entry_t, entries); /* the batch: held first, then fresh */
        VEC(dead_letter_t, dlq);
        VEC(release_t, releases);        /* sent with the next round trip */
        VEC(release_t, batch_releases);  /* of the batch in flight */
        VEC(dlq_done_t, dlq_done);       /* sent with the next round trip */
        VEC(dlq_done_t, batch_dlq_done); /* of the batch in flight */
        VEC(position_t, positions);
        VEC(owned_t, owned);
        VEC(chorus_name_t, wm_reads);   /* series whose watermark this batch reads */
        int refresh_owned;              /* assigned: take epochs, read commit metadata */
        int fenced;                     /* a state call said another worker owns a partition */
        size_t n_sent;                  /* entries of the batch sent to Redis */
        size_t n_release_cmds;          /* bookkeeping commands at the head of the pipeline */
        chorus_series_map_t *actual_wm; /* newest actual watermark seen per series */
        chorus_series_map_t *blocked;   /* series with a prediction waiting, this batch */
        chorus_monitor_t *monitor;      /* alerts.enabled: the batch's monitoring calls */
        chorus_feature_shift_t *fs;     /* the FeatureImportance being decoded or queued */
        chorus_global_t *global;        /* alerts.enabled: the batch's global call */
        VEC(chorus_global_topic_t, input_topics); /* partition counts, read once */
        char batch_id[64];                        /* of the batch being processed and committed */

        chorus_group_scratch_t scratch;
        chorus_forecast_t forecast;
        chorus_buf_t out;

        int64_t assigned_at_ms; /* last assignment; 0 while unassigned */
        uint64_t batch_seq;
        char instance_id[48];
        int64_t delivery_failures;
        size_t dlq_limit;              /* key plus value of a dead letter (dead_letter.h) */
        chorus_dlq_steps_t *dlq_steps; /* records whose dead letter needs a smaller form */
        int64_t dlq_refused;           /* dead letters refused for good since the last check */
        uint64_t batch_dlq_truncated, batch_dlq_dropped; /* counted when the batch commits */
        chorus_worker_stats_t stats;
        chorus_telemetry_t *tm;      /* NULL: no endpoints */
        int64_t last_redis_check_ms; /* last round trip or idle ping */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Adds the time since *since to *total, raises *max (if given) to it, and
 * moves *since to now. */
static void lap(uint64_t *since, uint64_t *total, uint64_t *max) {
        uint64_t now = now_us(), took = now - *since;
        *total += took;
        if (max && took > *max)
                *max = took;
        *since = now;
}

#define VEC_PUSH(w, name)                                                                          \
        ((w)->name =                                                                               \
             chorus_grow((w)->name, &(w)->name##_cap, (w)->n_##name + 1, sizeof(*(w)->name)),      \
         &(w)->name[(w)->n_##name++])

static int same_partition(const char *topic_a, int32_t part_a, const char *topic_b,
                          int32_t part_b) {
        return part_a == part_b && !strcmp(topic_a, topic_b);
}

static position_t *position_get(chorus_worker_t *w, const char *topic, int32_t partition) {
        position_t *pos;

        for (size_t i = 0; i < w->n_positions; i++)
                if (same_partition(w->positions[i].topic, w->positions[i].partition, topic,
                                   partition))
                        return &w->positions[i];
        pos = VEC_PUSH(w, positions);
        *pos = (position_t){topic, partition, -1, -1};
        return pos;
}

/* The configured name of input topic @p name, or NULL if it is not one. */
static const char *input_role(const chorus_worker_t *w, const char *name,
                              chorus_topic_role_t *role) {
        static const chorus_topic_role_t inputs[] = {CHORUS_TOPIC_PREDICTIONS, CHORUS_TOPIC_ACTUALS,
                                                     CHORUS_TOPIC_FEATURE_IMPORTANCE};
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
                if (!strcmp(w->cfg->topics[inputs[i]].name, name)) {
                        *role = inputs[i];
                        return w->cfg->topics[inputs[i]].name;
                }
        return NULL;
}

static void free_entries(entry_t *arr, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(arr[i].raw);
}

/* Removes the entries of one partition (all if @p topic is NULL), freeing them. */
static size_t drop_entries(entry_t *arr, size_t n, const char *topic, int32_t partition) {
        size_t kept = 0;
        for (size_t j = 0; j < n; j++) {
                if (!topic || same_partition(arr[j].topic, arr[j].partition, topic, partition))
                        free(arr[j].raw);
                else
                        arr[kept++] = arr[j];
        }
        return kept;
}

/* ------------------------------------------------------------------ */
/* Kafka setup                                                         */
/* ------------------------------------------------------------------ */

/* A dead letter carries its level + 1 as its message opaque (forecasts and
 * alerts carry none): a permanent refusal of one steps its record down
 * (produce_dead_letters), anything else is a failure that the batch retries. */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
        chorus_worker_t *w = opaque;
        uintptr_t dlq_level = (uintptr_t)m->_private;
        chorus_produce_class_t class = chorus_produce_classify(m->err);
        rd_kafka_headers_t *h = NULL;
        char topic[256];
        int32_t partition;
        int64_t offset;

        (void)rk;
        if (!m->err)
                return;
        w->delivery_failures++;
        if (dlq_level && class != CHORUS_PRODUCE_RETRY && !rd_kafka_message_headers(m, &h) &&
            !chorus_dead_letter_source(h, topic, sizeof(topic), &partition, &offset)) {
                chorus_dlq_level_t next = chorus_dlq_steps_refused(
                    w->dlq_steps, topic, partition, offset, (chorus_dlq_level_t)(dlq_level - 1));
                w->dlq_refused++;
                chorus_log_warn("producer",
                                "msg=\"dead letter refused, stepping down\" topic=%s "
                                "partition=%d offset=%" PRId64
                                " class=%s err=\"%s\" bytes=%zu level=%s next=%s",
                                topic, (int)partition, offset, chorus_produce_class_name(class),
                                rd_kafka_err2str(m->err), m->len + m->key_len,
                                chorus_dlq_level_name((chorus_dlq_level_t)(dlq_level - 1)),
                                chorus_dlq_level_name(next));
                return;
        }
        chorus_log_error("producer", "msg=\"delivery failed\" topic=%s class=%s err=\"%s\"",
                         rd_kafka_topic_name(m->rkt), chorus_produce_class_name(class),
                         rd_kafka_err2str(m->err));
}

/* Records and positions of revoked partitions are dropped: their new owner
 * re-reads them from the last committed offset. */
static void forget_partitions(chorus_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                size_t kept;

                w->n_held = drop_entries(w->held, w->n_held, tp->topic, tp->partition);
                w->n_fresh = drop_entries(w->fresh, w->n_fresh, tp->topic, tp->partition);
                /* Their dead letters too: the new owner produces them again,
                 * with the offsets, in its own transaction. */
                kept = 0;
                for (size_t j = 0; j < w->n_dlq; j++) {
                        if (same_partition(w->dlq[j].topic, w->dlq[j].partition, tp->topic,
                                           tp->partition))
                                free(w->dlq[j].raw);
                        else
                                w->dlq[kept++] = w->dlq[j];
                }
                w->n_dlq = kept;
                chorus_dlq_steps_forget(w->dlq_steps, tp->topic, tp->partition, -1);
                kept = 0;
                for (size_t j = 0; j < w->n_positions; j++)
                        if (!same_partition(w->positions[j].topic, w->positions[j].partition,
                                            tp->topic, tp->partition))
                                w->positions[kept++] = w->positions[j];
                w->n_positions = kept;
                kept = 0;
                for (size_t j = 0; j < w->n_owned; j++)
                        if (!same_partition(w->owned[j].topic, w->owned[j].partition, tp->topic,
                                            tp->partition))
                                w->owned[kept++] = w->owned[j];
                w->n_owned = kept;
        }
}

/* The partition's commit metadata, as committed or read back. */
static void owned_set_committed(owned_t *o, const char *meta, size_t len) {
        int skipped = chorus_commit_meta_parse(&o->committed, meta, len);

        if (skipped)
                chorus_log_warn("worker",
                                "msg=\"commit metadata entries ignored\" topic=%s partition=%d "
                                "skipped=%d",
                                o->topic, (int)o->partition, skipped);
        chorus_commit_meta_ids(&o->committed, o->committed_ids, sizeof(o->committed_ids));
}

static owned_t *owned_get(chorus_worker_t *w, const char *topic, int32_t partition) {
        for (size_t i = 0; i < w->n_owned; i++)
                if (same_partition(w->owned[i].topic, w->owned[i].partition, topic, partition))
                        return &w->owned[i];
        return NULL;
}

/* New partitions: their epochs and commit metadata are fetched before the
 * next batch touches Redis (refresh_owned), not here in the callback. */
static void own_partitions(chorus_worker_t *w, const rd_kafka_topic_partition_list_t *parts) {
        for (int i = 0; i < parts->cnt; i++) {
                chorus_topic_role_t role;
                const char *topic = input_role(w, parts->elems[i].topic, &role);
                owned_t *o;

                if (!topic || owned_get(w, topic, parts->elems[i].partition))
                        continue;
                o = VEC_PUSH(w, owned);
                *o = (owned_t){.topic = topic, .partition = parts->elems[i].partition};
                owned_set_committed(o, NULL, 0);
        }
        w->refresh_owned = 1;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
        chorus_worker_t *w = opaque;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                chorus_log_info("consumer", "msg=\"partitions assigned\" count=%d", parts->cnt);
                own_partitions(w, parts);
                rd_kafka_assign(rk, parts);
                w->assigned_at_ms = now_ms();
                chorus_telemetry_rebalance(w->tm, 1, parts->cnt);
        } else {
                chorus_log_info("consumer", "msg=\"partitions revoked\" count=%d", parts->cnt);
                forget_partitions(w, parts);
                rd_kafka_assign(rk, NULL);
                w->assigned_at_ms = 0;
                chorus_telemetry_rebalance(w->tm, 0, 0);
        }
}

/* librdkafka statistics (consumer lag, broker states) for the endpoints. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
        chorus_worker_t *w = opaque;
        (void)rk;
        chorus_telemetry_kafka_stats(w->tm, json, json_len);
        return 0; /* librdkafka frees json */
}

/* Applies Chorus's defaults, then the kafka.* passthrough that goes to
 * @p client (which wins). */
static rd_kafka_conf_t *make_conf(chorus_worker_t *w, const char *const *defaults,
                                  chorus_kafka_client_t client, char *errstr, size_t errstr_size) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();

        for (size_t i = 0; defaults[i]; i += 2)
                if (defaults[i + 1] && rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], errstr,
                                                         errstr_size) != RD_KAFKA_CONF_OK)
                        goto fail;
        if (chorus_config_kafka_apply(w->cfg, client, conf, errstr, errstr_size))
                goto fail;
        rd_kafka_conf_set_opaque(conf, w);
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

static chorus_err_t setup_kafka(chorus_worker_t *w, char *errstr, size_t errstr_size) {
        const char *group = chorus_config_kafka_get(w->cfg, "group.id", CHORUS_KAFKA_CONSUMER);
        char txn_id[512];
        /* Eager assignment: librdkafka 2.0.2's cooperative-sticky assignor
         * aborts when closed before its first assignment (PLATFORM.md).
         * librdkafka prefetches 100,000 messages per partition by default,
         * in fetches of up to 1 MB per partition: with records of ~50 bytes
         * that is hundreds of MB (about 375 bytes per queued message).
         * Smaller queues cost some catch-up throughput, since 2.0.2 backs
         * off a full partition's fetch for a fixed second (docs/performance.md). */
        static const char *const consumer_defaults[] = {"group.id",
                                                        "chorus",
                                                        "enable.auto.commit",
                                                        "false",
                                                        "enable.auto.offset.store",
                                                        "false",
                                                        "auto.offset.reset",
                                                        "earliest",
                                                        "isolation.level",
                                                        "read_committed",
                                                        "partition.assignment.strategy",
                                                        "range,roundrobin",
                                                        "queued.min.messages",
                                                        "5000",
                                                        "queued.max.messages.kbytes",
                                                        "4096",
                                                        "max.partition.fetch.bytes",
                                                        "262144",
                                                        NULL};
        /* A transaction must be able to time out before its messages do. */
        const char *const producer_defaults[] = {"enable.idempotence",
                                                 "true",
                                                 "linger.ms",
                                                 "5",
                                                 "message.timeout.ms",
                                                 w->transactional ? "20000" : "300000",
                                                 "transaction.timeout.ms",
                                                 w->transactional ? "20000" : NULL,
                                                 "transactional.id",
                                                 w->transactional ? txn_id : NULL,
                                                 NULL};
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_error_t *error;
        rd_kafka_conf_t *conf;
        rd_kafka_resp_err_t err;

        /* A stable id per (group, worker.id): a restarted instance's
         * init_transactions fences and aborts what its predecessor left open
         * at once, instead of waiting for transaction.timeout.ms; KIP-447
         * group metadata fences zombies across ids. */
        if (!group)
                group = "chorus";
        snprintf(txn_id, sizeof(txn_id), "%s-%s", group, chorus_identity_id(w->identity));

        if (!(conf = make_conf(w, consumer_defaults, CHORUS_KAFKA_CONSUMER, errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
        /* With endpoints, statistics every 2 s unless configured otherwise. */
        if (*w->cfg->http_listen &&
            !chorus_config_kafka_get(w->cfg, "statistics.interval.ms", CHORUS_KAFKA_CONSUMER) &&
            rd_kafka_conf_set(conf, "statistics.interval.ms", "2000", errstr, errstr_size)) {
                rd_kafka_conf_destroy(conf);
                return CHORUS_ERR_CONFIG;
        }
        if (!(w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return CHORUS_ERR_KAFKA;
        }
        rd_kafka_poll_set_consumer(w->consumer);

        if (!(conf = make_conf(w, (const char *const *)producer_defaults, CHORUS_KAFKA_PRODUCER,
                               errstr, errstr_size)))
                return CHORUS_ERR_CONFIG;
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
        if (!(w->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size))) {
                rd_kafka_conf_destroy(conf);
                return CHORUS_ERR_KAFKA;
        }
        if (w->transactional && (error = rd_kafka_init_transactions(w->producer, 60000))) {
                snprintf(errstr, errstr_size, "init_transactions: %s",
                         rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                return CHORUS_ERR_KAFKA;
        }

        topics = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics[CHORUS_TOPIC_PREDICTIONS].name,
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_topic_partition_list_add(topics, w->cfg->topics[CHORUS_TOPIC_ACTUALS].name,
                                          RD_KAFKA_PARTITION_UA);
        /* FEATURE_SHIFT's input, only with monitoring on: turned on later,
         * the group reads the topic from its start. */
        if (w->cfg->alerts_enabled)
                rd_kafka_topic_partition_list_add(
                    topics, w->cfg->topics[CHORUS_TOPIC_FEATURE_IMPORTANCE].name,
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
        if (cfg->alerts_enabled) {
                const chorus_topic_conf_t *t = &cfg->topics[CHORUS_TOPIC_FEATURE_IMPORTANCE];
                if ((err = chorus_codec_register(w->codec, t->schema_id, t->type,
                                                 chorus_record_schema_json(t->type), errstr,
                                                 errstr_size)))
                        return err;
        }
        for (size_t i = 0; i < cfg->n_schemas; i++) {
                const chorus_schema_conf_t *s = &cfg->schemas[i];
                FILE *fp = fopen(s->file, "rb");
                char *json = NULL;
                long len = -1;

                if (fp && !fseek(fp, 0, SEEK_END) && (len = ftell(fp)) >= 0 &&
                    !fseek(fp, 0, SEEK_SET) && (json = malloc((size_t)len + 1)) &&
                    fread(json, 1, (size_t)len, fp) == (size_t)len) {
                        json[len] = '\0';
                        err = chorus_codec_register(w->codec, s->id, s->type, json, errstr,
                                                    errstr_size);
                } else {
                        snprintf(errstr, errstr_size, "schema.%d.file: cannot read %s", (int)s->id,
                                 s->file);
                        err = CHORUS_ERR_CONFIG;
                }
                free(json);
                if (fp)
                        fclose(fp);
                if (err)
                        return err;
        }
        return CHORUS_OK;
}

#ifdef CHORUS_FAULT_HOOKS
/* Test builds only: CHORUS_TEST_FAULT_DLQ_IGNORE_TOPIC_LIMIT=1 leaves the
 * dead-letter topic's max.message.bytes out of the limit, so that the
 * broker refuses a large dead letter and the step-down runs. */
static int fault_ignore_topic_limit(void) {
        const char *v = getenv("CHORUS_TEST_FAULT_DLQ_IGNORE_TOPIC_LIMIT");
        return v && *v && strcmp(v, "0");
}
#else
#define fault_ignore_topic_limit() 0
#endif

/* The dead letters' key plus value limit: dlq.max_value_bytes, the topic's
 * max.message.bytes (Admin API, bounded wait) and the producer's
 * message.max.bytes, the latter two less a margin for headers and framing.
 * A topic limit that cannot be read is logged and left out: a dead letter
 * the broker refuses then steps down (produce_dead_letters). */
static void setup_dead_letter_limit(chorus_worker_t *w) {
        const char *topic = w->cfg->topics[CHORUS_TOPIC_DLQ].name;
        char errstr[512], buf[32];
        size_t size = sizeof(buf);
        int64_t topic_max, producer_max = -1;

        topic_max = chorus_dead_letter_topic_max(w->producer, topic, 10000, errstr, sizeof(errstr));
        if (topic_max < 0)
                chorus_log_warn("worker",
                                "msg=\"cannot read the dead-letter topic's max.message.bytes; "
                                "using dlq.max_value_bytes\" topic=%s err=\"%s\"",
                                topic, errstr);
        if (rd_kafka_conf_get(rd_kafka_conf(w->producer), "message.max.bytes", buf, &size) ==
            RD_KAFKA_CONF_OK)
                producer_max = strtoll(buf, NULL, 10);
        w->dlq_limit = chorus_dead_letter_limit(
            w->cfg->dlq_max_value_bytes, fault_ignore_topic_limit() ? -1 : topic_max, producer_max);
        chorus_log_info("worker",
                        "msg=\"dead-letter limit\" topic=%s dlq_max_value_bytes=%d "
                        "topic_max_message_bytes=%" PRId64 " producer_message_max_bytes=%" PRId64
                        " margin=%d limit=%zu%s",
                        topic, w->cfg->dlq_max_value_bytes, topic_max, producer_max,
                        CHORUS_DLQ_MARGIN_BYTES, w->dlq_limit,
                        fault_ignore_topic_limit() ? " fault=ignore_topic_limit" : "");
}

chorus_worker_t *chorus_worker_new(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        chorus_worker_t *w = calloc(1, sizeof(*w));

        if (!w) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        w->cfg = cfg;
        w->transactional = cfg->processing_guarantee == CHORUS_GUARANTEE_EXACTLY_ONCE;
        w->dlq_steps = chorus_dlq_steps_new();
        snprintf(w->instance_id, sizeof(w->instance_id), "%d-%" PRIx64, (int)getpid(),
                 (uint64_t)time(NULL));
        if (!(w->actual_wm = chorus_series_map_new()) || !(w->blocked = chorus_series_map_new()) ||
            !(w->fs = chorus_feature_shift_new(cfg)) ||
            (cfg->alerts_enabled &&
             (!(w->monitor = chorus_monitor_new(cfg)) || !(w->global = chorus_global_new(cfg))))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        if (w->transactional) {
                const char *group = chorus_config_kafka_get(cfg, "group.id", CHORUS_KAFKA_CONSUMER);
                if (!(w->identity = chorus_identity_acquire(
                          cfg->worker_id, group ? group : "chorus", NULL, errstr, errstr_size)))
                        goto fail;
        }
        if (setup_codec(w, errstr, errstr_size))
                goto fail;
        if (!(w->state = chorus_state_new(cfg, errstr, errstr_size)))
                goto fail;
        if (setup_kafka(w, errstr, errstr_size))
                goto fail;
        setup_dead_letter_limit(w);
        return w;
fail:
        chorus_worker_destroy(w);
        return NULL;
}

static void clear_dead_letters(chorus_worker_t *w) {
        for (size_t i = 0; i < w->n_dlq; i++)
                free(w->dlq[i].raw);
        w->n_dlq = 0;
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
        chorus_identity_release(w->identity);
        chorus_codec_destroy(w->codec);
        chorus_group_scratch_destroy(&w->scratch);
        chorus_buf_destroy(&w->out);
        free_entries(w->fresh, w->n_fresh);
        free_entries(w->held, w->n_held);
        clear_dead_letters(w);
        free(w->entries);
        free(w->fresh);
        free(w->held);
        free(w->dlq);
        free(w->releases);
        free(w->batch_releases);
        free(w->dlq_done);
        free(w->batch_dlq_done);
        free(w->positions);
        free(w->owned);
        free(w->wm_reads);
        chorus_series_map_destroy(w->actual_wm);
        chorus_series_map_destroy(w->blocked);
        chorus_monitor_destroy(w->monitor);
        chorus_feature_shift_destroy(w->fs);
        chorus_global_destroy(w->global);
        free(w->input_topics);
        chorus_dlq_steps_destroy(w->dlq_steps);
        free(w);
}

const chorus_worker_stats_t *chorus_worker_stats(const chorus_worker_t *w) {
        return &w->stats;
}

void chorus_worker_set_telemetry(chorus_worker_t *w, chorus_telemetry_t *tm) {
        w->tm = tm;
        w->last_redis_check_ms = now_ms(); /* connected by chorus_worker_new() */
        chorus_telemetry_redis_up(tm, 1);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* Produces with back-pressure: a full local queue is drained, not dropped. */
static chorus_err_t produce(chorus_worker_t *w, const char *topic, const void *key, size_t key_len,
                            const void *value, size_t value_len, rd_kafka_headers_t *headers) {
        rd_kafka_resp_err_t err;

        for (;;) {
                err = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(topic),
                                        RD_KAFKA_V_KEY(key, key_len),
                                        RD_KAFKA_V_VALUE((void *)value, value_len),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
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

static void queue_dead_letter(chorus_worker_t *w, const char *topic, int32_t partition,
                              int64_t offset, const void *key, size_t key_len, const void *value,
                              size_t value_len, chorus_err_t reason, const char *message) {
        dead_letter_t *d = VEC_PUSH(w, dlq);

        d->topic = topic;
        d->partition = partition;
        d->offset = offset;
        d->reason = reason;
        snprintf(d->message, sizeof(d->message), "%s", message);
        d->has_key = key != NULL;
        d->has_value = value != NULL;
        d->key_len = key ? key_len : 0;
        d->value_len = value ? value_len : 0;
        d->raw = malloc(d->key_len + d->value_len + 1);
        if (!d->raw) {
                fprintf(stderr, "chorus: out of memory\n");
                abort();
        }
        if (d->key_len)
                memcpy(d->raw, key, d->key_len);
        if (d->value_len)
                memcpy(d->raw + d->key_len, value, d->value_len);
        *VEC_PUSH(w, batch_dlq_done) = (dlq_done_t){topic, partition, offset, 0};
        chorus_log_warn("worker",
                        "msg=\"dead letter\" reason=%s topic=%s partition=%d offset=%" PRId64
                        " detail=\"%s\"",
                        chorus_err2code(reason), topic, (int)partition, offset, message);
}

/* Produces one dead letter at @p level, with the level in its opaque for
 * the delivery report. @returns the produce error (0: queued). */
static rd_kafka_resp_err_t produce_dead_letter(chorus_worker_t *w, const dead_letter_t *d,
                                               chorus_dlq_level_t level, int *truncated) {
        const chorus_dead_letter_t src = {.topic = d->topic,
                                          .partition = d->partition,
                                          .offset = d->offset,
                                          .reason = d->reason,
                                          .message = d->message,
                                          .key = d->has_key ? d->raw : NULL,
                                          .key_len = d->key_len,
                                          .value = d->has_value ? d->raw + d->key_len : NULL,
                                          .value_len = d->value_len};
        chorus_dlq_form_t form;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&src, w->dlq_limit, level, &form);
        rd_kafka_resp_err_t err;

        for (;;) {
                err = rd_kafka_producev(
                    w->producer, RD_KAFKA_V_TOPIC(w->cfg->topics[CHORUS_TOPIC_DLQ].name),
                    RD_KAFKA_V_KEY(form.key, form.key_len),
                    RD_KAFKA_V_VALUE((void *)form.value, form.value_len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                    RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(level + 1)), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(w->producer, 100);
        }
        if (err)
                rd_kafka_headers_destroy(h);
        *truncated = form.truncated;
        return err;
}

/* Produces the batch's dead letters, each at the level its record has
 * stepped down to, then waits for their delivery reports.
 *
 * Why the wait, and how a step-down works with transactions: a dead letter
 * the broker refuses for good (too large, rejected) is only known from its
 * delivery report, and in a transaction that failure makes the
 * transaction abortable: it cannot commit. So the record's next level is
 * remembered (w->dlq_steps, in memory), *refused is set, and the caller
 * aborts the transaction and rewinds (exactly_once) or rewinds
 * (at_least_once); the batch is read again and the record's dead letter
 * goes out smaller, in a transaction that can commit. Remembering in
 * memory is enough: after a crash the full form is refused again and the
 * record steps down again. Flushing here instead of letting the commit
 * do it means a transaction never commits with a refused dead letter,
 * whatever librdkafka does with the refusal. A refusal that producev
 * reports at once (the producer's own message.max.bytes) steps down on
 * the spot: nothing was queued. A dead letter at the last level (DROP) is
 * not produced; its record counts as handled (its offset commits and
 * Redis records it as dead-lettered), logged at error and counted in
 * chorus_dead_letters_dropped_total. Retriable errors never step down:
 * the batch is retried (SPEC §9.4). */
static chorus_err_t produce_dead_letters(chorus_worker_t *w, int *refused) {
        int produced = 0;

        *refused = 0;
        for (size_t i = 0; i < w->n_dlq; i++) {
                const dead_letter_t *d = &w->dlq[i];
                chorus_dlq_level_t level =
                    chorus_dlq_steps_get(w->dlq_steps, d->topic, d->partition, d->offset);
                rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
                int truncated = 0;

                while (level < CHORUS_DLQ_DROP &&
                       (err = produce_dead_letter(w, d, level, &truncated)) &&
                       chorus_produce_classify(err) != CHORUS_PRODUCE_RETRY) {
                        chorus_log_warn("producer",
                                        "msg=\"dead letter refused, stepping down\" topic=%s "
                                        "partition=%d offset=%" PRId64
                                        " class=%s err=\"%s\" level=%s",
                                        d->topic, (int)d->partition, d->offset,
                                        chorus_produce_class_name(chorus_produce_classify(err)),
                                        rd_kafka_err2str(err), chorus_dlq_level_name(level));
                        level = chorus_dlq_steps_refused(w->dlq_steps, d->topic, d->partition,
                                                         d->offset, level);
                }
                if (level == CHORUS_DLQ_DROP) {
                        chorus_log_error("worker",
                                         "msg=\"dead letter dropped: refused even as headers "
                                         "only\" topic=%s partition=%d offset=%" PRId64
                                         " reason=%s key_bytes=%zu value_bytes=%zu",
                                         d->topic, (int)d->partition, d->offset,
                                         chorus_err2code(d->reason), d->key_len, d->value_len);
                        w->batch_dlq_dropped++;
                        continue;
                }
                if (err) {
                        chorus_log_error(
                            "producer", "msg=\"produce failed\" topic=%s class=retry err=\"%s\"",
                            w->cfg->topics[CHORUS_TOPIC_DLQ].name, rd_kafka_err2str(err));
                        return CHORUS_ERR_KAFKA;
                }
                produced++;
                if (truncated) {
                        w->batch_dlq_truncated++;
                        chorus_log_warn("worker",
                                        "msg=\"dead letter truncated\" topic=%s partition=%d "
                                        "offset=%" PRId64
                                        " key_bytes=%zu value_bytes=%zu limit=%zu level=%s",
                                        d->topic, (int)d->partition, d->offset, d->key_len,
                                        d->value_len, w->dlq_limit, chorus_dlq_level_name(level));
                }
                w->stats.dead_letters[d->reason]++;
                w->stats.records_out[CHORUS_TOPIC_DLQ]++;
                chorus_telemetry_dead_letter(w->tm, d->reason);
                chorus_telemetry_record_out(w->tm, w->cfg->topics[CHORUS_TOPIC_DLQ].name);
        }
        if (!produced)
                return CHORUS_OK;
        while (rd_kafka_outq_len(w->producer) > 0) {
                rd_kafka_flush(w->producer, 1000);
                chorus_telemetry_heartbeat(w->tm); /* waiting on the broker is the loop turning */
        }
        if (w->dlq_refused) {
                /* Not failures of the batch's outputs: the batch is re-read. */
                w->delivery_failures -= w->dlq_refused;
                w->dlq_refused = 0;
                *refused = 1;
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

/* Builds and encodes forecast @p k of prediction reply @p r into w->forecast
 * and w->out. */
static chorus_err_t build_forecast(chorus_worker_t *w, const entry_t *e, const redisReply *r,
                                   size_t k, chorus_group_view_t *view) {
        const chorus_prediction_t *p = &e->rec.prediction;
        const chorus_topic_conf_t *t = &w->cfg->topics[CHORUS_TOPIC_FORECASTS];
        char errstr[256];
        chorus_err_t err;

        if ((err = chorus_state_parse_forecast(r, k, p->series, p->horizon, e->bucket, &w->scratch,
                                               view))) {
                chorus_log_error("worker", "msg=\"unexpected state reply\" series=%s", p->series);
                return err;
        }
        if ((err = chorus_forecast_build(w->cfg, view, &w->forecast))) {
                chorus_log_error("worker",
                                 "msg=\"cannot build forecast\" series=%s horizon=%s models=%zu",
                                 p->series, view->horizon, view->n_models);
                return err;
        }
        chorus_buf_reset(&w->out);
        if ((err = chorus_codec_encode(w->codec, CHORUS_RECORD_FORECAST, t->framing, t->schema_id,
                                       &w->forecast, &w->out, errstr, sizeof(errstr)))) {
                chorus_log_error("worker", "msg=\"encode failed\" err=\"%s\"", errstr);
                return err;
        }
        return CHORUS_OK;
}

/* The forecasts of an applied or re-emitted prediction: its own group's in
 * emit.mode=every; in emit.mode=complete those its call emitted (none, its
 * own group's, groups it closed). All are built before any is produced, so
 * that a failure retries the record without having produced part of it. */
static chorus_source_t source_of(chorus_worker_t *w, const entry_t *e);

static chorus_err_t emit_forecast(chorus_worker_t *w, const entry_t *e, const redisReply *r) {
        const chorus_prediction_t *p = &e->rec.prediction;
        chorus_source_t src = source_of(w, e);
        const chorus_topic_conf_t *t = &w->cfg->topics[CHORUS_TOPIC_FORECASTS];
        size_t n = chorus_state_reply_forecasts(r);
        chorus_group_view_t view;
        char key[3 * (CHORUS_NAME_MAX + 1) + 24];
        chorus_err_t err;
        int key_len;

        for (size_t k = 0; n > 1 && k < n; k++)
                if ((err = build_forecast(w, e, r, k, &view)))
                        return err;
        for (size_t k = 0; k < n; k++) {
                if ((err = build_forecast(w, e, r, k, &view)))
                        return err;
                key_len = snprintf(key, sizeof(key), "%s|%s|%" PRId64, p->series, view.horizon,
                                   view.bucket);
                if ((err =
                         produce(w, t->name, key, (size_t)key_len, w->out.data, w->out.len, NULL)))
                        return err;
                w->stats.records_out[CHORUS_TOPIC_FORECASTS]++;
                chorus_telemetry_record_out(w->tm, t->name);
                if (w->monitor && (chorus_monitor_note_forecast(w->monitor, &w->forecast, &src) ||
                                   chorus_global_note_forecast(w->global, &w->forecast)))
                        return CHORUS_ERR_NOMEM;
        }
        return CHORUS_OK;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

/* Decodes and validates one message into a fresh entry, or dead-letters it. */
static void admit(chorus_worker_t *w, const rd_kafka_message_t *m) {
        const chorus_config_t *cfg = w->cfg;
        chorus_topic_role_t role;
        const char *topic = input_role(w, rd_kafka_topic_name(m->rkt), &role);
        const chorus_topic_conf_t *t;
        position_t *pos;
        entry_t *e;
        char errstr[256];
        chorus_err_t err;

        if (!topic)
                return; /* not subscribed: cannot happen */
        t = &cfg->topics[role];
        pos = position_get(w, topic, m->partition);
        if (m->offset + 1 > pos->next_offset)
                pos->next_offset = m->offset + 1;
        w->stats.records_in[role]++;
        chorus_telemetry_record_in(w->tm, topic, m->partition);

        e = VEC_PUSH(w, fresh);
        memset(e, 0, sizeof(*e));
        e->role = role;
        e->topic = topic;
        e->partition = m->partition;
        e->offset = m->offset;

        if (role == CHORUS_TOPIC_FEATURE_IMPORTANCE) {
                err = chorus_feature_shift_decode(w->fs, w->codec, t, m->payload, m->len, errstr,
                                                  sizeof(errstr));
                if (!err) {
                        snprintf(e->rec.fi.model, sizeof(e->rec.fi.model), "%s",
                                 chorus_feature_shift_record(w->fs)->model_id);
                        e->rec.fi.computed_at = chorus_feature_shift_record(w->fs)->computed_at;
                }
        } else
                err = chorus_codec_decode(w->codec, t->type, t->framing, t->schema_id, m->payload,
                                          m->len, &e->rec, NULL, errstr, sizeof(errstr));
        if (!err && role == CHORUS_TOPIC_PREDICTIONS &&
            !chorus_config_horizon_allowed(cfg, e->rec.prediction.horizon)) {
                snprintf(errstr, sizeof(errstr), "horizon %s is not configured",
                         e->rec.prediction.horizon);
                err = CHORUS_ERR_UNKNOWN_HORIZON;
        }
        if (err) {
                /* Dead-lettered in its batch, unless Redis says its dead
                 * letter is committed already (a re-read). */
                e->dead = err;
                snprintf(e->dead_msg, sizeof(e->dead_msg), "%s", errstr);
        } else if (role == CHORUS_TOPIC_FEATURE_IMPORTANCE)
                e->bucket = 0; /* not bucketed */
        else if (role == CHORUS_TOPIC_PREDICTIONS)
                e->bucket =
                    chorus_bucket_of(e->rec.prediction.target_time,
                                     chorus_config_resolution_ms(cfg, e->rec.prediction.series));
        else
                e->bucket =
                    chorus_bucket_of(e->rec.actual.observed_at,
                                     chorus_config_resolution_ms(cfg, e->rec.actual.series));
        e->has_key = m->key != NULL;
        e->has_value = m->payload != NULL;
        e->key_len = m->key ? m->key_len : 0;
        e->value_len = m->payload ? m->len : 0;
        if (!(e->raw = malloc(e->key_len + e->value_len + 1))) {
                fprintf(stderr, "chorus: out of memory\n");
                abort();
        }
        if (e->key_len)
                memcpy(e->raw, m->key, e->key_len);
        if (e->value_len)
                memcpy(e->raw + e->key_len, m->payload, e->value_len);
}

/* Whether held or fresh prediction @p e waits in the worker instead of being
 * sent: its series' actuals are not known to have reached its issued_at
 * (the watermark is read for the next batch; a series seen for the first
 * time waits one batch for that), or an earlier prediction of its series
 * waits (order within a stream is kept). Redis still decides what it is
 * sent (SPEC §9.2), but so each prediction is sent once, when it can be
 * applied. */
static int waits_in_worker(chorus_worker_t *w, const entry_t *e, int force) {
        const char *series = e->rec.prediction.series;
        int64_t known;

        if (chorus_series_map_get(w->blocked, series) >= 0)
                return 1;
        if (force)
                return 0;
        known = chorus_series_map_get(w->actual_wm, series);
        if (known >= e->rec.prediction.issued_at)
                return 0;
        if (chorus_series_map_raise(w->blocked, series, 0) == 0)
                snprintf(VEC_PUSH(w, wm_reads)[0], sizeof(chorus_name_t), "%s", series);
        return 1;
}

static chorus_source_t source_of(chorus_worker_t *w, const entry_t *e) {
        const owned_t *o = owned_get(w, e->topic, e->partition);
        /* Not owned (cannot happen: revoked partitions' records are dropped):
         * epoch 0 is older than any taken, so Redis refuses the call. */
        return (chorus_source_t){e->topic, e->partition, e->offset, o ? o->epoch : 0,
                                 o ? o->committed_ids : "-"};
}

static void queue_state_calls(chorus_worker_t *w) {
        int64_t now = now_ms();
        size_t next;

        snprintf(w->batch_id, sizeof(w->batch_id), "%s-%" PRIu64, w->instance_id, ++w->batch_seq);
        chorus_state_batch_begin(w->state, w->batch_id);
        for (size_t i = 0; i < w->n_releases; i++)
                if (w->releases[i].fi)
                        chorus_feature_shift_queue_release(
                            w->state, w->releases[i].series, w->releases[i].topic,
                            w->releases[i].partition, w->releases[i].offset);
                else
                        chorus_state_add_release(w->state, w->releases[i].series,
                                                 w->releases[i].topic, w->releases[i].partition,
                                                 w->releases[i].offset);
        for (size_t i = 0; i < w->n_dlq_done; i++)
                chorus_state_add_dead_letter_done(w->state, w->dlq_done[i].topic,
                                                  w->dlq_done[i].partition,
                                                  w->dlq_done[i].committed, w->dlq_done[i].offset);
        w->n_release_cmds = next = w->n_releases + w->n_dlq_done;
        w->n_wm_reads = 0;
        chorus_series_map_clear(w->blocked);
        for (size_t i = 0; i < w->n_entries; i++) {
                entry_t *e = &w->entries[i];
                chorus_source_t src = source_of(w, e);

                e->reply = NO_REPLY;
                if (!e->dead && e->role == CHORUS_TOPIC_FEATURE_IMPORTANCE) {
                        char errstr[256];
                        /* The same bytes decoded at admit: cannot fail, but
                         * if it did, a dead letter beats a wrong call. */
                        e->dead =
                            chorus_feature_shift_decode(w->fs, w->codec, &w->cfg->topics[e->role],
                                                        e->has_value ? e->raw + e->key_len : NULL,
                                                        e->value_len, errstr, sizeof(errstr));
                        if (e->dead)
                                snprintf(e->dead_msg, sizeof(e->dead_msg), "%s", errstr);
                        else
                                chorus_feature_shift_queue(w->fs, w->state, &src, w->batch_id);
                }
                if (e->dead) {
                        chorus_state_add_dead_letter_seen(w->state, e->topic, e->partition,
                                                          e->offset);
                } else if (e->role == CHORUS_TOPIC_FEATURE_IMPORTANCE) {
                        /* queued above */
                } else if (e->role == CHORUS_TOPIC_PREDICTIONS) {
                        size_t n_configured;
                        int force =
                            e->attempts > 0 || (e->held_since_ms &&
                                                now - e->held_since_ms >= w->cfg->join_max_wait_ms);
                        if (waits_in_worker(w, e, force))
                                continue;
                        chorus_config_expected_models(w->cfg, e->rec.prediction.horizon,
                                                      &n_configured);
                        chorus_state_add_prediction(w->state, &e->rec.prediction, &src, e->bucket,
                                                    force, n_configured == 0);
                } else {
                        chorus_state_add_actual(w->state, &e->rec.actual, &src, e->bucket);
                }
                e->reply = next++;
                w->n_sent++;
        }
        for (size_t i = 0; i < w->n_wm_reads; i++)
                chorus_state_add_watermark_read(w->state, w->wm_reads[i]);
}

/* What this batch's replies say of the series' actual watermarks. */
static void learn_watermarks(chorus_worker_t *w) {
        size_t base = chorus_state_batch_size(w->state) - w->n_wm_reads;

        for (size_t i = 0; i < w->n_entries; i++) {
                const entry_t *e = &w->entries[i];
                int64_t wm;
                const redisReply *r;
                if (e->reply == NO_REPLY || e->dead || e->role == CHORUS_TOPIC_FEATURE_IMPORTANCE)
                        continue;
                r = chorus_state_batch_reply(w->state, e->reply);
                wm = chorus_state_reply_watermark(r);
                /* Held with no actual applied yet: known to be behind any
                 * issued_at, so the prediction waits here, not in Redis. */
                if (wm < 0 && chorus_state_reply_status(r) == CHORUS_APPLY_HOLD)
                        wm = 0;
                if (wm >= 0)
                        chorus_series_map_raise(w->actual_wm,
                                                e->role == CHORUS_TOPIC_PREDICTIONS
                                                    ? e->rec.prediction.series
                                                    : e->rec.actual.series,
                                                wm);
        }
        for (size_t i = 0; i < w->n_wm_reads; i++) {
                int64_t wm =
                    chorus_state_reply_watermark(chorus_state_batch_reply(w->state, base + i));
                /* No actual yet (nil) is known too: behind any issued_at. */
                chorus_series_map_raise(w->actual_wm, w->wm_reads[i], wm >= 0 ? wm : 0);
        }
}

/* An error reply about the server rather than the record: retry the batch. */
static int is_server_error(const redisReply *r) {
        static const char *const prefixes[] = {"ERR Function not found",
                                               "NOSCRIPT",
                                               "LOADING",
                                               "BUSY",
                                               "OOM",
                                               "MASTERDOWN",
                                               "READONLY",
                                               "CLUSTERDOWN",
                                               "TRYAGAIN",
                                               "NOREPLICAS"};
        if (!r || r->type != REDIS_REPLY_ERROR)
                return 0;
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
                if (!strncmp(r->str, prefixes[i], strlen(prefixes[i])))
                        return 1;
        return 0;
}

/* Sends the batch's state calls, retrying with backoff while Redis is away
 * or not serving: input is never skipped (SPEC §9.4). A repeat is safe:
 * records applied by the failed attempt answer "reemit". */
static chorus_err_t exec_state_calls(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        int backoff_ms = 100, failures = 0;
        char errstr[512];

        for (;;) {
                uint64_t t0 = now_us();
                int ok = 0;

                w->stats.redis_round_trips++;
                if (!chorus_state_batch_exec(w->state, errstr, sizeof(errstr))) {
                        size_t i, n = chorus_state_batch_size(w->state);
                        for (i = 0;
                             i < n && !is_server_error(chorus_state_batch_reply(w->state, i)); i++)
                                ;
                        ok = i == n;
                        chorus_telemetry_redis_round_trip(w->tm, (double)(now_us() - t0) / 1e6, ok);
                        if (ok)
                                break;
                        snprintf(errstr, sizeof(errstr), "%s",
                                 chorus_state_batch_reply(w->state, i)->str);
                } else {
                        chorus_telemetry_redis_round_trip(w->tm, (double)(now_us() - t0) / 1e6, 0);
                }
                chorus_telemetry_backoff(w->tm, "redis unavailable");
                chorus_telemetry_heartbeat(w->tm); /* retrying is the loop turning */
                failures++;
                chorus_log_warn("state",
                                "msg=\"redis unavailable, retrying\" ready=false err=\"%s\" "
                                "backoff_ms=%d",
                                errstr, backoff_ms);
                if (*stop)
                        return CHORUS_ERR_REDIS;
                rd_kafka_poll(w->producer, backoff_ms);
                if (backoff_ms < 5000)
                        backoff_ms *= 2;
                chorus_state_reconnect(w->state, errstr, sizeof(errstr));
        }
        w->last_redis_check_ms = now_ms();
        chorus_telemetry_backoff(w->tm, NULL);
        if (failures)
                chorus_log_info("state", "msg=\"redis available again\" ready=true failures=%d",
                                failures);
        return CHORUS_OK;
}

static void add_release(chorus_worker_t *w, const entry_t *e) {
        release_t *r;

        for (size_t i = 0; i < w->n_batch_releases; i++) {
                r = &w->batch_releases[i];
                if (same_partition(r->topic, r->partition, e->topic, e->partition) && !r->fi &&
                    !strcmp(r->series, e->rec.prediction.series)) {
                        if (e->offset > r->offset)
                                r->offset = e->offset;
                        return;
                }
        }
        r = VEC_PUSH(w, batch_releases);
        snprintf(r->series, sizeof(r->series), "%s", e->rec.prediction.series);
        r->fi = 0;
        r->topic = e->topic;
        r->partition = e->partition;
        r->offset = e->offset;
}

/* Carries @p e to the next batch (held or retried). */
static void carry(chorus_worker_t *w, const entry_t *e) {
        *VEC_PUSH(w, held) = *e;
}

/* A record whose processing failed: retried in the next batch, or after
 * processing.max_attempts sent to the dead-letter topic. */
static void processing_failed(chorus_worker_t *w, entry_t *e, const char *why) {
        char msg[256];

        if (++e->attempts < w->cfg->processing_max_attempts) {
                chorus_log_warn("worker",
                                "msg=\"processing failed, will retry\" topic=%s partition=%d "
                                "offset=%" PRId64 " attempt=%d err=\"%s\"",
                                e->topic, (int)e->partition, e->offset, e->attempts, why);
                carry(w, e);
                return;
        }
        snprintf(msg, sizeof(msg), "failed %d times: %s", e->attempts, why);
        queue_dead_letter(w, e->topic, e->partition, e->offset, e->has_key ? e->raw : NULL,
                          e->key_len, e->has_value ? e->raw + e->key_len : NULL, e->value_len,
                          CHORUS_ERR_POISON, msg);
        free(e->raw);
}

static chorus_err_t produce_monitor_record(chorus_worker_t *w, chorus_topic_role_t role,
                                           chorus_record_type_t type, const void *rec,
                                           const char *key);

/* The alerts of FeatureImportance @p e wait in its model's snapshots at its
 * offset until the commit releases them. */
static void add_fi_release(chorus_worker_t *w, const entry_t *e) {
        release_t *r;

        for (size_t i = 0; i < w->n_batch_releases; i++) {
                r = &w->batch_releases[i];
                if (same_partition(r->topic, r->partition, e->topic, e->partition) && r->fi &&
                    !strcmp(r->series, e->rec.fi.model)) {
                        if (e->offset > r->offset)
                                r->offset = e->offset;
                        return;
                }
        }
        r = VEC_PUSH(w, batch_releases);
        snprintf(r->series, sizeof(r->series), "%s", e->rec.fi.model);
        r->fi = 1;
        r->topic = e->topic;
        r->partition = e->partition;
        r->offset = e->offset;
}

/* One chorus_feature_importance reply: its FEATURE_SHIFT transitions go out
 * in the batch's transaction. Frees or carries @p e.
 * @returns CHORUS_ERR_KAFKA when a produce failed (the batch aborts). */
static chorus_err_t handle_feature_importance(chorus_worker_t *w, entry_t *e, const redisReply *r) {
        chorus_fs_status_t status = chorus_feature_shift_reply_status(r);
        size_t n = chorus_feature_shift_reply_alerts(r);
        chorus_alert_t *alert;
        chorus_err_t err = CHORUS_OK;

        switch (status) {
        case CHORUS_FS_FENCED:
                chorus_log_error("worker",
                                 "msg=\"fenced: partition has a newer owner\" topic=%s "
                                 "partition=%d offset=%" PRId64,
                                 e->topic, (int)e->partition, e->offset);
                w->fenced = 1;
                free(e->raw);
                return CHORUS_OK;
        case CHORUS_FS_REPLAYED:
                w->stats.replayed++;
                free(e->raw);
                return CHORUS_OK;
        case CHORUS_FS_ERROR:
                processing_failed(w, e,
                                  r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                return CHORUS_OK;
        case CHORUS_FS_LATE:
                chorus_log_info("monitor",
                                "msg=\"late feature importance: stored, not judged\" model=%s "
                                "topic=%s partition=%d offset=%" PRId64,
                                e->rec.fi.model, e->topic, (int)e->partition, e->offset);
                chorus_telemetry_late(w->tm); /* chorus_late_records_total, as the series' */
                break;
        default:
                break;
        }
        if (status == CHORUS_FS_REEMIT)
                w->stats.reemitted++;
        else
                w->stats.applied++;
        /* Its stream counts in the global watermark, so that ALERT_STORM has
         * seen its critical alerts before the watermark passes them. */
        if (w->global) {
                chorus_source_t src = source_of(w, e);
                if (chorus_global_note_record(w->global, e->rec.fi.model, &src,
                                              e->rec.fi.computed_at)) {
                        processing_failed(w, e, "out of memory");
                        return CHORUS_OK;
                }
        }
        if (!n) {
                free(e->raw);
                return CHORUS_OK;
        }
        if (!(alert = malloc(sizeof(*alert)))) {
                processing_failed(w, e, "out of memory");
                return CHORUS_OK;
        }
        /* All checked before any is produced, so that a retry repeats nothing. */
        for (size_t k = 0; k < n; k++)
                if (chorus_feature_shift_reply_alert(r, k, alert)) {
                        chorus_log_error("monitor", "msg=\"malformed alert\" model=%s",
                                         e->rec.fi.model);
                        free(alert);
                        processing_failed(w, e, "malformed alert");
                        return CHORUS_OK;
                }
        for (size_t k = 0; k < n && !err; k++) {
                chorus_feature_shift_reply_alert(r, k, alert);
                chorus_log_info("monitor",
                                "msg=\"alert\" fingerprint=%s state=%s severity=%s "
                                "event_time=%" PRId64,
                                alert->fingerprint, alert->state, alert->severity,
                                alert->event_time);
                if (!(err = produce_monitor_record(w, CHORUS_TOPIC_ALERTS, CHORUS_RECORD_ALERT,
                                                   alert, alert->fingerprint)))
                        chorus_telemetry_alert(w->tm, alert->type, alert->state, alert->severity);
                if (!err && w->global && chorus_global_note_alert(w->global, alert))
                        err = CHORUS_ERR_NOMEM;
        }
        free(alert);
        if (!err)
                add_fi_release(w, e);
        free(e->raw);
        return err ? CHORUS_ERR_KAFKA : CHORUS_OK;
}

static chorus_err_t handle_replies(chorus_worker_t *w) {
        chorus_err_t kafka_err = CHORUS_OK;
        int64_t now = now_ms();

        learn_watermarks(w);
        if (w->monitor)
                chorus_monitor_reset(w->monitor);
        if (w->global)
                chorus_global_reset(w->global);
        for (size_t i = 0; i < w->n_entries; i++) {
                entry_t *e = &w->entries[i];
                const redisReply *r =
                    e->reply == NO_REPLY ? NULL : chorus_state_batch_reply(w->state, e->reply);
                chorus_apply_status_t status =
                    e->reply == NO_REPLY ? CHORUS_APPLY_HOLD : chorus_state_reply_status(r);

                if (kafka_err || w->fenced) {
                        /* The batch will be aborted and re-read: just let go. */
                        free(e->raw);
                        continue;
                }
                if (e->dead) {
                        /* "seen": committed before this re-read. Anything else,
                         * an error included, dead-letters it: a duplicate
                         * dead letter is better than a lost one. */
                        if (r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "seen"))
                                w->stats.replayed++;
                        else
                                queue_dead_letter(w, e->topic, e->partition, e->offset,
                                                  e->has_key ? e->raw : NULL, e->key_len,
                                                  e->has_value ? e->raw + e->key_len : NULL,
                                                  e->value_len, e->dead, e->dead_msg);
                        free(e->raw);
                        continue;
                }
                if (e->role == CHORUS_TOPIC_FEATURE_IMPORTANCE) {
                        if (handle_feature_importance(w, e, r) == CHORUS_ERR_KAFKA)
                                kafka_err = CHORUS_ERR_KAFKA;
                        continue;
                }
                if (w->monitor && status != CHORUS_APPLY_HOLD && status != CHORUS_APPLY_FENCED &&
                    status != CHORUS_APPLY_ERROR) {
                        chorus_source_t src = source_of(w, e);
                        const char *series = e->role == CHORUS_TOPIC_PREDICTIONS
                                                 ? e->rec.prediction.series
                                                 : e->rec.actual.series;
                        int64_t t = e->role == CHORUS_TOPIC_PREDICTIONS
                                        ? e->rec.prediction.issued_at
                                        : e->rec.actual.observed_at;
                        if (chorus_monitor_note_record(w->monitor, series, &src) ||
                            chorus_global_note_record(w->global, series, &src, t)) {
                                processing_failed(w, e, "out of memory");
                                continue;
                        }
                        if ((status == CHORUS_APPLY_APPLIED || status == CHORUS_APPLY_STALE) &&
                            chorus_global_late(w->global, series, &src, t))
                                chorus_telemetry_late(w->tm);
                }
                switch (status) {
                case CHORUS_APPLY_APPLIED:
                case CHORUS_APPLY_REEMIT:
                        if (status == CHORUS_APPLY_APPLIED)
                                w->stats.applied++;
                        else
                                w->stats.reemitted++;
                        if (e->role == CHORUS_TOPIC_PREDICTIONS) {
                                chorus_err_t err = emit_forecast(w, e, r);
                                if (err == CHORUS_ERR_KAFKA) {
                                        kafka_err = err;
                                        free(e->raw);
                                        continue;
                                }
                                if (err) {
                                        processing_failed(w, e, chorus_err2str(err));
                                        continue;
                                }
                                add_release(w, e);
                        }
                        free(e->raw);
                        break;
                case CHORUS_APPLY_DUPLICATE:
                        w->stats.duplicates++;
                        free(e->raw);
                        break;
                case CHORUS_APPLY_STALE:
                        w->stats.stale++;
                        free(e->raw);
                        break;
                case CHORUS_APPLY_REPLAYED:
                        w->stats.replayed++;
                        free(e->raw);
                        break;
                case CHORUS_APPLY_FENCED:
                        /* A newer owner took the partition while this worker
                         * was away (a zombie): stop before writing anything. */
                        chorus_log_error("worker",
                                         "msg=\"fenced: partition has a newer owner\" topic=%s "
                                         "partition=%d offset=%" PRId64,
                                         e->topic, (int)e->partition, e->offset);
                        w->fenced = 1;
                        free(e->raw);
                        break;
                case CHORUS_APPLY_HOLD:
                        if (!e->held_since_ms) {
                                e->held_since_ms = now;
                                w->stats.held++;
                                chorus_telemetry_hold(w->tm);
                                chorus_log_debug(
                                    "worker",
                                    "msg=\"holding\" series=%s issued_at=%" PRId64
                                    " actual_watermark=%" PRId64 " topic=%s partition=%d "
                                    "offset=%" PRId64,
                                    e->rec.prediction.series, e->rec.prediction.issued_at,
                                    chorus_series_map_get(w->actual_wm, e->rec.prediction.series),
                                    e->topic, (int)e->partition, e->offset);
                        }
                        carry(w, e);
                        break;
                case CHORUS_APPLY_ERROR:
                        processing_failed(
                            w, e, r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
                        break;
                }
        }
        w->n_entries = 0;
        return w->fenced ? CHORUS_ERR_STATE : kafka_err;
}

/* The offsets to commit: per partition, after the last record handled, but
 * never beyond a held or retried record. Every consumed partition is listed,
 * moved or not, with commit metadata that names this batch and the earlier
 * owners' batches whose records are still ahead of the offset
 * (include/chorus/commit_meta.h): a snapshot tagged with a batch that a
 * partition's metadata names belongs to a committed output, so a crash
 * between the commit and the release cannot re-emit it (the records behind
 * a held prediction's offset are read again, maybe by a later owner).
 * *moved is set when some offset moves. NULL when no partition was consumed. */
static rd_kafka_topic_partition_list_t *offsets_to_commit(chorus_worker_t *w, int *moved) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
        char own_prefix[sizeof(w->instance_id) + 1];
        char meta[sizeof(((owned_t *)0)->committed_ids) + CHORUS_COMMIT_META_MAX * 24];
        chorus_commit_meta_t next;

        snprintf(own_prefix, sizeof(own_prefix), "%s-", w->instance_id);
        *moved = 0;
        for (size_t i = 0; i < w->n_positions; i++) {
                position_t *pos = &w->positions[i];
                rd_kafka_topic_partition_t *tp;
                owned_t *o;
                int64_t commit = pos->next_offset;

                for (size_t j = 0; j < w->n_held; j++)
                        if (same_partition(w->held[j].topic, w->held[j].partition, pos->topic,
                                           pos->partition) &&
                            w->held[j].offset < commit)
                                commit = w->held[j].offset;
                if (commit < 0 || commit < pos->committed_offset)
                        continue;
                if (commit > pos->committed_offset)
                        *moved = 1;
                tp = rd_kafka_topic_partition_list_add(list, pos->topic, pos->partition);
                tp->offset = commit;
                o = owned_get(w, pos->topic, pos->partition);
                chorus_commit_meta_next(&next, o ? &o->committed : NULL, own_prefix, w->batch_id,
                                        pos->next_offset, commit);
                if (chorus_commit_meta_format(&next, meta, sizeof(meta)) < 0)
                        snprintf(meta, sizeof(meta), "%s@%" PRId64, w->batch_id, pos->next_offset);
                tp->metadata = strdup(meta); /* freed with the list */
                tp->metadata_size = tp->metadata ? strlen(meta) : 0;
        }
        if (!list->cnt) {
                rd_kafka_topic_partition_list_destroy(list);
                return NULL;
        }
        return list;
}

static void offsets_committed(chorus_worker_t *w, const rd_kafka_topic_partition_list_t *list) {
        for (int i = 0; list && i < list->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &list->elems[i];
                owned_t *o = owned_get(w, tp->topic, tp->partition);

                position_get(w, tp->topic, tp->partition)->committed_offset = tp->offset;
                if (o)
                        owned_set_committed(o, tp->metadata, tp->metadata_size);
                /* Dead letters behind the offset are committed in their last form. */
                chorus_dlq_steps_forget(w->dlq_steps, tp->topic, tp->partition, tp->offset);
        }
        w->stats.dead_letters_truncated += w->batch_dlq_truncated;
        w->stats.dead_letters_dropped += w->batch_dlq_dropped;
        chorus_telemetry_dead_letters_cut(w->tm, w->batch_dlq_truncated, w->batch_dlq_dropped);
        w->batch_dlq_truncated = w->batch_dlq_dropped = 0;
        /* The snapshots of this batch may go with the next round trip, and
         * its dead letters be recorded as committed. */
        for (size_t i = 0; i < w->n_batch_releases; i++)
                *VEC_PUSH(w, releases) = w->batch_releases[i];
        w->n_batch_releases = 0;
        for (size_t i = 0; i < w->n_batch_dlq_done; i++) {
                dlq_done_t d = w->batch_dlq_done[i];
                d.committed = position_get(w, d.topic, d.partition)->committed_offset;
                *VEC_PUSH(w, dlq_done) = d;
        }
        w->n_batch_dlq_done = 0;
}

/* Waits until every output so far is delivered. */
static chorus_err_t flush_outputs(chorus_worker_t *w) {
        while (rd_kafka_outq_len(w->producer) > 0)
                rd_kafka_flush(w->producer, 1000);
        if (w->delivery_failures) {
                chorus_log_error("producer",
                                 "msg=\"outputs not delivered; not committing\" failures=%" PRId64,
                                 w->delivery_failures);
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

/* at_least_once: flush, then commit offsets. */
static chorus_err_t commit_plain(chorus_worker_t *w) {
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        chorus_err_t cerr;
        int moved; /* a partition that did not move is committed for its metadata */

        if ((cerr = flush_outputs(w)))
                return cerr;
        if (!(list = offsets_to_commit(w, &moved))) {
                offsets_committed(w, NULL);
                return CHORUS_OK;
        }
        err = rd_kafka_commit(w->consumer, list, 0);
        if (err) /* The records come back and are found applied: no loss. */
                chorus_log_warn("consumer", "msg=\"commit failed\" err=\"%s\"",
                                rd_kafka_err2str(err));
        else {
                offsets_committed(w, list);
                chorus_telemetry_transaction(w->tm, 1);
        }
        rd_kafka_topic_partition_list_destroy(list);
        return CHORUS_OK;
}

/* Rewinds every assigned partition to its committed offset and forgets the
 * batch, after an aborted transaction. */
static chorus_err_t rewind_to_committed(chorus_worker_t *w) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_error_t *error;
        rd_kafka_resp_err_t err;

        w->n_fresh = drop_entries(w->fresh, w->n_fresh, NULL, 0);
        w->n_held = drop_entries(w->held, w->n_held, NULL, 0);
        w->n_batch_releases = 0;
        w->n_batch_dlq_done = 0;
        w->batch_dlq_truncated = w->batch_dlq_dropped = 0;
        clear_dead_letters(w);
        if ((err = rd_kafka_assignment(w->consumer, &parts)))
                return CHORUS_ERR_KAFKA;
        if (parts->cnt && (err = rd_kafka_committed(w->consumer, parts, 30000))) {
                rd_kafka_topic_partition_list_destroy(parts);
                return CHORUS_ERR_KAFKA;
        }
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].offset < 0) /* nothing committed yet */
                        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        error = parts->cnt ? rd_kafka_seek_partitions(w->consumer, parts, 30000) : NULL;
        rd_kafka_topic_partition_list_destroy(parts);
        w->n_positions = 0;
        if (error) {
                chorus_log_error("consumer", "msg=\"rewind failed\" err=\"%s\"",
                                 rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                return CHORUS_ERR_KAFKA;
        }
        return CHORUS_OK;
}

/* Classifies a transactional error: retry the call (1), abort and rewind
 * (0), or give up (-1: fatal, the supervisor restarts the process). */
static int txn_error_action(rd_kafka_error_t *error, const char *what) {
        int action = rd_kafka_error_is_fatal(error)             ? -1
                     : rd_kafka_error_txn_requires_abort(error) ? 0
                     : rd_kafka_error_is_retriable(error)       ? 1
                                                                : 0;
        chorus_log(action < 0 ? CHORUS_LOG_ERROR : CHORUS_LOG_WARN, "txn",
                   "msg=\"%s failed\" action=%s err=\"%s\"", what,
                   action < 0 ? "exit"
                   : action   ? "retry"
                              : "abort",
                   rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return action;
}

/* Aborts the open transaction and rewinds to the committed offsets. */
static chorus_err_t abort_and_rewind(chorus_worker_t *w) {
        rd_kafka_error_t *error;

        while ((error = rd_kafka_abort_transaction(w->producer, TXN_TIMEOUT_MS)))
                if (txn_error_action(error, "abort_transaction") <= 0)
                        return CHORUS_ERR_KAFKA;
        w->stats.aborted_batches++;
        chorus_telemetry_transaction(w->tm, 0);
        return rewind_to_committed(w);
}

/* exactly_once: the batch's outputs and offsets in one transaction. */
static chorus_err_t commit_transaction(chorus_worker_t *w) {
        int moved;
        rd_kafka_topic_partition_list_t *list = offsets_to_commit(w, &moved);
        rd_kafka_consumer_group_metadata_t *cgmd;
        rd_kafka_error_t *error = NULL;

        if (list) {
                cgmd = rd_kafka_consumer_group_metadata(w->consumer);
                error =
                    rd_kafka_send_offsets_to_transaction(w->producer, list, cgmd, TXN_TIMEOUT_MS);
                rd_kafka_consumer_group_metadata_destroy(cgmd);
        }
        while (!error && (error = rd_kafka_commit_transaction(w->producer, TXN_TIMEOUT_MS)) &&
               rd_kafka_error_is_retriable(error) && !rd_kafka_error_txn_requires_abort(error)) {
                txn_error_action(error, "commit_transaction");
                error = NULL;
        }
        if (!error) {
                offsets_committed(w, list);
                chorus_telemetry_transaction(w->tm, 1);
                if (list)
                        rd_kafka_topic_partition_list_destroy(list);
                return CHORUS_OK;
        }
        if (list)
                rd_kafka_topic_partition_list_destroy(list);
        if (txn_error_action(error, "commit") < 0)
                return CHORUS_ERR_KAFKA;
        return abort_and_rewind(w);
}

static chorus_err_t begin_transaction(chorus_worker_t *w) {
        rd_kafka_error_t *error = rd_kafka_begin_transaction(w->producer);

        if (!error)
                return CHORUS_OK;
        txn_error_action(error, "begin_transaction");
        return CHORUS_ERR_KAFKA;
}

/* Releases the snapshots and records the dead letters of the batch just
 * committed, before the next poll: a rebalance there could hand a partition
 * that a held prediction keeps behind its committed offset to a worker that
 * would find the snapshots and emit those forecasts again. What remains is a
 * crash between the commit and this round trip. */
static chorus_err_t release_committed(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        chorus_err_t err;

        if (!w->n_releases && !w->n_dlq_done)
                return CHORUS_OK;
        w->n_entries = 0;
        queue_state_calls(w);
        if ((err = exec_state_calls(w, stop)))
                return err;
        w->n_releases = w->n_dlq_done = 0;
        return CHORUS_OK;
}

#ifdef CHORUS_FAULT_HOOKS
/* Test builds only: CHORUS_TEST_FAULT_KILL_AFTER_COMMIT=N kills the process with
 * SIGKILL right after the N-th commit that leaves snapshots to release while
 * a prediction is held, the window in which a restart re-reads committed
 * records (the fault suite's kill_at_release). */
static void fault_after_commit(const chorus_worker_t *w) {
        static long seen, at = -1;

        if (at < 0) {
                const char *v = getenv("CHORUS_TEST_FAULT_KILL_AFTER_COMMIT");
                at = v && *v ? atol(v) : 0;
        }
        if (at > 0 && w->n_releases && w->n_held && ++seen == at) {
                chorus_log_warn("fault", "msg=\"killing after commit\" releases=%zu held=%zu",
                                w->n_releases, w->n_held);
                raise(SIGKILL);
        }
}

/* CHORUS_TEST_FAULT_STOP_BEFORE_REDIS=N stops the process (SIGSTOP) right
 * before sending the state calls of its N-th batch that has some: the suite lets the
 * group move its partitions, then continues it, a zombie mid-batch whose
 * writes Redis must refuse (the fault suite's zombie_midbatch). */
static void fault_before_state_calls(const chorus_worker_t *w) {
        static long seen, at = -1;

        if (at < 0) {
                const char *v = getenv("CHORUS_TEST_FAULT_STOP_BEFORE_REDIS");
                at = v && *v ? atol(v) : 0;
        }
        if (at > 0 && w->n_sent && ++seen == at) {
                chorus_log_warn("fault", "msg=\"stopping before state calls\" records=%zu",
                                w->n_sent);
                raise(SIGSTOP);
                chorus_log_warn("fault", "msg=\"continued, sending the batch\" records=%zu",
                                w->n_sent);
        }
}
#else
#define fault_after_commit(w)       ((void)(w))
#define fault_before_state_calls(w) ((void)(w))
#endif

/* The end of a batch whose outputs are produced: commit its offsets (with
 * its transaction, if any), then release what the commit made safe. */
static chorus_err_t commit_and_release(chorus_worker_t *w, volatile sig_atomic_t *stop,
                                       uint64_t *t) {
        chorus_worker_stats_t *st = &w->stats;
        chorus_err_t err = w->transactional ? commit_transaction(w) : commit_plain(w);

        lap(t, &st->commit_us, &st->commit_max_us);
        if (err)
                return err;
        fault_after_commit(w);
        err = release_committed(w, stop);
        lap(t, &st->release_us, NULL);
        return err;
}

/* Whether committing now would move an offset. */
static int offsets_would_move(chorus_worker_t *w) {
        int moved = 0;
        rd_kafka_topic_partition_list_t *list = offsets_to_commit(w, &moved);

        if (list)
                rd_kafka_topic_partition_list_destroy(list);
        return moved;
}

/* After an assignment, before the next state call: a new epoch for every
 * owned partition (fencing whoever held them before), and the batch id in
 * each one's committed offset metadata. Retried until done or stopping: no
 * state call may go out with a stale epoch. */
static chorus_err_t refresh_owned(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        int backoff_ms = 100;

        while (w->refresh_owned && w->n_owned) {
                const char *topics[w->n_owned];
                int32_t partitions[w->n_owned];
                int64_t epochs[w->n_owned];
                rd_kafka_topic_partition_list_t *parts =
                    rd_kafka_topic_partition_list_new((int)w->n_owned);
                rd_kafka_resp_err_t kerr;
                char errstr[512] = "";
                chorus_err_t err;

                for (size_t i = 0; i < w->n_owned; i++) {
                        topics[i] = w->owned[i].topic;
                        partitions[i] = w->owned[i].partition;
                        rd_kafka_topic_partition_list_add(parts, topics[i], partitions[i]);
                }
                err = chorus_state_take_epochs(w->state, w->n_owned, topics, partitions, epochs,
                                               errstr, sizeof(errstr));
                kerr = err ? RD_KAFKA_RESP_ERR_NO_ERROR
                           : rd_kafka_committed(w->consumer, parts, 30000);
                if (!err && !kerr) {
                        for (int i = 0; i < parts->cnt; i++) {
                                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                                owned_t *o = owned_get(w, tp->topic, tp->partition);

                                if (!o)
                                        continue;
                                o->epoch = epochs[i];
                                owned_set_committed(o, tp->metadata, tp->metadata_size);
                        }
                        w->refresh_owned = 0;
                }
                rd_kafka_topic_partition_list_destroy(parts);
                if (!w->refresh_owned) {
                        chorus_telemetry_backoff(w->tm, NULL);
                        break;
                }
                chorus_telemetry_backoff(w->tm, "cannot take partition epochs");
                chorus_telemetry_heartbeat(w->tm);
                chorus_log_warn("worker",
                                "msg=\"cannot take partition epochs yet, retrying\" ready=false "
                                "err=\"%s\" backoff_ms=%d",
                                err ? errstr : rd_kafka_err2str(kerr), backoff_ms);
                if (*stop)
                        return err ? err : CHORUS_ERR_KAFKA;
                rd_kafka_poll(w->producer, backoff_ms);
                if (backoff_ms < 5000)
                        backoff_ms *= 2;
        }
        return CHORUS_OK;
}

static void monitor_source(void *ctx, const char *topic, int32_t partition, int64_t *epoch,
                           const char **committed) {
        owned_t *o = owned_get(ctx, topic, partition);

        *epoch = o ? o->epoch : 0; /* not owned: epoch 0 is refused */
        *committed = o ? o->committed_ids : "-";
}

static void add_release_at(chorus_worker_t *w, const chorus_monitor_anchor_t *a) {
        entry_t e = {.topic = a->topic, .partition = a->partition, .offset = a->offset};

        snprintf(e.rec.prediction.series, sizeof(e.rec.prediction.series), "%s", a->series);
        add_release(w, &e);
}

/* Encodes @p rec of @p type and produces it to @p role's topic under @p key. */
static chorus_err_t produce_monitor_record(chorus_worker_t *w, chorus_topic_role_t role,
                                           chorus_record_type_t type, const void *rec,
                                           const char *key) {
        const chorus_topic_conf_t *t = &w->cfg->topics[role];
        char errstr[256];
        chorus_err_t err;

        chorus_buf_reset(&w->out);
        if ((err = chorus_codec_encode(w->codec, type, t->framing, t->schema_id, rec, &w->out,
                                       errstr, sizeof(errstr)))) {
                chorus_log_error("monitor", "msg=\"encode failed\" type=%s err=\"%s\"",
                                 chorus_record_type_name(type), errstr);
                return err;
        }
        if ((err = produce(w, t->name, key, strlen(key), w->out.data, w->out.len, NULL)))
                return err;
        w->stats.records_out[role]++;
        chorus_telemetry_record_out(w->tm, t->name);
        return CHORUS_OK;
}

/* Scratch records of the monitor phase: too large for the stack. */
typedef struct monitor_out {
        chorus_alert_t alert;
        chorus_validation_window_t window;
        char key[2 * CHORUS_NAME_MAX + 2];
} monitor_out_t;

/* Produces the alerts and validation windows of one chorus_monitor reply. */
static chorus_err_t produce_monitor_outputs(chorus_worker_t *w, const redisReply *r,
                                            const char *series, monitor_out_t *o) {
        size_t n = chorus_monitor_reply_outputs(r);
        chorus_err_t err;

        for (size_t k = 0; k < n; k++) {
                chorus_monitor_output_t kind = chorus_monitor_reply_kind(r, k);

                if (kind == CHORUS_MONITOR_STALE) { /* for the global call, not produced */
                        int64_t newest, deadline;

                        if ((err = chorus_monitor_reply_stale(r, k, &newest, &deadline))) {
                                chorus_log_error("monitor", "msg=\"malformed stale\" series=%s",
                                                 series);
                                return err;
                        }
                        if (w->global &&
                            chorus_global_note_stale(w->global, series, newest, deadline))
                                return CHORUS_ERR_NOMEM;
                        continue;
                }
                if (kind == CHORUS_MONITOR_WINDOW) {
                        chorus_validation_window_t *vw = &o->window;

                        if ((err = chorus_monitor_reply_window(r, k, vw))) {
                                chorus_log_error("monitor", "msg=\"malformed window\" series=%s",
                                                 series);
                                return err;
                        }
                        snprintf(o->key, sizeof(o->key), "%s|%s", vw->series, vw->horizon);
                        chorus_log_info("monitor",
                                        "msg=\"validation window\" series=%s horizon=%s "
                                        "window_id=%" PRId64 " overfitting=%d",
                                        vw->series, vw->horizon, vw->window_id, vw->is_overfitting);
                        if ((err = produce_monitor_record(w, CHORUS_TOPIC_VALIDATION,
                                                          CHORUS_RECORD_VALIDATION_WINDOW, vw,
                                                          o->key)))
                                return err;
                        continue;
                }
                if ((err = chorus_monitor_reply_alert(r, k, &o->alert))) {
                        chorus_log_error("monitor", "msg=\"malformed alert\" series=%s", series);
                        return err;
                }
                chorus_log_info("monitor",
                                "msg=\"alert\" fingerprint=%s state=%s severity=%s "
                                "event_time=%" PRId64,
                                o->alert.fingerprint, o->alert.state, o->alert.severity,
                                o->alert.event_time);
                if ((err = produce_monitor_record(w, CHORUS_TOPIC_ALERTS, CHORUS_RECORD_ALERT,
                                                  &o->alert, o->alert.fingerprint)))
                        return err;
                chorus_telemetry_alert(w->tm, o->alert.type, o->alert.state, o->alert.severity);
                if (w->global && chorus_global_note_alert(w->global, &o->alert))
                        return CHORUS_ERR_NOMEM;
        }
        return CHORUS_OK;
}

/* The batch's second round trip (alerts.enabled): one chorus_monitor call
 * per series, after its forecasts are produced and before the commit. It
 * records the served forecasts as ensemble scores, runs the series' day
 * closes and validation windows, and returns alerts and windows, which go
 * out in this batch's transaction; an abort re-reads the batch, and the next
 * attempt finds them again. */
static chorus_err_t monitor_phase(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        size_t n = w->monitor ? chorus_monitor_n_series(w->monitor) : 0;
        monitor_out_t *out;
        chorus_err_t err = CHORUS_OK;

        if (!n || w->fenced)
                return CHORUS_OK;
        chorus_state_batch_begin(w->state, w->batch_id);
        chorus_monitor_queue(w->monitor, w->state, w->batch_id, monitor_source, w);
        if ((err = exec_state_calls(w, stop)))
                return err;
        if (!(out = malloc(sizeof(*out))))
                return CHORUS_ERR_KAFKA;
        for (size_t i = 0; i < n && !err; i++) {
                const redisReply *r = chorus_state_batch_reply(w->state, i);
                chorus_monitor_anchor_t anchor = chorus_monitor_anchor(w->monitor, i);
                int fenced;

                if ((err = chorus_monitor_reply_check(r, &fenced))) {
                        chorus_log_error("monitor", "msg=\"unexpected state reply\" series=%s",
                                         anchor.series);
                } else if (fenced) {
                        chorus_log_error("worker",
                                         "msg=\"fenced: partition has a newer owner\" topic=%s "
                                         "partition=%d offset=%" PRId64,
                                         anchor.topic, (int)anchor.partition, anchor.offset);
                        w->fenced = 1;
                } else if (chorus_monitor_reply_outputs(r) &&
                           !(err = produce_monitor_outputs(w, r, anchor.series, out))) {
                        /* Its outputs wait at the anchor until the commit releases them. */
                        add_release_at(w, &anchor);
                }
                if (w->fenced)
                        break;
        }
        free(out);
        if (w->fenced)
                return CHORUS_ERR_STATE;
        /* Anything else aborts the transaction and re-reads the batch. */
        return err ? CHORUS_ERR_KAFKA : CHORUS_OK;
}

/* The partition count of every input topic, from metadata, read once: the
 * global watermark stays unknown until every partition has reported. */
static int input_topics_known(chorus_worker_t *w) {
        /* Feature importances too: FEATURE_SHIFT alerts count for ALERT_STORM. */
        static const chorus_topic_role_t inputs[] = {CHORUS_TOPIC_PREDICTIONS, CHORUS_TOPIC_ACTUALS,
                                                     CHORUS_TOPIC_FEATURE_IMPORTANCE};

        if (w->n_input_topics)
                return 1;
        for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                const char *name = w->cfg->topics[inputs[i]].name;
                rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->consumer, name, NULL);
                const struct rd_kafka_metadata *md = NULL;
                chorus_global_topic_t *t;

                /* A topic that does not exist has no partition to wait for
                 * (feature importances are optional input). */
                if (!rkt || rd_kafka_metadata(w->consumer, 0, rkt, &md, 5000) ||
                    md->topic_cnt != 1 ||
                    (md->topics[0].err &&
                     md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
                        if (md)
                                rd_kafka_metadata_destroy(md);
                        if (rkt)
                                rd_kafka_topic_destroy(rkt);
                        w->n_input_topics = 0;
                        return 0;
                }
                t = VEC_PUSH(w, input_topics);
                t->topic = name;
                t->partitions = md->topics[0].err ? 0 : md->topics[0].partition_cnt;
                rd_kafka_metadata_destroy(md);
                rd_kafka_topic_destroy(rkt);
        }
        return 1;
}

/* The oldest event time among the records held from a partition, or -1:
 * they are read but not applied, so they hold its watermark back. */
static int64_t partition_held_min(const chorus_worker_t *w, const owned_t *o) {
        int64_t min = -1;

        for (size_t i = 0; i < w->n_held; i++) {
                const entry_t *e = &w->held[i];
                int64_t t;

                if (!same_partition(e->topic, e->partition, o->topic, o->partition))
                        continue;
                t = e->role == CHORUS_TOPIC_PREDICTIONS ? e->rec.prediction.issued_at
                    : e->role == CHORUS_TOPIC_ACTUALS   ? e->rec.actual.observed_at
                                                        : e->rec.fi.computed_at;
                if (min < 0 || t < min)
                        min = t;
        }
        return min;
}

/* Consumed to its end: the position is at the high watermark librdkafka
 * last fetched, and nothing read from it is held. */
static int partition_at_end(chorus_worker_t *w, const owned_t *o) {
        int64_t lo = -1, hi = -1, next = -1;

        if (rd_kafka_get_watermark_offsets(w->consumer, o->topic, o->partition, &lo, &hi) || hi < 0)
                return 0;
        for (size_t i = 0; i < w->n_held; i++)
                if (same_partition(w->held[i].topic, w->held[i].partition, o->topic, o->partition))
                        return 0;
        for (size_t i = 0; i < w->n_positions; i++)
                if (same_partition(w->positions[i].topic, w->positions[i].partition, o->topic,
                                   o->partition))
                        next = w->positions[i].next_offset;
        return next >= 0 ? next >= hi : lo == hi;
}

/* The batch's third round trip (alerts.enabled): the global call, after the
 * series' monitoring calls, whose critical alerts it counts. Without a
 * record applied in the batch it is made only when the owned partitions'
 * state changed, and only reports it: it has no record to anchor outputs
 * to, so the global rules wait for a batch that has one. */
static chorus_err_t global_phase(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        chorus_global_partition_t parts[64];
        size_t n_parts = 0;
        const redisReply *r;
        chorus_err_t err;
        monitor_out_t *out;
        int fenced;

        if (!w->global || w->fenced || !w->n_owned || !input_topics_known(w))
                return CHORUS_OK;
        for (size_t i = 0; i < w->n_owned && n_parts < sizeof(parts) / sizeof(parts[0]); i++) {
                const owned_t *o = &w->owned[i];
                parts[n_parts++] = (chorus_global_partition_t){o->topic,
                                                               o->partition,
                                                               o->epoch,
                                                               partition_at_end(w, o),
                                                               partition_held_min(w, o),
                                                               o->committed_ids};
        }
        if (!chorus_global_partitions_changed(w->global, parts, n_parts) &&
            !chorus_global_has_anchor(w->global))
                return CHORUS_OK;
        chorus_state_batch_begin(w->state, w->batch_id);
        chorus_global_queue(w->global, w->state, w->batch_id, parts, n_parts, w->input_topics,
                            w->n_input_topics);
        if ((err = exec_state_calls(w, stop)))
                return err;
        r = chorus_state_batch_reply(w->state, 0);
        if ((err = chorus_monitor_reply_check(r, &fenced)) || fenced) {
                chorus_log_error("monitor", "msg=\"unexpected global reply\"");
                return CHORUS_ERR_KAFKA;
        }
        if (!chorus_monitor_reply_outputs(r))
                return CHORUS_OK;
        if (!(out = malloc(sizeof(*out))))
                return CHORUS_ERR_KAFKA;
        err = produce_monitor_outputs(w, r, CHORUS_GLOBAL_SERIES, out);
        free(out);
        if (!err) {
                chorus_source_t a = chorus_global_anchor(w->global);
                chorus_monitor_anchor_t anchor = {CHORUS_GLOBAL_SERIES, a.topic, a.partition,
                                                  a.offset};
                add_release_at(w, &anchor);
        }
        return err ? CHORUS_ERR_KAFKA : CHORUS_OK;
}

static chorus_err_t run_batch_phases(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        chorus_worker_stats_t *st = &w->stats;
        uint64_t t = now_us();
        chorus_err_t err;

        /* Held records first, in their order, then the fresh ones. */
        w->entries = chorus_grow(w->entries, &w->entries_cap, w->n_held + w->n_fresh + 1,
                                 sizeof(*w->entries));
        if (w->n_held) /* memcpy from NULL is undefined even for 0 bytes */
                memcpy(w->entries, w->held, w->n_held * sizeof(*w->held));
        if (w->n_fresh)
                memcpy(w->entries + w->n_held, w->fresh, w->n_fresh * sizeof(*w->fresh));
        w->n_entries = w->n_held + w->n_fresh;
        w->n_held = w->n_fresh = 0;
        w->n_sent = 0;

        if ((err = refresh_owned(w, stop))) {
                free_entries(w->entries, w->n_entries);
                w->n_entries = 0;
                return err;
        }
        if (w->n_entries || w->n_releases || w->n_dlq_done) {
                w->stats.batches++;
                queue_state_calls(w);
                fault_before_state_calls(w);
                err = exec_state_calls(w, stop);
                lap(&t, &st->redis_us, &st->redis_max_us);
                if (err) {
                        /* Stopping: what was not applied comes back after a restart. */
                        free_entries(w->entries, w->n_entries);
                        w->n_entries = 0;
                        return err;
                }
                w->n_releases = 0;
                w->n_dlq_done = 0;
        }
        if (!w->transactional) {
                int refused = 0;

                if ((err = handle_replies(w)) || (err = monitor_phase(w, stop)) ||
                    (err = global_phase(w, stop)) || (err = produce_dead_letters(w, &refused))) {
                        /* A dead letter to step down: read the batch again
                         * (its outputs may repeat, as at_least_once allows). */
                        if (refused)
                                return rewind_to_committed(w);
                        return err;
                }
                clear_dead_letters(w);
                lap(&t, &st->produce_us, NULL);
                return commit_and_release(w, stop, &t);
        }

        /* A loop that only waits opens no transaction. */
        if (!w->n_sent && !w->n_dlq && !offsets_would_move(w))
                return handle_replies(w);
        if ((err = begin_transaction(w))) {
                free_entries(w->entries, w->n_entries);
                w->n_entries = 0;
                return err;
        }
        err = handle_replies(w);
        if (!err)
                err = monitor_phase(w, stop);
        if (!err)
                err = global_phase(w, stop);
        if (!err) {
                int refused; /* aborted and read again below, with the smaller form */
                err = produce_dead_letters(w, &refused);
        }
        clear_dead_letters(w);
        lap(&t, &st->produce_us, NULL);
        if (w->fenced) {
                abort_and_rewind(w);
                return CHORUS_ERR_STATE;
        }
        if (err) /* a produce failed: the transaction cannot commit */
                return abort_and_rewind(w);
        return commit_and_release(w, stop, &t);
}

static chorus_err_t run_batch(chorus_worker_t *w, volatile sig_atomic_t *stop) {
        uint64_t t0 = now_us(), took;
        size_t records = w->n_held + w->n_fresh;
        chorus_err_t err = run_batch_phases(w, stop);

        took = now_us() - t0;
        if (records)
                chorus_telemetry_batch(w->tm, records, (double)took / 1e6);
        chorus_telemetry_waiting(w->tm, w->n_held);
        if (took > w->stats.batch_max_us)
                w->stats.batch_max_us = took;
        return err;
}

/* With endpoints, an idle worker still checks Redis once a second, so
 * /readyz reports an outage that no batch has run into. */
static void idle_redis_check(chorus_worker_t *w) {
        char errstr[256];
        int64_t now = now_ms();

        if (!w->tm || now - w->last_redis_check_ms < 1000)
                return;
        if (chorus_state_ping(w->state, errstr, sizeof(errstr))) {
                chorus_telemetry_redis_up(w->tm, 0);
                w->last_redis_check_ms = now; /* the next try in a second */
                return;
        }
        chorus_telemetry_redis_up(w->tm, 1);
        w->last_redis_check_ms = now;
}

chorus_err_t chorus_worker_run(chorus_worker_t *w, volatile sig_atomic_t *stop,
                               int64_t idle_exit_ms) {
        int64_t last_input = now_ms();
        chorus_err_t err = CHORUS_OK;

        chorus_log_info("worker", "msg=\"started\" instance=%s worker_id=%s guarantee=%s",
                        w->instance_id, w->identity ? chorus_identity_id(w->identity) : "-",
                        w->transactional ? "exactly_once" : "at_least_once");
        while (!*stop) {
                int64_t deadline = now_ms() + w->cfg->batch_max_wait_ms;
                int64_t wait;
                size_t fresh = 0;

                /* A batch waits to fill: a prediction and the actual that
                 * releases it then usually share a batch. Taking only what
                 * is queued made batches tiny and holds frequent, and a
                 * held prediction keeps committed records behind its offset
                 * (the fault suite's crash_inflight found re-emits). */
                while (fresh < (size_t)w->cfg->batch_max_records && !*stop &&
                       (wait = deadline - now_ms()) >= 0) {
                        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, (int)wait);
                        if (!m)
                                continue;
                        if (m->err) {
                                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                        chorus_log_warn("consumer",
                                                        "msg=\"consume error\" err=\"%s\"",
                                                        rd_kafka_message_errstr(m));
                        } else {
                                fresh++;
                                admit(w, m);
                        }
                        rd_kafka_message_destroy(m);
                }
                if (fresh)
                        last_input = now_ms();
                if ((err = run_batch(w, stop)))
                        break;
                rd_kafka_poll(w->producer, 0);
                chorus_telemetry_heartbeat(w->tm);
                idle_redis_check(w);
                /* Idle is measured from the later of the last input and the
                 * assignment: joining a group can take seconds. */
                if (idle_exit_ms >= 0 && !fresh && !w->n_held && w->assigned_at_ms &&
                    now_ms() - (last_input > w->assigned_at_ms ? last_input : w->assigned_at_ms) >=
                        idle_exit_ms)
                        break;
        }
        /* Whatever a failed release left: its outputs are committed. */
        if (!err)
                release_committed(w, stop);
        chorus_log_info(
            "worker",
            "msg=\"stopped\" batches=%" PRIu64 " applied=%" PRIu64 " forecasts=%" PRIu64
            " redis_ms=%" PRIu64 " produce_ms=%" PRIu64 " commit_ms=%" PRIu64 " release_ms=%" PRIu64
            " redis_max_ms=%" PRIu64 " commit_max_ms=%" PRIu64 " batch_max_ms=%" PRIu64 " err=%s",
            w->stats.batches, w->stats.applied, w->stats.records_out[CHORUS_TOPIC_FORECASTS],
            w->stats.redis_us / 1000, w->stats.produce_us / 1000, w->stats.commit_us / 1000,
            w->stats.release_us / 1000, w->stats.redis_max_us / 1000, w->stats.commit_max_us / 1000,
            w->stats.batch_max_us / 1000, chorus_err2code(err));
        return err;
}
