/*
 * Worker identity (include/chorus/identity.h): a configured worker.id, or
 * `<hostname>-<n>` with n the lowest free instance slot of the group on
 * this host.
 *
 * Invariants:
 *  - A slot is held exactly while the open file description that locked its
 *    file is open. The kernel drops a flock() lock when the last descriptor
 *    of that description closes, which includes the death of the process by
 *    any signal, so there is no pid file, no timestamp and no stale state to
 *    clean up after a crash.
 *  - Slots are tried in order 0, 1, 2, ..., so the id depends only on which
 *    slots are held right now: a replacement started after its predecessor
 *    died reuses a dead worker's slot, and so its id, and its
 *    init_transactions() fences what that worker left open.
 *  - Lock files are created when missing and never unlinked: unlinking a
 *    file that another process has open and is about to lock would let a
 *    third process create a new file of that name and hold the slot too.
 *  - Lock files are opened read-only (flock needs no write access), with
 *    O_NOFOLLOW (no symlink games in /tmp), O_NONBLOCK (a FIFO planted in
 *    its place must not hang the worker) and O_CLOEXEC (a child exec'd by
 *    the worker, such as redis-server in demo mode, must not keep the slot
 *    alive after the worker dies). An existing file is opened without
 *    O_CREAT, which fs.protected_regular refuses for another user's file in
 *    a sticky directory such as /tmp.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chorus/codec.h"
#include "chorus/identity.h"
#include "chorus/util.h"

/* Bytes of the encoded group id in a lock file name; a longer one is cut
 * and suffixed with "~" and a 64-bit hash of the whole id (17 bytes). */
#define GROUP_PART_MAX 128

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

struct chorus_identity_s {
        char id[CHORUS_NAME_MAX + 1];
        int slot; /* -1: configured */
        int fd;   /* the slot's lock, or -1 */
};

/* ====================================================================== */
/* Lock file names                                                        */
/* ====================================================================== */

static const char *default_lock_dir(void) {
        const char *d = getenv("CHORUS_LOCK_DIR");

        if (d && *d)
                return d;
        d = getenv("XDG_RUNTIME_DIR");
        if (d && *d)
                return d;
        return "/tmp";
}

static int safe_byte(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
}

static uint64_t fnv1a64(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= UINT64_C(1099511628211);
        }
        return h;
}

/*
 * The group id as a file name part: bytes outside A-Za-z0-9._- as %XX, so
 * that distinct group ids never share a lock file ('/' cannot escape the
 * directory, and "a/b" and "a_b" stay apart). A part longer than
 * GROUP_PART_MAX is cut and ends in "~<hash>"; a short part never holds '~'
 * (it would be %7E), so the two forms cannot collide. @p buf holds at
 * least GROUP_PART_MAX + 1 bytes.
 */
static void group_part(const char *group, char *buf) {
        static const char hex[] = "0123456789ABCDEF";
        size_t full = 0, o = 0, limit;

        for (const char *p = group; *p; p++)
                full += safe_byte((unsigned char)*p) ? 1 : 3;
        limit = full <= GROUP_PART_MAX ? GROUP_PART_MAX : GROUP_PART_MAX - 17;
        for (const char *p = group; *p; p++) {
                unsigned char c = (unsigned char)*p;
                size_t need = safe_byte(c) ? 1 : 3;

                if (o + need > limit)
                        break;
                if (need == 1) {
                        buf[o++] = (char)c;
                } else {
                        buf[o++] = '%';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 0xF];
                }
        }
        if (full > GROUP_PART_MAX)
                o += (size_t)snprintf(buf + o, GROUP_PART_MAX + 1 - o, "~%016llx",
                                      (unsigned long long)fnv1a64(group));
        buf[o] = '\0';
}

/* ====================================================================== */
/* Locking                                                                */
/* ====================================================================== */

static int open_lock_file(const char *path) {
        const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
        int fd;

        /* Existing file first (see the invariants); create it if missing.
         * The second plain open covers a file another process created
         * between the two. */
        for (int attempt = 0; attempt < 3; attempt++) {
                do
                        fd = open(path, flags);
                while (fd < 0 && errno == EINTR);
                if (fd >= 0 || errno != ENOENT)
                        return fd;
                do
                        fd = open(path, flags | O_CREAT, 0644);
                while (fd < 0 && errno == EINTR);
                if (fd >= 0 || (errno != EEXIST && errno != EACCES))
                        return fd;
        }
        return fd;
}

/* Tries to take slot @p n. @returns the locked fd, -1 if another open file
 * description holds it, or -2 on an error (in @p errstr). */
static int try_slot(const char *dir, const char *part, int n, char *errstr, size_t errstr_size) {
        char path[PATH_MAX];
        struct stat st;
        int fd, len;

        len = snprintf(path, sizeof(path), "%s/chorus-%s-%d.lock", dir, part, n);
        if (len < 0 || (size_t)len >= sizeof(path)) {
                chorus_seterr(errstr, errstr_size,
                              "worker id: lock file path in \"%s\" is too long", dir);
                return -2;
        }
        if ((fd = open_lock_file(path)) < 0) {
                chorus_seterr(errstr, errstr_size, "worker id: cannot open lock file %s: %s", path,
                              strerror(errno));
                return -2;
        }
        if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
                chorus_seterr(errstr, errstr_size, "worker id: lock file %s is not a regular file",
                              path);
                close(fd);
                return -2;
        }
        for (;;) {
                if (!flock(fd, LOCK_EX | LOCK_NB))
                        return fd;
                if (errno != EINTR)
                        break;
        }
        if (errno == EWOULDBLOCK) {
                close(fd);
                return -1;
        }
        chorus_seterr(errstr, errstr_size, "worker id: cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -2;
}

/* ====================================================================== */
/* Public API                                                             */
/* ====================================================================== */

chorus_identity_t *chorus_identity_acquire(const char *configured_id, const char *group_id,
                                           const char *lock_dir, char *errstr, size_t errstr_size) {
        char host[256], part[GROUP_PART_MAX + 1];
        chorus_identity_t *ident;
        int len;

        if (!(ident = calloc(1, sizeof(*ident)))) {
                chorus_seterr(errstr, errstr_size, "worker id: out of memory");
                return NULL;
        }
        ident->fd = -1;
        ident->slot = -1;

        if (configured_id && *configured_id) {
                size_t n = strlen(configured_id);
                if (chorus_name_check(configured_id, n) != CHORUS_OK) {
                        chorus_seterr(errstr, errstr_size,
                                      "worker id: the configured id is not a valid name %s",
                                      chorus_name_rules);
                        goto fail;
                }
                memcpy(ident->id, configured_id, n + 1);
                return ident;
        }

        if (!group_id || !*group_id) {
                chorus_seterr(errstr, errstr_size,
                              "worker id: an automatic id needs the consumer group id");
                goto fail;
        }
        if (gethostname(host, sizeof(host)) || !host[0]) {
                chorus_seterr(errstr, errstr_size,
                              "worker id: cannot read the hostname (%s); set worker.id",
                              strerror(errno));
                goto fail;
        }
        host[sizeof(host) - 1] = '\0';
        if (!lock_dir || !*lock_dir)
                lock_dir = default_lock_dir();
        group_part(group_id, part);

        for (int n = 0; n < CHORUS_IDENTITY_MAX_SLOTS; n++) {
                int fd = try_slot(lock_dir, part, n, errstr, errstr_size);

                if (fd == -1)
                        continue;
                if (fd < 0)
                        goto fail;
                len = snprintf(ident->id, sizeof(ident->id), "%s-%d", host, n);
                if (len < 0 || (size_t)len >= sizeof(ident->id) ||
                    chorus_name_check(ident->id, (size_t)len) != CHORUS_OK) {
                        close(fd);
                        chorus_seterr(errstr, errstr_size,
                                      "worker id: \"<hostname>-%d\" is not a valid name %s; set "
                                      "worker.id",
                                      n, chorus_name_rules);
                        goto fail;
                }
                ident->fd = fd;
                ident->slot = n;
                return ident;
        }
        chorus_seterr(errstr, errstr_size,
                      "worker id: all %d instance slots of group \"%s\" in %s are held by live "
                      "workers; set worker.id",
                      CHORUS_IDENTITY_MAX_SLOTS, part, lock_dir);
fail:
        free(ident);
        return NULL;
}

const char *chorus_identity_id(const chorus_identity_t *identity) {
        return identity->id;
}

int chorus_identity_slot(const chorus_identity_t *identity) {
        return identity->slot;
}

void chorus_identity_release(chorus_identity_t *identity) {
        if (!identity)
                return;
        if (identity->fd >= 0)
                close(identity->fd); /* drops the flock */
        free(identity);
}
