/*
 * Internal interface of the codec module, shared by codec.c (framing,
 * registry, mapping, encoding), walk.c (the bounds walk), resolve.c (writer
 * to reader compatibility) and names.c (UTF-8 and naming rules). Nothing here
 * is part of the public API in include/chorus/codec.h.
 */
#ifndef CHORUS_CODEC_INT_H
#define CHORUS_CODEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <avro.h>
#include <jansson.h>

#include "chorus/err.h"

/** Deepest nesting of records, arrays, maps and unions the decoder accepts.
 *  Bounds the recursion of both our walk and Avro-C's reader on recursive
 *  schemas (a linked list is otherwise as deep as the message is long). */
#define CHORUS_CODEC_MAX_DEPTH 64

/* ---------------------------------------------------------------------- */
/* Bounds walk (walk.c)                                                    */
/* ---------------------------------------------------------------------- */

/** A writer schema compiled into a flat node table for the bounds walk. */
typedef struct chorus_codec_walk_s chorus_codec_walk_t;

/**
 * @brief Compile @p schema (a writer schema; borrowed, must outlive the walk).
 * @returns NULL on failure (out of memory or an unsupported schema) with the
 *          reason in @p errstr.
 */
chorus_codec_walk_t *chorus_codec_walk_new(avro_schema_t schema, char *errstr, size_t errstr_size);

/** @brief Free a compiled walk. Accepts NULL. */
void chorus_codec_walk_destroy(chorus_codec_walk_t *walk);

/**
 * @brief Check that @p buf holds exactly one well-formed datum of the
 *        compiled schema, with every length, count, index and varint within
 *        bounds. Reads nothing outside [buf, buf+len).
 * @returns CHORUS_OK, CHORUS_ERR_MALFORMED, CHORUS_ERR_ABSURD_LENGTH or
 *          CHORUS_ERR_TRAILING_BYTES, with the reason in @p errstr.
 */
chorus_err_t chorus_codec_walk_check(const chorus_codec_walk_t *walk, const unsigned char *buf,
                                     size_t len, char *errstr, size_t errstr_size);

/* ---------------------------------------------------------------------- */
/* Schema resolution (resolve.c)                                           */
/* ---------------------------------------------------------------------- */

/**
 * @brief Check that data written with @p writer can be read as @p reader
 *        under the Avro resolution rules that the decoder implements.
 * @param reader_json the reader schema as JSON (for field defaults), or NULL.
 * @returns CHORUS_OK or CHORUS_ERR_CONFIG with a message naming the field.
 */
chorus_err_t chorus_codec_resolve_check(avro_schema_t writer, avro_schema_t reader,
                                        json_t *reader_json, char *errstr, size_t errstr_size);

/** @returns a short name of an Avro type ("string", "record Prediction", ...)
 *           into @p buf. */
const char *chorus_codec_type_str(avro_schema_t schema, char *buf, size_t size);

/* ---------------------------------------------------------------------- */
/* Text checks (names.c)                                                   */
/* ---------------------------------------------------------------------- */

/**
 * @brief Validate @p len bytes as UTF-8 (no overlongs, no surrogates, nothing
 *        above U+10FFFF).
 * @returns CHORUS_OK or CHORUS_ERR_INVALID_UTF8 with a reason in @p why
 *          (may be NULL).
 */
chorus_err_t chorus_codec_utf8_check(const char *s, size_t len, char *why, size_t why_size);

/** @brief chorus_name_check() with a reason in @p why (may be NULL). */
chorus_err_t chorus_codec_name_explain(const char *name, size_t len, char *why, size_t why_size);

#include "chorus/util.h"

#endif /* CHORUS_CODEC_INT_H */
