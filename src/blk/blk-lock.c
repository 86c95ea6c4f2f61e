/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image locking that QEMU honours: the byte-range locks QEMU's file driver
 * takes on an image file, taken the same way on the same bytes, so that QEMU
 * and libqed refuse each other exactly as QEMU refuses itself.
 *
 * Design notes:
 * - Bit i of a permission set (BLK_PERM_*) is byte 100+i of the file ("I use
 *   permission i") and byte 200+i ("I do not share permission i"). Every
 *   lock taken is shared (F_RDLCK), so taking one never conflicts and the
 *   file's data is never locked against I/O; a conflict is found by asking
 *   (F_OFD_GETLK with an exclusive lock) whether any other holder has the
 *   opposite byte: 200+i for a permission we want, 100+i for one we will not
 *   share.
 * - The locks are OFD locks: they belong to the open file description, not
 *   to the process. Two descriptors opened by one process conflict like two
 *   processes (a second writable qed_open of an image fails), a forked child
 *   keeps them (nbdkit forks after opening), and closing some other
 *   descriptor of the same file drops nothing.
 * - A change of set takes the union of the old and the new bytes first,
 *   then tests, then drops what the new set does not need (or, on a
 *   conflict, what the old one did not have): the file is never without the
 *   locks of either set in between. A set that only drops permissions is
 *   not tested, as in QEMU, so going read-only cannot fail on a conflict.
 * - A reopen opens a new descriptor (a new open file description, whose
 *   test would see our old descriptor's bytes as somebody else's). So the
 *   set is changed and tested on the old descriptor, blk_lock_copy() puts
 *   the same bytes on the new one, and only then is the old one closed.
 * Only open, reopen and create come here; the I/O paths never do.
 */
#include "blk/blk.h"

#include <errno.h>
#include <fcntl.h>

#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
#define LOCK_PERM_COUNT 4

G_STATIC_ASSERT(BLK_PERM_ALL == (1u << LOCK_PERM_COUNT) - 1);

/* QEMU's names of the permissions, as its messages spell them. */
static const char *const perm_names[LOCK_PERM_COUNT] = {
    "consistent read",
    "write",
    "write unchanged",
    "resize",
};

/* Takes (F_RDLCK) or releases (F_UNLCK) one byte for the open file
 * description of fd. */
static int lock_byte(int fd, short type, int byte)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
    };
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* 0 when no other open file description holds byte; -EAGAIN when one does. */
static int test_byte(int fd, int byte)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
    };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        return -errno;
    }
    return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
}

/* Moves the bytes base+i that fd holds from the bits *have to the bits
 * want, keeping *have true to what is held at every step. On failure *byte
 * is the byte that could not be locked or unlocked. */
static int move_bytes(int fd, int base, unsigned *have, unsigned want, int *byte)
{
    for (int i = 0; i < LOCK_PERM_COUNT; i++) {
        unsigned bit = 1u << i;
        if (!(want & bit) == !(*have & bit)) {
            continue;
        }
        int ret = lock_byte(fd, (want & bit) ? F_RDLCK : F_UNLCK, base + i);
        if (ret < 0) {
            *byte = base + i;
            return ret;
        }
        *have ^= bit;
    }
    return 0;
}

/* Makes fd hold exactly the bytes of (perm, unshared); *held follows. */
static int set_bytes(int fd, BlkLockState *held, unsigned perm, unsigned unshared, int *byte)
{
    int ret = move_bytes(fd, LOCK_PERM_BASE, &held->perm, perm, byte);
    if (ret < 0) {
        return ret;
    }
    return move_bytes(fd, LOCK_SHARED_BASE, &held->unshared, unshared, byte);
}

/* The errors of a file system (or kernel) without OFD locks. */
static bool locks_unsupported(int ret)
{
    return ret == -EINVAL || ret == -ENOLCK || ret == -EOPNOTSUPP;
}

/* "<what>" or "<what>: <strerror>": as QEMU, a conflict (EAGAIN, EACCES)
 * is not explained further. */
static char *lock_message(int ret, const char *what)
{
    if (ret == -EAGAIN || ret == -EACCES) {
        return g_strdup(what);
    }
    return g_strdup_printf("%s: %s", what, g_strerror(-ret));
}

/* Tests bytes base+i for the bits of bits; on a conflict sets QEMU's
 * message (format names the permission) and returns -EAGAIN. */
static int test_bytes(int fd, int base, unsigned bits, const char *format, const char *filename,
                      GError **errp)
{
    for (int i = 0; i < LOCK_PERM_COUNT; i++) {
        if (!(bits & (1u << i))) {
            continue;
        }
        int ret = test_byte(fd, base + i);
        if (ret < 0) {
            g_autofree char *what = g_strdup_printf(format, perm_names[i]);
            g_autofree char *msg = lock_message(ret, what);
            g_set_error(errp, QED_ERROR, -ret, "%s\nIs another process using the image [%s]?", msg,
                        filename);
            return ret;
        }
    }
    return 0;
}

int blk_lock_fd(int fd, BlkLockState *held, const char *filename, unsigned perm, unsigned shared,
                QedLocking mode, GError **errp)
{
    unsigned unshared = BLK_PERM_ALL & ~shared;
    int byte = 0, ignored;

    if (mode == QED_LOCKING_OFF || held->unsupported) {
        return 0;
    }
    BlkLockState old = *held;
    int ret = set_bytes(fd, held, old.perm | perm, old.unshared | unshared, &byte);
    if (ret < 0) {
        set_bytes(fd, held, old.perm, old.unshared, &ignored);
        if (mode == QED_LOCKING_AUTO && locks_unsupported(ret) && !old.perm && !old.unshared) {
            held->unsupported = true; /* as QEMU's auto where OFD locks are missing */
            return 0;
        }
        g_autofree char *what = g_strdup_printf("Failed to lock byte %d", byte);
        g_autofree char *msg = lock_message(ret, what);
        bool hint = mode == QED_LOCKING_ON && locks_unsupported(ret);
        g_set_error(errp, QED_ERROR, -ret, "%s%s", msg,
                    hint ? "\nThe file system does not support OFD locks (locking=on)" : "");
        return ret;
    }
    /* Whoever holds byte 200+i refuses our permission i; whoever holds
     * 100+i needs the permission i that we refuse to share. */
    if ((perm & ~old.perm) || (unshared & ~old.unshared)) {
        ret = test_bytes(fd, LOCK_SHARED_BASE, perm, "Failed to get \"%s\" lock", filename, errp);
        if (ret == 0) {
            ret = test_bytes(fd, LOCK_PERM_BASE, unshared, "Failed to get shared \"%s\" lock",
                             filename, errp);
        }
        if (ret < 0) {
            set_bytes(fd, held, old.perm, old.unshared, &ignored);
            return ret;
        }
    }
    /* Only unlocks are left: should one fail, the byte stays locked, which
     * restricts others more than needed but never lets a conflict through. */
    set_bytes(fd, held, perm, unshared, &ignored);
    return 0;
}

int blk_lock_copy(const BlkLockState *held, int new_fd)
{
    BlkLockState fresh = { .unsupported = held->unsupported };
    int byte;

    return set_bytes(new_fd, &fresh, held->perm, held->unshared, &byte);
}

int blk_lock(BlkDev *dev, unsigned perm, unsigned shared, QedLocking mode, GError **errp)
{
    if (!dev->ops->lock) {
        return 0; /* memory, an nbdkit plugin: no file of ours to lock */
    }
    return dev->ops->lock(dev, perm, shared, mode, errp);
}
