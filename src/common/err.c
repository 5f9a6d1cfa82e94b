/*
 * Error code table. Code strings are a wire contract (dead-letter headers,
 * metrics labels): append, never rename.
 */
#include "chorus/err.h"

static const struct {
        const char *code;
        const char *desc;
} err_table[CHORUS_ERR__COUNT] = {
    [CHORUS_OK] = {"ok", "Success"},
    [CHORUS_ERR_BAD_FRAMING] = {"bad_framing", "Missing or short Confluent wire-format header"},
    [CHORUS_ERR_UNKNOWN_SCHEMA] = {"unknown_schema_id", "Schema id is not configured"},
    [CHORUS_ERR_WRONG_RECORD_TYPE] = {"wrong_record_type",
                                      "Schema id belongs to another record type"},
    [CHORUS_ERR_MALFORMED] = {"malformed_avro", "Avro body is truncated or undecodable"},
    [CHORUS_ERR_ABSURD_LENGTH] = {"absurd_length",
                                  "A length exceeds the buffer or the configured limit"},
    [CHORUS_ERR_TRAILING_BYTES] = {"trailing_bytes", "Bytes left over after the record"},
    [CHORUS_ERR_INVALID_UTF8] = {"invalid_utf8", "String is not valid UTF-8"},
    [CHORUS_ERR_INVALID_NAME] = {"invalid_name", "Name breaks the naming rules"},
    [CHORUS_ERR_RESERVED_NAME] = {"reserved_name",
                                  "Name begins with \"__\", which is reserved for internal use"},
    [CHORUS_ERR_NON_FINITE] = {"non_finite", "Value is NaN or infinite"},
    [CHORUS_ERR_BAD_TIMESTAMP] = {"timestamp_out_of_range",
                                  "Timestamp before 1970-01-01 or at/after 2200-01-01"},
    [CHORUS_ERR_UNKNOWN_HORIZON] = {"unknown_horizon", "Horizon is not in the configured list"},
    [CHORUS_ERR_BAD_IMPORTANCES] = {"invalid_importances",
                                    "Feature importances cannot be normalised to sum to 1"},
    [CHORUS_ERR_POISON] = {"poison_pill", "Record failed processing too many times"},
    [CHORUS_ERR_CONFIG] = {"config", "Configuration error"},
    [CHORUS_ERR_INVALID_ARG] = {"invalid_argument", "Invalid argument"},
    [CHORUS_ERR_NOMEM] = {"out_of_memory", "Out of memory"},
    [CHORUS_ERR_IO] = {"io", "I/O error"},
    [CHORUS_ERR_REDIS] = {"redis", "Redis connection or command failed"},
    [CHORUS_ERR_KAFKA] = {"kafka", "Kafka error"},
    [CHORUS_ERR_STATE] = {"state", "Unexpected reply from a state function"},
    [CHORUS_ERR_UNSUPPORTED] = {"unsupported", "Not supported"},
};

const char *chorus_err2str(chorus_err_t err) {
        if ((unsigned)err >= CHORUS_ERR__COUNT)
                return "Unknown error";
        return err_table[err].desc;
}

const char *chorus_err2code(chorus_err_t err) {
        if ((unsigned)err >= CHORUS_ERR__COUNT)
                return "unknown";
        return err_table[err].code;
}

int chorus_err_is_input(chorus_err_t err) {
        return err >= CHORUS_ERR_BAD_FRAMING && err <= CHORUS_ERR_POISON;
}
