/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image layer behind include/qed.h: a QedImage is a format driver (qed or
 * raw) over a blk device, plus its backing image. The public calls in image.c
 * check arguments and dispatch through ImageDriver; drivers lock themselves.
 */
#ifndef QED_IMAGE_H
#define QED_IMAGE_H

#include "blk/blk.h"
#include "qed.h"

typedef struct ImageDriver ImageDriver;
typedef struct Confinement Confinement;

struct QedImage {
    const ImageDriver *drv;
    void *opaque;          /* the driver's state; owned by the driver */
    BlkDev *file;          /* owned */
    QedImage *backing;     /* owned; NULL without one (or with QED_OPEN_NO_BACKING) */
    char *filename;        /* as given by the caller; for a backing file, the local
                            * name it was opened by (see image_open_backing) */
    QedOpenOptions opts;   /* as opened (opts.format and opts.backing_dir unused);
                            * opts.flags are QED_OPEN_* */
    uint64_t backing_size; /* virtual size of backing, read once at open */
    bool remote;           /* the file is an NBD export (blk-nbd.c) */
    bool probed;           /* no format was given and the file probed as raw: writes
                            * into its first sector are checked (raw.c) */
    /* QED_OPEN_BACKING_CONFINED, while qed_open runs (NULL otherwise): the
     * directory the backing chain must stay beneath, owned by qed_open. */
    const Confinement *confine;
    char *confined_path; /* owned: this file's path relative to that directory,
                          * NULL where it is not known to lie beneath it */
};

/* Every operation but open returns 0 or -errno; open sets *errp too. Request
 * arguments have been checked against the virtual size by image.c. */
struct ImageDriver {
    const char *format_name;
    /* Does a file that starts with these bytes carry this format's magic?
     * (probe.c asks; NULL for raw, which is what no format claims.) */
    bool (*probe)(const uint8_t *buf, size_t len);
    /* depth and chain are passed on to image_open_backing(). */
    int (*open)(QedImage *img, int depth, GPtrArray *chain, GError **errp);
    void (*close)(QedImage *img);
    int (*pread)(QedImage *img, void *buf, size_t len, uint64_t offset);
    int (*pwrite)(QedImage *img, const void *buf, size_t len, uint64_t offset);
    /* flags: QED_WRITE_* (the driver looks at QED_WRITE_ZERO_CLUSTERS only). */
    int (*pwrite_zeroes)(QedImage *img, uint64_t len, uint64_t offset, unsigned flags);
    int (*flush)(QedImage *img);
    int (*resize)(QedImage *img, uint64_t size, GError **errp);
    int (*block_status)(QedImage *img, uint64_t offset, uint64_t len, QedExtent *ext);
    uint64_t (*get_size)(QedImage *img);
    void (*get_info)(QedImage *img, QedInfo *info);
    /* NULL for formats without metadata to check. */
    int (*check)(QedImage *img, unsigned fix, QedCheckResult *res, QedProgressFunc *progress,
                 void *opaque, GError **errp);
    /* Switches the handle between read-only and read-write. */
    int (*reopen)(QedImage *img, bool writable, GError **errp);
    /* Prepare for close: flush and mark clean. Errors are reported. */
    int (*shutdown)(QedImage *img, GError **errp);
    /* Rewrites the backing file name and format in the header (NULL for
     * formats without one). */
    int (*change_backing)(QedImage *img, const char *name, const char *format, GError **errp);
    /* Drops every cluster of the image (NULL for formats without metadata). */
    int (*make_empty)(QedImage *img, GError **errp);
    /* The longest backing file name the header holds (NULL: none). */
    uint32_t (*backing_name_max)(QedImage *img);
    /* Writes a new image of this format into file, which qed_create has
     * opened and locked (no QedImage exists yet). */
    int (*create)(BlkDev *file, const QedCreateOptions *opts, GError **errp);
};

extern const ImageDriver qed_driver;
extern const ImageDriver raw_driver;

/* Opens the backing file `name` (as stored in img) with format `format`
 * ("raw", "qed" or NULL to probe), read-only, and sets img->backing.
 * depth counts the images above; chain holds "dev:ino" keys of the images
 * above it for loop detection. The name is found as QEMU finds it: a
 * "file:" prefix names a local file (relative to the working directory), any
 * other protocol prefix ("nbd://...") is refused; other names are relative
 * to img's directory. With img->confine, the file must lie beneath the
 * confinement directory. A backing file must be a regular file (or a block
 * device with QED_OPEN_BACKING_BLOCK_DEVICES) of format raw or qed. */
int image_open_backing(QedImage *img, const char *name, const char *format, int depth,
                       GPtrArray *chain, GError **errp);

/* ------------------------------------------------------------ backing.c */

/* QED_OPEN_BACKING_CONFINED: the directory every file of a backing chain
 * must lie beneath, held open while qed_open runs. */
struct Confinement {
    int dirfd;      /* O_PATH descriptor of the directory; owned */
    char *dir;      /* as named (the image's directory when none was given) */
    char *dir_abs;  /* absolute, as spelt */
    char *dir_real; /* absolute, symlinks resolved; named in messages */
};

/* Opens the directory (backing_dir, or the directory of the image filename)
 * and sets *top_path to the image's path relative to it (NULL when it does
 * not lie beneath it; owned by the caller). */
int confinement_init(Confinement *c, const char *filename, const char *backing_dir,
                     char **top_path, GError **errp);
void confinement_fini(Confinement *c);
/* Sets *errp to "path lies outside the directory" and returns -EPERM. */
int confinement_refused(const Confinement *c, const char *path, GError **errp);

/* Does QEMU read name as "protocol:rest" (a ':' before any '/')? */
bool backing_has_protocol(const char *name);
/* Refuses a name with a protocol other than "file:" (NBD names are handled
 * before this is asked; other network ones are "not supported"); *local gets the local file name
 * (past "file:") and *from_cwd (unless NULL) whether it is relative to the working directory even
 * where a relative name would be relative to an image. */
int image_local_name(const char *name, const char *what, const char **local, bool *from_cwd,
                     GError **errp);

/* Where the backing file `name` stored in img is. */
typedef struct BackingLocation {
    char *path;    /* the local file to open, as QEMU finds it, or the NBD address
                    * (remote); names it in messages */
    bool remote;   /* an NBD export (allowed by QED_OPEN_BACKING_REMOTE) */
    char *beneath; /* with img->confine: path relative to the directory, for openat2 */
} BackingLocation;
/* Fills *loc, or refuses the name (a protocol other than file:, or a file
 * outside img->confine's directory) with *errp set. */
int backing_locate(const QedImage *img, const char *name, BackingLocation *loc, GError **errp);
void backing_location_clear(BackingLocation *loc);

/* Opens, alone, the backing file that the image referrer (its name as
 * opened) names as `name` in its header, by the rules that opening the
 * chain applies (backing_locate(): an NBD name only with
 * QED_OPEN_BACKING_REMOTE and never reading host files through its URI, no
 * relative local name under an image on an NBD server), with opts: for
 * tools that walk a chain one image at a time (qed-img info
 * --backing-chain) or check a backing name before writing it (create). */
QedImage *image_open_backing_alone(const char *referrer, const char *name,
                                   const QedOpenOptions *opts, GError **errp);

/* The end of a driver's create: flushes what it wrote when ret is 0, and
 * names the file in *errp on failure ("Could not write 'F': ..."). */
int image_create_finish(BlkDev *file, int ret, GError **errp);

/* ---------------------------------------------------------------- image.c */

/* Opens an image on an already opened device (taking ownership of file,
 * even on failure), as qed_open does on a file. name is for messages and
 * for resolving relative backing names. */
QedImage *image_open_blk(BlkDev *file, const char *name, const char *format, unsigned flags,
                         GError **errp);

/* Opens path (format "raw", "qed" or NULL to probe) read-only as img's
 * backing image, in place of the one the header names. The caller chose
 * path, so it may be any local file or block device; the backing chain it
 * names in turn must stay beneath its directory (QED_OPEN_BACKING_CONFINED). */
int image_attach_backing(QedImage *img, const char *path, const char *format, GError **errp);

/* A driver reaches its backing chain through these calls only, never
 * through img->backing: the chain belongs to this layer. */

/* Does img have a backing image open (none without a backing file, or with
 * QED_OPEN_NO_BACKING)? */
bool image_has_backing(const QedImage *img);
/* The virtual size of img's backing image as read at open; 0 without one. */
uint64_t image_backing_size(const QedImage *img);
/* Reads from the backing image, zeros where there is none or past its end. */
int image_read_backing(QedImage *img, void *buf, size_t len, uint64_t offset);
/* Flushes every image of the chain below img, nearest first; stops at the
 * first error. */
int image_flush_backing_chain(QedImage *img);

/* Sets *errp to "FILE: what: strerror" and returns ret (a -errno). */
int image_error(QedImage *img, GError **errp, int ret, const char *what);

/* The upper bound on backing chain length. */
#define IMAGE_MAX_BACKING_DEPTH 32

#endif
