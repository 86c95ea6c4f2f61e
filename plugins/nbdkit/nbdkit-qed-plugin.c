/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nbdkit qed plugin: exports a QED image (with its backing chain) over NBD,
 * through libqed: `nbdkit qed disk.qed [readonly=true] [backing=dir|any|false]
 * [backing-dir=DIR] [locking=auto|on|off] [cache=writeback|writethrough|none]`.
 * One image handle serves every connection and request in parallel (libqed
 * is thread-safe); it is opened read-only and made writable by the first
 * connection that may write (qed-nbdkit.h), so that `nbdkit -r` never
 * changes the file.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qed-embed.h"
#include "qed.h"
#include "qed-nbdkit.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Which files an image's backing chain may name (backing=...). */
typedef enum BackingPolicy {
    BACKING_DIR,  /* beneath the image's directory, or backing-dir=DIR (default) */
    BACKING_ANY,  /* any local file or block device, as QEMU */
    BACKING_NONE, /* no backing file: unallocated clusters read as zeros */
} BackingPolicy;

static char *filename;     /* the image; owned */
static bool open_readonly; /* readonly=true */
static BackingPolicy backing_policy = BACKING_DIR;
/* backing-remote=true: the chain may name exports on NBD servers. Off by
 * default: a header is data, and may not make the server connect out. */
static bool backing_remote;
static char *backing_dir;    /* backing-dir=DIR, resolved; owned (malloc) */
static QedLocking locking;   /* locking=auto|on|off */
static unsigned cache_flags; /* QED_OPEN_DIRECT or QED_OPEN_WRITETHROUGH */
static QedExport export;     /* the image every connection shares */

static void qed_plugin_unload(void)
{
    g_free(filename);
    free(backing_dir);
}

static int parse_bool(const char *key, const char *value, bool *out)
{
    int r = nbdkit_parse_bool(value);
    if (r < 0) {
        nbdkit_error("%s=%s: expected a boolean (true or false)", key, value);
        return -1;
    }
    *out = r;
    return 0;
}

/* backing=dir|any|false; true is the boolean of old versions, whose default
 * (follow the backing file) is now dir: an upgrade never widens what an
 * image can reach. */
static int parse_backing(const char *value)
{
    if (strcmp(value, "dir") == 0) {
        backing_policy = BACKING_DIR;
    } else if (strcmp(value, "any") == 0) {
        backing_policy = BACKING_ANY;
    } else {
        int r = nbdkit_parse_bool(value);
        if (r < 0) {
            nbdkit_error("backing=%s: expected dir, any or false (true means dir)", value);
            return -1;
        }
        backing_policy = r ? BACKING_DIR : BACKING_NONE;
    }
    return 0;
}

static int qed_plugin_config(const char *key, const char *value)
{
    if (strcmp(key, "file") == 0) {
        if (qed_name_is_nbd(value)) {
            nbdkit_error("file=%s: the qed plugin serves local files; for an image on an NBD "
                         "server use the filter: nbdkit --filter=qed nbd uri=...",
                         value);
            return -1;
        }
        g_free(filename);
        filename = nbdkit_realpath(value);
        if (!filename) {
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "readonly") == 0) {
        return parse_bool(key, value, &open_readonly);
    }
    if (strcmp(key, "backing") == 0) {
        return parse_backing(value);
    }
    if (strcmp(key, "backing-remote") == 0) {
        return parse_bool(key, value, &backing_remote);
    }
    if (strcmp(key, "backing-dir") == 0) {
        free(backing_dir);
        /* Resolved now: in the background nbdkit works in "/". */
        backing_dir = realpath(value, NULL);
        if (!backing_dir) {
            nbdkit_error("backing-dir=%s: %m", value);
            return -1;
        }
        struct stat st;
        if (stat(backing_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            nbdkit_error("backing-dir=%s: not a directory", value);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "locking") == 0) {
        return qed_nbdkit_parse_locking(value, &locking);
    }
    if (strcmp(key, "cache") == 0) {
        return qed_nbdkit_parse_cache(value, &cache_flags);
    }
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
}

static int qed_plugin_config_complete(void)
{
    if (!filename) {
        nbdkit_error("you must supply the file=<FILENAME> parameter after the plugin name "
                     "on the command line");
        return -1;
    }
    if (backing_dir && backing_policy != BACKING_DIR) {
        nbdkit_error("backing-dir=%s cannot be combined with backing=%s", backing_dir,
                     backing_policy == BACKING_ANY ? "any" : "false");
        return -1;
    }
    return 0;
}

#define qed_plugin_config_help \
    "[file=]<FILENAME>     (required) The QED image to serve.\n" \
    "readonly=true         Open the image read-only.\n" \
    "backing=dir           The backing chain must stay beneath the image's directory\n" \
    "                      (the default).\n" \
    "backing-dir=<DIR>     The backing chain must stay beneath DIR.\n" \
    "backing=any           The backing chain may name any local file (as QEMU).\n" \
    "backing=false         Do not open the backing file (unallocated reads as zeros).\n" \
    "backing-remote=true   The backing chain may name exports on NBD servers\n" \
    "                      (nbd://, nbd+unix://, nbds://; default false).\n" \
    "locking=auto|on|off   Lock the image against other programs, as QEMU (default auto).\n" \
    "cache=writeback|writethrough|none\n" \
    "                      Host cache mode, as QEMU's (default writeback)."

static unsigned backing_flags(void)
{
    unsigned remote = backing_remote ? QED_OPEN_BACKING_REMOTE : 0;
    switch (backing_policy) {
    case BACKING_DIR:
        return QED_OPEN_BACKING_CONFINED | remote;
    case BACKING_ANY:
        return QED_OPEN_BACKING_BLOCK_DEVICES | remote;
    case BACKING_NONE:
        return QED_OPEN_NO_BACKING;
    }
    return 0;
}

/* Opens the image read-only before nbdkit listens, so that every error in
 * it stops the server at startup; the first writable connection switches. */
static int qed_plugin_get_ready(void)
{
    QedOpenOptions opts = {
        .format = "qed", /* never a probed raw disk: this plugin serves QED images */
        .flags = QED_OPEN_READ_ONLY | cache_flags | backing_flags(),
        .locking = locking,
        .backing_dir = backing_dir,
    };
    qed_export_init(&export, open_readonly);
    GError *err = NULL;
    QedImage *img = qed_open(filename, &opts, &err);
    if (!img) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
        return -1;
    }
    qed_export_set_image(&export, img, opts.flags);
    return 0;
}

static void qed_plugin_cleanup(void)
{
    qed_export_close(&export);
}

static void *qed_plugin_open(int readonly)
{
    if (qed_export_connect(&export, readonly) < 0) {
        return NULL;
    }
    return &export; /* every connection shares the one image */
}

static int64_t qed_plugin_get_size(void *handle)
{
    return qed_nbdkit_get_size(handle);
}

/* nbdkit asks only on connections that are not read-only, and only after
 * .open made the image writable (unless readonly=true). nbdkit asks
 * can_trim and can_zero only when can_write said yes. */
static int qed_plugin_can_write(void *handle)
{
    return qed_export_can_write(handle);
}

static int qed_plugin_can_multi_conn(void *handle)
{
    /* One handle for all connections: a flush on any covers all writes. */
    return 1;
}

static int qed_plugin_can_fua(void *handle)
{
    return NBDKIT_FUA_NATIVE;
}

static int qed_plugin_can_cache(void *handle)
{
    return NBDKIT_CACHE_EMULATE;
}

static int qed_plugin_can_trim(void *handle)
{
    return qed_export_can_write(handle);
}

static int qed_plugin_can_zero(void *handle)
{
    return qed_export_can_write(handle);
}

static int qed_plugin_can_fast_zero(void *handle)
{
    return 1; /* zeroing never costs more than writing zeros */
}

static int qed_plugin_can_extents(void *handle)
{
    return 1;
}

static int qed_plugin_pread(void *handle, void *buf, uint32_t count, uint64_t offset,
                            uint32_t flags)
{
    return qed_nbdkit_pread(handle, buf, count, offset);
}

static int qed_plugin_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset,
                             uint32_t flags)
{
    return qed_nbdkit_pwrite(handle, buf, count, offset, flags);
}

static int qed_plugin_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    return qed_nbdkit_zero(handle, count, offset, flags);
}

static int qed_plugin_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    return qed_nbdkit_trim(handle, count, offset, flags);
}

static int qed_plugin_flush(void *handle, uint32_t flags)
{
    return qed_nbdkit_flush(handle);
}

static int qed_plugin_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                              struct nbdkit_extents *extents)
{
    return qed_nbdkit_extents(handle, count, offset, flags, extents);
}

static struct nbdkit_plugin plugin = {
    .name = "qed",
    .longname = "nbdkit QED (QEMU Enhanced Disk) plugin",
    .version = LIBQED_VERSION,
    .description = "Serve a QED disk image, with its backing chain, through libqed.",
    .unload = qed_plugin_unload,
    .config = qed_plugin_config,
    .config_complete = qed_plugin_config_complete,
    .config_help = qed_plugin_config_help,
    .magic_config_key = "file",
    .get_ready = qed_plugin_get_ready,
    .cleanup = qed_plugin_cleanup,
    .open = qed_plugin_open,
    .get_size = qed_plugin_get_size,
    .can_write = qed_plugin_can_write,
    .can_multi_conn = qed_plugin_can_multi_conn,
    .can_fua = qed_plugin_can_fua,
    .can_cache = qed_plugin_can_cache,
    .can_trim = qed_plugin_can_trim,
    .can_zero = qed_plugin_can_zero,
    .can_fast_zero = qed_plugin_can_fast_zero,
    .can_extents = qed_plugin_can_extents,
    .pread = qed_plugin_pread,
    .pwrite = qed_plugin_pwrite,
    .zero = qed_plugin_zero,
    .trim = qed_plugin_trim,
    .flush = qed_plugin_flush,
    .extents = qed_plugin_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)
