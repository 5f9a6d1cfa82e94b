/*
 * Avro codec: wire framing, bounded decoding, schema resolution, encoding.
 *
 * Decoding a record goes:
 *   framing (Confluent 0x00 + 4-byte big-endian schema id, or bare Avro)
 *   -> writer schema lookup by id (ids come from configuration)
 *   -> a bounds walk over the body that checks every length and block count
 *      against the remaining bytes *before* Avro-C sees them (Avro-C
 *      allocates before it checks, and leaks on errors)
 *   -> Avro-C value-API decode with the writer schema
 *   -> field-by-name mapping into the C struct: fields a newer writer added
 *      are skipped; fields an older writer lacks take the reader's default,
 *      read from the reader schema JSON (Avro-C drops defaults when parsing)
 *   -> input validation (SPEC §1 names, UTF-8, finite values, timestamp bounds).
 *
 * The reader schemas are the .avsc files in schemas/, embedded at build time.
 */
#ifndef CHORUS_CODEC_H
#define CHORUS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "chorus/err.h"
#include "chorus/record.h"

typedef struct chorus_codec_s chorus_codec_t;

typedef enum chorus_framing {
        CHORUS_FRAMING_CONFLUENT = 0, /**< 0x00 + int32be schema id + body */
        CHORUS_FRAMING_BARE = 1,      /**< body only; the topic's schema id is implied */
} chorus_framing_t;

/** A growable byte buffer, used for encoded output. */
typedef struct chorus_buf {
        unsigned char *data;
        size_t len;
        size_t cap;
} chorus_buf_t;

void chorus_buf_reset(chorus_buf_t *buf);   /**< len = 0, keeps memory */
void chorus_buf_destroy(chorus_buf_t *buf); /**< frees memory; buf is reusable after */

/** @returns the record name as in the schema ("Prediction", ...). */
const char *chorus_record_type_name(chorus_record_type_t type);

/** @returns the embedded reader schema JSON for @p type (never NULL). */
const char *chorus_record_schema_json(chorus_record_type_t type);

/**
 * @brief Create a codec with the embedded reader schemas parsed.
 * @returns NULL on failure, with the reason in @p errstr.
 * @remark A codec is NOT thread-safe: it reuses one Avro value per schema and
 *         one memory reader/writer across calls. Use one codec per thread.
 *         Decoded structs and encoded buffers belong to the caller and stay
 *         valid after later calls.
 */
chorus_codec_t *chorus_codec_new(char *errstr, size_t errstr_size);

/** @brief Destroy the codec. Accepts NULL. */
void chorus_codec_destroy(chorus_codec_t *codec);

/**
 * @brief Register writer schema @p schema_json under @p schema_id for @p type.
 *
 * The writer schema must be resolvable to the reader schema of @p type
 * (same record name; every reader field either present in the writer with a
 * promotable type or having a default). A second call for the same id
 * replaces the first.
 *
 * @returns CHORUS_OK, or CHORUS_ERR_CONFIG with the reason in @p errstr.
 */
chorus_err_t chorus_codec_register(chorus_codec_t *codec, int32_t schema_id,
                                   chorus_record_type_t type, const char *schema_json, char *errstr,
                                   size_t errstr_size);

/**
 * @brief Decode one message value into @p out (a struct matching @p type:
 *        chorus_prediction_t, chorus_actual_t, chorus_indicator_t,
 *        chorus_feature_importance_t or chorus_forecast_t). Other types give
 *        CHORUS_ERR_UNSUPPORTED. A FeatureImportance has at most
 *        CHORUS_MAX_FEATURES features (more: CHORUS_ERR_ABSURD_LENGTH), each
 *        name a SPEC §1 name and each value finite; they come out sorted. On
 *        error the content of @p out is unspecified.
 *
 * @param framing   the topic's framing.
 * @param bare_schema_id  for CHORUS_FRAMING_BARE, the writer schema id to assume.
 * @param schema_id_out   if non-NULL, receives the id read or assumed (-1 if none).
 *
 * @returns CHORUS_OK, or an input error (chorus_err_is_input()) with a
 *          human-readable reason in @p errstr. Never crashes on any input.
 */
chorus_err_t chorus_codec_decode(chorus_codec_t *codec, chorus_record_type_t type,
                                 chorus_framing_t framing, int32_t bare_schema_id, const void *data,
                                 size_t len, void *out, int32_t *schema_id_out, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Encode @p rec (struct matching @p type) with the reader schema of
 *        @p type, framed as @p framing with @p schema_id, appending to @p out.
 *
 * Supported types: CHORUS_RECORD_PREDICTION, CHORUS_RECORD_ACTUAL,
 * CHORUS_RECORD_INDICATOR, CHORUS_RECORD_FORECAST.
 *
 * @returns CHORUS_OK or an error with the reason in @p errstr.
 */
chorus_err_t chorus_codec_encode(chorus_codec_t *codec, chorus_record_type_t type,
                                 chorus_framing_t framing, int32_t schema_id, const void *rec,
                                 chorus_buf_t *out, char *errstr, size_t errstr_size);

/**
 * @brief Check a name against SPEC §1: 1..128 bytes of valid UTF-8, no
 *        control characters, no whitespace, no '|', not starting with "__".
 * @returns CHORUS_OK; CHORUS_ERR_INVALID_UTF8; CHORUS_ERR_INVALID_NAME when a
 *          rule is broken; CHORUS_ERR_RESERVED_NAME for an otherwise valid
 *          name that begins with "__" (checked last, so a malformed name is
 *          always CHORUS_ERR_INVALID_NAME).
 */
chorus_err_t chorus_name_check(const char *name, size_t len);

/** The rules of chorus_name_check() in words, parenthesised, for messages:
 *  "(1 to 128 bytes of UTF-8 without whitespace, ...)". */
extern const char chorus_name_rules[];

#endif /* CHORUS_CODEC_H */
