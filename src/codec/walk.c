/*
 * The bounds walk: a validating skip over an Avro binary body, driven by the
 * writer schema, run before Avro-C is allowed to see the bytes.
 *
 * Why: Avro-C 1.11 allocates a string, bytes or array before it checks the
 * length against the buffer (a negative or huge length aborts or exhausts
 * memory), and it leaks on every decode error. After this walk accepts a
 * body, Avro-C's value reader cannot fail on it, so it never takes those
 * paths.
 *
 * Invariants:
 *   - The walk never reads outside [buf, buf+len); every multi-byte read is
 *     preceded by a remaining-bytes check.
 *   - Varints are at most 10 bytes and must fit in 64 bits; ints must fit in
 *     32 bits (exactly what Avro-C's read_int accepts).
 *   - String/bytes lengths must be 0..remaining. An array/map block count
 *     times the minimum encoded size of one element must fit in the remaining
 *     bytes; a negative count's byte size must be 0..remaining and must equal
 *     what its elements take. The total number of elements in a message is at
 *     most its length, which bounds what Avro-C allocates for zero-size
 *     elements (arrays of null or of empty records).
 *   - Union indexes and enum symbols are in range; booleans are 0 or 1.
 *   - Nesting is at most CHORUS_CODEC_MAX_DEPTH, so recursive schemas cannot
 *     overflow the stack here or in Avro-C.
 *   - The record must end exactly at buf+len.
 *
 * The writer schema is compiled once, at registration, into a flat node
 * table; named types are compiled once and recursive references become
 * cycles in the table.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

typedef enum wkind {
        W_NULL,
        W_BOOL,
        W_INT,
        W_LONG,
        W_FLOAT,
        W_DOUBLE,
        W_STRING,
        W_BYTES,
        W_FIXED,
        W_ENUM,
        W_ARRAY,
        W_MAP,
        W_UNION,
        W_RECORD,
} wkind_t;

typedef struct wnode {
        wkind_t kind;
        uint32_t n;       /* record fields, union branches, enum symbols */
        uint32_t first;   /* first child in kids[] (record, union, array, map) */
        uint64_t size;    /* fixed size */
        uint64_t minsize; /* lower bound of the encoded size, saturating */
} wnode_t;

struct chorus_codec_walk_s {
        wnode_t *nodes;
        size_t n_nodes, cap_nodes;
        uint32_t *kids;         /* child node indexes */
        const char **kid_names; /* record field names, parallel to kids (borrowed) */
        size_t n_kids, cap_kids;
};

/* ====================================================================== */
/* Compilation                                                            */
/* ====================================================================== */

typedef struct memo {
        avro_schema_t schema;
        uint32_t node;
} memo_t;

typedef struct compiler {
        chorus_codec_walk_t *w;
        memo_t *memo;
        size_t n_memo, cap_memo;
        char *errstr;
        size_t errstr_size;
} compiler_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
        size_t ncap;
        void *np;

        if (need <= *cap)
                return 0;
        ncap = *cap ? *cap * 2 : 16;
        while (ncap < need)
                ncap *= 2;
        if (!(np = realloc(*p, ncap * elem)))
                return -1;
        *p = np;
        *cap = ncap;
        return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static long new_node(compiler_t *c, wkind_t kind) {
        chorus_codec_walk_t *w = c->w;

        if (w->n_nodes >= UINT32_MAX ||
            grow((void **)&w->nodes, &w->cap_nodes, w->n_nodes + 1, sizeof(*w->nodes)))
                return -1;
        memset(&w->nodes[w->n_nodes], 0, sizeof(w->nodes[0]));
        w->nodes[w->n_nodes].kind = kind;
        return (long)w->n_nodes++;
}

/* Reserve @p n child slots; returns the index of the first. */
static long new_kids(compiler_t *c, size_t n) {
        chorus_codec_walk_t *w = c->w;
        size_t first = w->n_kids;

        if (n > UINT32_MAX - w->n_kids)
                return -1;
        if (grow((void **)&w->kids, &w->cap_kids, w->n_kids + n, sizeof(*w->kids)))
                return -1;
        /* kid_names shares cap_kids: grow it to the same capacity. */
        {
                const char **np = realloc(w->kid_names, w->cap_kids * sizeof(*w->kid_names));
                if (!np)
                        return -1;
                w->kid_names = np;
        }
        for (size_t i = 0; i < n; i++) {
                w->kids[first + i] = 0;
                w->kid_names[first + i] = NULL;
        }
        w->n_kids += n;
        return (long)first;
}

static long compile(compiler_t *c, avro_schema_t s, int depth);

static long compile_named(compiler_t *c, avro_schema_t s, int depth) {
        chorus_codec_walk_t *w = c->w;
        long node, first, kid;
        wkind_t kind;
        size_t n;

        for (size_t i = 0; i < c->n_memo; i++)
                if (c->memo[i].schema == s)
                        return (long)c->memo[i].node;

        kind = is_avro_record(s) ? W_RECORD : is_avro_enum(s) ? W_ENUM : W_FIXED;
        if ((node = new_node(c, kind)) < 0)
                return -1;
        /* Memoize before compiling fields, so a recursive reference to this
         * record resolves to this node. */
        if (grow((void **)&c->memo, &c->cap_memo, c->n_memo + 1, sizeof(*c->memo)))
                return -1;
        c->memo[c->n_memo].schema = s;
        c->memo[c->n_memo].node = (uint32_t)node;
        c->n_memo++;

        if (kind == W_ENUM) {
                int ns = avro_schema_enum_number_of_symbols(s);
                if (ns <= 0) {
                        chorus_seterr(c->errstr, c->errstr_size, "enum %s has no symbols",
                                      avro_schema_name(s));
                        return -2;
                }
                w->nodes[node].n = (uint32_t)ns;
                w->nodes[node].minsize = 1;
                return node;
        }
        if (kind == W_FIXED) {
                int64_t size = avro_schema_fixed_size(s);
                if (size < 0) {
                        chorus_seterr(c->errstr, c->errstr_size, "fixed %s has size %" PRId64,
                                      avro_schema_name(s), size);
                        return -2;
                }
                w->nodes[node].size = (uint64_t)size;
                w->nodes[node].minsize = (uint64_t)size;
                return node;
        }
        n = avro_schema_record_size(s);
        if ((first = new_kids(c, n)) < 0)
                return -1;
        w->nodes[node].n = (uint32_t)n;
        w->nodes[node].first = (uint32_t)first;
        for (size_t i = 0; i < n; i++) {
                avro_schema_t fs = avro_schema_record_field_get_by_index(s, (int)i);
                if (!fs)
                        return -1;
                if ((kid = compile(c, fs, depth + 1)) < 0)
                        return kid;
                /* Re-index through w: compile() may have moved the arrays. */
                w->kids[first + (long)i] = (uint32_t)kid;
                w->kid_names[first + (long)i] = avro_schema_record_field_name(s, (int)i);
                w->nodes[node].minsize = sat_add(w->nodes[node].minsize, w->nodes[kid].minsize);
        }
        return node;
}

static long compile(compiler_t *c, avro_schema_t s, int depth) {
        chorus_codec_walk_t *w = c->w;
        long node, first, kid;

        if (depth > 1000) {
                chorus_seterr(c->errstr, c->errstr_size, "schema nested too deeply");
                return -2;
        }
        if (!s)
                return -1;
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return new_node(c, W_NULL);
        case AVRO_BOOLEAN:
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_STRING:
        case AVRO_BYTES:
                node = new_node(c, avro_typeof(s) == AVRO_BOOLEAN  ? W_BOOL
                                   : avro_typeof(s) == AVRO_INT32  ? W_INT
                                   : avro_typeof(s) == AVRO_INT64  ? W_LONG
                                   : avro_typeof(s) == AVRO_STRING ? W_STRING
                                                                   : W_BYTES);
                if (node >= 0)
                        w->nodes[node].minsize = 1;
                return node;
        case AVRO_FLOAT:
                if ((node = new_node(c, W_FLOAT)) >= 0)
                        w->nodes[node].minsize = 4;
                return node;
        case AVRO_DOUBLE:
                if ((node = new_node(c, W_DOUBLE)) >= 0)
                        w->nodes[node].minsize = 8;
                return node;
        case AVRO_RECORD:
        case AVRO_ENUM:
        case AVRO_FIXED:
                return compile_named(c, s, depth);
        case AVRO_LINK:
                return compile(c, avro_schema_link_target(s), depth + 1);
        case AVRO_ARRAY:
        case AVRO_MAP:
                if ((node = new_node(c, avro_typeof(s) == AVRO_ARRAY ? W_ARRAY : W_MAP)) < 0 ||
                    (first = new_kids(c, 1)) < 0)
                        return -1;
                w->nodes[node].n = 1;
                w->nodes[node].first = (uint32_t)first;
                w->nodes[node].minsize = 1; /* the terminating zero count */
                kid = compile(c,
                              avro_typeof(s) == AVRO_ARRAY ? avro_schema_array_items(s)
                                                           : avro_schema_map_values(s),
                              depth + 1);
                if (kid < 0)
                        return kid;
                w->kids[first] = (uint32_t)kid;
                return node;
        case AVRO_UNION: {
                size_t n = avro_schema_union_size(s);
                uint64_t min = UINT64_MAX;

                if (n == 0) {
                        chorus_seterr(c->errstr, c->errstr_size, "empty union");
                        return -2;
                }
                if ((node = new_node(c, W_UNION)) < 0 || (first = new_kids(c, n)) < 0)
                        return -1;
                w->nodes[node].n = (uint32_t)n;
                w->nodes[node].first = (uint32_t)first;
                for (size_t i = 0; i < n; i++) {
                        if ((kid = compile(c, avro_schema_union_branch(s, (int)i), depth + 1)) < 0)
                                return kid;
                        w->kids[first + (long)i] = (uint32_t)kid;
                        if (w->nodes[kid].minsize < min)
                                min = w->nodes[kid].minsize;
                }
                w->nodes[node].minsize = sat_add(1, min);
                return node;
        }
        }
        chorus_seterr(c->errstr, c->errstr_size, "unsupported Avro type %d", (int)avro_typeof(s));
        return -2;
}

chorus_codec_walk_t *chorus_codec_walk_new(avro_schema_t schema, char *errstr, size_t errstr_size) {
        compiler_t c = {.errstr = errstr, .errstr_size = errstr_size};
        long root;

        if (!(c.w = calloc(1, sizeof(*c.w))))
                goto nomem;
        root = compile(&c, schema, 0);
        if (root == -1)
                goto nomem;
        if (root < 0)
                goto fail;
        /* The root is always node 0: compile() allocates the node first. */
        free(c.memo);
        return c.w;

nomem:
        chorus_seterr(errstr, errstr_size, "out of memory compiling the writer schema");
fail:
        free(c.memo);
        chorus_codec_walk_destroy(c.w);
        return NULL;
}

void chorus_codec_walk_destroy(chorus_codec_walk_t *walk) {
        if (!walk)
                return;
        free(walk->nodes);
        free(walk->kids);
        free(walk->kid_names);
        free(walk);
}

/* ====================================================================== */
/* The walk                                                               */
/* ====================================================================== */

typedef struct wstate {
        const chorus_codec_walk_t *w;
        const unsigned char *buf;
        size_t len, pos;
        size_t items;      /* array/map elements so far */
        const char *field; /* innermost record field, for messages */
        char *errstr;
        size_t errstr_size;
} wstate_t;

static chorus_err_t fail(wstate_t *st, chorus_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static chorus_err_t fail(wstate_t *st, chorus_err_t err, const char *fmt, ...) {
        va_list ap;
        int n = 0;

        if (!st->errstr || !st->errstr_size)
                return err;
        if (st->field)
                n = snprintf(st->errstr, st->errstr_size, "field %s: ", st->field);
        if (n < 0 || (size_t)n >= st->errstr_size)
                return err;
        va_start(ap, fmt);
        vsnprintf(st->errstr + n, st->errstr_size - (size_t)n, fmt, ap);
        va_end(ap);
        return err;
}

static size_t left(const wstate_t *st) {
        return st->len - st->pos;
}

static chorus_err_t rd_varint(wstate_t *st, int64_t *out, const char *what) {
        uint64_t v = 0;
        size_t start = st->pos;

        for (unsigned i = 0; i < 10; i++) {
                unsigned b;

                if (st->pos >= st->len)
                        return fail(st, CHORUS_ERR_MALFORMED, "%s truncated at byte %zu", what,
                                    st->pos);
                b = st->buf[st->pos++];
                if (i == 9 && b > 1)
                        return fail(st, CHORUS_ERR_MALFORMED,
                                    (b & 0x80) ? "%s varint at byte %zu is longer than 10 bytes"
                                               : "%s varint at byte %zu overflows 64 bits",
                                    what, start);
                v |= (uint64_t)(b & 0x7F) << (7 * i);
                if (!(b & 0x80))
                        break;
        }
        /* Zigzag: (v >> 1) fits in int64; -(v & 1) is 0 or all ones. */
        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        return CHORUS_OK;
}

static chorus_err_t need(wstate_t *st, uint64_t n, const char *what) {
        if (n > left(st))
                return fail(st, CHORUS_ERR_MALFORMED,
                            "%s needs %" PRIu64 " bytes at byte %zu, %zu left", what, n, st->pos,
                            left(st));
        return CHORUS_OK;
}

static chorus_err_t rd_length(wstate_t *st, const char *what) {
        chorus_err_t err;
        int64_t n = 0; /* set by rd_varint; gcc -O3 cannot see that */
        size_t at = st->pos;

        if ((err = rd_varint(st, &n, what)))
                return err;
        if (n < 0)
                return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                            "negative %s length %" PRId64 " at byte %zu", what, n, at);
        if ((uint64_t)n > left(st))
                return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                            "%s length %" PRId64 " at byte %zu exceeds the %zu bytes left", what, n,
                            at, left(st));
        st->pos += (size_t)n;
        return CHORUS_OK;
}

static chorus_err_t walk(wstate_t *st, uint32_t idx, int depth);

static chorus_err_t walk_blocks(wstate_t *st, const wnode_t *nd, int depth) {
        const char *what = nd->kind == W_ARRAY ? "array" : "map";
        uint32_t item = st->w->kids[nd->first];
        uint64_t minsize = st->w->nodes[item].minsize;
        chorus_err_t err;

        if (nd->kind == W_MAP)
                minsize = sat_add(minsize, 1); /* the key's length */
        for (;;) {
                int64_t count, bsize = -1;
                size_t at = st->pos, bstart;

                if ((err = rd_varint(st, &count, what)))
                        return err;
                if (count == 0)
                        return CHORUS_OK;
                if (count < 0) {
                        if (count == INT64_MIN)
                                return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                                            "%s block count %" PRId64 " at byte %zu", what, count,
                                            at);
                        count = -count;
                        if ((err = rd_varint(st, &bsize, what)))
                                return err;
                        if (bsize < 0 || (uint64_t)bsize > left(st))
                                return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                                            "%s block byte size %" PRId64
                                            " at byte %zu is outside 0..%zu",
                                            what, bsize, at, left(st));
                }
                /* count * minsize > left, written without overflow. */
                if (minsize ? (uint64_t)count > left(st) / minsize : (uint64_t)count > left(st))
                        return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                                    "%s block count %" PRId64
                                    " at byte %zu exceeds the %zu bytes left",
                                    what, count, at, left(st));
                if ((uint64_t)count > st->len - st->items)
                        return fail(st, CHORUS_ERR_ABSURD_LENGTH,
                                    "more than %zu array/map elements in a %zu-byte body", st->len,
                                    st->len);
                st->items += (size_t)count;
                bstart = st->pos;
                for (int64_t i = 0; i < count; i++) {
                        if (nd->kind == W_MAP && (err = rd_length(st, "map key")))
                                return err;
                        if ((err = walk(st, item, depth + 1)))
                                return err;
                }
                if (bsize >= 0 && (uint64_t)bsize != st->pos - bstart)
                        return fail(st, CHORUS_ERR_MALFORMED,
                                    "%s block at byte %zu declares %" PRId64
                                    " bytes but its items take %zu",
                                    what, at, bsize, st->pos - bstart);
        }
}

static chorus_err_t walk(wstate_t *st, uint32_t idx, int depth) {
        const wnode_t *nd = &st->w->nodes[idx];
        chorus_err_t err;
        int64_t v;
        size_t at = st->pos;

        if (depth > CHORUS_CODEC_MAX_DEPTH)
                return fail(st, CHORUS_ERR_MALFORMED, "nesting deeper than %d at byte %zu",
                            CHORUS_CODEC_MAX_DEPTH, st->pos);
        switch (nd->kind) {
        case W_NULL:
                return CHORUS_OK;
        case W_BOOL:
                if ((err = need(st, 1, "boolean")))
                        return err;
                if (st->buf[st->pos] > 1)
                        return fail(st, CHORUS_ERR_MALFORMED, "boolean byte 0x%02x at byte %zu",
                                    st->buf[st->pos], st->pos);
                st->pos++;
                return CHORUS_OK;
        case W_INT:
                if ((err = rd_varint(st, &v, "int")))
                        return err;
                if (v < INT32_MIN || v > INT32_MAX)
                        return fail(st, CHORUS_ERR_MALFORMED,
                                    "int %" PRId64 " at byte %zu is out of 32-bit range", v, at);
                return CHORUS_OK;
        case W_LONG:
                return rd_varint(st, &v, "long");
        case W_FLOAT:
                if ((err = need(st, 4, "float")))
                        return err;
                st->pos += 4;
                return CHORUS_OK;
        case W_DOUBLE:
                if ((err = need(st, 8, "double")))
                        return err;
                st->pos += 8;
                return CHORUS_OK;
        case W_STRING:
                return rd_length(st, "string");
        case W_BYTES:
                return rd_length(st, "bytes");
        case W_FIXED:
                if ((err = need(st, nd->size, "fixed")))
                        return err;
                st->pos += (size_t)nd->size;
                return CHORUS_OK;
        case W_ENUM:
                if ((err = rd_varint(st, &v, "enum")))
                        return err;
                if (v < 0 || (uint64_t)v >= nd->n)
                        return fail(st, CHORUS_ERR_MALFORMED,
                                    "enum index %" PRId64 " at byte %zu is outside 0..%u", v, at,
                                    (unsigned)nd->n - 1);
                return CHORUS_OK;
        case W_UNION:
                if ((err = rd_varint(st, &v, "union index")))
                        return err;
                if (v < 0 || (uint64_t)v >= nd->n)
                        return fail(st, CHORUS_ERR_MALFORMED,
                                    "union index %" PRId64 " at byte %zu is outside 0..%u", v, at,
                                    (unsigned)nd->n - 1);
                return walk(st, st->w->kids[nd->first + (uint32_t)v], depth + 1);
        case W_ARRAY:
        case W_MAP:
                return walk_blocks(st, nd, depth);
        case W_RECORD: {
                const char *outer = st->field;

                for (uint32_t i = 0; i < nd->n; i++) {
                        st->field = st->w->kid_names[nd->first + i];
                        if ((err = walk(st, st->w->kids[nd->first + i], depth + 1)))
                                return err;
                }
                st->field = outer;
                return CHORUS_OK;
        }
        }
        return fail(st, CHORUS_ERR_MALFORMED, "corrupt walk program");
}

chorus_err_t chorus_codec_walk_check(const chorus_codec_walk_t *walk_prog, const unsigned char *buf,
                                     size_t len, char *errstr, size_t errstr_size) {
        wstate_t st = {.w = walk_prog,
                       .buf = buf,
                       .len = buf ? len : 0,
                       .errstr = errstr,
                       .errstr_size = errstr_size};
        chorus_err_t err;

        if ((err = walk(&st, 0, 0)))
                return err;
        if (st.pos != st.len)
                return fail(&st, CHORUS_ERR_TRAILING_BYTES, "%zu bytes left after the record",
                            st.len - st.pos);
        return CHORUS_OK;
}
