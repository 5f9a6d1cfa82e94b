/*
 * Chorus error codes.
 *
 * One enum for the whole program. The first block are input errors: each
 * one sends a record to the dead-letter topic, and its code string
 * (chorus_err2code()) is the stable value of the `chorus.error` header,
 * so never rename a code once shipped. The second block are local errors
 * of the process itself (configuration, I/O, servers).
 */
#ifndef CHORUS_ERR_H
#define CHORUS_ERR_H

typedef enum chorus_err {
        CHORUS_OK = 0,

        /* Input errors: the record goes to the dead-letter topic. */
        CHORUS_ERR_BAD_FRAMING,       /**< "bad_framing": no/short Confluent header */
        CHORUS_ERR_UNKNOWN_SCHEMA,    /**< "unknown_schema_id" */
        CHORUS_ERR_WRONG_RECORD_TYPE, /**< "wrong_record_type": id is for another record */
        CHORUS_ERR_MALFORMED,         /**< "malformed_avro": truncated or undecodable */
        CHORUS_ERR_ABSURD_LENGTH,     /**< "absurd_length": a length beyond the buffer or limits */
        CHORUS_ERR_TRAILING_BYTES,    /**< "trailing_bytes": bytes left after the record */
        CHORUS_ERR_INVALID_UTF8,      /**< "invalid_utf8" */
        CHORUS_ERR_INVALID_NAME,      /**< "invalid_name": breaks SPEC §1 naming rules */
        CHORUS_ERR_RESERVED_NAME,     /**< "reserved_name": a well-formed name with the reserved
                                       *   "__" prefix (SPEC §1, e.g. __ensemble__) */
        CHORUS_ERR_NON_FINITE,        /**< "non_finite": NaN or +-Inf */
        CHORUS_ERR_BAD_TIMESTAMP,     /**< "timestamp_out_of_range": outside [1970, 2200) */
        CHORUS_ERR_UNKNOWN_HORIZON,   /**< "unknown_horizon": not in the configured list */
        CHORUS_ERR_BAD_IMPORTANCES,   /**< "invalid_importances": a FeatureImportance whose
                                       *   importances cannot be normalised (a negative one,
                                       *   or a sum that is 0 or overflows) */
        CHORUS_ERR_POISON,            /**< "poison_pill": failed processing too often */

        /* Local errors. */
        CHORUS_ERR_CONFIG,      /**< "config" */
        CHORUS_ERR_INVALID_ARG, /**< "invalid_argument" */
        CHORUS_ERR_NOMEM,       /**< "out_of_memory" */
        CHORUS_ERR_IO,          /**< "io" */
        CHORUS_ERR_REDIS,       /**< "redis": connection or command failed */
        CHORUS_ERR_KAFKA,       /**< "kafka" */
        CHORUS_ERR_STATE,       /**< "state": unexpected reply from a state function */
        CHORUS_ERR_UNSUPPORTED, /**< "unsupported" */

        CHORUS_ERR__COUNT
} chorus_err_t;

/** @returns a one-line human description of @p err (never NULL). */
const char *chorus_err2str(chorus_err_t err);

/** @returns the stable snake_case code of @p err (never NULL), as used in
 *           the `chorus.error` dead-letter header and in metrics labels. */
const char *chorus_err2code(chorus_err_t err);

/** @returns non-zero if @p err is an input error (dead-letter class). */
int chorus_err_is_input(chorus_err_t err);

#endif /* CHORUS_ERR_H */
