/*
 * nbdkit qed plugin: exports a QED image (with its backing chain) over NBD,
 * through libqed. `nbdkit qed disk.qed [readonly=true] [backing=false]
 * [cache=writeback|writethrough|none]`. One image handle serves every
 * connection and request in parallel (libqed is thread-safe).
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <string.h>

#include "qed.h"
#include "qed-nbdkit.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *filename;        /* the image; owned */
static bool open_readonly;    /* readonly=true */
static bool follow_backing = true;
static unsigned cache_flags;  /* QED_OPEN_DIRECT or QED_OPEN_WRITETHROUGH */
static QedImage *image;       /* opened in get_ready, shared by all connections */

static void qed_plugin_unload(void)
{
    g_free(filename);
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

static int qed_plugin_config(const char *key, const char *value)
{
    if (strcmp(key, "file") == 0) {
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
        return parse_bool(key, value, &follow_backing);
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
    return 0;
}

#define qed_plugin_config_help \
    "[file=]<FILENAME>     (required) The QED image to serve.\n" \
    "readonly=true         Open the image read-only.\n" \
    "backing=false         Do not open the backing file (unallocated reads as zeros).\n" \
    "cache=writeback|writethrough|none\n" \
    "                      Host cache mode, as QEMU's (default writeback)."

static int qed_plugin_get_ready(void)
{
    QedOpenOptions opts = {
        .flags = cache_flags | (open_readonly ? QED_OPEN_READ_ONLY : 0) |
                 (follow_backing ? 0 : QED_OPEN_NO_BACKING),
    };
    GError *err = NULL;
    image = qed_open(filename, &opts, &err);
    if (!image) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
        return -1;
    }
    return 0;
}

static void qed_plugin_cleanup(void)
{
    qed_nbdkit_close(&image);
}

static void *qed_plugin_open(int readonly)
{
    return image; /* every connection shares the one handle */
}

static int64_t qed_plugin_get_size(void *handle)
{
    return qed_nbdkit_get_size(handle);
}

static int qed_plugin_can_write(void *handle)
{
    return !open_readonly;
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
    return !open_readonly;
}

static int qed_plugin_can_zero(void *handle)
{
    return !open_readonly;
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
