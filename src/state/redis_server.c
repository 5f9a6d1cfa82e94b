/*
 * Child redis-server for the demo and the broker-less tests.
 *
 * The port is found by binding port 0 and releasing it; another process
 * could take it in between, so a start that fails is retried on a new port.
 * Readiness is a successful PING, never a sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "chorus/redis_server.h"

int chorus_free_port(void) {
        struct sockaddr_in addr = {0};
        socklen_t len = sizeof(addr);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

        if (fd < 0)
                return -1;
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (!bind(fd, (struct sockaddr *)&addr, sizeof(addr)) &&
            !getsockname(fd, (struct sockaddr *)&addr, &len))
                port = ntohs(addr.sin_port);
        close(fd);
        return port;
}

static int ping(int port) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        redisReply *r;
        int ok = 0;

        if (c && !c->err && (r = redisCommand(c, "PING"))) {
                ok = r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
                freeReplyObject(r);
        }
        if (c)
                redisFree(c);
        return ok;
}

static int start_once(chorus_redis_server_t *srv, const char *bin, char *errstr,
                      size_t errstr_size) {
        char port[16];
        int status;

        srv->port = chorus_free_port();
        if (srv->port < 0) {
                snprintf(errstr, errstr_size, "no free port: %s", strerror(errno));
                return -1;
        }
        snprintf(port, sizeof(port), "%d", srv->port);
        srv->pid = fork();
        if (srv->pid < 0) {
                snprintf(errstr, errstr_size, "fork: %s", strerror(errno));
                return -1;
        }
        if (srv->pid == 0) {
                int devnull = open("/dev/null", O_RDWR);
                if (devnull >= 0) {
                        dup2(devnull, STDIN_FILENO);
                        dup2(devnull, STDOUT_FILENO);
                }
                execlp(bin, bin, "--port", port, "--bind", "127.0.0.1", "--dir", srv->dir, "--save",
                       "", "--appendonly", "no", "--maxmemory-policy", "noeviction", "--loglevel",
                       "warning", (char *)NULL);
                fprintf(stderr, "chorus: cannot run %s: %s\n", bin, strerror(errno));
                _exit(127);
        }
        /* Up to 10 s, checking every 20 ms; a child that exits has failed. */
        for (int i = 0; i < 500; i++) {
                struct timespec ts = {0, 20000000};
                if (ping(srv->port))
                        return 0;
                if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
                        snprintf(errstr, errstr_size, "%s exited during start (status %d)", bin,
                                 status);
                        srv->pid = 0;
                        return -1;
                }
                nanosleep(&ts, NULL);
        }
        snprintf(errstr, errstr_size, "%s did not answer PING on port %d", bin, srv->port);
        chorus_redis_server_stop(srv);
        return -1;
}

int chorus_redis_server_start(chorus_redis_server_t *srv, char *errstr, size_t errstr_size) {
        const char *bin = getenv("CHORUS_TEST_REDIS_SERVER");

        memset(srv, 0, sizeof(*srv));
        if (!bin || !*bin)
                bin = "redis-server";
        snprintf(srv->dir, sizeof(srv->dir), "/tmp/chorus-redis-XXXXXX");
        if (!mkdtemp(srv->dir)) {
                snprintf(errstr, errstr_size, "mkdtemp: %s", strerror(errno));
                return -1;
        }
        for (int attempt = 0; attempt < 3; attempt++)
                if (!start_once(srv, bin, errstr, errstr_size))
                        return 0;
        rmdir(srv->dir);
        return -1;
}

void chorus_redis_server_stop(chorus_redis_server_t *srv) {
        if (srv->pid > 0) {
                int status;
                kill(srv->pid, SIGTERM);
                for (int i = 0; i < 250; i++) {
                        struct timespec ts = {0, 20000000};
                        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
                                srv->pid = 0;
                                break;
                        }
                        nanosleep(&ts, NULL);
                }
                if (srv->pid > 0) {
                        kill(srv->pid, SIGKILL);
                        waitpid(srv->pid, &status, 0);
                }
                srv->pid = 0;
        }
        if (srv->dir[0]) {
                char path[300];
                /* Redis may have written dump.rdb on shutdown despite save "". */
                snprintf(path, sizeof(path), "%s/dump.rdb", srv->dir);
                unlink(path);
                rmdir(srv->dir);
                srv->dir[0] = '\0';
        }
}
