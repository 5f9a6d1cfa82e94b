/*
 * Unit tests of dead letters (src/worker/dead_letter.c): which produce
 * errors are retried and which are permanent, the size limit, the forms a
 * dead letter steps down to, and the set of records that need a smaller form.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chorus/dead_letter.h"

/* ---- classification ---------------------------------------------------- */

Test(dead_letter, retriable_errors_are_retried) {
        /* Broker down, slow or moving, the local queue full, an aborted
         * transaction's purge: retry, never skip (SPEC 9.4). */
        static const rd_kafka_resp_err_t retry[] = {
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__QUEUE_FULL,
            RD_KAFKA_RESP_ERR__PURGE_QUEUE,
            RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
            RD_KAFKA_RESP_ERR__STATE,
            RD_KAFKA_RESP_ERR__FENCED,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
            RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
            RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
            RD_KAFKA_RESP_ERR_NO_ERROR,
            (rd_kafka_resp_err_t)12345, /* unknown: retried, not given up */
        };
        for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++)
                cr_expect_eq(chorus_produce_classify(retry[i]), CHORUS_PRODUCE_RETRY, "%s",
                             rd_kafka_err2str(retry[i]));
        cr_expect_str_eq(chorus_produce_class_name(CHORUS_PRODUCE_RETRY), "retry");
}

Test(dead_letter, size_errors_are_too_large) {
        static const rd_kafka_resp_err_t large[] = {
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
            RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE,
        };
        for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); i++)
                cr_expect_eq(chorus_produce_classify(large[i]), CHORUS_PRODUCE_TOO_LARGE, "%s",
                             rd_kafka_err2str(large[i]));
        cr_expect_str_eq(chorus_produce_class_name(CHORUS_PRODUCE_TOO_LARGE), "too_large");
}

Test(dead_letter, other_permanent_errors_are_rejected) {
        static const rd_kafka_resp_err_t rejected[] = {
            RD_KAFKA_RESP_ERR_INVALID_MSG,
            RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP,
            RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
            RD_KAFKA_RESP_ERR_POLICY_VIOLATION,
            RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT,
            RD_KAFKA_RESP_ERR__BAD_MSG,
            RD_KAFKA_RESP_ERR__INVALID_ARG,
        };
        for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++)
                cr_expect_eq(chorus_produce_classify(rejected[i]), CHORUS_PRODUCE_REJECTED, "%s",
                             rd_kafka_err2str(rejected[i]));
        cr_expect_str_eq(chorus_produce_class_name(CHORUS_PRODUCE_REJECTED), "rejected");
}

/* ---- limit ------------------------------------------------------------- */

Test(dead_letter, limit_is_the_least_of_three) {
        /* The broker's default topic limit and librdkafka's default. */
        cr_expect_eq(chorus_dead_letter_limit(262144, 1048588, 1000000), 262144);
        /* A 64 KiB topic: its limit less the margin. */
        cr_expect_eq(chorus_dead_letter_limit(262144, 65536, 1000000),
                     65536 - CHORUS_DLQ_MARGIN_BYTES);
        cr_expect_eq(chorus_dead_letter_limit(262144, 1048588, 100000),
                     100000 - CHORUS_DLQ_MARGIN_BYTES);
        /* Unknown topic limit: not a bound. */
        cr_expect_eq(chorus_dead_letter_limit(262144, -1, 1000000), 262144);
        cr_expect_eq(chorus_dead_letter_limit(262144, -1, -1), 262144);
        /* Below the margin: headers only, never negative. */
        cr_expect_eq(chorus_dead_letter_limit(262144, 1000, 1000000), 0);
}

/* ---- forms ------------------------------------------------------------- */

static const char *header(rd_kafka_headers_t *h, const char *name) {
        static char buf[512];
        const void *v;
        size_t len;

        if (rd_kafka_header_get_last(h, name, &v, &len))
                return NULL;
        cr_assert_lt(len, sizeof(buf));
        memcpy(buf, v, len);
        buf[len] = '\0';
        return buf;
}

static chorus_dead_letter_t letter(const void *key, size_t key_len, const void *value,
                                   size_t value_len) {
        return (chorus_dead_letter_t){.topic = "chorus.predictions",
                                      .partition = 3,
                                      .offset = 4711,
                                      .reason = CHORUS_ERR_ABSURD_LENGTH,
                                      .message = "field model_id: 5242880 bytes exceeds 128",
                                      .key = key,
                                      .key_len = key_len,
                                      .value = value,
                                      .value_len = value_len};
}

Test(dead_letter, small_record_is_whole_with_the_five_headers) {
        chorus_dead_letter_t d = letter("ZL", 2, "\0\0\0\0\1abc", 8);
        chorus_dlq_form_t f;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&d, 262144, CHORUS_DLQ_FULL, &f);

        cr_assert(h);
        cr_expect_eq(f.key, d.key);
        cr_expect_eq(f.key_len, 2);
        cr_expect_eq(f.value, d.value);
        cr_expect_eq(f.value_len, 8);
        cr_expect_not(f.truncated);
        cr_expect_str_eq(header(h, "chorus.error"), "absurd_length");
        cr_expect_str_eq(header(h, "chorus.error.message"), d.message);
        cr_expect_str_eq(header(h, "chorus.source.topic"), "chorus.predictions");
        cr_expect_str_eq(header(h, "chorus.source.partition"), "3");
        cr_expect_str_eq(header(h, "chorus.source.offset"), "4711");
        cr_expect_null(header(h, "chorus.error.truncated"));
        cr_expect_eq(rd_kafka_header_cnt(h), 5);
        rd_kafka_headers_destroy(h);
}

Test(dead_letter, long_value_is_cut_to_the_budget_left_by_the_key) {
        size_t big = 5u << 20;
        char *v = calloc(1, big);
        chorus_dead_letter_t d = letter("big", 3, v, big);
        chorus_dlq_form_t f;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&d, 260096, CHORUS_DLQ_FULL, &f);

        cr_expect_eq(f.key_len, 3);
        cr_expect_eq(f.value_len, 260096 - 3);
        cr_expect(f.truncated);
        cr_expect_str_eq(header(h, "chorus.error.truncated"), "true");
        cr_expect_str_eq(header(h, "chorus.source.value_bytes"), "5242880");
        cr_expect_str_eq(header(h, "chorus.source.key_bytes"), "3");
        rd_kafka_headers_destroy(h);

        /* Step-down: 1 KiB in all. */
        h = chorus_dead_letter_build(&d, 260096, CHORUS_DLQ_SMALL, &f);
        cr_expect_eq(f.key_len + f.value_len, CHORUS_DLQ_SMALL_BYTES);
        cr_expect_eq(f.key_len, 3);
        cr_expect(f.truncated);
        rd_kafka_headers_destroy(h);

        /* Then headers only: a null key and an empty (not null) value. */
        h = chorus_dead_letter_build(&d, 260096, CHORUS_DLQ_HEADERS, &f);
        cr_expect_null(f.key);
        cr_expect_eq(f.key_len, 0);
        cr_expect_not_null(f.value);
        cr_expect_eq(f.value_len, 0);
        cr_expect(f.truncated);
        cr_expect_str_eq(header(h, "chorus.source.value_bytes"), "5242880");
        cr_expect_str_eq(header(h, "chorus.source.offset"), "4711");
        rd_kafka_headers_destroy(h);

        /* Then nothing. */
        cr_expect_null(chorus_dead_letter_build(&d, 260096, CHORUS_DLQ_DROP, &f));
        free(v);
}

Test(dead_letter, long_key_keeps_what_the_value_leaves_but_half_at_least) {
        char *k = calloc(1, 10000), *v = calloc(1, 10000);
        chorus_dead_letter_t d = letter(k, 10000, v, 100);
        chorus_dlq_form_t f;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&d, 4096, CHORUS_DLQ_FULL, &f);

        cr_expect_eq(f.key_len, 4096 - 100);
        cr_expect_eq(f.value_len, 100);
        cr_expect_str_eq(header(h, "chorus.source.key_bytes"), "10000");
        rd_kafka_headers_destroy(h);

        d.value_len = 10000; /* both long: half each */
        h = chorus_dead_letter_build(&d, 4096, CHORUS_DLQ_FULL, &f);
        cr_expect_eq(f.key_len, 2048);
        cr_expect_eq(f.value_len, 2048);
        rd_kafka_headers_destroy(h);
        free(k);
        free(v);
}

Test(dead_letter, null_key_and_value_stay_null) {
        chorus_dead_letter_t d = letter(NULL, 0, NULL, 0);
        chorus_dlq_form_t f;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&d, 262144, CHORUS_DLQ_FULL, &f);

        cr_expect_null(f.key);
        cr_expect_null(f.value);
        cr_expect_not(f.truncated);
        rd_kafka_headers_destroy(h);
        h = chorus_dead_letter_build(&d, 262144, CHORUS_DLQ_HEADERS, &f);
        cr_expect_null(f.value);
        cr_expect_not(f.truncated);
        rd_kafka_headers_destroy(h);
}

Test(dead_letter, source_is_read_back_from_the_headers) {
        chorus_dead_letter_t d = letter("k", 1, "v", 1);
        chorus_dlq_form_t f;
        rd_kafka_headers_t *h = chorus_dead_letter_build(&d, 262144, CHORUS_DLQ_SMALL, &f);
        char topic[256];
        int32_t partition = -1;
        int64_t offset = -1;

        cr_assert_eq(chorus_dead_letter_source(h, topic, sizeof(topic), &partition, &offset), 0);
        cr_expect_str_eq(topic, "chorus.predictions");
        cr_expect_eq(partition, 3);
        cr_expect_eq(offset, 4711);
        rd_kafka_headers_destroy(h);

        h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "chorus.source.topic", -1, "t", -1);
        rd_kafka_header_add(h, "chorus.source.partition", -1, "x1", -1);
        rd_kafka_header_add(h, "chorus.source.offset", -1, "7", -1);
        cr_expect_eq(chorus_dead_letter_source(h, topic, sizeof(topic), &partition, &offset), -1);
        cr_expect_eq(chorus_dead_letter_source(NULL, topic, sizeof(topic), &partition, &offset),
                     -1);
        rd_kafka_headers_destroy(h);
}

/* ---- step-downs -------------------------------------------------------- */

Test(dead_letter, steps_go_down_once_per_refusal_and_are_forgotten) {
        chorus_dlq_steps_t *s = chorus_dlq_steps_new();

        cr_expect_eq(chorus_dlq_steps_get(s, "p", 0, 10), CHORUS_DLQ_FULL);
        cr_expect_eq(chorus_dlq_steps_refused(s, "p", 0, 10, CHORUS_DLQ_FULL), CHORUS_DLQ_SMALL);
        /* A late report of the same, larger form does not step down twice. */
        cr_expect_eq(chorus_dlq_steps_refused(s, "p", 0, 10, CHORUS_DLQ_FULL), CHORUS_DLQ_SMALL);
        cr_expect_eq(chorus_dlq_steps_refused(s, "p", 0, 10, CHORUS_DLQ_SMALL), CHORUS_DLQ_HEADERS);
        cr_expect_eq(chorus_dlq_steps_refused(s, "p", 0, 10, CHORUS_DLQ_HEADERS), CHORUS_DLQ_DROP);
        cr_expect_eq(chorus_dlq_steps_refused(s, "p", 0, 10, CHORUS_DLQ_DROP), CHORUS_DLQ_DROP);
        cr_expect_eq(chorus_dlq_steps_get(s, "p", 0, 10), CHORUS_DLQ_DROP);
        /* Other records, partitions and topics are their own. */
        cr_expect_eq(chorus_dlq_steps_get(s, "p", 1, 10), CHORUS_DLQ_FULL);
        cr_expect_eq(chorus_dlq_steps_get(s, "a", 0, 10), CHORUS_DLQ_FULL);
        chorus_dlq_steps_refused(s, "p", 0, 20, CHORUS_DLQ_FULL);
        chorus_dlq_steps_refused(s, "p", 1, 5, CHORUS_DLQ_FULL);
        cr_expect_eq(chorus_dlq_steps_count(s), 3);

        /* A commit at 11 forgets offset 10 of that partition only. */
        chorus_dlq_steps_forget(s, "p", 0, 11);
        cr_expect_eq(chorus_dlq_steps_get(s, "p", 0, 10), CHORUS_DLQ_FULL);
        cr_expect_eq(chorus_dlq_steps_get(s, "p", 0, 20), CHORUS_DLQ_SMALL);
        cr_expect_eq(chorus_dlq_steps_get(s, "p", 1, 5), CHORUS_DLQ_SMALL);
        /* A revoke forgets the whole partition. */
        chorus_dlq_steps_forget(s, "p", 1, -1);
        cr_expect_eq(chorus_dlq_steps_count(s), 1);
        for (int i = 0; i < 100; i++) /* growth */
                chorus_dlq_steps_refused(s, "q", 0, i, CHORUS_DLQ_FULL);
        cr_expect_eq(chorus_dlq_steps_count(s), 101);
        chorus_dlq_steps_destroy(s);
        chorus_dlq_steps_destroy(NULL);
}
