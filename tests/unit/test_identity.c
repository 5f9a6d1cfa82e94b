/*
 * Unit tests of the worker identity (src/worker/identity.c): configured ids,
 * automatic `<hostname>-<n>` slots, their locks, and what frees a slot.
 *
 * Each test works in a fresh temporary lock directory and removes it, so
 * tests neither see each other's locks nor the host's real workers. The
 * kill -9 test forks a child that holds a slot, as a crashed worker would.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "chorus/identity.h"

static char dir[64];
static char host[256];
static char errstr[512];

static void setup(void) {
        snprintf(dir, sizeof(dir), "/tmp/chorus_test_identity_XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(gethostname(host, sizeof(host)), 0);
        host[sizeof(host) - 1] = '\0';
}

static void teardown(void) {
        DIR *d = opendir(dir);
        struct dirent *e;

        if (!d)
                return;
        while ((e = readdir(d))) {
                char path[512];
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                unlink(path);
        }
        closedir(d);
        rmdir(dir);
}

TestSuite(identity, .init = setup, .fini = teardown);

static chorus_identity_t *acquire(const char *configured, const char *group) {
        chorus_identity_t *id;

        errstr[0] = '\0';
        id = chorus_identity_acquire(configured, group, dir, errstr, sizeof(errstr));
        cr_assert_not_null(id, "acquire: %s", errstr);
        return id;
}

static void expect_auto(const chorus_identity_t *id, int n) {
        char want[300];

        snprintf(want, sizeof(want), "%s-%d", host, n);
        cr_assert_eq(chorus_identity_slot(id), n);
        cr_assert_str_eq(chorus_identity_id(id), want);
}

static int file_exists(const char *name) {
        char path[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        return stat(path, &st) == 0;
}

static int count_files(void) {
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        cr_assert_not_null(d);
        while ((e = readdir(d)))
                n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        closedir(d);
        return n;
}

Test(identity, configured_id_is_used_as_is_and_locks_nothing) {
        chorus_identity_t *id = acquire("pod-3", "g");

        cr_assert_str_eq(chorus_identity_id(id), "pod-3");
        cr_assert_eq(chorus_identity_slot(id), -1);
        cr_assert_eq(count_files(), 0);
        chorus_identity_release(id);
        id = acquire("pod-3", NULL); /* the group is not needed */
        chorus_identity_release(id);
}

Test(identity, configured_id_must_be_a_name) {
        static const char *const bad[] = {"a b", "a|b", "__x", "tab\there"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                errstr[0] = '\0';
                cr_assert_null(chorus_identity_acquire(bad[i], "g", dir, errstr, sizeof(errstr)),
                               "%s", bad[i]);
                cr_assert(strstr(errstr, "not a valid name"), "%s", errstr);
        }
}

/* flock() locks belong to the open file description: two acquisitions in
 * one process conflict like two processes, so they get different slots. */
Test(identity, two_live_workers_get_different_slots) {
        chorus_identity_t *a = acquire(NULL, "g");
        chorus_identity_t *b = acquire("", "g");
        chorus_identity_t *c = acquire(NULL, "g");

        expect_auto(a, 0);
        expect_auto(b, 1);
        expect_auto(c, 2);
        cr_assert(file_exists("chorus-g-0.lock"));
        cr_assert(file_exists("chorus-g-2.lock"));
        chorus_identity_release(a);
        chorus_identity_release(b);
        chorus_identity_release(c);
}

Test(identity, release_frees_the_lowest_slot) {
        chorus_identity_t *a = acquire(NULL, "g");
        chorus_identity_t *b = acquire(NULL, "g");

        chorus_identity_release(a);
        a = acquire(NULL, "g");
        expect_auto(a, 0);
        chorus_identity_release(b);
        b = acquire(NULL, "g");
        expect_auto(b, 1);
        chorus_identity_release(a);
        chorus_identity_release(b);
        a = acquire(NULL, "g");
        expect_auto(a, 0);
        chorus_identity_release(a);
        cr_assert(file_exists("chorus-g-1.lock"), "lock files are never removed");
}

Test(identity, groups_have_their_own_slots) {
        chorus_identity_t *a = acquire(NULL, "g1");
        chorus_identity_t *b = acquire(NULL, "g2");

        expect_auto(a, 0);
        expect_auto(b, 0);
        chorus_identity_release(a);
        chorus_identity_release(b);
}

Test(identity, group_id_is_made_a_safe_file_name) {
        chorus_identity_t *a = acquire(NULL, "a/b");
        chorus_identity_t *b = acquire(NULL, "a_b");
        chorus_identity_t *c = acquire(NULL, "../x y%");
        chorus_identity_t *d;
        char big[400];

        expect_auto(a, 0);
        expect_auto(b, 0); /* "a/b" and "a_b" do not share a file */
        expect_auto(c, 0);
        cr_assert(file_exists("chorus-a%2Fb-0.lock"));
        cr_assert(file_exists("chorus-a_b-0.lock"));
        cr_assert(file_exists("chorus-..%2Fx%20y%25-0.lock"));
        cr_assert_eq(count_files(), 3, "nothing written outside the directory");

        memset(big, 'g', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        d = acquire(NULL, big);
        expect_auto(d, 0);
        chorus_identity_release(d);
        cr_assert_eq(count_files(), 4);
        /* A long id is cut and made unique by a hash of the whole id: these
         * two differ only after the cut. */
        big[sizeof(big) - 2] = 'h';
        d = acquire(NULL, big);
        expect_auto(d, 0);
        chorus_identity_release(d);
        cr_assert_eq(count_files(), 5);

        chorus_identity_release(a);
        chorus_identity_release(b);
        chorus_identity_release(c);
}

/* A worker killed by SIGKILL runs no cleanup; the kernel drops its lock,
 * and its replacement gets the same slot, hence the same id. */
Test(identity, killed_worker_frees_its_slot) {
        int ready[2];
        pid_t pid;
        char c;
        int status;
        chorus_identity_t *mine, *again;

        cr_assert_eq(pipe(ready), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                chorus_identity_t *child;
                char e[256];

                close(ready[0]);
                alarm(60); /* never outlive a parent that failed before its kill */
                child = chorus_identity_acquire(NULL, "g", dir, e, sizeof(e));
                c = child && chorus_identity_slot(child) == 0 ? 'y' : 'n';
                if (write(ready[1], &c, 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(ready[1]);
        cr_assert_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        cr_assert_eq(c, 'y', "the child holds slot 0");

        mine = acquire(NULL, "g");
        expect_auto(mine, 1); /* slot 0 is held by a live process */
        chorus_identity_release(mine);

        cr_assert_eq(kill(pid, SIGKILL), 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        again = acquire(NULL, "g");
        expect_auto(again, 0); /* the replacement takes the dead worker's id */
        chorus_identity_release(again);
}

Test(identity, lock_dir_from_the_environment) {
        chorus_identity_t *id;

        /* Criterion runs each test in its own process: setenv stays here. */
        cr_assert_eq(setenv("CHORUS_LOCK_DIR", dir, 1), 0);
        cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/nonexistent-chorus-dir", 1), 0);
        id = chorus_identity_acquire(NULL, "envgroup", NULL, errstr, sizeof(errstr));
        cr_assert_not_null(id, "%s", errstr);
        cr_assert(file_exists("chorus-envgroup-0.lock"), "CHORUS_LOCK_DIR comes first");
        chorus_identity_release(id);

        cr_assert_eq(unsetenv("CHORUS_LOCK_DIR"), 0);
        id = chorus_identity_acquire(NULL, "envgroup", "", errstr, sizeof(errstr));
        cr_assert_null(id, "then XDG_RUNTIME_DIR");
        cr_assert(strstr(errstr, "/nonexistent-chorus-dir/chorus-envgroup-0.lock"), "%s", errstr);
}

Test(identity, errors) {
        char missing[128];

        cr_assert_null(chorus_identity_acquire(NULL, NULL, dir, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "needs the consumer group id"), "%s", errstr);
        cr_assert_null(chorus_identity_acquire("", "", dir, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "needs the consumer group id"), "%s", errstr);

        snprintf(missing, sizeof(missing), "%s/no-such-dir", dir);
        cr_assert_null(chorus_identity_acquire(NULL, "g", missing, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "cannot open lock file") && strstr(errstr, "no-such-dir"), "%s",
                  errstr);

        /* A directory in place of a lock file is refused, not skipped. */
        snprintf(missing, sizeof(missing), "%s/chorus-d-0.lock", dir);
        cr_assert_eq(mkdir(missing, 0700), 0);
        cr_assert_null(chorus_identity_acquire(NULL, "d", dir, errstr, sizeof(errstr)));
        cr_assert(strstr(errstr, "chorus-d-0.lock"), "%s", errstr);
        rmdir(missing);

        chorus_identity_release(NULL);
}
