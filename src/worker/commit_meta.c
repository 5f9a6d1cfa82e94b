/*
 * Commit metadata of an input partition (see include/chorus/commit_meta.h).
 */
#include "chorus/commit_meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A batch id is what queue_state_calls makes: "<pid>-<hex>-<seq>". Anything
 * else cannot be one of ours; ',' '@' and '|' would break the formats. */
static int valid_id(const char *s, size_t len) {
        if (!len || len > CHORUS_COMMIT_META_ID_MAX)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return 0;
        return 1;
}

static int parse_entry(chorus_committed_batch_t *b, const char *s, size_t len) {
        const char *at = memchr(s, '@', len);
        char num[24];
        char *end;
        size_t id_len, num_len;
        long long v;

        if (!at)
                return -1;
        id_len = (size_t)(at - s);
        num_len = len - id_len - 1;
        if (!valid_id(s, id_len) || !num_len || num_len >= sizeof(num))
                return -1;
        memcpy(num, at + 1, num_len);
        num[num_len] = '\0';
        errno = 0;
        v = strtoll(num, &end, 10);
        if (errno || *end || num[0] == '-' || num[0] == '+' || v < 0)
                return -1;
        memcpy(b->id, s, id_len);
        b->id[id_len] = '\0';
        b->end = v;
        return 0;
}

int chorus_commit_meta_parse(chorus_commit_meta_t *m, const char *s, size_t len) {
        int skipped = 0;
        size_t i = 0;

        m->n = 0;
        while (s && i < len) {
                const char *comma = memchr(s + i, ',', len - i);
                size_t n = comma ? (size_t)(comma - (s + i)) : len - i;

                if (m->n < CHORUS_COMMIT_META_MAX && !parse_entry(&m->batch[m->n], s + i, n))
                        m->n++;
                else
                        skipped++;
                i += n + 1;
        }
        return skipped;
}

void chorus_commit_meta_next(chorus_commit_meta_t *next, const chorus_commit_meta_t *prev,
                             const char *own_prefix, const char *batch_id, int64_t end,
                             int64_t commit_offset) {
        size_t own_len = strlen(own_prefix);

        next->n = 0;
        snprintf(next->batch[0].id, sizeof(next->batch[0].id), "%s", batch_id);
        next->batch[0].end = end;
        next->n = 1;
        for (size_t i = 0; prev && i < prev->n && next->n < CHORUS_COMMIT_META_MAX; i++) {
                const chorus_committed_batch_t *b = &prev->batch[i];

                if (b->end <= commit_offset || !strncmp(b->id, own_prefix, own_len) ||
                    !strcmp(b->id, batch_id))
                        continue;
                next->batch[next->n++] = *b;
        }
}

int chorus_commit_meta_format(const chorus_commit_meta_t *m, char *out, size_t cap) {
        size_t len = 0;

        if (!cap)
                return -1;
        out[0] = '\0';
        for (size_t i = 0; i < m->n; i++) {
                int n = snprintf(out + len, cap - len, "%s%s@%" PRId64, i ? "," : "",
                                 m->batch[i].id, m->batch[i].end);
                if (n < 0 || (size_t)n >= cap - len)
                        return -1;
                len += (size_t)n;
        }
        return (int)len;
}

int chorus_commit_meta_ids(const chorus_commit_meta_t *m, char *out, size_t cap) {
        size_t len = 0;

        if (cap < 2)
                return -1;
        if (!m->n) {
                memcpy(out, "-", 2);
                return 1;
        }
        out[0] = '\0';
        for (size_t i = 0; i < m->n; i++) {
                int n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", m->batch[i].id);
                if (n < 0 || (size_t)n >= cap - len)
                        return -1;
                len += (size_t)n;
        }
        return (int)len;
}
