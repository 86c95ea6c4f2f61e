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

struct QedImage {
    const ImageDriver *drv;
    void *opaque;           /* the driver's state; owned by the driver */
    BlkDev *file;           /* owned */
    QedImage *backing;      /* owned; NULL without one (or with QED_OPEN_NO_BACKING) */
    char *filename;         /* as given by the caller */
    QedOpenOptions opts;    /* as opened (opts.format unused); opts.flags are QED_OPEN_* */
    uint64_t backing_size;  /* virtual size of backing, read once at open */
};

/* Every operation but open returns 0 or -errno; open sets *errp too. Request
 * arguments have been checked against the virtual size by image.c. */
struct ImageDriver {
    const char *format_name;
    /* Is this the driver for a file that starts with these bytes? */
    bool (*probe)(const uint8_t *buf, size_t len);
    /* depth and chain are passed on to image_open_backing(). */
    int (*open)(QedImage *img, int depth, GPtrArray *chain, GError **errp);
    void (*close)(QedImage *img);
    int (*pread)(QedImage *img, void *buf, size_t len, uint64_t offset);
    int (*pwrite)(QedImage *img, const void *buf, size_t len, uint64_t offset);
    int (*pwrite_zeroes)(QedImage *img, uint64_t len, uint64_t offset);
    int (*flush)(QedImage *img);
    int (*resize)(QedImage *img, uint64_t size, GError **errp);
    int (*block_status)(QedImage *img, uint64_t offset, uint64_t len, QedExtent *ext);
    uint64_t (*get_size)(QedImage *img);
    void (*get_info)(QedImage *img, QedInfo *info);
    /* NULL for formats without metadata to check. */
    int (*check)(QedImage *img, unsigned fix, QedCheckResult *res, GError **errp);
    /* Switches the handle between read-only and read-write. */
    int (*reopen)(QedImage *img, bool writable, GError **errp);
    /* Prepare for close: flush and mark clean. Errors are reported. */
    int (*shutdown)(QedImage *img, GError **errp);
};

extern const ImageDriver qed_driver;
extern const ImageDriver raw_driver;

/* Opens the backing file `name` (as stored in img) with format `format`
 * ("raw", "qed" or NULL to probe), read-only, and sets img->backing.
 * depth counts the images above; chain holds "dev:ino" keys of the images
 * above it for loop detection. */
int image_open_backing(QedImage *img, const char *name, const char *format, int depth,
                       GPtrArray *chain, GError **errp);

/* Opens an image on an already opened device (taking ownership of file,
 * even on failure), as qed_open does on a file. name is for messages and
 * for resolving relative backing names. */
QedImage *image_open_blk(BlkDev *file, const char *name, const char *format, unsigned flags,
                         GError **errp);

/* Opens path (format "raw", "qed" or NULL to probe) read-only as img's
 * backing image, in place of the one the header names. */
int image_attach_backing(QedImage *img, const char *path, const char *format, GError **errp);

/* Reads from the backing image, zeros where there is none or past its end. */
int image_read_backing(QedImage *img, void *buf, size_t len, uint64_t offset);

/* Sets *errp to "FILE: what: strerror" and returns ret (a -errno). */
int image_error(QedImage *img, GError **errp, int ret, const char *what);

/* Writes a new QED image into file (qed.c). */
int qed_format_create(BlkDev *file, const QedCreateOptions *opts, GError **errp);

/* The upper bound on backing chain length. */
#define IMAGE_MAX_BACKING_DEPTH 32

#endif
