/*
 * Private to src/config: the shape of the key table.
 *
 * The table (config_table.c) is the one source of truth for every key: the
 * parser (config.c) finds rows in it, the generic setter stores through the
 * row's offsets, and the reference generator (config_doc.c) prints it. A row
 * whose name holds a `<placeholder>` segment stands for a family of keys
 * (series.<series>.min); the placeholder says which kind of name goes there
 * and which per-name struct the row's offsets point into.
 */
#ifndef CHORUS_CONFIG_INT_H
#define CHORUS_CONFIG_INT_H

#include <stddef.h>

#include "chorus/config.h"

typedef enum conf_type {
        CONF_STRING,   /**< char * (owned), optionally validated by check() */
        CONF_TOPIC,    /**< char[size]: a Kafka topic name */
        CONF_INT,      /**< integer field of `size` bytes, in [min, max] */
        CONF_DOUBLE,   /**< double, in [min, max] (bounds may be exclusive) */
        CONF_ENUM,     /**< integer field of `size` bytes, from `values` */
        CONF_DURATION, /**< int64_t milliseconds: "1d", "1h", "15m", "30s", "500ms", "250" */
        CONF_NAMES,    /**< comma list: chorus_name_t * at off, size_t count at aux_off */
        CONF_KAFKA,    /**< kafka[.consumer|.producer].<key> passthrough, stored in order */
} conf_type_t;

/** Which struct a row's offsets are relative to; fixed by its placeholder. */
typedef enum conf_scope {
        CONF_SCOPE_GLOBAL,  /**< chorus_config_t */
        CONF_SCOPE_SERIES,  /**< chorus_series_conf_t, placeholder <series> */
        CONF_SCOPE_HORIZON, /**< chorus_horizon_conf_t, placeholder <horizon> */
        CONF_SCOPE_SCHEMA,  /**< chorus_schema_conf_t, placeholder <id> */
        CONF_SCOPE_KAFKA,   /**< cfg->kafka, placeholder <key> (the rest of the key);
                             *   the row's `client` says which client the entries are for */
} conf_scope_t;

typedef enum conf_section {
        CONF_SEC_TOPICS,
        CONF_SEC_SCHEMAS,
        CONF_SEC_REDIS,
        CONF_SEC_WINDOWS,
        CONF_SEC_WEIGHTS,
        CONF_SEC_VALIDATION,
        CONF_SEC_MODELS,
        CONF_SEC_SERIES,
        CONF_SEC_BATCH,
        CONF_SEC_LOG,
        CONF_SEC_ALERTS,
        CONF_SEC_ROLLOUT,
        CONF_SEC_WORKER,
        CONF_SEC_HTTP,
        CONF_SEC_KAFKA,
        CONF_SEC__COUNT
} conf_section_t;

/** One allowed value of an enum row. */
typedef struct conf_enum_value {
        const char *name;
        int value;
        const char *note; /**< shown in the docs; e.g. "alias of equal" */
        int rejected;     /**< a known value that is refused, with `note` as the reason */
} conf_enum_value_t;

#define CONF_F_MIN_EXCL 0x1  /**< min is exclusive: (min, ... */
#define CONF_F_MAX_EXCL 0x2  /**< max is exclusive: ..., max) */
#define CONF_F_NO_MAX   0x4  /**< no upper bound */
#define CONF_F_NO_MIN   0x8  /**< no lower bound */
#define CONF_F_AUX      0x10 /**< aux_off is meaningful (has-flag, count, configured name) */
#define CONF_F_SECRET   0x20 /**< never echo the value in messages */

typedef struct conf_prop {
        const char *name; /**< "weights.min_samples", "series.<series>.min" */
        conf_type_t type;
        conf_scope_t scope;
        conf_section_t section;
        size_t off;  /**< field offset in the scope's struct */
        size_t size; /**< field size (integers, enums, topic buffers) */
        /** CONF_DOUBLE: offset of an int "has" flag; CONF_NAMES: offset of the
         *  size_t count; CONF_ENUM: offset of a char[32] that keeps the
         *  value's name as configured. Only with CONF_F_AUX. */
        size_t aux_off;
        int flags;
        double min, max; /**< range; for CONF_NAMES, max is the most names allowed */
        const char *def; /**< default in its string form; NULL: none (unset) */
        const conf_enum_value_t *values; /**< CONF_ENUM: terminated by a NULL name */
        /** Extra check of a string value; writes the reason (no key) to errstr. */
        int (*check)(const char *value, char *errstr, size_t errstr_size);
        /** CONF_KAFKA: the client the row's entries go to (chorus_kv_t.client):
         *  CHORUS_KAFKA_ANY for kafka.<key>, routed by librdkafka's scope of
         *  the key; CHORUS_KAFKA_CONSUMER / _PRODUCER for the overrides. */
        chorus_kafka_client_t client;
        const char *desc; /**< one or more sentences of Markdown */
} conf_prop_t;

typedef struct conf_section_info {
        const char *title;
        const char *intro; /**< Markdown paragraph */
} conf_section_info_t;

extern const conf_prop_t chorus_conf_props[];
extern const size_t chorus_conf_props_cnt;
extern const conf_section_info_t chorus_conf_sections[CONF_SEC__COUNT];

/** Formats a row's range or allowed values ("[1, 1000000]", "`every`, `complete`"). */
void chorus_conf_prop_range(const conf_prop_t *prop, char *buf, size_t size, int markdown);

/** Formats a duration in ms with the largest unit that divides it ("1d", "90m", "1500ms"). */
void chorus_conf_duration_fmt(int64_t ms, char *buf, size_t size);

/** Env var spelling of a row: CHORUS_WEIGHTS_MIN_SAMPLES, CHORUS_SERIES_<series>_MIN. */
void chorus_conf_prop_envname(const conf_prop_t *prop, char *buf, size_t size);

/**
 * librdkafka's scope of property @p key (config_kafka.c):
 * CHORUS_KAFKA_CONSUMER (C), CHORUS_KAFKA_PRODUCER (P), or CHORUS_KAFKA_ANY
 * for a property of both clients (*) or one the table does not know.
 */
chorus_kafka_client_t chorus_conf_kafka_scope(const char *key);

#endif /* CHORUS_CONFIG_INT_H */
