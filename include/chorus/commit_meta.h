/*
 * The commit metadata of an input partition: which batches' outputs are
 * committed while some of their snapshots may still be in Redis.
 *
 * A worker commits every consumed partition with the metadata
 * "<batch>@<end>[,<batch>@<end>...]": the batch that committed, then the
 * batches inherited from earlier owners, each with the partition offset its
 * records end before (exclusive). A snapshot tagged with a listed batch is a
 * committed output whose release was lost (a crash between the commit and
 * the release) and must not be emitted again; any other snapshot belongs to
 * an aborted batch and must be.
 *
 * An inherited batch stays listed while the partition's committed offset is
 * below its end: until then a new owner re-reads some of its records. The
 * list is capped (CHORUS_COMMIT_META_MAX): past it the oldest batch is
 * dropped, so that a long chain of crashes behind one held record could
 * re-emit (duplicate), never lose, an output.
 */
#ifndef CHORUS_COMMIT_META_H
#define CHORUS_COMMIT_META_H

#include <stddef.h>
#include <stdint.h>

#define CHORUS_COMMIT_META_MAX    8
#define CHORUS_COMMIT_META_ID_MAX 63

typedef struct chorus_committed_batch {
        char id[CHORUS_COMMIT_META_ID_MAX + 1];
        int64_t end; /**< its records on the partition are below this offset */
} chorus_committed_batch_t;

typedef struct chorus_commit_meta {
        chorus_committed_batch_t batch[CHORUS_COMMIT_META_MAX]; /**< newest first */
        size_t n;
} chorus_commit_meta_t;

/**
 * @brief Parse commit metadata (not NUL-terminated, @p len bytes; NULL or
 *        empty: no batch). Malformed entries are skipped.
 * @returns the number of entries skipped.
 */
int chorus_commit_meta_parse(chorus_commit_meta_t *m, const char *s, size_t len);

/**
 * @brief The metadata of the next commit: @p batch_id ending at @p end,
 *        then the batches of @p prev that are not this worker's own (their
 *        id does not start with @p own_prefix: its releases ran before this
 *        batch's state calls) and that the new committed offset
 *        @p commit_offset has not passed, at most CHORUS_COMMIT_META_MAX in all.
 */
void chorus_commit_meta_next(chorus_commit_meta_t *next, const chorus_commit_meta_t *prev,
                             const char *own_prefix, const char *batch_id, int64_t end,
                             int64_t commit_offset);

/** @brief Format as commit metadata. @returns its length, or -1 if @p cap is too small. */
int chorus_commit_meta_format(const chorus_commit_meta_t *m, char *out, size_t cap);

/** @brief The batch ids joined with ',' (for chorus_prediction), or "-" when none.
 *  @returns its length, or -1 if @p cap is too small. */
int chorus_commit_meta_ids(const chorus_commit_meta_t *m, char *out, size_t cap);

#endif /* CHORUS_COMMIT_META_H */
