/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbdkit qed filter: the QED driver on top of any nbdkit plugin, so that an
 * image can live on remote storage: `nbdkit --filter=qed PLUGIN ...`.
 * The plugin's disk holds the image file; the filter serves the image's
 * virtual disk. One shared image (and one shared plugin context) serves
 * every connection, so writes from all clients land in one set of tables;
 * as in the plugin it is read-only until a connection may write.
 *
 * Design notes:
 * - nbdkit 1.32 gives a filter the plugin below first in .after_fork (the
 *   backend pointer; .get_ready has none, and a plugin such as nbd or vddk
 *   is not ready for connections before its own .after_fork). By then
 *   nbdkit has bound its sockets, has forked the --run command and, without
 *   -f, has forked into the background (its first process has exited 0).
 *   So every startup error is found and reported there: with -f, nbdkit
 *   prints it and exits nonzero before it accepts a connection.
 * - With --run, the command's process holds a copy of the listening socket,
 *   so a failed server would leave the command's client waiting forever;
 *   stop_listening() refuses it instead.
 * - Requests run in parallel wherever the plugin below allows it: .get_ready
 *   learns the server's thread model and the storage serializes its calls
 *   into the plugin only below PARALLEL (nbdkit-storage.c says why).
 * - libqed is reached through include/qed.h and src/qed-embed.h (an image
 *   opened on storage we bring) only.
 * - The plugin's disk cannot grow (1.32 has no way for a filter to resize
 *   it): the image must fit, and a write that needs more room fails with
 *   ENOSPC (qed-embed.h).
 */
#include <nbdkit-filter.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nbdkit-storage.h"
#include "qed-embed.h"
#include "qed-nbdkit.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *backing_path;   /* qed-backing=PATH: the backing file; owned */
static char *backing_format; /* qed-backing-format=raw|qed; owned */
static bool open_readonly;   /* qed-readonly=true */
static QedExport export;     /* the image in the plugin's disk, shared by all connections */
/* The server's thread model, from .get_ready (the most restrictive of the
 * plugin's and every filter's); until then assume the most restrictive. */
static int server_thread_model = NBDKIT_THREAD_MODEL_SERIALIZE_CONNECTIONS;

static void qed_filter_unload(void)
{
    g_free(backing_path);
    g_free(backing_format);
}

static int qed_filter_config(nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
                             const char *value)
{
    if (strcmp(key, "qed-backing") == 0) {
        g_free(backing_path);
        /* An NBD address stands as given: the operator named it. */
        backing_path = qed_name_is_nbd(value) ? g_strdup(value) : nbdkit_realpath(value);
        return backing_path ? 0 : -1;
    }
    if (strcmp(key, "qed-backing-format") == 0) {
        if (strcmp(value, "raw") != 0 && strcmp(value, "qed") != 0) {
            nbdkit_error("qed-backing-format=%s: expected raw or qed", value);
            return -1;
        }
        g_free(backing_format);
        backing_format = g_strdup(value);
        return 0;
    }
    if (strcmp(key, "qed-readonly") == 0) {
        int r = nbdkit_parse_bool(value);
        if (r < 0) {
            nbdkit_error("qed-readonly=%s: expected a boolean (true or false)", value);
            return -1;
        }
        open_readonly = r;
        return 0;
    }
    return next(nxdata, key, value);
}

#define qed_filter_config_help \
    "qed-backing=<PATH>          The image's backing file: a local path, or an NBD\n" \
    "                            address (nbd://..., nbd+unix:///?socket=...).\n" \
    "qed-backing-format=raw|qed  Its format (default: as the image says, or probe).\n" \
    "qed-readonly=true           Open the image read-only."

/* Is the parent process the nbdkit that forked us to run the --run
 * command (the same program)? */
static bool parent_is_captor(void)
{
    char path[64];
    struct stat self, parent;
    g_snprintf(path, sizeof(path), "/proc/%d/exe", (int)getppid());
    return stat("/proc/self/exe", &self) == 0 && stat(path, &parent) == 0 &&
           self.st_dev == parent.st_dev && self.st_ino == parent.st_ino;
}

/* Before a failed .after_fork under --run: nbdkit 1.32 forked the command
 * after binding its sockets, and that process keeps a copy of each; the
 * command's client would connect to a socket no one accepts on and wait
 * forever. Shutting a listening socket down refuses new connections on
 * every copy (they are one socket); those already queued are accepted and
 * closed, so their clients see the server close. Sockets nbdkit was handed
 * (socket activation) belong to whoever passed them and are left alone:
 * then the parent is not nbdkit. */
static void stop_listening(void)
{
    if (!parent_is_captor()) {
        return;
    }
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        return;
    }
    struct dirent *d;
    while ((d = readdir(dir))) {
        int fd = atoi(d->d_name);
        int listening = 0;
        socklen_t len = sizeof(listening);
        if (d->d_name[0] == '.' || fd == dirfd(dir) ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
            continue;
        }
        shutdown(fd, SHUT_RDWR);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int conn;
        while ((conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            close(conn);
        }
    }
    closedir(dir);
}

/* The plugin's disk must hold the header, the L1 table and every cluster
 * the tables refer to; anything less loses data or metadata. A reference
 * past the end of the disk is an invalid reference to the check. */
static int check_container(QedImage *img, uint64_t size)
{
    QedCheckResult res;
    GError *err = NULL;
    if (qed_check(img, 0, &res, &err) < 0) {
        nbdkit_error("qed: %s", err->message);
        g_error_free(err);
        return -1;
    }
    if (res.corruptions > 0) {
        nbdkit_error("qed: the plugin's disk (%" PRIu64 " bytes) does not hold the image: "
                     "%" PRIu64 " of its references %s past the end of the disk or %s "
                     "invalid (qemu-img check on the image says which)",
                     size, res.corruptions, res.corruptions == 1 ? "leads" : "lead",
                     res.corruptions == 1 ? "is" : "are");
        return -1;
    }
    nbdkit_debug("qed: the plugin's disk has %" PRIu64 " bytes, the image uses %" PRIu64, size,
                 res.image_end_offset);
    return 0;
}

/* Opens the image in a shared context into the plugin (read-only: the
 * first writable connection switches), once, after nbdkit has forked (a
 * context cannot cross the fork). */
static int open_image(nbdkit_backend *backend)
{
    NbdkitStorage *st = nbdkit_storage_open(backend, true, server_thread_model);
    if (!st) {
        return -1;
    }
    uint64_t size = nbdkit_storage_size(st);
    unsigned flags = QED_OPEN_NO_BACKING | QED_OPEN_READ_ONLY;
    GError *err = NULL;
    QedImage *img = qed_open_storage(&nbdkit_storage_ops, st, size, "the plugin's disk", "qed",
                                     flags, &err);
    if (!img) {
        nbdkit_error("qed: %s", err->message);
        g_error_free(err);
        return -1;
    }
    qed_export_set_image(&export, img, flags);
    QedInfo info;
    qed_get_info(img, &info, NULL);
    if (info.backing_file && !backing_path) {
        nbdkit_error("qed: the image has the backing file '%s'; in filter mode give its "
                     "path (or NBD address) with qed-backing=PATH",
                     info.backing_file);
        return -1;
    }
    if (backing_path) {
        const char *fmt = backing_format ? backing_format : info.backing_format;
        if (qed_attach_backing(img, backing_path, fmt, &err) < 0) {
            nbdkit_error("qed: %s", err->message);
            g_error_free(err);
            return -1;
        }
    }
    return check_container(img, size);
}

static int qed_filter_get_ready(int thread_model)
{
    server_thread_model = thread_model;
    return 0;
}

static int qed_filter_after_fork(nbdkit_backend *backend)
{
    qed_export_init(&export, open_readonly);
    if (open_image(backend) < 0) {
        qed_export_close(&export);
        stop_listening();
        return -1;
    }
    return 0;
}

static void qed_filter_cleanup(nbdkit_backend *backend)
{
    qed_export_close(&export);
}

static void *qed_filter_open(nbdkit_next_open *next, nbdkit_context *context, int readonly,
                             const char *exportname, int is_tls)
{
    if (qed_export_connect(&export, readonly) < 0) {
        return NULL;
    }
    /* Requests go to the shared image; the connection's own context of the
     * next layer is opened only because nbdkit expects it. */
    if (next(context, readonly, exportname) < 0) {
        return NULL;
    }
    return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t qed_filter_get_size(nbdkit_next *next, void *handle)
{
    return qed_nbdkit_get_size(&export);
}

static int qed_filter_can_write(nbdkit_next *next, void *handle)
{
    return qed_export_can_write(&export);
}

static int qed_filter_can_flush(nbdkit_next *next, void *handle)
{
    return 1;
}

static int qed_filter_can_trim(nbdkit_next *next, void *handle)
{
    return qed_filter_can_write(next, handle);
}

static int qed_filter_can_zero(nbdkit_next *next, void *handle)
{
    return qed_filter_can_write(next, handle) ? NBDKIT_ZERO_NATIVE : NBDKIT_ZERO_NONE;
}

static int qed_filter_can_fast_zero(nbdkit_next *next, void *handle)
{
    return 1;
}

static int qed_filter_can_extents(nbdkit_next *next, void *handle)
{
    return 1;
}

static int qed_filter_can_fua(nbdkit_next *next, void *handle)
{
    return NBDKIT_FUA_NATIVE;
}

static int qed_filter_can_multi_conn(nbdkit_next *next, void *handle)
{
    return 1;
}

static int qed_filter_can_cache(nbdkit_next *next, void *handle)
{
    return NBDKIT_CACHE_EMULATE;
}

static int qed_filter_pread(nbdkit_next *next, void *handle, void *buf, uint32_t count,
                            uint64_t offset, uint32_t flags, int *err)
{
    int r = qed_nbdkit_pread(&export, buf, count, offset);
    *err = errno;
    return r;
}

static int qed_filter_pwrite(nbdkit_next *next, void *handle, const void *buf, uint32_t count,
                             uint64_t offset, uint32_t flags, int *err)
{
    int r = qed_nbdkit_pwrite(&export, buf, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_flush(nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
    int r = qed_nbdkit_flush(&export);
    *err = errno;
    return r;
}

static int qed_filter_trim(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                           uint32_t flags, int *err)
{
    int r = qed_nbdkit_trim(&export, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_zero(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                           uint32_t flags, int *err)
{
    int r = qed_nbdkit_zero(&export, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_extents(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                              uint32_t flags, struct nbdkit_extents *extents, int *err)
{
    int r = qed_nbdkit_extents(&export, count, offset, flags, extents);
    *err = errno;
    return r;
}

static struct nbdkit_filter filter = {
    .name = "qed",
    .longname = "nbdkit QED (QEMU Enhanced Disk) filter",
    .description = "Serve the virtual disk of a QED image held by any plugin.",
    .unload = qed_filter_unload,
    .config = qed_filter_config,
    .config_help = qed_filter_config_help,
    .get_ready = qed_filter_get_ready,
    .after_fork = qed_filter_after_fork,
    .cleanup = qed_filter_cleanup,
    .open = qed_filter_open,
    .get_size = qed_filter_get_size,
    .can_write = qed_filter_can_write,
    .can_flush = qed_filter_can_flush,
    .can_trim = qed_filter_can_trim,
    .can_zero = qed_filter_can_zero,
    .can_fast_zero = qed_filter_can_fast_zero,
    .can_extents = qed_filter_can_extents,
    .can_fua = qed_filter_can_fua,
    .can_multi_conn = qed_filter_can_multi_conn,
    .can_cache = qed_filter_can_cache,
    .pread = qed_filter_pread,
    .pwrite = qed_filter_pwrite,
    .flush = qed_filter_flush,
    .trim = qed_filter_trim,
    .zero = qed_filter_zero,
    .extents = qed_filter_extents,
};

NBDKIT_REGISTER_FILTER(filter)
