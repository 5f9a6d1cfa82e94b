/*
 * A private redis-server child process on a free loopback port, for the
 * demo and the broker-less tests. Not used by `chorus run`.
 */
#ifndef CHORUS_REDIS_SERVER_H
#define CHORUS_REDIS_SERVER_H

#include <sys/types.h>

typedef struct chorus_redis_server {
        pid_t pid;
        int port;
        char dir[256]; /**< temporary working directory, removed on stop */
} chorus_redis_server_t;

/**
 * @brief Start `redis-server` (from $CHORUS_TEST_REDIS_SERVER or PATH) on a free
 *        127.0.0.1 port, with no persistence, and wait until it answers PING.
 * @returns 0, or -1 with the reason in @p errstr.
 */
int chorus_redis_server_start(chorus_redis_server_t *srv, char *errstr, size_t errstr_size);

/** @brief Stop the server (SIGTERM, then SIGKILL) and remove its directory. */
void chorus_redis_server_stop(chorus_redis_server_t *srv);

/** @returns a free TCP port on 127.0.0.1, or -1. */
int chorus_free_port(void);

#endif /* CHORUS_REDIS_SERVER_H */
