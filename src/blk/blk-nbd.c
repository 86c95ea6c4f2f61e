/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A blk device on an NBD export, through libnbd: the file under an image
 * may be "nbd://host[:port]/export", "nbd+unix:///export?socket=PATH",
 * "nbds://..." (TLS) or QEMU's older "nbd:HOST:PORT" / "nbd:unix:PATH"
 * spellings (blk_nbd_uri() turns those into URIs).
 *
 * Design notes:
 * - An export is a container of fixed size (BlkDev.fixed_length), like a
 *   block device: a QED image in it allocates inside it, and a write past
 *   its end fails with ENOSPC. The size is read at connect; a later
 *   connection that finds another size fails its request (-EIO, and the
 *   message says the size changed).
 * - libnbd's synchronous calls hold their handle for the whole request, so
 *   parallel requests need several connections: a pool that grows on
 *   demand up to NBD_MAX_CONNS when the server advertises multi-conn (its
 *   promise that a flush on one connection covers writes completed on all)
 *   or when we only read. Otherwise one connection carries every request,
 *   one at a time.
 * - A connection that dies (server gone) is dropped from the pool with the
 *   idle ones; the next request connects anew, so a server that comes back
 *   serves later requests, and a read is tried once more at once. A
 *   writable device fails instead (blk_set_failed): what the lost server
 *   had acknowledged but not flushed may be gone, and no later flush may
 *   call it safe. Reopening the image starts afresh.
 * - Names that come from an image header (BLK_NBD_UNTRUSTED) may not make
 *   libnbd read local files (TLS key files in the query string); the
 *   caller's own names may.
 */
#include "blk/blk.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#ifdef HAVE_LIBNBD
#include <libnbd.h>
#endif

bool blk_nbd_name(const char *name)
{
    static const char *const schemes[] = { "nbd://",  "nbd+tcp://",   "nbd+unix://",
                                           "nbds://", "nbds+unix://", "nbd:" };
    for (size_t i = 0; i < G_N_ELEMENTS(schemes); i++) {
        if (g_ascii_strncasecmp(name, schemes[i], strlen(schemes[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* QEMU's legacy "nbd:unix:PATH[:exportname=E]" or "nbd:HOST:PORT[:exportname=E]"
 * as a URI, or NULL when rest (past "nbd:") is neither. */
static char *legacy_uri(const char *rest)
{
    g_autofree char *spec = g_strdup(rest);
    const char *export = "";
    char *ex = strstr(spec, ":exportname=");
    if (ex) {
        *ex = '\0';
        export = ex + strlen(":exportname=");
    }
    g_autofree char *export_esc = g_uri_escape_string(export, "/", FALSE);
    if (g_str_has_prefix(spec, "unix:")) {
        const char *path = spec + strlen("unix:");
        if (!*path) {
            return NULL;
        }
        g_autofree char *path_esc = g_uri_escape_string(path, "/", FALSE);
        return g_strdup_printf("nbd+unix:///%s?socket=%s", export_esc, path_esc);
    }
    char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1] ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return NULL;
    }
    *colon = '\0';
    /* An IPv6 address must be in brackets in a URI. */
    bool v6 = strchr(spec, ':') && spec[0] != '[';
    return g_strdup_printf("nbd://%s%s%s:%s/%s", v6 ? "[" : "", spec, v6 ? "]" : "", colon + 1,
                           export_esc);
}

char *blk_nbd_uri(const char *name, GError **errp)
{
    if (g_ascii_strncasecmp(name, "nbd+tcp://", strlen("nbd+tcp://")) == 0) {
        return g_strconcat("nbd://", name + strlen("nbd+tcp://"), NULL);
    }
    if (strstr(name, "://")) {
        return g_strdup(name);
    }
    char *uri = legacy_uri(name + strlen("nbd:"));
    if (!uri) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "Could not open '%s': not an NBD address (nbd:HOST:PORT, nbd:unix:PATH, "
                    "or a URI such as nbd://HOST/EXPORT)",
                    name);
    }
    return uri;
}

#ifdef HAVE_LIBNBD

enum { NBD_MAX_CONNS = 8 };

typedef struct BlkNbd {
    BlkDev dev;
    char *uri;
    bool untrusted;
    uint64_t size;
    bool can_flush, can_zero, multi_conn, server_ro, base_allocation;
    /* The pool: idle connections, how many exist, how many may. */
    GMutex lock;
    GCond freed;
    GPtrArray *idle;
    unsigned conns, max_conns;
    char *last_error; /* libnbd's message of the last failed call (under lock) */
} BlkNbd;

static BlkNbd *to_nbd(BlkDev *dev)
{
    return (BlkNbd *)dev;
}

/* libnbd's errno for the call that just failed (EIO when it has none),
 * remembering its message for blk_nbd_last_error(). */
static int nbd_failure(BlkNbd *n)
{
    int err = nbd_get_errno();
    const char *msg = nbd_get_error();
    g_mutex_lock(&n->lock);
    g_free(n->last_error);
    n->last_error = g_strdup(msg ? msg : "unknown error");
    g_mutex_unlock(&n->lock);
    return -(err > 0 ? err : EIO);
}

/* A new connection to the export at uri (called name in messages), or NULL
 * with *errp set. */
static struct nbd_handle *connect_one(const char *uri, const char *name, bool untrusted,
                                      GError **errp)
{
    struct nbd_handle *h = nbd_create();
    if (!h) {
        g_set_error(errp, QED_ERROR, ENOMEM, "Could not open '%s': %s", name, nbd_get_error());
        return NULL;
    }
    nbd_set_uri_allow_local_file(h, !untrusted);
    nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX);
    nbd_set_handle_name(h, "libqed");
    nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION);
    if (nbd_connect_uri(h, uri) < 0) {
        int err = nbd_get_errno();
        g_set_error(errp, QED_ERROR, err > 0 ? err : EIO, "Could not open '%s': %s", name,
                    nbd_get_error());
        nbd_close(h);
        return NULL;
    }
    return h;
}

/* Takes a connection for one request: an idle one, a new one while the
 * pool may grow, or waits for one. Returns -errno when a needed connection
 * cannot be made. */
static int take_conn(BlkNbd *n, struct nbd_handle **hp)
{
    g_mutex_lock(&n->lock);
    while (n->idle->len == 0 && n->conns >= n->max_conns) {
        g_cond_wait(&n->freed, &n->lock);
    }
    if (n->idle->len > 0) {
        *hp = g_ptr_array_steal_index(n->idle, n->idle->len - 1);
        g_mutex_unlock(&n->lock);
        return 0;
    }
    n->conns++;
    g_mutex_unlock(&n->lock);

    GError *err = NULL;
    struct nbd_handle *h = connect_one(n->uri, n->dev.filename, n->untrusted, &err);
    int ret = 0;
    if (!h) {
        ret = -err->code;
    } else if ((uint64_t)nbd_get_size(h) != n->size) {
        g_set_error(&err, QED_ERROR, EIO,
                    "the export's size changed from %" G_GUINT64_FORMAT " to %" PRId64 " bytes",
                    n->size, nbd_get_size(h));
        nbd_close(h);
        h = NULL;
        ret = -EIO;
    }
    g_mutex_lock(&n->lock);
    if (!h) {
        n->conns--;
        g_free(n->last_error);
        n->last_error = g_strdup(err->message);
        g_cond_signal(&n->freed);
    }
    g_mutex_unlock(&n->lock);
    g_clear_error(&err);
    *hp = h;
    return ret;
}

/* Returns a connection to the pool, or drops it when it died, with the idle
 * ones (the server is likely gone: they would fail their next request too).
 * Returns whether it died. A writable device then fails (blk.c): writes
 * the server acknowledged but had not flushed may be lost with it, and a
 * flush on a new connection must not report them safe. */
static bool give_conn(BlkNbd *n, struct nbd_handle *h)
{
    bool dead = nbd_aio_is_dead(h) || nbd_aio_is_closed(h);
    GPtrArray *drop = g_ptr_array_new();
    if (dead) {
        g_ptr_array_add(drop, h);
    }
    g_mutex_lock(&n->lock);
    if (dead) {
        while (n->idle->len > 0) {
            g_ptr_array_add(drop, g_ptr_array_steal_index(n->idle, n->idle->len - 1));
        }
        n->conns -= drop->len;
    } else {
        g_ptr_array_add(n->idle, h);
    }
    g_cond_broadcast(&n->freed);
    g_mutex_unlock(&n->lock);
    for (guint i = 0; i < drop->len; i++) {
        nbd_close(g_ptr_array_index(drop, i));
    }
    g_ptr_array_free(drop, TRUE);
    if (dead && !n->dev.read_only) {
        blk_set_failed(&n->dev);
    }
    return dead;
}

/* Requests are split so that none exceeds what every server accepts. */
enum { NBD_MAX_REQUEST = 32 * 1024 * 1024 };

static int nbd_blk_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    BlkNbd *n = to_nbd(dev);
    size_t avail = offset < n->size ? (size_t)MIN(len, n->size - offset) : 0;
    memset((uint8_t *)buf + avail, 0, len - avail);
    if (avail == 0) {
        return 0;
    }
    /* A read whose connection died is tried once more on a new one: the
     * server may have come back (or only that connection broke). */
    for (int attempt = 0;; attempt++) {
        struct nbd_handle *h;
        int ret = take_conn(n, &h);
        if (ret < 0) {
            return ret;
        }
        for (size_t done = 0; ret == 0 && done < avail; done += NBD_MAX_REQUEST) {
            size_t chunk = MIN(avail - done, (size_t)NBD_MAX_REQUEST);
            if (nbd_pread(h, (uint8_t *)buf + done, chunk, offset + done, 0) < 0) {
                ret = nbd_failure(n);
            }
        }
        if (!give_conn(n, h) || ret == 0 || attempt == 1) {
            return ret;
        }
    }
}

static int nbd_blk_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkNbd *n = to_nbd(dev);
    if (offset > n->size || len > n->size - offset) {
        return -ENOSPC; /* an export cannot grow */
    }
    struct nbd_handle *h;
    int ret = take_conn(n, &h);
    if (ret < 0) {
        return ret;
    }
    for (size_t done = 0; ret == 0 && done < len; done += NBD_MAX_REQUEST) {
        size_t chunk = MIN(len - done, (size_t)NBD_MAX_REQUEST);
        if (nbd_pwrite(h, (const uint8_t *)buf + done, chunk, offset + done, 0) < 0) {
            ret = nbd_failure(n);
        }
    }
    give_conn(n, h);
    return ret;
}

static int nbd_blk_flush(BlkDev *dev)
{
    BlkNbd *n = to_nbd(dev);
    if (!n->can_flush) {
        return 0; /* the server writes through (or keeps nothing to flush) */
    }
    struct nbd_handle *h;
    int ret = take_conn(n, &h);
    if (ret < 0) {
        return ret;
    }
    if (nbd_flush(h, 0) < 0) {
        ret = nbd_failure(n);
    }
    give_conn(n, h);
    return ret;
}

static int64_t nbd_blk_get_length(BlkDev *dev)
{
    return (int64_t)to_nbd(dev)->size;
}

/* An export keeps its size. A QED image never asks for another one (its
 * container is of fixed length); a raw image's resize is refused. */
static int nbd_blk_truncate(BlkDev *dev, uint64_t length)
{
    return length == to_nbd(dev)->size ? 0 : -ENOTSUP;
}

/* Zeros through NBD_CMD_WRITE_ZEROES (which may punch), else written. */
static int nbd_blk_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkNbd *n = to_nbd(dev);
    if (offset >= n->size) {
        return 0;
    }
    len = MIN(len, n->size - offset);
    if (!n->can_zero) {
        return blk_write_zeros(dev, offset, len, BLK_TAG_DATA);
    }
    struct nbd_handle *h;
    int ret = take_conn(n, &h);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t done = 0; ret == 0 && done < len; done += NBD_MAX_REQUEST) {
        uint64_t chunk = MIN(len - done, (uint64_t)NBD_MAX_REQUEST);
        if (nbd_zero(h, chunk, offset + done, 0) < 0) {
            ret = nbd_failure(n);
        }
    }
    give_conn(n, h);
    return ret;
}

/* The size of storage behind an export is not known. */
static int64_t nbd_blk_allocated_bytes(BlkDev *dev)
{
    return -ENOTSUP;
}

typedef struct StatusRun {
    bool is_data;
    uint64_t run;
    bool seen;
} StatusRun;

static int status_extent(void *opaque, const char *metacontext, uint64_t offset, uint32_t *entries,
                         size_t nr_entries, int *error)
{
    StatusRun *r = opaque;
    if (strcmp(metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || r->seen || nr_entries < 2) {
        return 0;
    }
    r->seen = true;
    r->run = entries[0];
    r->is_data = !(entries[1] & LIBNBD_STATE_HOLE);
    return 0;
}

static int nbd_blk_data_status(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data,
                               uint64_t *run)
{
    BlkNbd *n = to_nbd(dev);
    *is_data = true;
    *run = len;
    if (!n->base_allocation || offset >= n->size) {
        return 0;
    }
    len = MIN(len, n->size - offset);
    len = MIN(len, (uint64_t)UINT32_MAX & ~(uint64_t)511);
    struct nbd_handle *h;
    int ret = take_conn(n, &h);
    if (ret < 0) {
        return ret;
    }
    StatusRun r = { 0 };
    if (nbd_block_status(h, len, offset,
                         (nbd_extent_callback){ .callback = status_extent, .user_data = &r },
                         LIBNBD_CMD_FLAG_REQ_ONE) < 0) {
        ret = nbd_failure(n);
    }
    give_conn(n, h);
    if (ret == 0 && r.seen && r.run > 0) {
        *is_data = r.is_data;
        *run = MIN(r.run, len);
    }
    return ret;
}

static int nbd_blk_reopen(BlkDev *dev, bool read_only)
{
    BlkNbd *n = to_nbd(dev);
    if (!read_only && n->server_ro) {
        return -EROFS;
    }
    /* Only reads may spread over connections the server does not promise
     * to keep consistent. No request is in flight (qed_reopen's contract),
     * so every connection is idle; a writer keeps one of them. */
    g_mutex_lock(&n->lock);
    n->max_conns = read_only || n->multi_conn ? NBD_MAX_CONNS : 1;
    while (n->idle->len > n->max_conns) {
        struct nbd_handle *h = g_ptr_array_steal_index(n->idle, n->idle->len - 1);
        nbd_shutdown(h, 0);
        nbd_close(h);
        n->conns--;
    }
    g_mutex_unlock(&n->lock);
    return 0;
}

static void nbd_blk_close(BlkDev *dev)
{
    BlkNbd *n = to_nbd(dev);
    for (guint i = 0; i < n->idle->len; i++) {
        struct nbd_handle *h = g_ptr_array_index(n->idle, i);
        nbd_shutdown(h, 0);
        nbd_close(h);
    }
    g_ptr_array_free(n->idle, TRUE);
    g_mutex_clear(&n->lock);
    g_cond_clear(&n->freed);
    g_free(n->uri);
    g_free(n->last_error);
    g_free(n);
}

static const BlkOps blk_nbd_ops = {
    .name = "nbd",
    .pread = nbd_blk_pread,
    .pwrite = nbd_blk_pwrite,
    .flush = nbd_blk_flush,
    .get_length = nbd_blk_get_length,
    .truncate = nbd_blk_truncate,
    .punch_zeroes = nbd_blk_punch_zeroes,
    .allocated_bytes = nbd_blk_allocated_bytes,
    .data_status = nbd_blk_data_status,
    .reopen = nbd_blk_reopen,
    .close = nbd_blk_close,
};

BlkDev *blk_nbd_open(const char *name, unsigned flags, GError **errp)
{
    g_autofree char *uri = blk_nbd_uri(name, errp);
    if (!uri) {
        return NULL;
    }
    bool untrusted = flags & BLK_NBD_UNTRUSTED;
    struct nbd_handle *h = connect_one(uri, name, untrusted, errp);
    if (!h) {
        return NULL;
    }
    bool read_only = flags & BLK_OPEN_READ_ONLY;
    int64_t size = nbd_get_size(h);
    bool server_ro = nbd_is_read_only(h) == 1;
    if (size < 0 || (!read_only && server_ro)) {
        int err = size < 0 ? EIO : EROFS;
        g_set_error(errp, QED_ERROR, err, "Could not open '%s': %s", name,
                    size < 0 ? nbd_get_error() : "the NBD server exports it read-only");
        nbd_close(h);
        return NULL;
    }
    BlkNbd *n = g_new0(BlkNbd, 1);
    blk_init(&n->dev, &blk_nbd_ops, name, read_only);
    n->dev.fixed_length = true;
    int64_t min_block = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    n->dev.request_align = min_block > 512 && min_block <= 65536 ? (uint32_t)min_block : 512;
    n->uri = g_steal_pointer(&uri);
    n->untrusted = untrusted;
    n->size = (uint64_t)size;
    n->can_flush = nbd_can_flush(h) == 1;
    n->can_zero = nbd_can_zero(h) == 1;
    n->server_ro = server_ro;
    n->base_allocation = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    g_mutex_init(&n->lock);
    g_cond_init(&n->freed);
    n->idle = g_ptr_array_new();
    g_ptr_array_add(n->idle, h);
    n->conns = 1;
    n->multi_conn = nbd_can_multi_conn(h) == 1;
    n->max_conns = read_only || n->multi_conn ? NBD_MAX_CONNS : 1;
    return &n->dev;
}

char *blk_nbd_last_error(BlkDev *dev)
{
    if (dev->ops != &blk_nbd_ops) {
        return NULL;
    }
    BlkNbd *n = to_nbd(dev);
    g_mutex_lock(&n->lock);
    char *msg = g_strdup(n->last_error);
    g_mutex_unlock(&n->lock);
    return msg;
}

#else /* !HAVE_LIBNBD */

BlkDev *blk_nbd_open(const char *name, unsigned flags, GError **errp)
{
    g_set_error(errp, QED_ERROR, ENOTSUP,
                "Could not open '%s': this libqed was built without NBD support (libnbd)", name);
    return NULL;
}

char *blk_nbd_last_error(BlkDev *dev)
{
    return NULL;
}

#endif
