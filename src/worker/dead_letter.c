/*
 * Dead letters (include/chorus/dead_letter.h): classification of produce
 * errors, the size limit, the forms a dead letter steps down to, and the
 * set of records that need a smaller form.
 *
 * Invariants:
 *  - A form never holds more than the budget of its level in key plus
 *    value, so a limit read from the topic holds for the whole record but
 *    the headers (CHORUS_DLQ_MARGIN_BYTES is kept for those).
 *  - A form points into the dead letter's own bytes: nothing is copied
 *    here, librdkafka copies (RD_KAFKA_MSG_F_COPY).
 *  - The classification is a table of the permanent errors; everything
 *    else is retried, so an error this table does not know stalls a
 *    partition visibly instead of dropping a dead letter.
 */
#include "chorus/dead_letter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Classification                                                      */
/* ------------------------------------------------------------------ */

static const struct {
        rd_kafka_resp_err_t err;
        chorus_produce_class_t class;
} permanent[] = {
    /* The record or its batch is larger than the producer
     * (message.max.bytes, checked locally at produce) or the topic
     * (max.message.bytes) accepts. */
    {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, CHORUS_PRODUCE_TOO_LARGE},
    {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, CHORUS_PRODUCE_TOO_LARGE},
    {RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, CHORUS_PRODUCE_TOO_LARGE},
    /* The broker refuses the record itself, or this client may not write
     * to the topic: sending the same bytes again gets the same answer. */
    {RD_KAFKA_RESP_ERR_INVALID_MSG, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_INVALID_RECORD, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_POLICY_VIOLATION, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR__BAD_MSG, CHORUS_PRODUCE_REJECTED},
    {RD_KAFKA_RESP_ERR__INVALID_ARG, CHORUS_PRODUCE_REJECTED},
};

chorus_produce_class_t chorus_produce_classify(rd_kafka_resp_err_t err) {
        for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
                if (permanent[i].err == err)
                        return permanent[i].class;
        return CHORUS_PRODUCE_RETRY;
}

const char *chorus_produce_class_name(chorus_produce_class_t c) {
        switch (c) {
        case CHORUS_PRODUCE_TOO_LARGE:
                return "too_large";
        case CHORUS_PRODUCE_REJECTED:
                return "rejected";
        case CHORUS_PRODUCE_RETRY:
        default:
                return "retry";
        }
}

/* ------------------------------------------------------------------ */
/* Limit and forms                                                     */
/* ------------------------------------------------------------------ */

static int64_t under_margin(int64_t max) {
        return max < CHORUS_DLQ_MARGIN_BYTES ? 0 : max - CHORUS_DLQ_MARGIN_BYTES;
}

size_t chorus_dead_letter_limit(int64_t configured, int64_t topic_max, int64_t producer_max) {
        int64_t limit = configured < 0 ? 0 : configured;

        if (topic_max >= 0 && under_margin(topic_max) < limit)
                limit = under_margin(topic_max);
        if (producer_max >= 0 && under_margin(producer_max) < limit)
                limit = under_margin(producer_max);
        return (size_t)limit;
}

const char *chorus_dlq_level_name(chorus_dlq_level_t level) {
        static const char *const names[] = {"full", "small", "headers", "drop"};
        return level >= 0 && level < CHORUS_DLQ__LEVELS ? names[level] : "?";
}

static void add_number(rd_kafka_headers_t *h, const char *name, int64_t v) {
        char s[24];

        snprintf(s, sizeof(s), "%" PRId64, v);
        rd_kafka_header_add(h, name, -1, s, -1);
}

rd_kafka_headers_t *chorus_dead_letter_build(const chorus_dead_letter_t *d, size_t limit,
                                             chorus_dlq_level_t level, chorus_dlq_form_t *form) {
        size_t key_len = d->key ? d->key_len : 0, value_len = d->value ? d->value_len : 0;
        size_t budget = level == CHORUS_DLQ_FULL ? limit
                        : level == CHORUS_DLQ_SMALL
                            ? (limit < CHORUS_DLQ_SMALL_BYTES ? limit : CHORUS_DLQ_SMALL_BYTES)
                            : 0;
        rd_kafka_headers_t *h;

        memset(form, 0, sizeof(*form));
        if (level < CHORUS_DLQ_FULL || level >= CHORUS_DLQ_DROP)
                return NULL;
        if (level == CHORUS_DLQ_HEADERS) {
                /* A null value stays null; anything else becomes empty, not
                 * null, which a compacted topic would read as a tombstone. */
                form->value = d->value ? "" : NULL;
        } else {
                size_t key_max = budget - (value_len < budget ? value_len : budget);

                if (key_max < budget / 2)
                        key_max = budget / 2;
                form->key_len = key_len < key_max ? key_len : key_max;
                form->value_len =
                    value_len < budget - form->key_len ? value_len : budget - form->key_len;
                form->key = d->key;
                form->value = d->value;
        }
        form->truncated = form->key_len < key_len || form->value_len < value_len;

        h = rd_kafka_headers_new(8);
        rd_kafka_header_add(h, "chorus.error", -1, chorus_err2code(d->reason), -1);
        rd_kafka_header_add(h, "chorus.error.message", -1, d->message ? d->message : "", -1);
        rd_kafka_header_add(h, "chorus.source.topic", -1, d->topic, -1);
        add_number(h, "chorus.source.partition", d->partition);
        add_number(h, "chorus.source.offset", d->offset);
        if (form->truncated) {
                rd_kafka_header_add(h, "chorus.error.truncated", -1, "true", -1);
                add_number(h, "chorus.source.value_bytes", (int64_t)value_len);
                add_number(h, "chorus.source.key_bytes", (int64_t)key_len);
        }
        return h;
}

static int header_str(const rd_kafka_headers_t *h, const char *name, char *out, size_t size) {
        const void *v;
        size_t len;

        if (rd_kafka_header_get_last(h, name, &v, &len) || !v || len >= size)
                return -1;
        memcpy(out, v, len);
        out[len] = '\0';
        return 0;
}

static int header_int(const rd_kafka_headers_t *h, const char *name, int64_t min, int64_t max,
                      int64_t *out) {
        char s[24], *end;
        long long v;

        if (header_str(h, name, s, sizeof(s)) || !*s)
                return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

int chorus_dead_letter_source(const rd_kafka_headers_t *h, char *topic, size_t topic_size,
                              int32_t *partition, int64_t *offset) {
        int64_t p;

        if (!h || header_str(h, "chorus.source.topic", topic, topic_size) || !*topic ||
            header_int(h, "chorus.source.partition", 0, INT32_MAX, &p) ||
            header_int(h, "chorus.source.offset", 0, INT64_MAX, offset))
                return -1;
        *partition = (int32_t)p;
        return 0;
}

/* ------------------------------------------------------------------ */
/* The topic's limit                                                   */
/* ------------------------------------------------------------------ */

int64_t chorus_dead_letter_topic_max(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                     char *errstr, size_t errstr_size) {
        rd_kafka_ConfigResource_t *res =
            rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
        rd_kafka_AdminOptions_t *opts =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_event_t *ev = NULL;
        const rd_kafka_metadata_t *md = NULL;
        const rd_kafka_DescribeConfigs_result_t *result;
        const rd_kafka_ConfigResource_t **rs;
        const rd_kafka_ConfigEntry_t **entries;
        size_t n_rs = 0, n_entries = 0;
        int64_t max = -1;

        snprintf(errstr, errstr_size, "no max.message.bytes in the topic's configuration");
        if (rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, errstr_size))
                goto done;
        /* Any broker answers for a topic's configuration; librdkafka would
         * wait for the controller, which a cluster may not name (the mock
         * cluster of `chorus demo` never does), for the whole timeout. */
        if (!rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms) && md->orig_broker_id >= 0)
                rd_kafka_AdminOptions_set_broker(opts, md->orig_broker_id, errstr, errstr_size);
        rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
        /* The request times out by itself; the extra second is for its answer. */
        if (!(ev = rd_kafka_queue_poll(q, timeout_ms + 1000))) {
                snprintf(errstr, errstr_size, "DescribeConfigs: no answer within %d ms",
                         timeout_ms);
                goto done;
        }
        if (rd_kafka_event_error(ev)) {
                snprintf(errstr, errstr_size, "DescribeConfigs: %s",
                         rd_kafka_event_error_string(ev));
                goto done;
        }
        result = rd_kafka_event_DescribeConfigs_result(ev);
        rs = result ? rd_kafka_DescribeConfigs_result_resources(result, &n_rs) : NULL;
        if (n_rs != 1) {
                snprintf(errstr, errstr_size, "DescribeConfigs: %zu resources in the answer", n_rs);
                goto done;
        }
        if (rd_kafka_ConfigResource_error(rs[0])) {
                snprintf(errstr, errstr_size, "DescribeConfigs: %s",
                         rd_kafka_ConfigResource_error_string(rs[0])
                             ? rd_kafka_ConfigResource_error_string(rs[0])
                             : rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0])));
                goto done;
        }
        entries = rd_kafka_ConfigResource_configs(rs[0], &n_entries);
        for (size_t i = 0; i < n_entries; i++) {
                const char *v = rd_kafka_ConfigEntry_value(entries[i]);
                char *end;
                long long x;

                if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), "max.message.bytes"))
                        continue;
                errno = 0;
                x = v ? strtoll(v, &end, 10) : -1;
                if (!v || errno || *end || x < 0)
                        snprintf(errstr, errstr_size, "max.message.bytes is not a size: %s",
                                 v ? v : "(null)");
                else
                        max = x;
                break;
        }
done:
        if (md)
                rd_kafka_metadata_destroy(md);
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_ConfigResource_destroy(res);
        return max;
}

/* ------------------------------------------------------------------ */
/* Step-downs                                                          */
/* ------------------------------------------------------------------ */

/* Kafka topic names are at most 249 characters. */
typedef struct step {
        char topic[256];
        int32_t partition;
        int64_t offset;
        chorus_dlq_level_t level;
} step_t;

struct chorus_dlq_steps_s {
        step_t *v;
        size_t n, cap;
};

chorus_dlq_steps_t *chorus_dlq_steps_new(void) {
        chorus_dlq_steps_t *s = calloc(1, sizeof(*s));

        if (!s) {
                fprintf(stderr, "chorus: out of memory\n");
                abort();
        }
        return s;
}

void chorus_dlq_steps_destroy(chorus_dlq_steps_t *s) {
        if (!s)
                return;
        free(s->v);
        free(s);
}

static step_t *find(const chorus_dlq_steps_t *s, const char *topic, int32_t partition,
                    int64_t offset) {
        for (size_t i = 0; i < s->n; i++)
                if (s->v[i].partition == partition && s->v[i].offset == offset &&
                    !strcmp(s->v[i].topic, topic))
                        return &s->v[i];
        return NULL;
}

chorus_dlq_level_t chorus_dlq_steps_get(const chorus_dlq_steps_t *s, const char *topic,
                                        int32_t partition, int64_t offset) {
        const step_t *st = find(s, topic, partition, offset);
        return st ? st->level : CHORUS_DLQ_FULL;
}

chorus_dlq_level_t chorus_dlq_steps_refused(chorus_dlq_steps_t *s, const char *topic,
                                            int32_t partition, int64_t offset,
                                            chorus_dlq_level_t tried) {
        step_t *st = find(s, topic, partition, offset);
        chorus_dlq_level_t next = tried + 1 < CHORUS_DLQ__LEVELS ? tried + 1 : CHORUS_DLQ_DROP;

        if (!st) {
                if (s->n == s->cap) {
                        size_t cap = s->cap ? 2 * s->cap : 8;
                        step_t *v = realloc(s->v, cap * sizeof(*v));
                        if (!v) {
                                fprintf(stderr, "chorus: out of memory\n");
                                abort();
                        }
                        s->v = v;
                        s->cap = cap;
                }
                st = &s->v[s->n++];
                snprintf(st->topic, sizeof(st->topic), "%s", topic);
                st->partition = partition;
                st->offset = offset;
                st->level = CHORUS_DLQ_FULL;
        }
        if (next > st->level)
                st->level = next;
        return st->level;
}

void chorus_dlq_steps_forget(chorus_dlq_steps_t *s, const char *topic, int32_t partition,
                             int64_t offset) {
        size_t kept = 0;

        for (size_t i = 0; i < s->n; i++) {
                const step_t *st = &s->v[i];
                if (st->partition == partition && !strcmp(st->topic, topic) &&
                    (offset < 0 || st->offset < offset))
                        continue;
                s->v[kept++] = *st;
        }
        s->n = kept;
}

size_t chorus_dlq_steps_count(const chorus_dlq_steps_t *s) {
        return s->n;
}
