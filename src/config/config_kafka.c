/*
 * Routing of the kafka.* passthrough to librdkafka's two clients.
 *
 * Invariants:
 *  - librdkafka, not Chorus, decides what a property is for. The two lists
 *    below are the properties that librdkafka 2.0.2's CONFIGURATION.md (and
 *    rd_kafka_conf_properties_show(), which prints the same table) marks
 *    `C` (consumer only) or `P` (producer only), global and topic-level
 *    properties together, aliases and deprecated names included. Every other
 *    key is `*` (both) or unknown, and goes to both clients, where
 *    rd_kafka_conf_set() judges it. A unit test compares the lists with the
 *    linked librdkafka's own table, so an upgrade that moves a property
 *    fails the build's tests instead of silently misrouting it.
 *  - A property of one client set on the other only earns a librdkafka
 *    warning ("... is a consumer property and will be ignored by this
 *    producer instance"), so sending a key to both would be harmless but
 *    noisy; sending it to the wrong one only would lose it. Unknown keys
 *    therefore go to both.
 *  - Lookups are linear: they run once per key at startup, not per record,
 *    and a linear scan has no ordering invariant to keep.
 */
#include <string.h>

#include "config_int.h"

/* CONFIGURATION.md, librdkafka 2.0.2: properties marked C. */
static const char *const consumer_only[] = {
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "check.crcs",
    "consume.callback.max.messages",
    "consume_cb",
    "coordinator.query.interval.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "group.id",
    "group.instance.id",
    "group.protocol.type",
    "heartbeat.interval.ms",
    "isolation.level",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "offset_commit_cb",
    "partition.assignment.strategy",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "rebalance_cb",
    "session.timeout.ms",
};

/* CONFIGURATION.md, librdkafka 2.0.2: properties marked P. */
static const char *const producer_only[] = {
    "acks",
    "batch.num.messages",
    "batch.size",
    "compression.codec",
    "compression.level",
    "compression.type",
    "delivery.report.only.error",
    "delivery.timeout.ms",
    "dr_cb",
    "dr_msg_cb",
    "enable.gapless.guarantee",
    "enable.idempotence",
    "linger.ms",
    "message.send.max.retries",
    "message.timeout.ms",
    "msg_order_cmp",
    "partitioner",
    "partitioner_cb",
    "produce.offset.report",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queuing.strategy",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "sticky.partitioning.linger.ms",
    "transaction.timeout.ms",
    "transactional.id",
};

static int listed(const char *const *list, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (!strcmp(list[i], key))
                        return 1;
        return 0;
}

chorus_kafka_client_t chorus_conf_kafka_scope(const char *key) {
        if (listed(consumer_only, sizeof(consumer_only) / sizeof(consumer_only[0]), key))
                return CHORUS_KAFKA_CONSUMER;
        if (listed(producer_only, sizeof(producer_only) / sizeof(producer_only[0]), key))
                return CHORUS_KAFKA_PRODUCER;
        return CHORUS_KAFKA_ANY;
}

int chorus_config_kafka_applies(const char *key, chorus_kafka_client_t client) {
        chorus_kafka_client_t scope;

        if (client == CHORUS_KAFKA_ANY)
                return 1;
        scope = chorus_conf_kafka_scope(key);
        return scope == CHORUS_KAFKA_ANY || scope == client;
}

int chorus_config_kafka_kv_applies(const chorus_kv_t *kv, chorus_kafka_client_t client) {
        if (kv->client == CHORUS_KAFKA_ANY)
                return chorus_config_kafka_applies(kv->key, client);
        return kv->client == client;
}

const char *chorus_config_kafka_get(const chorus_config_t *cfg, const char *key,
                                    chorus_kafka_client_t client) {
        const char *value = NULL;

        /* Overrides come after the plain keys, so the last match wins. */
        for (size_t i = 0; i < cfg->n_kafka; i++)
                if (!strcmp(cfg->kafka[i].key, key) &&
                    chorus_config_kafka_kv_applies(&cfg->kafka[i], client))
                        value = cfg->kafka[i].value;
        return value;
}
