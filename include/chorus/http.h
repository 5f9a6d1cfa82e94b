/*
 * The worker's HTTP endpoints (SPEC §10), served by libmicrohttpd from its
 * own thread:
 *
 *   GET /metrics   the telemetry's registry, Prometheus text format 0.0.4
 *   GET /healthz   200 "ok" while the worker loop turns; 503 and the reason
 *   GET /readyz    200 "ok" when connected to Kafka and Redis, assigned and
 *                  not backing off; 503 and the reason otherwise (SPEC §9.4)
 *
 * Other paths answer 404, other methods than GET and HEAD 405.
 */
#ifndef CHORUS_HTTP_H
#define CHORUS_HTTP_H

#include <stddef.h>

#include "chorus/err.h"
#include "chorus/telemetry.h"

typedef struct chorus_http_s chorus_http_t;

/**
 * @brief Start serving on @p listen: "host:port" (chorus_hostport_split();
 *        a host name is resolved, port 0 picks a free port).
 * @remark @p tm is borrowed and must outlive the server.
 * @returns NULL with the reason in @p errstr (bad address, address in use).
 */
chorus_http_t *chorus_http_start(const char *listen, chorus_telemetry_t *tm, char *errstr,
                                 size_t errstr_size);

/** @returns the TCP port served (the one picked, for port 0). */
int chorus_http_port(const chorus_http_t *h);

/** @brief Stop serving (joins the server's thread) and free. Accepts NULL. */
void chorus_http_stop(chorus_http_t *h);

#endif /* CHORUS_HTTP_H */
