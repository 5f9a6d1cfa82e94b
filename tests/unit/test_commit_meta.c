/*
 * Unit tests of the commit metadata (src/worker/commit_meta.c): what a
 * partition's next commit carries from the one before, and how malformed
 * metadata (another client's, or a truncated one) is read.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "chorus/commit_meta.h"

static chorus_commit_meta_t parse(const char *s) {
        chorus_commit_meta_t m;
        chorus_commit_meta_parse(&m, s, s ? strlen(s) : 0);
        return m;
}

static const char *format(const chorus_commit_meta_t *m) {
        static char buf[1024];
        cr_assert_geq(chorus_commit_meta_format(m, buf, sizeof(buf)), 0);
        return buf;
}

Test(commit_meta, round_trip) {
        chorus_commit_meta_t m = parse("11-a0-7@120,22-b1-3@98");
        char ids[256];

        cr_assert_eq(m.n, 2);
        cr_assert_str_eq(m.batch[0].id, "11-a0-7");
        cr_assert_eq(m.batch[0].end, 120);
        cr_assert_eq(m.batch[1].end, 98);
        cr_assert_str_eq(format(&m), "11-a0-7@120,22-b1-3@98");
        cr_assert_eq(chorus_commit_meta_ids(&m, ids, sizeof(ids)), 15);
        cr_assert_str_eq(ids, "11-a0-7,22-b1-3");
}

Test(commit_meta, empty_and_absent) {
        chorus_commit_meta_t m = parse(NULL);
        char ids[8];

        cr_assert_eq(m.n, 0);
        cr_assert_eq(chorus_commit_meta_ids(&m, ids, sizeof(ids)), 1);
        cr_assert_str_eq(ids, "-");
        m = parse("");
        cr_assert_eq(m.n, 0);
}

/* Another client's metadata, or garbage: skipped, never a crash, and the
 * well-formed entries are kept. */
Test(commit_meta, malformed_entries_are_skipped) {
        chorus_commit_meta_t m;
        const char *s = "legacy-id,a@-5,b@,@7,c@12x,d|e@3,ok-1@40,f@99999999999999999999";

        cr_assert_eq(chorus_commit_meta_parse(&m, s, strlen(s)), 7);
        cr_assert_eq(m.n, 1);
        cr_assert_str_eq(m.batch[0].id, "ok-1");
        cr_assert_eq(m.batch[0].end, 40);
        /* Not NUL-terminated: only len bytes are read. */
        cr_assert_eq(chorus_commit_meta_parse(&m, "x-1@12,y-2@3", 6), 0);
        cr_assert_eq(m.n, 1);
        cr_assert_eq(m.batch[0].end, 12);
}

/* The crash this exists for: owner A commits batch A-1 (records up to 50)
 * and dies before its release; owner B's first batch re-reads only up to
 * a held record at 30, so its commit must still name A-1, or a third
 * owner would re-emit A-1's committed outputs. */
Test(commit_meta, inherited_batch_kept_until_passed) {
        chorus_commit_meta_t a = parse("100-aa-1@50"), b1, b2, b3;

        chorus_commit_meta_next(&b1, &a, "200-bb-", "200-bb-1", 31, 30);
        cr_assert_str_eq(format(&b1), "200-bb-1@31,100-aa-1@50");
        /* B's own earlier batch is dropped (released before this one ran). */
        chorus_commit_meta_next(&b2, &b1, "200-bb-", "200-bb-2", 45, 30);
        cr_assert_str_eq(format(&b2), "200-bb-2@45,100-aa-1@50");
        /* The offset reaches A-1's end: nothing of it is read again. */
        chorus_commit_meta_next(&b3, &b2, "200-bb-", "200-bb-3", 60, 50);
        cr_assert_str_eq(format(&b3), "200-bb-3@60");
}

Test(commit_meta, chain_of_owners_is_capped) {
        chorus_commit_meta_t m = parse(NULL), next;
        char prefix[32], id[32];

        for (int owner = 0; owner < 3 * CHORUS_COMMIT_META_MAX; owner++) {
                snprintf(prefix, sizeof(prefix), "%d-ff-", owner);
                snprintf(id, sizeof(id), "%d-ff-1", owner);
                chorus_commit_meta_next(&next, &m, prefix, id, 1000 + owner, 10);
                m = next;
        }
        cr_assert_eq(m.n, CHORUS_COMMIT_META_MAX);
        /* Newest first: the oldest owners' batches went. */
        snprintf(id, sizeof(id), "%d-ff-1", 3 * CHORUS_COMMIT_META_MAX - 1);
        cr_assert_str_eq(m.batch[0].id, id);
        snprintf(id, sizeof(id), "%d-ff-1", 2 * CHORUS_COMMIT_META_MAX);
        cr_assert_str_eq(m.batch[CHORUS_COMMIT_META_MAX - 1].id, id);
}

Test(commit_meta, small_buffers_fail_cleanly) {
        chorus_commit_meta_t m = parse("11-a0-7@120,22-b1-3@98");
        char small[12];

        cr_assert_eq(chorus_commit_meta_format(&m, small, sizeof(small)), -1);
        cr_assert_eq(chorus_commit_meta_ids(&m, small, sizeof(small)), -1);
        cr_assert_eq(chorus_commit_meta_ids(&m, small, 1), -1);
}
