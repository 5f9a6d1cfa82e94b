/*
 * Configuration: parsing, the generic setter, environment overrides and the
 * cross-key checks. The keys themselves are data, in config_table.c.
 *
 * Invariants:
 *  - Every value, whatever its source (default, file line, environment),
 *    is stored by set_ref(): it resolves the key to a table row, parses the
 *    value completely, and only then finds or creates the per-name struct
 *    and stores. A value that fails leaves the config as it was: no empty
 *    series entry, no half-replaced list.
 *  - series_confs, horizon_confs and schemas are kept sorted (by name, by
 *    id), so the lookups workers make per record are binary searches.
 *  - Name lists are sorted in byte order and unique: forecasts list models
 *    in that order and must be byte-identical across runs.
 *  - Messages: helpers write "key: reason"; the caller that knows where
 *    the text came from prefixes "file:line: " or "environment variable X: ".
 *    User text is escaped before it is echoed, so a message is one line.
 *  - Allocation failure aborts (the contract of chorus_config_new()); every
 *    other failure frees what it took before returning.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "chorus/util.h"
#include "config_int.h"

/* Enums and int32_t fields are stored through one 4-byte path. */
_Static_assert(sizeof(chorus_framing_t) == sizeof(int32_t), "enum width");
_Static_assert(sizeof(chorus_weights_method_t) == sizeof(int32_t), "enum width");
_Static_assert(sizeof(chorus_record_type_t) == sizeof(int32_t), "enum width");
_Static_assert(sizeof(int) == sizeof(int32_t), "int width");

#define KEY_MAX_SEGS   8
#define FILE_MAX_BYTES (4u << 20) /* a config file is small; this bounds a mistake */
#define SHOW_MAX       96         /* bytes of user text echoed in a message */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void oom(void) {
        fputs("chorus: out of memory in configuration\n", stderr);
        abort();
}

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom();
        return p;
}

static void *xrealloc(void *p, size_t size) {
        p = realloc(p, size ? size : 1);
        if (!p)
                oom();
        return p;
}

static char *xstrndup(const char *s, size_t len) {
        char *p = xcalloc(1, len + 1);
        memcpy(p, s, len);
        return p;
}

static char *xstrdup(const char *s) {
        return xstrndup(s, strlen(s));
}

/* Prefix errstr in place: "prefix" + old message. */
static void prefixerr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void prefixerr(char *errstr, size_t errstr_size, const char *fmt, ...) {
        char prefix[512];
        char *old;
        va_list ap;

        if (!errstr || !errstr_size)
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        old = xstrdup(errstr);
        snprintf(errstr, errstr_size, "%s%s", prefix, old);
        free(old);
}

/* Escapes @p len bytes of user text for a one-line message: control bytes
 * as \xNN, quotes and backslashes escaped, cut with "..." if long. */
static void show_n(const char *s, size_t len, char *buf, size_t size) {
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                char tmp[5];
                size_t tl;

                if (c < 0x20 || c == 0x7f)
                        tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
                else if (c == '"' || c == '\\')
                        tmp[0] = '\\', tmp[1] = (char)c, tl = 2;
                else
                        tmp[0] = (char)c, tl = 1;
                if (o + tl + 4 > size || o + tl > SHOW_MAX) {
                        if (o + 4 <= size)
                                memcpy(buf + o, "...", 3), o += 3;
                        break;
                }
                memcpy(buf + o, tmp, tl);
                o += tl;
        }
        buf[o] = '\0';
}

static void show(const char *s, char *buf, size_t size) {
        show_n(s, strlen(s), buf, size);
}

static int parse_bool(const char *s, int *out) {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};

        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
                if (!strcasecmp(s, yes[i]))
                        return *out = 1, 0;
                if (!strcasecmp(s, no[i]))
                        return *out = 0, 0;
        }
        return -1;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp((const char *)a, (const char *)b);
}

/* Levenshtein distance, or SIZE_MAX when either string is too long to
 * bother: suggestions are a courtesy, not worth a heap allocation. */
static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[129];

        if (la > 128 || lb > 128)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t best = diag + (a[i - 1] != b[j - 1]);
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* ------------------------------------------------------------------------ */
/* Row formatting, shared with config_doc.c                                 */
/* ------------------------------------------------------------------------ */

void chorus_conf_duration_fmt(int64_t ms, char *buf, size_t size) {
        static const struct {
                const char *unit;
                int64_t ms;
        } units[] = {{"w", 604800000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (ms != 0 && ms % units[i].ms == 0) {
                        snprintf(buf, size, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
                        return;
                }
        snprintf(buf, size, "%" PRId64 "ms", ms);
}

void chorus_conf_prop_range(const conf_prop_t *prop, char *buf, size_t size, int markdown) {
        const char *q = markdown ? "`" : "";
        size_t o = 0;
        char a[32], b[32];

        buf[0] = '\0';
        switch (prop->type) {
        case CONF_INT:
                snprintf(buf, size, "[%.0f, %.0f]", prop->min, prop->max);
                break;
        case CONF_DURATION:
                chorus_conf_duration_fmt((int64_t)prop->min, a, sizeof(a));
                chorus_conf_duration_fmt((int64_t)prop->max, b, sizeof(b));
                snprintf(buf, size, "[%s, %s]", a, b);
                break;
        case CONF_DOUBLE:
                if (prop->flags & CONF_F_NO_MIN)
                        snprintf(a, sizeof(a), "(-inf");
                else
                        snprintf(a, sizeof(a), "%s%g", prop->flags & CONF_F_MIN_EXCL ? "(" : "[",
                                 prop->min);
                if (prop->flags & CONF_F_NO_MAX)
                        snprintf(b, sizeof(b), "+inf)");
                else
                        snprintf(b, sizeof(b), "%g%s", prop->max,
                                 prop->flags & CONF_F_MAX_EXCL ? ")" : "]");
                snprintf(buf, size, "%s, %s", a, b);
                break;
        case CONF_ENUM:
                for (const conf_enum_value_t *ev = prop->values; ev->name; ev++) {
                        int n;
                        if (!markdown && ev->rejected)
                                continue;
                        n = snprintf(buf + o, size - o, "%s%s%s%s", o ? ", " : "", q, ev->name, q);
                        if (n < 0 || (size_t)n >= size - o)
                                break;
                        o += (size_t)n;
                        if (markdown && ev->note) {
                                n = snprintf(buf + o, size - o, " (%s)", ev->note);
                                if (n < 0 || (size_t)n >= size - o)
                                        break;
                                o += (size_t)n;
                        }
                }
                break;
        case CONF_NAMES:
                snprintf(buf, size, "up to %.0f names", prop->max);
                break;
        case CONF_TOPIC:
                snprintf(buf, size, "1 to 249 of %sA-Za-z0-9._-%s", q, q);
                break;
        case CONF_STRING:
        case CONF_KAFKA:
                break;
        }
}

/* CHORUS_ spelling of a pattern piece: upper case, '.' -> '_'. */
static void env_form(const char *s, size_t len, char *buf, size_t size) {
        size_t o = 0;

        for (size_t i = 0; i < len && o + 1 < size; i++)
                buf[o++] = s[i] == '.' ? '_' : (char)toupper((unsigned char)s[i]);
        buf[o] = '\0';
}

void chorus_conf_prop_envname(const conf_prop_t *prop, char *buf, size_t size) {
        const char *ph = strchr(prop->name, '<');
        char pre[128], post[128];

        if (!ph) {
                env_form(prop->name, strlen(prop->name), pre, sizeof(pre));
                snprintf(buf, size, "CHORUS_%s", pre);
                return;
        }
        const char *end = strchr(ph, '>');
        env_form(prop->name, (size_t)(ph - prop->name), pre, sizeof(pre));
        env_form(end + 1, strlen(end + 1), post, sizeof(post));
        snprintf(buf, size, "CHORUS_%s%.*s%s", pre, (int)(end + 1 - ph), ph, post);
}

/* ------------------------------------------------------------------------ */
/* Key resolution                                                           */
/* ------------------------------------------------------------------------ */

/* A key resolved to its row. `name` is the text in the placeholder
 * (series, horizon, kafka key), NUL-terminated, owned by the caller. */
typedef struct keyref {
        const conf_prop_t *prop;
        const char *name;
        int32_t id; /* CONF_SCOPE_SCHEMA */
} keyref_t;

static const char *scope_noun(conf_scope_t scope) {
        switch (scope) {
        case CONF_SCOPE_SERIES:
                return "series";
        case CONF_SCOPE_HORIZON:
                return "horizon";
        case CONF_SCOPE_SCHEMA:
                return "schema id";
        default:
                return "key";
        }
}

/* A name needs quotes in a key when it holds a dot (the separator), a
 * quote or backslash (the escapes), or '=' / '#' (the line syntax). */
static int needs_quotes(const char *s) {
        return strpbrk(s, ".\"\\=#") != NULL;
}

/* Canonical spelling of a resolved key, for messages. */
static void format_key(const keyref_t *ref, char *buf, size_t size) {
        const char *pat = ref->prop->name;
        const char *ph = strchr(pat, '<');
        char shown[SHOW_MAX + 8];

        if (!ph || !ref->name) {
                snprintf(buf, size, "%s", pat);
                return;
        }
        const char *end = strchr(ph, '>') + 1;
        show(ref->name, shown, sizeof(shown));
        if (ref->prop->scope != CONF_SCOPE_KAFKA && needs_quotes(ref->name))
                snprintf(buf, size, "%.*s\"%s\"%s", (int)(ph - pat), pat, shown, end);
        else
                snprintf(buf, size, "%.*s%s%s", (int)(ph - pat), pat, shown, end);
}

static int parse_schema_id(const char *s, int32_t *out) {
        int64_t v = 0;

        if (!*s)
                return -1;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -1;
                v = v * 10 + (*p - '0');
                if (v > INT32_MAX)
                        return -1;
        }
        if (v < 1)
                return -1;
        *out = (int32_t)v;
        return 0;
}

/* Checks the placeholder text of a matched row. */
static int check_placeholder(keyref_t *ref, char *errstr, size_t errstr_size) {
        char shown[SHOW_MAX + 8];

        switch (ref->prop->scope) {
        case CONF_SCOPE_SERIES:
        case CONF_SCOPE_HORIZON:
                if (chorus_name_check(ref->name, strlen(ref->name)) == CHORUS_OK)
                        return 0;
                show(ref->name, shown, sizeof(shown));
                chorus_seterr(errstr, errstr_size, "%s: \"%s\" is not a valid %s name %s",
                              ref->prop->name, shown, scope_noun(ref->prop->scope),
                              chorus_name_rules);
                return -1;
        case CONF_SCOPE_SCHEMA:
                if (parse_schema_id(ref->name, &ref->id) == 0)
                        return 0;
                show(ref->name, shown, sizeof(shown));
                chorus_seterr(errstr, errstr_size,
                              "%s: \"%s\" is not a schema id (an integer in [1, 2147483647])",
                              ref->prop->name, shown);
                return -1;
        case CONF_SCOPE_KAFKA: {
                /* The row's fixed part: "kafka.", "kafka.consumer.", ... */
                int plen = (int)(strchr(ref->prop->name, '<') - ref->prop->name);

                for (const char *p = ref->name; *p; p++)
                        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                                show(ref->name, shown, sizeof(shown));
                                chorus_seterr(errstr, errstr_size,
                                              "%.*s%s: librdkafka keys contain no whitespace or "
                                              "control characters",
                                              plen, ref->prop->name, shown);
                                return -1;
                        }
                if (*ref->name)
                        return 0;
                chorus_seterr(errstr, errstr_size, "%.*s: missing librdkafka key after \"%.*s\"",
                              plen, ref->prop->name, plen, ref->prop->name);
                return -1;
        }
        case CONF_SCOPE_GLOBAL:
                break;
        }
        return 0;
}

/* Splits a file-syntax key into segments, removing quotes. Segments point
 * into @p buf, which must hold strlen(key) + 1 bytes. @returns the count,
 * or -1 with the reason in errstr. */
static int split_key(const char *key, char *buf, char **segs, char *errstr, size_t errstr_size) {
        const char *p = key;
        char *o = buf;
        int n = 0;

        for (;;) {
                if (n == KEY_MAX_SEGS)
                        return KEY_MAX_SEGS + 1; /* too many for any row: unknown key */
                segs[n++] = o;
                if (*p == '"') {
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                                        p++;
                                *o++ = *p;
                        }
                        if (*p != '"') {
                                chorus_seterr(errstr, errstr_size, "unterminated quote in key");
                                return -1;
                        }
                        p++;
                        if (*p && *p != '.') {
                                chorus_seterr(
                                    errstr, errstr_size,
                                    "a quoted key segment must be followed by '.' or '='");
                                return -1;
                        }
                } else {
                        for (; *p && *p != '.'; p++) {
                                if (*p == '"') {
                                        chorus_seterr(
                                            errstr, errstr_size,
                                            "a quote may only enclose a whole key segment");
                                        return -1;
                                }
                                *o++ = *p;
                        }
                        if (o == segs[n - 1]) {
                                chorus_seterr(errstr, errstr_size, "empty segment in key");
                                return -1;
                        }
                }
                *o++ = '\0';
                if (!*p)
                        return n;
                p++; /* the dot */
        }
}

/* Counts a pattern's segments and finds its placeholder, if any. */
static int pattern_segments(const char *pat, int *ph_index) {
        int n = 1;

        *ph_index = -1;
        for (const char *p = pat; *p; p++) {
                if (*p == '<' && *ph_index < 0)
                        *ph_index = n - 1;
                if (*p == '.')
                        n++;
        }
        return n;
}

/* Does segment @p i of @p pat equal @p seg? */
static int pattern_seg_eq(const char *pat, int i, const char *seg) {
        const char *s = pat, *e;

        while (i-- > 0)
                s = strchr(s, '.') + 1;
        e = strchr(s, '.');
        if (!e)
                e = s + strlen(s);
        return strlen(seg) == (size_t)(e - s) && !memcmp(seg, s, (size_t)(e - s));
}

/* Suggests the row whose name (placeholder filled with the user's text)
 * is closest to what the user typed. */
static void suggest(char **segs, int nseg, const char *typed, char *buf, size_t size) {
        size_t best = SIZE_MAX;
        const conf_prop_t *best_prop = NULL;
        size_t limit = strlen(typed) / 4 < 2 ? 2 : strlen(typed) / 4;

        buf[0] = '\0';
        for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                const conf_prop_t *prop = &chorus_conf_props[i];
                char cand[384];
                int ph;
                keyref_t ref = {prop, NULL, 0};
                size_t d;

                pattern_segments(prop->name, &ph);
                if (ph >= 0 && ph < nseg)
                        ref.name = segs[ph];
                else if (ph >= 0)
                        continue;
                format_key(&ref, cand, sizeof(cand));
                d = edit_distance(typed, cand);
                if (d < best) {
                        best = d;
                        best_prop = prop;
                        snprintf(buf, size, "%s", cand);
                }
        }
        if (!best_prop || best > limit)
                buf[0] = '\0';
}

/* Resolves a file-syntax key. On success ref->name points into *bufp
 * (caller frees *bufp, also on failure). */
static int resolve_key(const char *key, keyref_t *ref, char **bufp, char *errstr,
                       size_t errstr_size) {
        char *segs[KEY_MAX_SEGS];
        char shown[SHOW_MAX + 8], hint[448];
        int nseg;

        memset(ref, 0, sizeof(*ref));
        *bufp = xcalloc(1, strlen(key) + 1);

        /* librdkafka keys are dotted and never quoted: take the rest verbatim,
         * after the longest kafka row prefix that matches, so that
         * kafka.consumer.group.id is the consumer override of group.id. No
         * librdkafka property starts with "consumer." or "producer.". */
        if (!strncmp(key, "kafka.", 6)) {
                size_t best = 0;
                for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                        const conf_prop_t *prop = &chorus_conf_props[i];
                        size_t plen;
                        if (prop->type != CONF_KAFKA)
                                continue;
                        plen = (size_t)(strchr(prop->name, '<') - prop->name);
                        if (plen > best && !strncmp(key, prop->name, plen)) {
                                best = plen;
                                ref->prop = prop;
                        }
                }
                strcpy(*bufp, key + best);
                ref->name = *bufp;
                return check_placeholder(ref, errstr, errstr_size);
        }

        nseg = split_key(key, *bufp, segs, errstr, errstr_size);
        if (nseg < 0) {
                show(key, shown, sizeof(shown));
                prefixerr(errstr, errstr_size, "%s: ", shown);
                return -1;
        }
        if (nseg <= KEY_MAX_SEGS) {
                for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                        const conf_prop_t *prop = &chorus_conf_props[i];
                        int ph, n = pattern_segments(prop->name, &ph), j;

                        if (n != nseg || prop->type == CONF_KAFKA)
                                continue;
                        for (j = 0; j < n; j++)
                                if (j != ph && !pattern_seg_eq(prop->name, j, segs[j]))
                                        break;
                        if (j < n)
                                continue;
                        ref->prop = prop;
                        ref->name = ph >= 0 ? segs[ph] : NULL;
                        return check_placeholder(ref, errstr, errstr_size);
                }
        }

        /* Unknown. A name with dots written without quotes shows up as too
         * many segments after a known prefix: say how to write it. */
        show(key, shown, sizeof(shown));
        hint[0] = '\0';
        for (size_t i = 0; nseg > 0 && nseg <= KEY_MAX_SEGS && i < chorus_conf_props_cnt; i++) {
                const conf_prop_t *prop = &chorus_conf_props[i];
                int ph, n = pattern_segments(prop->name, &ph);
                if (ph > 0 && nseg > n && pattern_seg_eq(prop->name, 0, segs[0])) {
                        snprintf(hint, sizeof(hint),
                                 " (a name that contains dots must be quoted, as in "
                                 "series.\"BRK.B\".min)");
                        break;
                }
        }
        if (!hint[0] && nseg > 0 && nseg <= KEY_MAX_SEGS) {
                char sugg[384];
                suggest(segs, nseg, key, sugg, sizeof(sugg));
                if (sugg[0])
                        snprintf(hint, sizeof(hint), " (did you mean %s?)", sugg);
        }
        chorus_seterr(errstr, errstr_size, "%s: unknown key%s", shown, hint);
        return -1;
}

/* ------------------------------------------------------------------------ */
/* Value parsing                                                            */
/* ------------------------------------------------------------------------ */

/* A parsed value, not yet stored. Owns s and names until stored. */
typedef struct conf_value {
        int64_t i;
        double d;
        char *s;
        const conf_enum_value_t *ev;
        size_t n;
        chorus_name_t *names;
} conf_value_t;

static void value_clear(conf_value_t *v) {
        free(v->s);
        free(v->names);
        memset(v, 0, sizeof(*v));
}

static int parse_int(const char *s, int64_t *out) {
        char *end;
        long long v;

        if (!*s || isspace((unsigned char)*s))
                return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = v;
        return 0;
}

static int parse_duration(const char *s, int64_t *out) {
        static const struct {
                const char *unit;
                int64_t ms;
        } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                     {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
        const char *p = s;
        int64_t v = 0;

        if (*p < '0' || *p > '9')
                return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (INT64_MAX - 9) / 10)
                        return -1;
                v = v * 10 + (*p - '0');
        }
        if (!*p)
                return *out = v, 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
                if (!strcmp(p, units[i].unit)) {
                        if (v > INT64_MAX / units[i].ms)
                                return -1;
                        return *out = v * units[i].ms, 0;
                }
        return -1;
}

/* Parses a comma list into a sorted, unique array of checked names. */
static int parse_names(const conf_prop_t *prop, const char *key, const char *s, conf_value_t *v,
                       char *errstr, size_t errstr_size) {
        char shown[SHOW_MAX + 8];
        size_t cap = 1, n = 0, u;
        chorus_name_t *names;
        const char *p = s;

        for (const char *c = s; *c; c++)
                cap += *c == ',';
        while (isspace((unsigned char)*p))
                p++;
        if (!*p) /* an empty list is a value: "none" */
                return 0;
        names = xcalloc(cap, sizeof(*names));
        for (;;) {
                const char *start = p, *end = strchr(p, ',');
                if (!end)
                        end = p + strlen(p);
                while (start < end && isspace((unsigned char)*start))
                        start++;
                const char *stop = end;
                while (stop > start && isspace((unsigned char)stop[-1]))
                        stop--;
                if (stop == start) {
                        chorus_seterr(errstr, errstr_size, "%s: empty name in list", key);
                        goto fail;
                }
                if (chorus_name_check(start, (size_t)(stop - start)) != CHORUS_OK) {
                        show_n(start, (size_t)(stop - start), shown, sizeof(shown));
                        chorus_seterr(errstr, errstr_size, "%s: \"%s\" is not a valid name %s", key,
                                      shown, chorus_name_rules);
                        goto fail;
                }
                memcpy(names[n], start, (size_t)(stop - start));
                names[n][stop - start] = '\0';
                n++;
                if (!*end)
                        break;
                p = end + 1;
        }
        qsort(names, n, sizeof(*names), name_cmp);
        for (size_t i = u = 1; i < n; i++)
                if (strcmp(names[i], names[u - 1]))
                        memcpy(names[u++], names[i], sizeof(*names));
        if ((double)u > prop->max) {
                chorus_seterr(errstr, errstr_size, "%s: %zu names, at most %.0f allowed", key, u,
                              prop->max);
                goto fail;
        }
        v->n = u;
        v->names = names;
        return 0;
fail:
        free(names);
        return -1;
}

static int check_topic(const char *key, const char *s, char *errstr, size_t errstr_size) {
        char shown[SHOW_MAX + 8];
        size_t len = strlen(s);
        int ok = len >= 1 && len <= 249 && strcmp(s, ".") && strcmp(s, "..");

        for (const char *p = s; ok && *p; p++)
                ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
        if (ok)
                return 0;
        show(s, shown, sizeof(shown));
        chorus_seterr(errstr, errstr_size,
                      "%s: \"%s\" is not a valid Kafka topic name (1 to 249 of A-Za-z0-9._-, not "
                      "\".\" or \"..\")",
                      key, shown);
        return -1;
}

static int in_range(const conf_prop_t *prop, double d) {
        if (!(prop->flags & CONF_F_NO_MIN) &&
            (prop->flags & CONF_F_MIN_EXCL ? d <= prop->min : d < prop->min))
                return 0;
        if (!(prop->flags & CONF_F_NO_MAX) &&
            (prop->flags & CONF_F_MAX_EXCL ? d >= prop->max : d > prop->max))
                return 0;
        return 1;
}

/* Parses @p s for @p prop into @p v. @p key is the key as displayed. */
static int parse_value(const conf_prop_t *prop, const char *key, const char *s, conf_value_t *v,
                       char *errstr, size_t errstr_size) {
        char shown[SHOW_MAX + 8], range[512];

        memset(v, 0, sizeof(*v));
        show(s, shown, sizeof(shown));
        chorus_conf_prop_range(prop, range, sizeof(range), 0);

        switch (prop->type) {
        case CONF_STRING:
                if (prop->check) {
                        char why[256];
                        if (prop->check(s, why, sizeof(why))) {
                                chorus_seterr(errstr, errstr_size, "%s: \"%s\" %s", key, shown,
                                              why);
                                return -1;
                        }
                }
                v->s = xstrdup(s);
                return 0;
        case CONF_KAFKA:
                v->s = xstrdup(s);
                return 0;
        case CONF_TOPIC:
                return check_topic(key, s, errstr, errstr_size);
        case CONF_INT:
                if (parse_int(s, &v->i)) {
                        chorus_seterr(errstr, errstr_size, "%s: \"%s\" is not an integer", key,
                                      shown);
                        return -1;
                }
                if (v->i < (int64_t)prop->min || v->i > (int64_t)prop->max) {
                        chorus_seterr(errstr, errstr_size, "%s: %" PRId64 " is out of range %s",
                                      key, v->i, range);
                        return -1;
                }
                return 0;
        case CONF_DURATION:
                if (parse_duration(s, &v->i)) {
                        chorus_seterr(
                            errstr, errstr_size,
                            "%s: \"%s\" is not a duration (an integer with unit ms, s, m, h, "
                            "d or w; no unit: milliseconds)",
                            key, shown);
                        return -1;
                }
                if (v->i < (int64_t)prop->min || v->i > (int64_t)prop->max) {
                        chorus_seterr(errstr, errstr_size, "%s: %s is out of range %s", key, shown,
                                      range);
                        return -1;
                }
                return 0;
        case CONF_DOUBLE: {
                char *end;
                if (!*s || isspace((unsigned char)*s))
                        goto not_number;
                errno = 0;
                v->d = strtod(s, &end);
                if (*end || !isfinite(v->d))
                        goto not_number;
                if (!in_range(prop, v->d)) {
                        chorus_seterr(errstr, errstr_size, "%s: %s is out of range %s", key, shown,
                                      range);
                        return -1;
                }
                return 0;
        not_number:
                chorus_seterr(errstr, errstr_size, "%s: \"%s\" is not a finite number", key, shown);
                return -1;
        }
        case CONF_ENUM:
                for (const conf_enum_value_t *ev = prop->values; ev->name; ev++) {
                        if (strcasecmp(s, ev->name))
                                continue;
                        if (ev->rejected) {
                                chorus_seterr(errstr, errstr_size, "%s: %s is %s (allowed: %s)",
                                              key, ev->name, ev->note, range);
                                return -1;
                        }
                        v->ev = ev;
                        return 0;
                }
                chorus_seterr(errstr, errstr_size, "%s: \"%s\" is not one of %s", key, shown,
                              range);
                return -1;
        case CONF_NAMES:
                return parse_names(prop, key, s, v, errstr, errstr_size);
        }
        return -1;
}

/* ------------------------------------------------------------------------ */
/* Storing                                                                  */
/* ------------------------------------------------------------------------ */

/* Finds @p key in a sorted array, inserting a zeroed element if absent. */
static void *sorted_get(void **arr, size_t *n, size_t elsize, const void *key,
                        int (*cmp)(const void *key, const void *el), int *created) {
        size_t lo = 0, hi = *n;
        char *base = *arr;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = cmp(key, base + mid * elsize);
                if (c == 0) {
                        *created = 0;
                        return base + mid * elsize;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        base = xrealloc(base, (*n + 1) * elsize);
        memmove(base + (lo + 1) * elsize, base + lo * elsize, (*n - lo) * elsize);
        memset(base + lo * elsize, 0, elsize);
        *arr = base;
        (*n)++;
        *created = 1;
        return base + lo * elsize;
}

static const void *sorted_find(const void *arr, size_t n, size_t elsize, const void *key,
                               int (*cmp)(const void *key, const void *el)) {
        return n ? bsearch(key, arr, n, elsize, cmp) : NULL;
}

static int cmp_series(const void *key, const void *el) {
        return strcmp(key, ((const chorus_series_conf_t *)el)->name);
}

static int cmp_horizon(const void *key, const void *el) {
        return strcmp(key, ((const chorus_horizon_conf_t *)el)->name);
}

static int cmp_schema(const void *key, const void *el) {
        int32_t a = *(const int32_t *)key, b = ((const chorus_schema_conf_t *)el)->id;
        return a < b ? -1 : a > b;
}

/* The struct a row's offsets point into, created on first use. */
static char *scope_base(chorus_config_t *cfg, const keyref_t *ref) {
        int created;

        switch (ref->prop->scope) {
        case CONF_SCOPE_SERIES: {
                chorus_series_conf_t *s =
                    sorted_get((void **)&cfg->series_confs, &cfg->n_series_confs, sizeof(*s),
                               ref->name, cmp_series, &created);
                if (created)
                        strcpy(s->name, ref->name);
                return (char *)s;
        }
        case CONF_SCOPE_HORIZON: {
                chorus_horizon_conf_t *h =
                    sorted_get((void **)&cfg->horizon_confs, &cfg->n_horizon_confs, sizeof(*h),
                               ref->name, cmp_horizon, &created);
                if (created)
                        strcpy(h->name, ref->name);
                return (char *)h;
        }
        case CONF_SCOPE_SCHEMA: {
                chorus_schema_conf_t *sc = sorted_get((void **)&cfg->schemas, &cfg->n_schemas,
                                                      sizeof(*sc), &ref->id, cmp_schema, &created);
                if (created) {
                        sc->id = ref->id;
                        sc->type = CHORUS_RECORD__COUNT; /* unset until schema.<id>.record */
                }
                return (char *)sc;
        }
        case CONF_SCOPE_GLOBAL:
        case CONF_SCOPE_KAFKA:
                break;
        }
        return (char *)cfg;
}

static void store_i32(char *p, int64_t v) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof(x));
}

/* Keeps the order of chorus_config_t.kafka: plain entries, then overrides,
 * each in first-set order. */
static void store_kafka(chorus_config_t *cfg, const char *key, chorus_kafka_client_t client,
                        char *value) {
        size_t at = cfg->n_kafka;

        for (size_t i = 0; i < cfg->n_kafka; i++)
                if (cfg->kafka[i].client == client && !strcmp(cfg->kafka[i].key, key)) {
                        free(cfg->kafka[i].value);
                        cfg->kafka[i].value = value;
                        return;
                }
        if (client == CHORUS_KAFKA_ANY) /* before the first override */
                for (at = 0; at < cfg->n_kafka && cfg->kafka[at].client == CHORUS_KAFKA_ANY; at++)
                        ;
        cfg->kafka = xrealloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*cfg->kafka));
        memmove(cfg->kafka + at + 1, cfg->kafka + at, (cfg->n_kafka - at) * sizeof(*cfg->kafka));
        cfg->kafka[at].key = xstrdup(key);
        cfg->kafka[at].value = value;
        cfg->kafka[at].client = client;
        cfg->n_kafka++;
}

/* Moves the parsed value @p v into place. Cannot fail. */
static void store_value(chorus_config_t *cfg, const keyref_t *ref, const char *value,
                        conf_value_t *v) {
        const conf_prop_t *prop = ref->prop;
        char *base, *field;

        if (prop->type == CONF_KAFKA) {
                store_kafka(cfg, ref->name, prop->client, v->s);
                v->s = NULL;
                return;
        }
        base = scope_base(cfg, ref);
        field = base + prop->off;
        switch (prop->type) {
        case CONF_STRING: {
                char **sp = (char **)(void *)field;
                free(*sp);
                *sp = v->s;
                v->s = NULL;
                break;
        }
        case CONF_TOPIC:
                snprintf(field, prop->size, "%s", value);
                break;
        case CONF_INT:
        case CONF_DURATION:
                if (prop->size == sizeof(int64_t))
                        memcpy(field, &v->i, sizeof(v->i));
                else if (prop->size == sizeof(int32_t))
                        store_i32(field, v->i);
                else
                        abort(); /* a table row with an unsupported width */
                break;
        case CONF_DOUBLE:
                memcpy(field, &v->d, sizeof(v->d));
                if (prop->flags & CONF_F_AUX)
                        store_i32(base + prop->aux_off, 1);
                break;
        case CONF_ENUM:
                store_i32(field, v->ev->value);
                if (prop->flags & CONF_F_AUX)
                        snprintf(base + prop->aux_off, 32, "%s", v->ev->name);
                break;
        case CONF_NAMES: {
                chorus_name_t **np = (chorus_name_t **)(void *)field;
                free(*np);
                *np = v->names;
                memcpy(base + prop->aux_off, &v->n, sizeof(v->n));
                v->names = NULL;
                break;
        }
        case CONF_KAFKA:
                break;
        }
}

/* The one setter every source goes through. */
static chorus_err_t set_ref(chorus_config_t *cfg, const keyref_t *ref, const char *value,
                            char *errstr, size_t errstr_size) {
        char key[SHOW_MAX * 2 + 64];
        conf_value_t v;

        format_key(ref, key, sizeof(key));
        if (parse_value(ref->prop, key, value, &v, errstr, errstr_size))
                return CHORUS_ERR_CONFIG;
        store_value(cfg, ref, value, &v);
        value_clear(&v);
        return CHORUS_OK;
}

chorus_err_t chorus_config_set(chorus_config_t *cfg, const char *key, const char *value,
                               char *errstr, size_t errstr_size) {
        chorus_err_t err = CHORUS_ERR_CONFIG;
        keyref_t ref;
        char *buf;

        if (!resolve_key(key, &ref, &buf, errstr, errstr_size))
                err = set_ref(cfg, &ref, value, errstr, errstr_size);
        free(buf);
        return err;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

/* Record type of each topic role; the dead-letter topic carries raw bytes. */
static const chorus_record_type_t role_types[CHORUS_TOPIC__COUNT] = {
    [CHORUS_TOPIC_PREDICTIONS] = CHORUS_RECORD_PREDICTION,
    [CHORUS_TOPIC_ACTUALS] = CHORUS_RECORD_ACTUAL,
    [CHORUS_TOPIC_INDICATORS] = CHORUS_RECORD_INDICATOR,
    [CHORUS_TOPIC_FEATURE_IMPORTANCE] = CHORUS_RECORD_FEATURE_IMPORTANCE,
    [CHORUS_TOPIC_FORECASTS] = CHORUS_RECORD_FORECAST,
    [CHORUS_TOPIC_ALERTS] = CHORUS_RECORD_ALERT,
    [CHORUS_TOPIC_REGIMES] = CHORUS_RECORD_REGIME_CHANGE,
    [CHORUS_TOPIC_VALIDATION] = CHORUS_RECORD_VALIDATION_WINDOW,
    [CHORUS_TOPIC_SHADOW] = CHORUS_RECORD_FORECAST,
    [CHORUS_TOPIC_DLQ] = CHORUS_RECORD__COUNT,
};

chorus_config_t *chorus_config_new(void) {
        chorus_config_t *cfg = xcalloc(1, sizeof(*cfg));
        char errstr[512];

        for (int r = 0; r < CHORUS_TOPIC__COUNT; r++)
                cfg->topics[r].type = role_types[r];
        for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                const conf_prop_t *prop = &chorus_conf_props[i];
                keyref_t ref = {prop, NULL, 0};
                if (!prop->def)
                        continue;
                if (set_ref(cfg, &ref, prop->def, errstr, sizeof(errstr))) {
                        /* The table contradicts itself: a bug, not a user error. */
                        fprintf(stderr, "chorus: bad default in config table: %s\n", errstr);
                        abort();
                }
        }
        return cfg;
}

void chorus_config_destroy(chorus_config_t *cfg) {
        if (!cfg)
                return;
        for (size_t i = 0; i < cfg->n_schemas; i++)
                free(cfg->schemas[i].file);
        free(cfg->schemas);
        for (size_t i = 0; i < cfg->n_kafka; i++) {
                free(cfg->kafka[i].key);
                free(cfg->kafka[i].value);
        }
        free(cfg->kafka);
        free(cfg->redis_host);
        free(cfg->redis_user);
        free(cfg->redis_password);
        free(cfg->redis_prefix);
        free(cfg->worker_id);
        free(cfg->alerts_baseline_mape);
        free(cfg->http_listen);
        free(cfg->models);
        free(cfg->horizons);
        for (size_t i = 0; i < cfg->n_horizon_confs; i++)
                free(cfg->horizon_confs[i].models);
        free(cfg->horizon_confs);
        free(cfg->series_confs);
        free(cfg->canary_series);
        free(cfg);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

/* Parses one line (NUL-terminated, modified in place). */
static chorus_err_t parse_line(chorus_config_t *cfg, char *line, char *errstr, size_t errstr_size) {
        char *p = line, *key, *kend, *val, *vend;
        int inq = 0;

        while (isspace((unsigned char)*p))
                p++;
        if (!*p || *p == '#')
                return CHORUS_OK;

        key = p;
        for (; *p && (inq || *p != '='); p++) {
                if (inq && *p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        inq = !inq;
        }
        if (!*p) {
                chorus_seterr(errstr, errstr_size, "%s",
                              inq ? "unterminated quote in key" : "expected `key = value`");
                return CHORUS_ERR_CONFIG;
        }
        kend = p;
        while (kend > key && isspace((unsigned char)kend[-1]))
                kend--;
        *kend = '\0';
        if (!*key) {
                chorus_seterr(errstr, errstr_size, "missing key before '='");
                return CHORUS_ERR_CONFIG;
        }

        val = p + 1;
        while (isspace((unsigned char)*val))
                val++;
        if (*val == '"') {
                /* Quoted: decode \" and \\ in place; anything after the
                 * closing quote may only be a comment. */
                char *r = val + 1, *o = val;
                for (; *r && *r != '"'; r++) {
                        if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                                r++;
                        *o++ = *r;
                }
                if (*r != '"') {
                        chorus_seterr(errstr, errstr_size, "%s: unterminated quoted value", key);
                        return CHORUS_ERR_CONFIG;
                }
                *o = '\0';
                for (r++; isspace((unsigned char)*r); r++)
                        ;
                if (*r && *r != '#') {
                        chorus_seterr(errstr, errstr_size, "%s: unexpected text after quoted value",
                                      key);
                        return CHORUS_ERR_CONFIG;
                }
        } else {
                /* Unquoted: '#' starts a comment only after whitespace, so
                 * "a#b" stays a value. */
                for (vend = val; *vend; vend++)
                        if (*vend == '#' && (vend == val || isspace((unsigned char)vend[-1])))
                                break;
                while (vend > val && isspace((unsigned char)vend[-1]))
                        vend--;
                *vend = '\0';
        }
        return chorus_config_set(cfg, key, val, errstr, errstr_size);
}

chorus_err_t chorus_config_load_buffer(chorus_config_t *cfg, const char *text, size_t len,
                                       const char *name, char *errstr, size_t errstr_size) {
        size_t pos = 0;
        unsigned lineno = 0;

        if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
                pos = 3; /* a UTF-8 byte order mark, as some editors write */
        while (pos < len) {
                const char *line = text + pos;
                const char *nl = memchr(line, '\n', len - pos);
                size_t llen = nl ? (size_t)(nl - line) : len - pos;
                chorus_err_t err;
                char *buf;

                lineno++;
                pos += llen + (nl != NULL);
                if (llen && line[llen - 1] == '\r')
                        llen--;
                if (memchr(line, '\0', llen)) {
                        chorus_seterr(errstr, errstr_size, "%s:%u: NUL byte in line", name, lineno);
                        return CHORUS_ERR_CONFIG;
                }
                buf = xstrndup(line, llen);
                err = parse_line(cfg, buf, errstr, errstr_size);
                free(buf);
                if (err) {
                        prefixerr(errstr, errstr_size, "%s:%u: ", name, lineno);
                        return err;
                }
        }
        return CHORUS_OK;
}

chorus_err_t chorus_config_load_file(chorus_config_t *cfg, const char *path, char *errstr,
                                     size_t errstr_size) {
        chorus_err_t err;
        char *text = NULL;
        size_t len = 0, cap = 0;
        FILE *fp = fopen(path, "rb");

        if (!fp) {
                chorus_seterr(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
                return CHORUS_ERR_CONFIG;
        }
        for (;;) {
                size_t got;
                if (len == cap) {
                        cap = cap ? cap * 2 : 4096;
                        text = xrealloc(text, cap);
                }
                got = fread(text + len, 1, cap - len, fp);
                len += got;
                if (got == 0)
                        break;
                if (len > FILE_MAX_BYTES) {
                        chorus_seterr(errstr, errstr_size, "%s: larger than %u bytes", path,
                                      FILE_MAX_BYTES);
                        err = CHORUS_ERR_CONFIG;
                        goto done;
                }
        }
        if (ferror(fp)) {
                chorus_seterr(errstr, errstr_size, "%s: read error: %s", path, strerror(errno));
                err = CHORUS_ERR_CONFIG;
                goto done;
        }
        err = chorus_config_load_buffer(cfg, text, len, path, errstr, errstr_size);
done:
        free(text);
        fclose(fp);
        return err;
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

static const conf_prop_t *prop_by_name(const char *name) {
        for (size_t i = 0; i < chorus_conf_props_cnt; i++)
                if (!strcmp(chorus_conf_props[i].name, name))
                        return &chorus_conf_props[i];
        abort(); /* the code names a key the table lacks */
}

static int env_is(const char *entry, const char *name, const char **value) {
        size_t n = strlen(name);
        if (strncmp(entry, name, n) || entry[n] != '=')
                return 0;
        *value = entry + n + 1;
        return 1;
}

static chorus_err_t set_env_key(chorus_config_t *cfg, const char *var, const char *key,
                                const char *value, char *errstr, size_t errstr_size) {
        keyref_t ref = {prop_by_name(key), NULL, 0};

        if (set_ref(cfg, &ref, value, errstr, errstr_size)) {
                prefixerr(errstr, errstr_size, "environment variable %s: ", var);
                return CHORUS_ERR_CONFIG;
        }
        return CHORUS_OK;
}

/* ENABLE_<MODEL>=true|false: overlay on `models`. An enabled model already
 * listed (in any case) keeps its spelling; a new one is added lower-cased;
 * a disabled one is removed in any case. Returns the number of ENABLE_
 * variables seen, or -1 on error. */
static int apply_enable(chorus_config_t *cfg, char **envp, char *errstr, size_t errstr_size) {
        chorus_name_t *models = NULL;
        size_t n = cfg->n_models;
        int seen = 0;

        models = xcalloc(n + 1, sizeof(*models));
        if (n)
                memcpy(models, cfg->models, n * sizeof(*models));
        for (char **e = envp; *e; e++) {
                const char *eq = strchr(*e, '=');
                char shown[SHOW_MAX + 8];
                chorus_name_t name;
                size_t len, i;
                int on;

                if (strncmp(*e, "ENABLE_", 7) || !eq)
                        continue;
                seen++;
                len = (size_t)(eq - (*e + 7));
                if (parse_bool(eq + 1, &on)) {
                        show_n(*e, (size_t)(eq - *e), shown, sizeof(shown));
                        chorus_seterr(errstr, errstr_size,
                                      "environment variable %s: expected true or false", shown);
                        goto fail;
                }
                if (chorus_name_check(*e + 7, len) != CHORUS_OK) {
                        show_n(*e, (size_t)(eq - *e), shown, sizeof(shown));
                        chorus_seterr(errstr, errstr_size,
                                      "environment variable %s: not a valid model name", shown);
                        goto fail;
                }
                for (i = 0; i < len; i++)
                        name[i] = (char)tolower((unsigned char)(*e)[7 + i]);
                name[len] = '\0';
                for (i = 0; i < n && strcasecmp(models[i], name); i++)
                        ;
                if (on && i == n) {
                        models = xrealloc(models, (n + 1) * sizeof(*models));
                        memcpy(models[n++], name, sizeof(name));
                } else if (!on) {
                        for (size_t j = 0; j < n;)
                                if (!strcasecmp(models[j], name))
                                        memmove(models[j], models[j + 1],
                                                (--n - j) * sizeof(*models));
                                else
                                        j++;
                }
        }
        if (!seen) {
                free(models);
                return 0;
        }
        if (n > CHORUS_MAX_MODELS) {
                chorus_seterr(errstr, errstr_size,
                              "ENABLE_*: %zu models enabled, at most %d allowed", n,
                              CHORUS_MAX_MODELS);
                goto fail;
        }
        qsort(models, n, sizeof(*models), name_cmp);
        free(cfg->models);
        cfg->models = models;
        cfg->n_models = n;
        return seen;
fail:
        free(models);
        return -1;
}

/* SPEC §8: the seed system's variables. */
static chorus_err_t apply_seed_env(chorus_config_t *cfg, char **envp, char *errstr,
                                   size_t errstr_size) {
        const char *count = NULL, *method = NULL, *canary = NULL, *v;
        int n_enable;

        for (char **e = envp; *e; e++) {
                if (env_is(*e, "ENSEMBLE_MODEL_COUNT", &v))
                        count = v;
                else if (env_is(*e, "ENSEMBLE_OPTIMIZATION_METHOD", &v))
                        method = v;
                else if (env_is(*e, "CANARY_SYMBOLS", &v))
                        canary = v;
        }
        n_enable = apply_enable(cfg, envp, errstr, errstr_size);
        if (n_enable < 0)
                return CHORUS_ERR_CONFIG;
        if (count && n_enable > 0) {
                int64_t c;
                if (parse_int(count, &c) || c != (int64_t)cfg->n_models) {
                        char shown[SHOW_MAX + 8];
                        show(count, shown, sizeof(shown));
                        chorus_seterr(errstr, errstr_size,
                                      "environment variable ENSEMBLE_MODEL_COUNT: \"%s\" does not "
                                      "match the %zu models enabled by ENABLE_*",
                                      shown, cfg->n_models);
                        return CHORUS_ERR_CONFIG;
                }
        } else if (count && set_env_key(cfg, "ENSEMBLE_MODEL_COUNT", "emit.min_models", count,
                                        errstr, errstr_size))
                return CHORUS_ERR_CONFIG;
        if (method && set_env_key(cfg, "ENSEMBLE_OPTIMIZATION_METHOD", "weights.method", method,
                                  errstr, errstr_size))
                return CHORUS_ERR_CONFIG;
        if (canary && set_env_key(cfg, "CANARY_SYMBOLS", "rollout.canary_series", canary, errstr,
                                  errstr_size))
                return CHORUS_ERR_CONFIG;
        return CHORUS_OK;
}

/* Matches the part of a CHORUS_ variable after the prefix against one row.
 * Fixed parts compare without regard to case; the placeholder text is
 * taken verbatim. On a match, *name gets a heap copy of the placeholder
 * text (kafka: the librdkafka key), or NULL for a fixed row. */
static int env_match_prop(const conf_prop_t *prop, const char *var, size_t len, char **name) {
        char pre[128], post[128];
        const char *ph = strchr(prop->name, '<');

        *name = NULL;
        if (!ph) {
                env_form(prop->name, strlen(prop->name), pre, sizeof(pre));
                return strlen(pre) == len && !strncasecmp(pre, var, len);
        }
        const char *end = strchr(ph, '>') + 1;
        env_form(prop->name, (size_t)(ph - prop->name), pre, sizeof(pre));
        env_form(end, strlen(end), post, sizeof(post));
        size_t lp = strlen(pre), ls = strlen(post);
        if (len <= lp + ls || strncasecmp(var, pre, lp) || strncasecmp(var + len - ls, post, ls))
                return 0;
        *name = xstrndup(var + lp, len - lp - ls);
        if (prop->type == CONF_KAFKA)
                for (char *p = *name; *p; p++)
                        *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        return 1;
}

static chorus_err_t apply_chorus_var(chorus_config_t *cfg, const char *entry, char *errstr,
                                     size_t errstr_size) {
        const char *eq = strchr(entry, '=');
        const char *var = entry + 7; /* after CHORUS_ */
        size_t len = (size_t)(eq - var);
        keyref_t ref = {NULL, NULL, 0};
        char *name = NULL, *cand;
        char shown[SHOW_MAX + 8], first[SHOW_MAX * 2 + 64], second[SHOW_MAX * 2 + 64];
        chorus_err_t err = CHORUS_ERR_CONFIG;

        show_n(entry, (size_t)(eq - entry), shown, sizeof(shown));
        for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                const conf_prop_t *prop = &chorus_conf_props[i];
                if (!env_match_prop(prop, var, len, &cand))
                        continue;
                if (ref.prop && ref.prop->type == CONF_KAFKA && prop->type == CONF_KAFKA) {
                        /* CHORUS_KAFKA_CONSUMER_X is kafka.consumer.x, as in
                         * a file: the longer fixed prefix (shorter key) wins. */
                        if (strlen(cand) < strlen(name)) {
                                free(name);
                                ref.prop = prop;
                                ref.name = name = cand;
                        } else {
                                free(cand);
                        }
                        continue;
                }
                if (ref.prop) {
                        /* Two rows read the same variable: refuse to guess. */
                        keyref_t other = {prop, cand, 0};
                        format_key(&ref, first, sizeof(first));
                        format_key(&other, second, sizeof(second));
                        chorus_seterr(errstr, errstr_size,
                                      "environment variable %s: ambiguous, matches %s and %s",
                                      shown, first, second);
                        free(cand);
                        goto done;
                }
                ref.prop = prop;
                ref.name = name = cand;
        }
        if (!ref.prop) {
                char sugg[320] = "", env[256], typed[256];
                size_t best = 3;
                snprintf(typed, sizeof(typed), "%.*s", (int)(eq - entry), entry);
                for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                        chorus_conf_prop_envname(&chorus_conf_props[i], env, sizeof(env));
                        size_t d = edit_distance(typed, env);
                        if (d < best) {
                                best = d;
                                snprintf(sugg, sizeof(sugg), " (did you mean %s?)", env);
                        }
                }
                chorus_seterr(errstr, errstr_size,
                              "environment variable %s: no configuration key matches it%s", shown,
                              sugg);
                goto done;
        }
        if (check_placeholder(&ref, errstr, errstr_size) ||
            set_ref(cfg, &ref, eq + 1, errstr, errstr_size)) {
                prefixerr(errstr, errstr_size, "environment variable %s: ", shown);
                goto done;
        }
        err = CHORUS_OK;
done:
        free(name);
        return err;
}

chorus_err_t chorus_config_load_env(chorus_config_t *cfg, char **envp, char *errstr,
                                    size_t errstr_size) {
        chorus_err_t err;

        if (!envp)
                return CHORUS_OK;
        /* Seed variables first, so that a CHORUS_* variable wins where both
         * set the same thing. */
        err = apply_seed_env(cfg, envp, errstr, errstr_size);
        if (err)
                return err;
        for (char **e = envp; *e; e++) {
                if (strncmp(*e, "CHORUS_", 7) || !strchr(*e, '='))
                        continue;
                /* CHORUS_CONFIG names the file; CHORUS_LOCK_DIR is read by
                 * chorus_identity_acquire() (automatic worker ids);
                 * CHORUS_TEST_* belong to the test harness. */
                if (!strncmp(*e, "CHORUS_CONFIG=", 14) || !strncmp(*e, "CHORUS_LOCK_DIR=", 16) ||
                    !strncmp(*e, "CHORUS_TEST_", 12))
                        continue;
                err = apply_chorus_var(cfg, *e, errstr, errstr_size);
                if (err)
                        return err;
        }
        return CHORUS_OK;
}

/* ------------------------------------------------------------------------ */
/* Checks across keys                                                       */
/* ------------------------------------------------------------------------ */

static const char *topic_key(int role, char *buf, size_t size) {
        /* The role's name row is the CONF_TOPIC row that stores into it. */
        for (size_t i = 0; i < chorus_conf_props_cnt; i++) {
                const conf_prop_t *prop = &chorus_conf_props[i];
                if (prop->type == CONF_TOPIC &&
                    prop->off == offsetof(chorus_config_t, topics) +
                                     (size_t)role * sizeof(chorus_topic_conf_t) +
                                     offsetof(chorus_topic_conf_t, name)) {
                        snprintf(buf, size, "%s", prop->name);
                        return buf;
                }
        }
        snprintf(buf, size, "topic #%d", role);
        return buf;
}

static const char *record_value_name(chorus_record_type_t t) {
        const conf_prop_t *prop = prop_by_name("schema.<id>.record");
        for (const conf_enum_value_t *ev = prop->values; ev->name; ev++)
                if (ev->value == (int)t)
                        return ev->name;
        return "none";
}

static chorus_err_t check_schemas(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        char shown[SHOW_MAX + 8], tk[64];

        for (size_t i = 0; i < cfg->n_schemas; i++) {
                const chorus_schema_conf_t *sc = &cfg->schemas[i];
                struct stat st;
                int fd, bad;

                if (sc->type == CHORUS_RECORD__COUNT || !sc->file) {
                        chorus_seterr(errstr, errstr_size,
                                      "schema.%" PRId32 ".%s: missing (schema.%" PRId32
                                      ".%s is set, and both are required)",
                                      sc->id, sc->file ? "record" : "file", sc->id,
                                      sc->file ? "file" : "record");
                        return CHORUS_ERR_CONFIG;
                }
                show(sc->file, shown, sizeof(shown));
                /* O_NONBLOCK: a FIFO given by mistake must fail the check,
                 * not hang check-config waiting for a writer. */
                fd = open(sc->file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) {
                        chorus_seterr(errstr, errstr_size,
                                      "schema.%" PRId32 ".file: cannot read \"%s\": %s", sc->id,
                                      shown, strerror(errno));
                        return CHORUS_ERR_CONFIG;
                }
                bad = fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0;
                close(fd);
                if (bad) {
                        chorus_seterr(errstr, errstr_size,
                                      "schema.%" PRId32
                                      ".file: \"%s\" is not a non-empty regular file",
                                      sc->id, shown);
                        return CHORUS_ERR_CONFIG;
                }
        }
        /* A topic's schema id must not name a schema of another record type. */
        for (int r = 0; r < CHORUS_TOPIC__COUNT; r++) {
                const chorus_topic_conf_t *t = &cfg->topics[r];
                const chorus_schema_conf_t *sc;
                if (t->type == CHORUS_RECORD__COUNT)
                        continue;
                sc = sorted_find(cfg->schemas, cfg->n_schemas, sizeof(*sc), &t->schema_id,
                                 cmp_schema);
                if (sc && sc->type != t->type) {
                        chorus_seterr(
                            errstr, errstr_size,
                            "%s.schema_id: %" PRId32 " is registered as %s by schema.%" PRId32
                            ".record, but the topic carries %s",
                            topic_key(r, tk, sizeof(tk)), t->schema_id, record_value_name(sc->type),
                            sc->id, record_value_name(t->type));
                        return CHORUS_ERR_CONFIG;
                }
        }
        return CHORUS_OK;
}

/* The CONF_KAFKA row entries of @p client are written with. */
static const conf_prop_t *kafka_row(chorus_kafka_client_t client) {
        for (size_t i = 0; i < chorus_conf_props_cnt; i++)
                if (chorus_conf_props[i].type == CONF_KAFKA &&
                    chorus_conf_props[i].client == client)
                        return &chorus_conf_props[i];
        abort(); /* the table lacks a kafka row */
}

/* An entry's key as the user wrote it: kafka.consumer.group.id. */
static void kafka_key(const chorus_kv_t *kv, char *buf, size_t size) {
        keyref_t ref = {kafka_row(kv->client), kv->key, 0};
        format_key(&ref, buf, size);
}

static const char *client_noun(chorus_kafka_client_t client) {
        return client == CHORUS_KAFKA_CONSUMER ? "consumer" : "producer";
}

chorus_err_t chorus_config_kafka_apply(const chorus_config_t *cfg, chorus_kafka_client_t client,
                                       struct rd_kafka_conf_s *conf, char *errstr,
                                       size_t errstr_size) {
        char why[512], key[SHOW_MAX * 2 + 64];

        for (size_t i = 0; i < cfg->n_kafka; i++) {
                const chorus_kv_t *kv = &cfg->kafka[i];
                if (!chorus_config_kafka_kv_applies(kv, client))
                        continue;
                why[0] = '\0';
                if (rd_kafka_conf_set(conf, kv->key, kv->value, why, sizeof(why)) !=
                    RD_KAFKA_CONF_OK) {
                        kafka_key(kv, key, sizeof(key));
                        chorus_seterr(errstr, errstr_size, "%s: rejected by librdkafka: %s", key,
                                      why);
                        return CHORUS_ERR_CONFIG;
                }
        }
        return CHORUS_OK;
}

/* Each client's settings go through librdkafka as the worker will set
 * them, on a conf of their own. */
static chorus_err_t check_kafka(const chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        static const chorus_kafka_client_t clients[] = {CHORUS_KAFKA_CONSUMER,
                                                        CHORUS_KAFKA_PRODUCER};
        char key[SHOW_MAX * 2 + 64], shown[SHOW_MAX + 8];

        if (!cfg->n_kafka)
                return CHORUS_OK;
        /* An override for the client that does not read the property would
         * only earn a librdkafka warning and be ignored: say so now. */
        for (size_t i = 0; i < cfg->n_kafka; i++) {
                const chorus_kv_t *kv = &cfg->kafka[i];
                chorus_kafka_client_t scope = chorus_conf_kafka_scope(kv->key);
                if (kv->client == CHORUS_KAFKA_ANY || scope == CHORUS_KAFKA_ANY ||
                    scope == kv->client)
                        continue;
                kafka_key(kv, key, sizeof(key));
                show(kv->key, shown, sizeof(shown));
                chorus_seterr(errstr, errstr_size,
                              "%s: %s is a %s property, which the %s does not read; set "
                              "kafka.%s or kafka.%s.%s",
                              key, shown, client_noun(scope), client_noun(kv->client), shown,
                              client_noun(scope), shown);
                return CHORUS_ERR_CONFIG;
        }
        for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++) {
                rd_kafka_conf_t *conf = rd_kafka_conf_new();
                chorus_err_t err =
                    chorus_config_kafka_apply(cfg, clients[c], conf, errstr, errstr_size);
                rd_kafka_conf_destroy(conf);
                if (err)
                        return err;
        }
        return CHORUS_OK;
}

chorus_err_t chorus_config_finalize(chorus_config_t *cfg, char *errstr, size_t errstr_size) {
        char a[64], b[64], shown[SHOW_MAX + 8];
        int have_list = cfg->n_models > 0;

        if (cfg->retention_days < cfg->window_days) {
                chorus_seterr(errstr, errstr_size,
                              "state.retention_days: %d is less than window.days (%d); state must "
                              "outlive the scoring window",
                              cfg->retention_days, cfg->window_days);
                return CHORUS_ERR_CONFIG;
        }
        for (size_t i = 0; i < cfg->n_horizon_confs; i++) {
                const chorus_horizon_conf_t *h = &cfg->horizon_confs[i];
                have_list |= h->n_models > 0;
                if (cfg->n_horizons && !chorus_config_horizon_allowed(cfg, h->name)) {
                        keyref_t ref = {prop_by_name("horizon.<horizon>.models"), h->name, 0};
                        char key[SHOW_MAX * 2 + 64];
                        format_key(&ref, key, sizeof(key));
                        show(h->name, shown, sizeof(shown));
                        chorus_seterr(errstr, errstr_size,
                                      "%s: horizon \"%s\" is not in the `horizons` list", key,
                                      shown);
                        return CHORUS_ERR_CONFIG;
                }
        }
        if (cfg->emit_mode == CHORUS_EMIT_COMPLETE && !have_list) {
                chorus_seterr(errstr, errstr_size,
                              "emit.mode: complete requires a configured model list (`models` or "
                              "`horizon.<horizon>.models`)");
                return CHORUS_ERR_CONFIG;
        }
        if (cfg->alerts_auto_to_days > cfg->alerts_auto_from_days) {
                chorus_seterr(errstr, errstr_size,
                              "alerts.baseline_auto.to_days: %d must be at most "
                              "alerts.baseline_auto.from_days, %d",
                              cfg->alerts_auto_to_days, cfg->alerts_auto_from_days);
                return CHORUS_ERR_CONFIG;
        }
        for (size_t i = 0; i < cfg->n_series_confs; i++) {
                const chorus_series_conf_t *s = &cfg->series_confs[i];
                if (s->has_min && s->has_max && !(s->min < s->max)) {
                        keyref_t ref = {prop_by_name("series.<series>.max"), s->name, 0};
                        char key[SHOW_MAX * 2 + 64];
                        format_key(&ref, key, sizeof(key));
                        chorus_seterr(errstr, errstr_size,
                                      "%s: %g must be greater than the min, %g", key, s->max,
                                      s->min);
                        return CHORUS_ERR_CONFIG;
                }
        }
        /* Two roles on one topic would mix record types (or loop output
         * back into input). */
        for (int r = 0; r < CHORUS_TOPIC__COUNT; r++)
                for (int q = 0; q < r; q++)
                        if (!strcmp(cfg->topics[r].name, cfg->topics[q].name)) {
                                chorus_seterr(errstr, errstr_size, "%s: \"%s\" is also %s",
                                              topic_key(r, a, sizeof(a)), cfg->topics[r].name,
                                              topic_key(q, b, sizeof(b)));
                                return CHORUS_ERR_CONFIG;
                        }
        if (check_schemas(cfg, errstr, errstr_size))
                return CHORUS_ERR_CONFIG;
        return check_kafka(cfg, errstr, errstr_size);
}

chorus_err_t chorus_config_load(chorus_config_t *cfg, const char *path, char **envp, char *errstr,
                                size_t errstr_size) {
        chorus_err_t err;
        const char *v;

        if (!path && envp)
                for (char **e = envp; *e; e++)
                        if (env_is(*e, "CHORUS_CONFIG", &v) && *v)
                                path = v;
        if (path && (err = chorus_config_load_file(cfg, path, errstr, errstr_size)))
                return err;
        if ((err = chorus_config_load_env(cfg, envp, errstr, errstr_size)))
                return err;
        return chorus_config_finalize(cfg, errstr, errstr_size);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */
/* ------------------------------------------------------------------------ */

const chorus_series_conf_t *chorus_config_series(const chorus_config_t *cfg, const char *series) {
        return sorted_find(cfg->series_confs, cfg->n_series_confs, sizeof(chorus_series_conf_t),
                           series, cmp_series);
}

int64_t chorus_config_resolution_ms(const chorus_config_t *cfg, const char *series) {
        const chorus_series_conf_t *s = chorus_config_series(cfg, series);
        return s && s->resolution_ms > 0 ? s->resolution_ms : cfg->resolution_ms;
}

const chorus_name_t *chorus_config_expected_models(const chorus_config_t *cfg, const char *horizon,
                                                   size_t *n) {
        const chorus_horizon_conf_t *h =
            sorted_find(cfg->horizon_confs, cfg->n_horizon_confs, sizeof(*h), horizon, cmp_horizon);

        /* An empty horizon list means "not set here", not "no models". */
        if (h && h->n_models) {
                *n = h->n_models;
                return (const chorus_name_t *)h->models;
        }
        *n = cfg->n_models;
        return cfg->n_models ? (const chorus_name_t *)cfg->models : NULL;
}

static int cmp_name_key(const void *key, const void *el) {
        return strcmp(key, (const char *)el);
}

int chorus_config_horizon_allowed(const chorus_config_t *cfg, const char *horizon) {
        return cfg->n_horizons == 0 ||
               sorted_find(cfg->horizons, cfg->n_horizons, sizeof(chorus_name_t), horizon,
                           cmp_name_key) != NULL;
}

const char *chorus_weights_method_name(chorus_weights_method_t m) {
        /* The first accepted spelling of a value is its canonical name;
         * aliases come after it in the table. */
        const conf_prop_t *prop = prop_by_name("weights.method");
        for (const conf_enum_value_t *ev = prop->values; ev->name; ev++)
                if (!ev->rejected && ev->value == (int)m)
                        return ev->name;
        return "unknown";
}
