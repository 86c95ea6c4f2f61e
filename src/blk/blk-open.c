/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening the file under an image without trusting its name: the name is
 * first resolved to an O_PATH descriptor (which opens nothing, so a FIFO
 * cannot block and a device sees no open), its type checked, and only then
 * is the same inode opened for I/O through /proc/self/fd. With
 * BLK_OPEN_BENEATH the kernel resolves the name beneath a directory
 * (openat2 RESOLVE_BENEATH), so that neither ".." nor a symlink leads out.
 */
#include "blk/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "qed.h"

/* What kind of file st is, as a phrase for messages. */
static const char *file_kind(const struct stat *st)
{
    switch (st->st_mode & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFBLK:
        return "a block device";
    case S_IFCHR:
        return "a character device";
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    case S_IFDIR:
        return "a directory";
    default:
        return "a special file";
    }
}

static int open_error(GError **errp, int err, const char *name, const char *msg)
{
    g_set_error(errp, QED_ERROR, err, "Could not open '%s': %s", name, msg);
    return -err;
}

/* open_error for the errno of the call that just failed. */
static int errno_error(GError **errp, const char *name)
{
    int err = errno;
    return open_error(errp, err, name, g_strerror(err));
}

/* The O_PATH descriptor of path, resolved beneath dirfd when beneath. */
static int open_path(int dirfd, const char *path, bool beneath)
{
    if (!beneath) {
        int fd = openat(dirfd, path, O_PATH | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
    }
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0) {
            return (int)fd;
        }
        /* EAGAIN: a rename raced with the lookup; the kernel asks for a retry. */
        if (errno != EAGAIN || tries == 16) {
            return -errno;
        }
    }
}

/* Refuses what is not a regular file or (unless regular_only) a block
 * device, and O_DIRECT where it cannot work. */
static int check_type(const struct stat *st, const char *name, unsigned flags, GError **errp)
{
    if (S_ISREG(st->st_mode) || (S_ISBLK(st->st_mode) && !(flags & BLK_OPEN_REGULAR_ONLY))) {
        return 0;
    }
    if (S_ISDIR(st->st_mode)) {
        return open_error(errp, EISDIR, name, g_strerror(EISDIR));
    }
    g_autofree char *msg = g_strdup_printf(
        "it is %s, not %s", file_kind(st),
        (flags & BLK_OPEN_REGULAR_ONLY) ? "a regular file" : "a regular file or block device");
    return open_error(errp, S_ISBLK(st->st_mode) ? EPERM : EINVAL, name, msg);
}

/* Creates path (BLK_OPEN_CREATE where nothing exists yet; an existing file
 * is never truncated here: the caller empties it once it holds the locks,
 * so that a file another process holds stays as it was). Nothing is there
 * to block on; should a FIFO appear meanwhile, O_NONBLOCK keeps the open
 * from waiting for it and the type check refuses it. */
static int create_new(int dirfd, const char *path, const char *name, int oflags, unsigned flags,
                      struct stat *st, GError **errp)
{
    int fd = openat(dirfd, path, oflags | O_CREAT | O_NONBLOCK, 0644);
    if (fd < 0) {
        return errno_error(errp, name);
    }
    int ret = fstat(fd, st) < 0 ? errno_error(errp, name) : check_type(st, name, flags, errp);
    /* Back to blocking I/O (keeping O_DIRECT). */
    if (ret == 0 && fcntl(fd, F_SETFL, oflags & O_DIRECT) < 0) {
        ret = errno_error(errp, name);
    }
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

int blk_open_fd(int dirfd, const char *path, const char *name, unsigned flags, struct stat *st,
                GError **errp)
{
    int oflags = O_CLOEXEC | ((flags & BLK_OPEN_READ_ONLY) ? O_RDONLY : O_RDWR) |
                 ((flags & BLK_OPEN_DIRECT) ? O_DIRECT : 0);
    int pfd = open_path(dirfd, path, flags & BLK_OPEN_BENEATH);
    if (pfd == -ENOENT && (flags & BLK_OPEN_CREATE)) {
        return create_new(dirfd, path, name, oflags, flags, st, errp);
    }
    if (pfd == -ENOSYS) {
        return open_error(errp, ENOSYS, name,
                          "the kernel lacks openat2(), which confining the backing chain "
                          "to a directory needs");
    }
    if (pfd < 0) {
        return open_error(errp, -pfd, name, g_strerror(-pfd));
    }
    int ret = fstat(pfd, st) < 0 ? errno_error(errp, name) : check_type(st, name, flags, errp);
    int fd = -1;
    if (ret == 0) {
        /* The inode pfd pins, whatever the name points at by now. */
        char proc[64];
        g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        fd = open(proc, oflags);
        if (fd < 0 && errno == ENOENT) {
            ret = open_error(errp, ENOENT, name,
                             "files are opened through /proc/self/fd, and /proc is not mounted");
        } else if (fd < 0) {
            ret = errno_error(errp, name);
        }
    }
    close(pfd);
    return ret < 0 ? ret : fd;
}
