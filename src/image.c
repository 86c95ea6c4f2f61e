/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The public API of include/qed.h: argument checks, format probing (by
 * probe.c's rules), backing chains (named files found by backing.c), and
 * dispatch to the format drivers (qed.c, raw.c).
 * Every call follows one template: check the arguments, zero the caller's
 * read buffer, call the driver, turn a -errno into a message naming the file.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"

/* The quark name is data, and "qed - error - quark" would change it. */
/* clang-format off */
G_DEFINE_QUARK(qed-error-quark, qed_error)
/* clang-format on */

static const ImageDriver *const drivers[] = { &qed_driver, &raw_driver };

int image_error(QedImage *img, GError **errp, int ret, const char *what)
{
    /* An errno says little about an NBD export that failed ("Input/output
     * error" for a server gone, a size changed): libnbd's message does, and
     * which export, for the image or any file of its backing chain. */
    for (QedImage *i = img; i; i = i->backing) {
        g_autofree char *why = blk_nbd_take_error(i->file);
        if (why) {
            g_set_error(errp, QED_ERROR, -ret, "%s: %s: %s (%s: %s)", img->filename, what,
                        g_strerror(-ret), i->file->filename, why);
            return ret;
        }
    }
    g_set_error(errp, QED_ERROR, -ret, "%s: %s: %s", img->filename, what, g_strerror(-ret));
    return ret;
}

int image_create_finish(BlkDev *file, int ret, GError **errp)
{
    if (ret == 0) {
        ret = blk_flush(file);
    }
    if (ret < 0) {
        g_set_error(errp, QED_ERROR, -ret, "Could not write '%s': %s", file->filename,
                    g_strerror(-ret));
    }
    return ret;
}

char *qed_backing_path(const char *filename, const char *backing_name)
{
    /* Absolute names, and names QEMU opens through a protocol ("nbd://...",
     * "file:b.raw"), stand as they are. */
    if (backing_name[0] == '/' || backing_has_protocol(backing_name)) {
        return g_strdup(backing_name);
    }
    /* Relative to the directory of the image, kept as the caller spelt it
     * ("a.qed" + "b.raw" -> "b.raw", "d/a.qed" + "b.raw" -> "d/b.raw"), as
     * QEMU does. */
    const char *slash = strrchr(filename, '/');
    if (!slash) {
        return g_strdup(backing_name);
    }
    return g_strdup_printf("%.*s%s", (int)(slash - filename + 1), filename, backing_name);
}

static const ImageDriver *find_driver(const char *format)
{
    for (size_t i = 0; i < G_N_ELEMENTS(drivers); i++) {
        if (strcmp(drivers[i]->format_name, format) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

static int unsupported_format(const char *name, const char *format, GError **errp)
{
    g_set_error(errp, QED_ERROR, ENOTSUP,
                "Could not open '%s': Image format '%s' is not supported", name, format);
    return -ENOTSUP;
}

/* The driver for a format the caller named: qed, raw, or an error that
 * tells a format QEMU knows from a name nobody knows. */
static const ImageDriver *named_driver(const char *name, const char *format, GError **errp)
{
    const ImageDriver *drv = find_driver(format);
    if (drv) {
        return drv;
    }
    if (probe_is_foreign_format(format)) {
        unsupported_format(name, format, errp);
    } else {
        g_set_error(errp, QED_ERROR, EINVAL, "Could not open '%s': Unknown driver '%s'", name,
                    format);
    }
    return NULL;
}

/* The driver for file by QEMU's probe; a format QEMU knows that is neither
 * qed nor raw is refused rather than read as raw. */
static const ImageDriver *probe_driver(BlkDev *file, const char *name, GError **errp)
{
    int64_t length = blk_get_length(file);
    if (length == 0) {
        return &raw_driver; /* as QEMU: an empty file is raw without probing */
    }
    uint8_t buf[PROBE_BYTES];
    int ret = length < 0 ? (int)length : blk_pread(file, buf, sizeof(buf), 0);
    if (ret < 0) {
        g_set_error(errp, QED_ERROR, -ret,
                    "Could not open '%s': Could not read image for determining its format: %s",
                    name, g_strerror(-ret));
        return NULL;
    }
    const char *format = probe_format(buf, name);
    const ImageDriver *drv = find_driver(format);
    if (!drv) {
        unsupported_format(name, format, errp);
    }
    return drv;
}

static void image_free(QedImage *img)
{
    if (!img) {
        return;
    }
    image_free(img->backing);
    if (img->drv) {
        img->drv->close(img);
    }
    blk_close(img->file);
    g_free(img->filename);
    g_free(img->confined_path);
    g_free(img);
}

/* Adds key (owned from here on: "dev:ino" of a local file, "nbd:URI" of an
 * export) for the file filename to chain; fails if it is there already. */
static bool chain_add(GPtrArray *chain, char *key, const char *filename, GError **errp)
{
    for (guint i = 0; i < chain->len; i++) {
        if (strcmp(g_ptr_array_index(chain, i), key) == 0) {
            g_free(key);
            g_set_error(errp, QED_ERROR, ELOOP, "Backing file '%s' creates an infinite loop",
                        filename);
            return false;
        }
    }
    g_ptr_array_add(chain, key);
    return true;
}

static char *file_key(const struct stat *st)
{
    return g_strdup_printf("%ju:%ju", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino);
}

/* Takes QEMU's locks for img in the mode of flags (docs/format.md). A QED
 * image uses consistent read, and when writable write and resize; it shares
 * consistent read and write-unchanged, or with QED_OPEN_FORCE_SHARE
 * everything. A raw image, as QEMU's raw driver passes its user's needs
 * through, uses consistent read (and write) and shares everything. Backing
 * files are read-only opens like any other (a QED one keeps writers out, a
 * raw one does not, unless QED_OPEN_NO_SHARE), force-shared only under a
 * force-shared image. */
static int lock_image(QedImage *img, unsigned flags, GError **errp)
{
    bool writable = !(flags & QED_OPEN_READ_ONLY);
    unsigned perm = BLK_PERM_CONSISTENT_READ;
    unsigned shared = BLK_PERM_ALL;

    if (img->drv == &raw_driver) {
        perm |= writable ? BLK_PERM_WRITE : 0;
        /* qemu-img's BDRV_O_NO_SHARE: its own opens keep other writers out */
        if ((flags & QED_OPEN_NO_SHARE) && !(flags & QED_OPEN_FORCE_SHARE)) {
            shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
        }
    } else if (!(flags & QED_OPEN_FORCE_SHARE)) {
        shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
        perm |= writable ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0;
    }
    return blk_lock(img->file, perm, shared, img->opts.locking, errp);
}

/* Opens the image on file (owned from here on) with driver format, or the
 * probed one when NULL. confine and confined_path (copied) are where its
 * backing chain must stay (NULL: anywhere). */
static QedImage *open_on(BlkDev *file, const char *name, const char *format,
                         const QedOpenOptions *opts, int depth, GPtrArray *chain,
                         const Confinement *confine, const char *confined_path, GError **errp)
{
    const ImageDriver *drv = format ? named_driver(name, format, errp)
                                    : probe_driver(file, name, errp);
    if (!drv) {
        blk_close(file);
        return NULL;
    }
    QedImage *img = g_new0(QedImage, 1);
    img->file = file;
    img->filename = g_strdup(name);
    img->opts = *opts;
    img->opts.format = NULL;
    img->opts.backing_dir = NULL;
    img->drv = drv;
    img->probed = !format && drv == &raw_driver;
    img->remote = strcmp(file->ops->name, "nbd") == 0;
    img->confine = confine;
    img->confined_path = g_strdup(confined_path);

    /* Locked before the driver writes anything (a NEED_CHECK repair). */
    GError *err = NULL;
    if (lock_image(img, img->opts.flags, &err) < 0 ||
        img->drv->open(img, depth, chain, &err) < 0) {
        g_propagate_prefixed_error(errp, err, "Could not open '%s': ", name);
        img->drv = NULL;
        image_free(img);
        return NULL;
    }
    img->confine = NULL; /* qed_open's, and the chain below is open */
    return img;
}

/* Opens an image of a chain on an NBD export (blk-nbd.c). A name from a
 * header (depth > 0) may not make libnbd read local files. */
static QedImage *open_remote(const char *name, const char *format, const QedOpenOptions *opts,
                             unsigned blk_flags, int depth, GPtrArray *chain, GError **errp)
{
    char *uri = blk_nbd_uri(name, errp);
    if (!uri || !chain_add(chain, g_strconcat("nbd:", uri, NULL), name, errp)) {
        g_free(uri);
        return NULL;
    }
    g_free(uri);
    BlkDev *file = blk_nbd_open(name, blk_flags | (depth > 0 ? BLK_NBD_UNTRUSTED : 0), errp);
    if (!file) {
        return NULL;
    }
    file->no_flush = opts->flags & QED_OPEN_NO_FLUSH;
    return open_on(file, name, format, opts, depth, chain, NULL, NULL, errp);
}

/* Opens one image of a chain; chain holds the keys of the files above it.
 * With confine, the file is found at confined_path beneath its directory. */
static QedImage *image_open(const char *filename, const char *format, const QedOpenOptions *opts,
                            int depth, GPtrArray *chain, const Confinement *confine,
                            const char *confined_path, GError **errp)
{
    if (format && !named_driver(filename, format, errp)) {
        return NULL;
    }
    if ((opts->flags & QED_OPEN_FORCE_SHARE) && !(opts->flags & QED_OPEN_READ_ONLY)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "Could not open '%s': force-share=on can only be used with read-only images",
                    filename);
        return NULL;
    }
    unsigned blk_flags = 0;
    if (opts->flags & QED_OPEN_READ_ONLY) {
        blk_flags |= BLK_OPEN_READ_ONLY;
    }
    if (blk_nbd_name(filename)) {
        return open_remote(filename, format, opts, blk_flags, depth, chain, errp);
    }
    if (opts->flags & QED_OPEN_DIRECT) {
        blk_flags |= BLK_OPEN_DIRECT;
    }
    if (depth > 0 && !(opts->flags & QED_OPEN_BACKING_BLOCK_DEVICES)) {
        blk_flags |= BLK_OPEN_REGULAR_ONLY;
    }
    struct stat st;
    int fd;
    if (depth > 0 && confine) {
        GError *err = NULL;
        fd = blk_open_fd(confine->dirfd, confined_path, filename, blk_flags | BLK_OPEN_BENEATH,
                         &st, &err);
        if (fd == -EXDEV) {
            g_clear_error(&err);
            confinement_refused(confine, filename, &err);
        }
        if (fd < 0) {
            g_propagate_error(errp, err);
            return NULL;
        }
    } else {
        fd = blk_open_fd(AT_FDCWD, filename, filename, blk_flags, &st, errp);
        if (fd < 0) {
            return NULL;
        }
    }
    if (!chain_add(chain, file_key(&st), filename, errp)) {
        close(fd);
        return NULL;
    }
    BlkDev *file = blk_file_new(fd, filename, blk_flags);
    file->no_flush = opts->flags & QED_OPEN_NO_FLUSH;
    return open_on(file, filename, format, opts, depth, chain, confine, confined_path, errp);
}

QedImage *image_open_blk(BlkDev *file, const char *name, const char *format, unsigned flags,
                         GError **errp)
{
    GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
    QedOpenOptions opts = { .flags = flags };
    QedImage *img = open_on(file, name, format, &opts, 0, chain, NULL, NULL, errp);
    g_ptr_array_unref(chain);
    return img;
}

/* Makes backing (or, when NULL, the failure in err) img's backing image. */
static int set_backing(QedImage *img, QedImage *backing, GError *err, GError **errp)
{
    if (!backing) {
        int code = err->code;
        g_propagate_prefixed_error(errp, err, "Could not open backing file: ");
        return -code;
    }
    image_free(img->backing);
    img->backing = backing;
    img->backing_size = backing->drv->get_size(backing);
    return 0;
}

/* The flags of a backing file of img: read-only, and force-shared where the
 * image above is (as QEMU). */
static unsigned backing_open_flags(const QedImage *img)
{
    return QED_OPEN_READ_ONLY |
           (img->opts.flags & (QED_OPEN_FORCE_SHARE | QED_OPEN_DIRECT | QED_OPEN_NO_SHARE |
                               QED_OPEN_BACKING_CONFINED | QED_OPEN_BACKING_BLOCK_DEVICES |
                               QED_OPEN_BACKING_REMOTE));
}

/* Opens the backing file at loc read-only as img's backing image (depth:
 * its place in the chain). */
static int attach_backing(QedImage *img, const BackingLocation *loc, const char *format, int depth,
                          GPtrArray *chain, GError **errp)
{
    QedOpenOptions opts = img->opts;
    opts.flags = backing_open_flags(img);
    GError *err = NULL;
    QedImage *backing = image_open(loc->path, format, &opts, depth, chain, img->confine,
                                   loc->beneath, &err);
    return set_backing(img, backing, err, errp);
}

int image_open_backing(QedImage *img, const char *name, const char *format, int depth,
                       GPtrArray *chain, GError **errp)
{
    if (name[0] == '\0') {
        g_set_error(errp, QED_ERROR, EINVAL, "The backing file name is empty");
        return -EINVAL;
    }
    if (depth + 1 >= IMAGE_MAX_BACKING_DEPTH) {
        g_set_error(errp, QED_ERROR, ELOOP, "Backing chain is too deep (more than %d images)",
                    IMAGE_MAX_BACKING_DEPTH);
        return -ELOOP;
    }
    BackingLocation loc;
    GError *err = NULL;
    int ret = backing_locate(img, name, &loc, &err);
    if (ret == 0) {
        ret = attach_backing(img, &loc, format, depth + 1, chain, errp);
        backing_location_clear(&loc);
    } else {
        g_propagate_prefixed_error(errp, err, "Could not open backing file: ");
    }
    return ret;
}

int image_attach_backing(QedImage *img, const char *path, const char *format, GError **errp)
{
    if (blk_nbd_name(path)) {
        /* An export the caller named: its own chain is held to the header
         * rules (remote names allowed, as the caller chose a remote file). */
        QedOpenOptions opts = img->opts;
        opts.flags = backing_open_flags(img) | QED_OPEN_BACKING_REMOTE;
        GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
        GError *err = NULL;
        QedImage *backing = open_remote(path, format, &opts, BLK_OPEN_READ_ONLY, 0, chain, &err);
        g_ptr_array_unref(chain);
        return set_backing(img, backing, err, errp);
    }
    /* The caller named path, which may be any local file or block device;
     * the backing chain that it names in turn stays beneath its directory,
     * as an image's chain does under QED_OPEN_BACKING_CONFINED. */
    Confinement confine;
    g_autofree char *top_path = NULL;
    int ret = confinement_init(&confine, path, NULL, &top_path, errp);
    if (ret < 0) {
        return ret;
    }
    QedOpenOptions opts = img->opts;
    opts.flags = backing_open_flags(img) | QED_OPEN_BACKING_CONFINED;
    GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
    GError *err = NULL;
    QedImage *backing = image_open(path, format, &opts, 0, chain, &confine, top_path, &err);
    g_ptr_array_unref(chain);
    confinement_fini(&confine);
    return set_backing(img, backing, err, errp);
}

QedImage *image_open_backing_alone(const char *referrer, const char *name,
                                   const QedOpenOptions *opts, GError **errp)
{
    /* The policy of backing_locate() for a referrer that is not open: its
     * name says whether it is an export, opts whether remote names and
     * which confinement apply (none: the tools name no directory). */
    QedImage ref = {
        .filename = (char *)referrer,
        .opts = *opts,
        .remote = blk_nbd_name(referrer),
    };
    if (name[0] == '\0') {
        g_set_error(errp, QED_ERROR, EINVAL, "The backing file name is empty");
        return NULL;
    }
    BackingLocation loc;
    if (backing_locate(&ref, name, &loc, errp) < 0) {
        return NULL;
    }
    QedImage *img;
    if (loc.remote) {
        /* As a name from a header: it may not make libnbd read host files. */
        GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
        unsigned blk_flags = opts->flags & QED_OPEN_READ_ONLY ? BLK_OPEN_READ_ONLY : 0;
        img = open_remote(loc.path, opts->format, opts, blk_flags, 1, chain, errp);
        g_ptr_array_unref(chain);
    } else {
        img = qed_open(loc.path, opts, errp);
    }
    backing_location_clear(&loc);
    return img;
}

bool image_has_backing(const QedImage *img)
{
    return img->backing != NULL;
}

uint64_t image_backing_size(const QedImage *img)
{
    return img->backing ? img->backing_size : 0;
}

int image_flush_backing_chain(QedImage *img)
{
    for (QedImage *b = img->backing; b; b = b->backing) {
        int ret = b->drv->flush(b);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int image_read_backing(QedImage *img, void *buf, size_t len, uint64_t offset)
{
    QedImage *b = img->backing;
    size_t avail = 0;
    if (b && offset < img->backing_size) {
        avail = (size_t)MIN(len, img->backing_size - offset);
        int ret = b->drv->pread(b, buf, avail, offset);
        if (ret < 0) {
            return ret;
        }
    }
    memset((uint8_t *)buf + avail, 0, len - avail);
    return 0;
}

/* ------------------------------------------------------------ public calls */

int qed_create(const char *filename, const QedCreateOptions *opts, GError **errp)
{
    g_return_val_if_fail(filename && opts, -EINVAL);
    const char *format = opts->format ? opts->format : "qed";
    const ImageDriver *drv = find_driver(format);
    if (!drv || !drv->create) {
        g_set_error(errp, QED_ERROR, EINVAL, "%s: Unknown driver '%s'", filename, format);
        return -EINVAL;
    }
    /* Named as qed_open reads names: "file:a:b" creates "a:b"; an NBD
     * export is written over, at its size (QEMU does the same). */
    const char *local = filename;
    int ret = blk_nbd_name(filename) ? 0
                                     : image_local_name(filename, "images", &local, NULL, errp);
    if (ret < 0) {
        return ret;
    }
    GError *err = NULL;
    BlkDev *file = blk_nbd_name(filename) ? blk_nbd_open(filename, 0, &err)
                                          : blk_file_open(local, BLK_OPEN_CREATE, &err);
    if (!file) {
        int code = err->code;
        g_propagate_error(errp, err);
        return -code;
    }
    /* qemu-img create's locks, before the file is emptied: it writes and
     * resizes, and shares everything but resize. */
    ret = blk_lock(file, BLK_PERM_WRITE | BLK_PERM_RESIZE, BLK_PERM_ALL & ~BLK_PERM_RESIZE,
                   opts->locking, &err);
    if (ret == 0) {
        ret = drv->create(file, opts, &err);
    }
    blk_close(file);
    if (ret < 0) {
        g_propagate_prefixed_error(errp, err, "%s: ", filename);
    }
    return ret;
}

QedImage *qed_open(const char *name, const QedOpenOptions *opts, GError **errp)
{
    g_return_val_if_fail(name, NULL);
    QedOpenOptions defaults = { 0 };
    if (!opts) {
        opts = &defaults;
    }
    /* Read as QEMU reads it: "file:x" is x, "nbd://..." an NBD export. */
    const char *filename = name;
    bool remote = blk_nbd_name(name);
    if (!remote && image_local_name(name, "images", &filename, NULL, errp) < 0) {
        return NULL;
    }
    Confinement confine;
    g_autofree char *top_path = NULL;
    /* An export has no directory: the chain below one is held to NBD
     * exports and absolute names, and with confinement to exports
     * (backing.c). */
    bool confined = (opts->flags & QED_OPEN_BACKING_CONFINED) &&
                    !(opts->flags & QED_OPEN_NO_BACKING) && !remote;
    if (confined && confinement_init(&confine, filename, opts->backing_dir, &top_path, errp) < 0) {
        return NULL;
    }
    GPtrArray *chain = g_ptr_array_new_with_free_func(g_free);
    QedImage *img = image_open(filename, opts->format, opts, 0, chain, confined ? &confine : NULL,
                               top_path, errp);
    g_ptr_array_unref(chain);
    if (confined) {
        confinement_fini(&confine);
    }
    return img;
}

int qed_close(QedImage *img, GError **errp)
{
    if (!img) {
        return 0;
    }
    int ret = img->drv->shutdown(img, errp);
    /* A backing image made writable (qed_reopen, for a commit) is flushed
     * and marked clean too; read-only ones have nothing to do. */
    for (QedImage *b = img->backing; b; b = b->backing) {
        int r = b->drv->shutdown(b, ret < 0 ? NULL : errp);
        ret = ret < 0 ? ret : r;
    }
    image_free(img);
    return ret;
}

/* Checks that [offset, offset+len) lies inside the virtual disk. */
static int check_request(QedImage *img, uint64_t len, uint64_t offset, bool write, GError **errp)
{
    if (write && (img->opts.flags & QED_OPEN_READ_ONLY)) {
        g_set_error(errp, QED_ERROR, EROFS, "%s: the image is open read-only", img->filename);
        return -EROFS;
    }
    uint64_t size = img->drv->get_size(img);
    if (offset > size || len > size - offset) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "%s: request at offset %" PRIu64 " of %" PRIu64
                    " bytes is outside the image (size %" PRIu64 ")",
                    img->filename, offset, len, size);
        return -EINVAL;
    }
    return 0;
}

/* After a write: FUA or writethrough mean the data must be stable now. */
static int finish_write(QedImage *img, int ret, unsigned flags, GError **errp, const char *what)
{
    if (ret == 0 && ((flags & QED_WRITE_FUA) || (img->opts.flags & QED_OPEN_WRITETHROUGH))) {
        ret = img->drv->flush(img);
    }
    if (ret == -EPERM && img->probed) {
        g_set_error(errp, QED_ERROR, EPERM,
                    "%s: %s: the first sector would then probe as another image format "
                    "(the format of this raw image was probed, not named)",
                    img->filename, what);
        return ret;
    }
    if (ret < 0) {
        return image_error(img, errp, ret, what);
    }
    return 0;
}

int qed_pread(QedImage *img, void *buf, size_t len, uint64_t offset, GError **errp)
{
    g_return_val_if_fail(img && (buf || len == 0), -EINVAL);
    memset(buf, 0, len);
    int ret = check_request(img, len, offset, false, errp);
    if (ret < 0 || len == 0) {
        return ret;
    }
    ret = img->drv->pread(img, buf, len, offset);
    if (ret < 0) {
        memset(buf, 0, len);
        return image_error(img, errp, ret, "read failed");
    }
    return 0;
}

int qed_pwrite(QedImage *img, const void *buf, size_t len, uint64_t offset, unsigned flags,
               GError **errp)
{
    g_return_val_if_fail(img && (buf || len == 0), -EINVAL);
    int ret = check_request(img, len, offset, true, errp);
    if (ret < 0 || len == 0) {
        return ret;
    }
    return finish_write(img, img->drv->pwrite(img, buf, len, offset), flags, errp, "write failed");
}

int qed_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t offset, unsigned flags, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    int ret = check_request(img, len, offset, true, errp);
    if (ret < 0 || len == 0) {
        return ret;
    }
    return finish_write(img, img->drv->pwrite_zeroes(img, len, offset, flags), flags, errp,
                        "write zeroes failed");
}

int qed_discard(QedImage *img, uint64_t len, uint64_t offset, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    int ret = check_request(img, len, offset, true, errp);
    if (ret < 0 || len == 0) {
        return ret;
    }
    return finish_write(img, img->drv->pwrite_zeroes(img, len, offset, 0), 0, errp,
                        "discard failed");
}

int qed_flush(QedImage *img, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    int ret = img->drv->flush(img);
    if (ret < 0) {
        return image_error(img, errp, ret, "flush failed");
    }
    return 0;
}

uint64_t qed_get_size(QedImage *img)
{
    g_return_val_if_fail(img, 0);
    return img->drv->get_size(img);
}

int qed_resize(QedImage *img, uint64_t size, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    if (img->opts.flags & QED_OPEN_READ_ONLY) {
        g_set_error(errp, QED_ERROR, EROFS, "%s: the image is open read-only", img->filename);
        return -EROFS;
    }
    if (img->drv == &qed_driver && size < img->drv->get_size(img)) {
        /* A shrink moves clusters and cuts the file by what the tables
         * say: over damaged tables it could neither cut nor keep its
         * promise of a clean image, so it refuses before changing anything. */
        QedCheckResult res;
        int ret = qed_check(img, 0, &res, errp);
        if (ret < 0) {
            return ret;
        }
        if (res.corruptions > 0 || res.check_errors > 0) {
            g_set_error(errp, QED_ERROR, EIO,
                        "%s: cannot shrink an image with %" PRIu64 " corruptions; repair it "
                        "first (qed-img check -r all)",
                        img->filename, res.corruptions + res.check_errors);
            return -EIO;
        }
    }
    return img->drv->resize(img, size, errp);
}

int qed_resize_preallocate(QedImage *img, uint64_t size, const char *preallocation, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    const char *mode = preallocation ? preallocation : "off";
    if (strcmp(mode, "off") == 0) {
        return qed_resize(img, size, errp);
    }
    if (img->drv != &raw_driver) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "Unsupported preallocation mode '%s'", mode);
        return -ENOTSUP;
    }
    if (strcmp(mode, "falloc") != 0 && strcmp(mode, "full") != 0) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "Unsupported preallocation mode: %s", mode);
        return -ENOTSUP;
    }
    uint64_t old = img->drv->get_size(img);
    if (size <= old) {
        g_set_error(errp, QED_ERROR, EINVAL, "Preallocation can only be used for growing images");
        return -EINVAL;
    }
    int ret = qed_resize(img, size, errp);
    if (ret < 0) {
        return ret;
    }
    /* The new part only, as QEMU's file driver does. */
    ret = strcmp(mode, "falloc") == 0 ? blk_allocate(img->file, old, size - old)
                                      : blk_write_zeros(img->file, old, size - old, BLK_TAG_DATA);
    if (ret == 0) {
        ret = blk_flush(img->file);
    }
    if (ret < 0) {
        return image_error(img, errp, ret, "Failed to preallocate");
    }
    return 0;
}

int qed_block_status(QedImage *img, uint64_t len, uint64_t offset, QedExtent *ext, GError **errp)
{
    g_return_val_if_fail(img && ext, -EINVAL);
    memset(ext, 0, sizeof(*ext));
    int ret = check_request(img, len, offset, false, errp);
    if (ret < 0) {
        return ret;
    }
    if (len == 0) {
        ext->offset = offset;
        ext->type = QED_EXTENT_UNALLOCATED;
        return 0;
    }
    ret = img->drv->block_status(img, offset, len, ext);
    if (ret < 0) {
        return image_error(img, errp, ret, "block status failed");
    }
    return 0;
}

int qed_get_info(QedImage *img, QedInfo *info, GError **errp)
{
    g_return_val_if_fail(img && info, -EINVAL);
    memset(info, 0, sizeof(*info));
    info->filename = img->filename;
    info->format = img->drv->format_name;
    info->format_probed = img->probed;
    int64_t length = blk_get_length(img->file);
    if (length < 0) {
        return image_error(img, errp, (int)length, "Failed to get file length");
    }
    info->file_length = (uint64_t)length;
    int64_t allocated = blk_allocated_bytes(img->file);
    info->actual_size = allocated == -ENOTSUP ? UINT64_MAX
                        : allocated < 0       ? 0
                                              : (uint64_t)allocated;
    img->drv->get_info(img, info);
    return 0;
}

int qed_reopen(QedImage *img, unsigned flags, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    if ((flags & ~QED_OPEN_READ_ONLY) != (img->opts.flags & ~QED_OPEN_READ_ONLY)) {
        g_set_error(errp, QED_ERROR, EINVAL, "%s: only QED_OPEN_READ_ONLY can change on reopen",
                    img->filename);
        return -EINVAL;
    }
    bool writable = !(flags & QED_OPEN_READ_ONLY);
    if (writable && (flags & QED_OPEN_FORCE_SHARE)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "force-share=on can only be used with read-only images");
        return -EINVAL;
    }
    /* The write locks are taken (and tested) before the driver writes
     * anything, and dropped after it has flushed; on failure the handle
     * keeps the locks of the mode it stays in. */
    int ret = writable ? lock_image(img, flags, errp) : 0;
    if (ret == 0) {
        ret = img->drv->reopen(img, writable, errp);
    }
    if (ret == 0) {
        img->opts.flags = flags;
    }
    lock_image(img, img->opts.flags, NULL); /* drops only */
    return ret;
}

QedImage *qed_get_backing(QedImage *img)
{
    return img ? img->backing : NULL;
}

void qed_get_stats(QedImage *img, QedStats *stats)
{
    BlkStats b;
    blk_get_stats(img->file, &b);
    stats->reads = b.reads;
    stats->writes = b.writes;
    stats->flushes = b.flushes;
    stats->bytes_read = b.bytes_read;
    stats->bytes_written = b.bytes_written;
}

int qed_check(QedImage *img, unsigned fix, QedCheckResult *result, GError **errp)
{
    return qed_check_progress(img, fix, result, NULL, NULL, errp);
}

int qed_check_progress(QedImage *img, unsigned fix, QedCheckResult *result,
                       QedProgressFunc *progress, void *opaque, GError **errp)
{
    g_return_val_if_fail(img && result, -EINVAL);
    memset(result, 0, sizeof(*result));
    if (!img->drv->check) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "%s: format '%s' does not support checks",
                    img->filename, img->drv->format_name);
        return -ENOTSUP;
    }
    if (fix && (img->opts.flags & QED_OPEN_READ_ONLY)) {
        g_set_error(errp, QED_ERROR, EROFS, "%s: the image is open read-only", img->filename);
        return -EROFS;
    }
    return img->drv->check(img, fix, result, progress, opaque, errp);
}

/* The checks of a call that changes an image's metadata in place. */
static int check_writable(QedImage *img, GError **errp)
{
    if (img->opts.flags & QED_OPEN_READ_ONLY) {
        g_set_error(errp, QED_ERROR, EROFS, "%s: the image is open read-only", img->filename);
        return -EROFS;
    }
    return 0;
}

uint32_t qed_get_backing_name_max(QedImage *img)
{
    g_return_val_if_fail(img, 0);
    return img->drv->backing_name_max ? img->drv->backing_name_max(img) : 0;
}

int qed_change_backing_file(QedImage *img, const char *backing_file, const char *backing_format,
                            GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    int ret = check_writable(img, errp);
    if (ret < 0) {
        return ret;
    }
    if (backing_format && strcmp(backing_format, "raw") != 0 &&
        strcmp(backing_format, "qed") != 0) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "%s: backing format '%s' is not supported (only 'qed' and 'raw')",
                    img->filename, backing_format);
        return -EINVAL;
    }
    if (!img->drv->change_backing) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "%s: format '%s' has no backing file", img->filename,
                    img->drv->format_name);
        return -ENOTSUP;
    }
    if (backing_file && backing_file[0] == '\0') {
        backing_file = NULL;
    }
    return img->drv->change_backing(img, backing_file, backing_format, errp);
}

int qed_make_empty(QedImage *img, GError **errp)
{
    g_return_val_if_fail(img, -EINVAL);
    int ret = check_writable(img, errp);
    if (ret < 0) {
        return ret;
    }
    if (!img->drv->make_empty) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "%s: format '%s' cannot be emptied", img->filename,
                    img->drv->format_name);
        return -ENOTSUP;
    }
    if (!img->backing) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "%s: only an image whose backing file is open can be emptied", img->filename);
        return -EINVAL;
    }
    return img->drv->make_empty(img, errp);
}
