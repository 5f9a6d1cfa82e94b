/*
 * Worker identity: the name a worker instance gives itself, from which its
 * Kafka transactional.id is made (`<group.id>-<worker.id>`).
 *
 * The id must be unique among the live workers of a consumer group (two
 * live producers with one transactional.id fence each other in turn) and
 * stable across restarts of one instance (so that the replacement's
 * init_transactions() fences the predecessor's open transaction at once,
 * instead of the broker waiting for transaction.timeout.ms).
 *
 * A configured id (worker.id) is used as it is. Otherwise the id is
 * `<hostname>-<n>`, where n is the lowest instance slot of the group on this
 * host whose lock file can be locked: the lock lives as long as the process
 * (or until chorus_identity_release()), so a worker killed even by SIGKILL
 * frees its slot, its replacement gets the same n, and two live workers on
 * one host get different n.
 */
#ifndef CHORUS_IDENTITY_H
#define CHORUS_IDENTITY_H

#include <stddef.h>

/** A worker's identity, holding its slot lock if automatic. Opaque. */
typedef struct chorus_identity_s chorus_identity_t;

/** Most automatic instance slots per group and host: n is in [0, 1023]. */
#define CHORUS_IDENTITY_MAX_SLOTS 1024

/**
 * @brief Acquire this worker's identity.
 *
 * With @p configured_id non-empty, the identity is that id (which must be a
 * SPEC §1 name) and nothing is locked. With it NULL or empty, the id is
 * `<hostname>-<n>`: n is the lowest slot in [0, CHORUS_IDENTITY_MAX_SLOTS)
 * whose lock file `<lock_dir>/chorus-<group>-<n>.lock` this call can lock
 * with flock(LOCK_EX | LOCK_NB). `<group>` is @p group_id with every byte
 * outside `A-Za-z0-9._-` written as `%XX` (a long id is cut and suffixed with
 * a hash), so distinct groups never share a file. Lock files are created
 * when missing and never removed: removing one while another process waits
 * to lock it would let two processes hold "the same" slot.
 *
 * @param configured_id  worker.id, or NULL / "" for automatic.
 * @param group_id       the consumer group (group.id); required when
 *                       automatic, unused otherwise.
 * @param lock_dir       directory of the lock files; NULL or "" means
 *                       $CHORUS_LOCK_DIR, else $XDG_RUNTIME_DIR, else /tmp.
 *                       Workers that must not share an id must share it.
 *
 * @returns a new identity, owned by the caller (chorus_identity_release()),
 *          or NULL with the reason in @p errstr: an invalid configured id,
 *          no group id, a hostname that does not make a valid name, a lock
 *          file that cannot be opened or locked, or every slot taken.
 *
 * @remark The lock is held by an open file description that is not
 *         inherited across exec (O_CLOEXEC). flock() locks belong to the
 *         open file description, so two acquisitions in one process also
 *         get different slots. A child that fork()s and does not exec
 *         shares the description, and so keeps the slot held until it exits.
 */
chorus_identity_t *chorus_identity_acquire(const char *configured_id, const char *group_id,
                                           const char *lock_dir, char *errstr, size_t errstr_size);

/** @returns the worker id (valid until release; never NULL). */
const char *chorus_identity_id(const chorus_identity_t *identity);

/** @returns the automatic instance slot n, or -1 for a configured id. */
int chorus_identity_slot(const chorus_identity_t *identity);

/** @brief Drop the slot lock (if any) and free. Accepts NULL. */
void chorus_identity_release(chorus_identity_t *identity);

#endif /* CHORUS_IDENTITY_H */
