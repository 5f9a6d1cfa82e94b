/*
 * Writer-to-reader schema compatibility, checked once when a writer schema
 * is registered, so that a schema that can never be read is a configuration
 * error at startup instead of a dead letter per record.
 *
 * The rules are Avro's resolution rules (specification, "Schema
 * Resolution"), as the decoder applies them:
 *   - records match by unqualified name; reader fields are looked up in the
 *     writer by name; a reader field the writer lacks needs a "default" in
 *     the reader JSON (Avro-C drops defaults, hence the JSON); writer fields
 *     the reader lacks are skipped;
 *   - promotions: int -> long, float, double; long -> float, double;
 *     float -> double; string <-> bytes;
 *   - a reader union accepts a writer type that matches any of its branches;
 *   - a writer union is accepted if at least one of its branches is
 *     readable: which branch a record uses is only known per record, so a
 *     record that uses an unreadable branch (e.g. null for a required field)
 *     is rejected when decoded, as Avro's own readers do;
 *   - enums and fixed match by name (fixed also by size); arrays and maps
 *     by their element types.
 * Recursive schemas are handled coinductively: a (writer, reader) pair that
 * is already being checked further up is assumed compatible.
 */
#include <stdio.h>
#include <string.h>

#include "codec_int.h"

typedef struct pair {
        avro_schema_t w, r;
} pair_t;

typedef struct rctx {
        pair_t stack[CHORUS_CODEC_MAX_DEPTH];
        int depth;
        char *errstr;
        size_t errstr_size;
} rctx_t;

static avro_schema_t deref(avro_schema_t s) {
        for (int i = 0; s && is_avro_link(s) && i < 100; i++)
                s = avro_schema_link_target(s);
        return s;
}

const char *chorus_codec_type_str(avro_schema_t s, char *buf, size_t size) {
        s = deref(s);
        if (!s) {
                snprintf(buf, size, "?");
                return buf;
        }
        switch (avro_typeof(s)) {
        case AVRO_STRING:
                return "string";
        case AVRO_BYTES:
                return "bytes";
        case AVRO_INT32:
                return "int";
        case AVRO_INT64:
                return "long";
        case AVRO_FLOAT:
                return "float";
        case AVRO_DOUBLE:
                return "double";
        case AVRO_BOOLEAN:
                return "boolean";
        case AVRO_NULL:
                return "null";
        case AVRO_RECORD:
                snprintf(buf, size, "record %s", avro_schema_name(s));
                return buf;
        case AVRO_ENUM:
                snprintf(buf, size, "enum %s", avro_schema_name(s));
                return buf;
        case AVRO_FIXED:
                snprintf(buf, size, "fixed %s", avro_schema_name(s));
                return buf;
        case AVRO_MAP:
                return "map";
        case AVRO_ARRAY:
                return "array";
        case AVRO_UNION:
                return "union";
        case AVRO_LINK:
                break;
        }
        return "?";
}

/* The JSON of a named field's type within a record's JSON, or NULL. */
static json_t *json_field(json_t *record_json, const char *name, json_t **field_obj) {
        json_t *fields =
            json_is_object(record_json) ? json_object_get(record_json, "fields") : NULL;
        size_t i;
        json_t *f;

        *field_obj = NULL;
        json_array_foreach(fields, i, f) {
                json_t *n = json_object_get(f, "name");
                if (json_is_string(n) && !strcmp(json_string_value(n), name)) {
                        *field_obj = f;
                        return json_object_get(f, "type");
                }
        }
        return NULL;
}

static int primitive_promotes(avro_type_t w, avro_type_t r) {
        if (w == r)
                return 1;
        switch (w) {
        case AVRO_INT32:
                return r == AVRO_INT64 || r == AVRO_FLOAT || r == AVRO_DOUBLE;
        case AVRO_INT64:
                return r == AVRO_FLOAT || r == AVRO_DOUBLE;
        case AVRO_FLOAT:
                return r == AVRO_DOUBLE;
        case AVRO_STRING:
                return r == AVRO_BYTES;
        case AVRO_BYTES:
                return r == AVRO_STRING;
        default:
                return 0;
        }
}

static int is_primitive_type(avro_type_t t) {
        return t <= AVRO_NULL; /* AVRO_STRING .. AVRO_NULL in avro/basics.h */
}

static int check(rctx_t *c, avro_schema_t w, avro_schema_t r, json_t *rj, const char *path);

/* Quiet variant for trying union branches: no message on mismatch. */
static int try_check(rctx_t *c, avro_schema_t w, avro_schema_t r, json_t *rj, const char *path) {
        char *saved = c->errstr;
        size_t saved_size = c->errstr_size;
        int ok;

        c->errstr = NULL;
        c->errstr_size = 0;
        ok = check(c, w, r, rj, path);
        c->errstr = saved;
        c->errstr_size = saved_size;
        return ok;
}

static int check_record(rctx_t *c, avro_schema_t w, avro_schema_t r, json_t *rj, const char *path) {
        size_t n = avro_schema_record_size(r);

        for (size_t i = 0; i < n; i++) {
                const char *name = avro_schema_record_field_name(r, (int)i);
                avro_schema_t rf = avro_schema_record_field_get_by_index(r, (int)i);
                /* Not avro_schema_record_field_get(): it dereferences garbage
                 * when the name is missing. */
                int wi = avro_schema_record_field_get_index(w, name);
                avro_schema_t wf = wi < 0 ? NULL : avro_schema_record_field_get_by_index(w, wi);
                json_t *fobj, *ftype = json_field(rj, name, &fobj);
                char sub[256];

                snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", name);
                if (!wf) {
                        if (fobj && json_object_get(fobj, "default"))
                                continue;
                        chorus_seterr(c->errstr, c->errstr_size,
                                      "field %s: missing in the writer schema and has no "
                                      "default in the reader schema",
                                      sub);
                        return 0;
                }
                if (!check(c, wf, rf, ftype, sub))
                        return 0;
        }
        return 1;
}

static int check(rctx_t *c, avro_schema_t w, avro_schema_t r, json_t *rj, const char *path) {
        char wb[160], rb[160];
        avro_type_t wt, rt;
        int ok = 0;

        w = deref(w);
        r = deref(r);
        if (!w || !r)
                return 0;
        wt = avro_typeof(w);
        rt = avro_typeof(r);

        /* Writer union: at least one branch must be readable. */
        if (wt == AVRO_UNION) {
                size_t n = avro_schema_union_size(w);
                for (size_t i = 0; i < n && !ok; i++)
                        ok = try_check(c, avro_schema_union_branch(w, (int)i), r, rj, path);
                if (!ok)
                        chorus_seterr(c->errstr, c->errstr_size,
                                      "field %s: no branch of the writer union can be read "
                                      "as %s",
                                      path, chorus_codec_type_str(r, rb, sizeof(rb)));
                return ok;
        }
        /* Reader union: the writer type must match one branch. */
        if (rt == AVRO_UNION) {
                size_t n = avro_schema_union_size(r);
                for (size_t i = 0; i < n && !ok; i++)
                        ok = try_check(c, w, avro_schema_union_branch(r, (int)i),
                                       json_is_array(rj) ? json_array_get(rj, i) : NULL, path);
                if (!ok)
                        chorus_seterr(c->errstr, c->errstr_size,
                                      "field %s: writer type %s matches no branch of the "
                                      "reader union",
                                      path, chorus_codec_type_str(w, wb, sizeof(wb)));
                return ok;
        }
        if (is_primitive_type(wt) && is_primitive_type(rt)) {
                if (primitive_promotes(wt, rt))
                        return 1;
                goto mismatch;
        }
        if (wt != rt)
                goto mismatch;

        switch (rt) {
        case AVRO_ARRAY:
                return check(c, avro_schema_array_items(w), avro_schema_array_items(r),
                             json_is_object(rj) ? json_object_get(rj, "items") : NULL, path);
        case AVRO_MAP:
                return check(c, avro_schema_map_values(w), avro_schema_map_values(r),
                             json_is_object(rj) ? json_object_get(rj, "values") : NULL, path);
        case AVRO_ENUM:
        case AVRO_FIXED:
        case AVRO_RECORD:
                if (strcmp(avro_schema_name(w), avro_schema_name(r)))
                        goto mismatch;
                if (rt == AVRO_FIXED) {
                        if (avro_schema_fixed_size(w) != avro_schema_fixed_size(r))
                                goto mismatch;
                        return 1;
                }
                if (rt == AVRO_ENUM)
                        return 1;
                for (int i = 0; i < c->depth; i++)
                        if (c->stack[i].w == w && c->stack[i].r == r)
                                return 1; /* recursive: assume compatible */
                if (c->depth >= CHORUS_CODEC_MAX_DEPTH) {
                        chorus_seterr(c->errstr, c->errstr_size,
                                      "field %s: schema nested too deeply", path);
                        return 0;
                }
                c->stack[c->depth].w = w;
                c->stack[c->depth].r = r;
                c->depth++;
                ok = check_record(c, w, r, rj, path);
                c->depth--;
                return ok;
        default:
                break;
        }

mismatch:
        if (*path)
                chorus_seterr(c->errstr, c->errstr_size,
                              "field %s: writer type %s cannot be read as %s", path,
                              chorus_codec_type_str(w, wb, sizeof(wb)),
                              chorus_codec_type_str(r, rb, sizeof(rb)));
        else
                chorus_seterr(c->errstr, c->errstr_size, "writer schema is %s, reader schema is %s",
                              chorus_codec_type_str(w, wb, sizeof(wb)),
                              chorus_codec_type_str(r, rb, sizeof(rb)));
        return 0;
}

chorus_err_t chorus_codec_resolve_check(avro_schema_t writer, avro_schema_t reader,
                                        json_t *reader_json, char *errstr, size_t errstr_size) {
        rctx_t c = {.errstr = errstr, .errstr_size = errstr_size};

        return check(&c, writer, reader, reader_json, "") ? CHORUS_OK : CHORUS_ERR_CONFIG;
}
