/*
 * Dead letters: what one looks like on the dead-letter topic, how large it
 * may be, what a failure to produce it means, and the smaller forms it
 * steps down to when the broker refuses it for good (issue 14).
 *
 * A dead letter carries the original key and value bytes and the headers
 * chorus.error, chorus.error.message, chorus.source.topic,
 * chorus.source.partition and chorus.source.offset (SPEC §2). A key plus
 * value longer than the limit is cut, and then also carries
 * chorus.error.truncated=true, chorus.source.value_bytes and
 * chorus.source.key_bytes (the original sizes).
 *
 * Produce errors fall in three classes, decided in one place
 * (chorus_produce_classify): retry (the broker or the network is away or
 * slow: retry, never skip, SPEC §9.4), too_large and rejected (the record
 * itself is refused and always will be). Only the last two step a dead
 * letter down: the limit, then 1 KiB, then headers only, then nothing (an
 * error line and chorus_dead_letters_dropped_total).
 */
#ifndef CHORUS_DEAD_LETTER_H
#define CHORUS_DEAD_LETTER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "chorus/err.h"

/** What a failed produce of a record means. */
typedef enum chorus_produce_class {
        CHORUS_PRODUCE_RETRY = 0, /**< transient (broker down, timeout, queue full, ...): retry */
        CHORUS_PRODUCE_TOO_LARGE, /**< the record is too large for the producer or the topic */
        CHORUS_PRODUCE_REJECTED,  /**< refused for good for another reason (invalid, not allowed) */
} chorus_produce_class_t;

/**
 * @brief Classify the error of a produce call or of a delivery report.
 * @remark Anything not known to be permanent is CHORUS_PRODUCE_RETRY, the
 *         success code included: retrying an unknown error stalls a
 *         partition visibly (logs, lag), giving up on it would lose a dead
 *         letter without need.
 */
chorus_produce_class_t chorus_produce_classify(rd_kafka_resp_err_t err);

/** @returns "retry", "too_large" or "rejected". */
const char *chorus_produce_class_name(chorus_produce_class_t c);

/** Bytes kept free under the broker's and the producer's message limits for
 *  the headers, the record and batch framing. */
#define CHORUS_DLQ_MARGIN_BYTES 2048

/** Key plus value of a dead letter at CHORUS_DLQ_SMALL. */
#define CHORUS_DLQ_SMALL_BYTES 1024

/**
 * @brief The key plus value budget of a dead letter: the least of
 *        @p configured (dlq.max_value_bytes), @p topic_max (the topic's
 *        max.message.bytes) and @p producer_max (the producer's
 *        message.max.bytes), the last two less CHORUS_DLQ_MARGIN_BYTES.
 * @param topic_max  < 0 when unknown (not read): then not a bound.
 * @param producer_max < 0 when unknown.
 * @returns the limit, at least 0.
 */
size_t chorus_dead_letter_limit(int64_t configured, int64_t topic_max, int64_t producer_max);

/** How much of a dead letter is produced, from whole to nothing. */
typedef enum chorus_dlq_level {
        CHORUS_DLQ_FULL = 0, /**< key and value, cut to the limit */
        CHORUS_DLQ_SMALL,    /**< key and value cut to CHORUS_DLQ_SMALL_BYTES */
        CHORUS_DLQ_HEADERS,  /**< headers only: null key, empty value */
        CHORUS_DLQ_DROP,     /**< not produced: logged at error and counted */
        CHORUS_DLQ__LEVELS
} chorus_dlq_level_t;

/** @returns "full", "small", "headers" or "drop". */
const char *chorus_dlq_level_name(chorus_dlq_level_t level);

/** A record to dead-letter. Everything is borrowed. */
typedef struct chorus_dead_letter {
        const char *topic; /**< source topic, partition and offset */
        int32_t partition;
        int64_t offset;
        chorus_err_t reason;
        const char *message; /**< chorus.error.message */
        const void *key;     /**< NULL: a null key (stays null) */
        size_t key_len;
        const void *value; /**< NULL: a null value (stays null) */
        size_t value_len;
} chorus_dead_letter_t;

/** What to produce for a dead letter. */
typedef struct chorus_dlq_form {
        const void *key; /**< points into the dead letter's key, or NULL */
        size_t key_len;
        const void *value; /**< points into the dead letter's value, "" or NULL */
        size_t value_len;
        int truncated; /**< key or value was cut (the truncation headers are set) */
} chorus_dlq_form_t;

/**
 * @brief Build the form and headers of @p d at @p level under @p limit
 *        (chorus_dead_letter_limit()).
 *
 * Cutting keeps the key whole when it is at most half the budget and gives
 * the value the rest; a key longer than that keeps what the value leaves,
 * but at least half.
 *
 * @param level CHORUS_DLQ_FULL .. CHORUS_DLQ_HEADERS (DROP: NULL).
 * @returns new headers, which the caller passes to rd_kafka_producev()
 *          (which then owns them) or frees with rd_kafka_headers_destroy();
 *          NULL for CHORUS_DLQ_DROP.
 */
rd_kafka_headers_t *chorus_dead_letter_build(const chorus_dead_letter_t *d, size_t limit,
                                             chorus_dlq_level_t level, chorus_dlq_form_t *form);

/**
 * @brief The source coordinates in a dead letter's headers (a delivery report).
 * @returns 0, or -1 when a header is missing or malformed.
 */
int chorus_dead_letter_source(const rd_kafka_headers_t *h, char *topic, size_t topic_size,
                              int32_t *partition, int64_t *offset);

/**
 * @brief The topic's max.message.bytes, read with the Admin API
 *        (DescribeConfigs) through @p rk, waiting at most @p timeout_ms.
 * @returns the value, or -1 with the reason in @p errstr.
 */
int64_t chorus_dead_letter_topic_max(rd_kafka_t *rk, const char *topic, int timeout_ms,
                                     char *errstr, size_t errstr_size);

/* ---- step-downs -------------------------------------------------------- */

/**
 * The records whose dead letter was refused for good, with the level to
 * try next. A worker keeps it in memory only: after a restart a refused
 * form is refused again and the record steps down again, so nothing is
 * lost, at the price of one more aborted batch per level.
 */
typedef struct chorus_dlq_steps_s chorus_dlq_steps_t;

/** @returns a new empty set (aborts on out-of-memory). */
chorus_dlq_steps_t *chorus_dlq_steps_new(void);

/** @brief Free. Accepts NULL. */
void chorus_dlq_steps_destroy(chorus_dlq_steps_t *s);

/** @returns the level to produce the record's dead letter at (FULL when not listed). */
chorus_dlq_level_t chorus_dlq_steps_get(const chorus_dlq_steps_t *s, const char *topic,
                                        int32_t partition, int64_t offset);

/**
 * @brief The dead letter at @p tried was refused for good: the record's
 *        level becomes at least @p tried + 1 (a late report of an older,
 *        larger form does not step it down twice).
 * @returns the new level.
 */
chorus_dlq_level_t chorus_dlq_steps_refused(chorus_dlq_steps_t *s, const char *topic,
                                            int32_t partition, int64_t offset,
                                            chorus_dlq_level_t tried);

/**
 * @brief Forget the records of one partition below @p offset (committed),
 *        or all of the partition when @p offset < 0 (revoked).
 */
void chorus_dlq_steps_forget(chorus_dlq_steps_t *s, const char *topic, int32_t partition,
                             int64_t offset);

/** @returns the number of records listed. */
size_t chorus_dlq_steps_count(const chorus_dlq_steps_t *s);

#endif /* CHORUS_DEAD_LETTER_H */
