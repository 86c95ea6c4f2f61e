/*
 * nbdkit qed filter: the QED driver on top of any nbdkit plugin, so that an
 * image can live on remote storage: `nbdkit --filter=qed PLUGIN ...`.
 * The plugin's disk holds the image file; the filter serves the image's
 * virtual disk. One shared image (and one shared plugin context) serves
 * every connection, so writes from all clients land in one set of tables.
 */
#include <nbdkit-filter.h>

#include <errno.h>
#include <string.h>

#include "blk-nbdkit.h"
#include "image.h"
#include "qed-nbdkit.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *backing_path;     /* qed-backing=PATH: the backing file; owned */
static char *backing_format;   /* qed-backing-format=raw|qed; owned */
static bool open_readonly;     /* qed-readonly=true */
static nbdkit_next *plugin;    /* the shared context of the next layer */
static QedImage *image;        /* the image in it, shared by all connections */

static void qed_filter_unload(void)
{
    g_free(backing_path);
    g_free(backing_format);
}

static int qed_filter_config(nbdkit_next_config *next, nbdkit_backend *nxdata,
                             const char *key, const char *value)
{
    if (strcmp(key, "qed-backing") == 0) {
        g_free(backing_path);
        backing_path = nbdkit_realpath(value);
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
    "qed-backing=<PATH>          The image's backing file, as a local path.\n" \
    "qed-backing-format=raw|qed  Its format (default: as the image says, or probe).\n" \
    "qed-readonly=true           Open the image read-only."

static void close_all(void)
{
    qed_nbdkit_close(&image);
    if (plugin) {
        plugin->finalize(plugin);
        nbdkit_next_context_close(plugin);
        plugin = NULL;
    }
}

/* Opens the shared plugin context and the image in it, once, after nbdkit
 * has forked (a context cannot cross the fork). */
static int qed_filter_after_fork(nbdkit_backend *backend)
{
    plugin = nbdkit_next_context_open(backend, open_readonly, "", 1);
    if (!plugin) {
        nbdkit_error("qed: could not open the underlying plugin");
        return -1;
    }
    if (plugin->prepare(plugin) < 0) {
        nbdkit_next_context_close(plugin);
        plugin = NULL;
        return -1;
    }
    BlkDev *file = blk_nbdkit_new(plugin, "the plugin's disk", open_readonly);
    if (!file) {
        close_all();
        return -1;
    }
    unsigned flags = QED_OPEN_NO_BACKING | (file->read_only ? QED_OPEN_READ_ONLY : 0);
    GError *err = NULL;
    image = image_open_blk(file, "the plugin's disk", "qed", flags, &err);
    if (!image) {
        nbdkit_error("qed: %s", err->message);
        g_error_free(err);
        close_all();
        return -1;
    }
    QedInfo info;
    qed_get_info(image, &info, NULL);
    if (info.backing_file && !backing_path) {
        nbdkit_error("qed: the image has the backing file '%s'; in filter mode give its "
                     "path with qed-backing=PATH", info.backing_file);
        close_all();
        return -1;
    }
    if (backing_path) {
        const char *fmt = backing_format ? backing_format : info.backing_format;
        if (image_attach_backing(image, backing_path, fmt, &err) < 0) {
            nbdkit_error("qed: %s", err->message);
            g_error_free(err);
            close_all();
            return -1;
        }
    }
    return 0;
}

static void qed_filter_cleanup(nbdkit_backend *backend)
{
    close_all();
}

static void *qed_filter_open(nbdkit_next_open *next, nbdkit_context *context, int readonly,
                             const char *exportname, int is_tls)
{
    /* Requests go to the shared image; the connection's own context of the
     * next layer is opened only because nbdkit expects it. */
    if (next(context, readonly, exportname) < 0) {
        return NULL;
    }
    return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t qed_filter_get_size(nbdkit_next *next, void *handle)
{
    return qed_nbdkit_get_size(image);
}

static int qed_filter_can_write(nbdkit_next *next, void *handle)
{
    return !(image->opts.flags & QED_OPEN_READ_ONLY);
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
    int r = qed_nbdkit_pread(image, buf, count, offset);
    *err = errno;
    return r;
}

static int qed_filter_pwrite(nbdkit_next *next, void *handle, const void *buf, uint32_t count,
                             uint64_t offset, uint32_t flags, int *err)
{
    int r = qed_nbdkit_pwrite(image, buf, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_flush(nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
    int r = qed_nbdkit_flush(image);
    *err = errno;
    return r;
}

static int qed_filter_trim(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                           uint32_t flags, int *err)
{
    int r = qed_nbdkit_trim(image, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_zero(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                           uint32_t flags, int *err)
{
    int r = qed_nbdkit_zero(image, count, offset, flags);
    *err = errno;
    return r;
}

static int qed_filter_extents(nbdkit_next *next, void *handle, uint32_t count,
                              uint64_t offset, uint32_t flags, struct nbdkit_extents *extents,
                              int *err)
{
    int r = qed_nbdkit_extents(image, count, offset, flags, extents);
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
