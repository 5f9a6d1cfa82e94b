/*
 * The HTTP endpoints (include/chorus/http.h) on libmicrohttpd.
 *
 * Invariants:
 *  - Requests are served by MHD's internal thread; the handler only reads
 *    the telemetry (atomics, append-only lists), so a scrape never makes
 *    the worker's loop wait, and a stuck loop does not stop /healthz from
 *    answering 503.
 *  - Every response is built, queued and released in the handler: nothing
 *    outlives a request.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "chorus/http.h"
#include "chorus/log.h"
#include "chorus/util.h"

struct chorus_http_s {
        struct MHD_Daemon *d;
        chorus_telemetry_t *tm;
        int port;
};

/* ------------------------------------------------------------------ */
/* Address                                                             */
/* ------------------------------------------------------------------ */

static struct addrinfo *resolve(const char *listen, char *errstr, size_t errstr_size) {
        char host[256], port[8];
        struct addrinfo hints = {0}, *res = NULL;
        int rc;

        if (chorus_hostport_split(listen, host, sizeof(host), port, sizeof(port), errstr,
                                  errstr_size))
                return NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        if ((rc = getaddrinfo(host, port, &hints, &res)) || !res) {
                snprintf(errstr, errstr_size, "cannot resolve %s: %s", host, gai_strerror(rc));
                return NULL;
        }
        return res;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned int status,
                               const char *content_type, void *body, size_t len,
                               enum MHD_ResponseMemoryMode mode) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
        enum MHD_Result ret;

        if (!r) {
                if (mode == MHD_RESPMEM_MUST_FREE)
                        free(body);
                return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned int status,
                                    const char *text) {
        size_t len = strlen(text);
        char *body = malloc(len + 2);

        if (!body)
                return MHD_NO;
        memcpy(body, text, len);
        body[len] = '\n';
        body[len + 1] = '\0';
        return respond(c, status, "text/plain; charset=utf-8", body, len + 1,
                       MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
        chorus_http_t *h = cls;
        char reason[256];
        (void)version;
        (void)upload_data;

        /* The first call only announces the headers; a body (there should
         * be none) arrives in later calls and is ignored. */
        if (!*con_cls) {
                *con_cls = h;
                return MHD_YES;
        }
        if (*upload_data_size) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
                return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
        if (!strcmp(url, "/metrics")) {
                size_t len;
                char *body = chorus_metrics_render(chorus_telemetry_metrics(h->tm), &len);
                return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
                               len, MHD_RESPMEM_MUST_FREE);
        }
        if (!strcmp(url, "/healthz")) {
                int ok = chorus_telemetry_alive(h->tm, reason, sizeof(reason));
                return respond_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, reason);
        }
        if (!strcmp(url, "/readyz")) {
                int ok = chorus_telemetry_ready(h->tm, reason, sizeof(reason));
                return respond_text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, reason);
        }
        return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz");
}

/* MHD's own messages, as log lines. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
        char msg[512];
        size_t n;
        (void)cls;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '"'))
                msg[--n] = '\0';
        for (char *p = msg; *p; p++)
                if (*p == '"')
                        *p = '\'';
        chorus_log_warn("http", "msg=\"%s\"", msg);
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

chorus_http_t *chorus_http_start(const char *listen, chorus_telemetry_t *tm, char *errstr,
                                 size_t errstr_size) {
        chorus_http_t *h = calloc(1, sizeof(*h));
        struct addrinfo *ai;
        unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
        const union MHD_DaemonInfo *info;

        if (!h) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        h->tm = tm;
        if (!(ai = resolve(listen, errstr, errstr_size))) {
                free(h);
                return NULL;
        }
        if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        h->d =
            MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                             NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                             32u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!h->d) {
                snprintf(errstr, errstr_size,
                         "http.listen %s: cannot listen (address in use or not local?)", listen);
                free(h);
                return NULL;
        }
        info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
        h->port = info ? (int)info->port : -1;
        return h;
}

int chorus_http_port(const chorus_http_t *h) {
        return h->port;
}

void chorus_http_stop(chorus_http_t *h) {
        if (!h)
                return;
        if (h->d)
                MHD_stop_daemon(h->d);
        free(h);
}
