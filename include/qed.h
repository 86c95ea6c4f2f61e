/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqed: read, write, create and inspect QED (QEMU Enhanced Disk) images.
 * The one public header; everything else in the library is internal.
 */
#ifndef LIBQED_QED_H
#define LIBQED_QED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0.2.0: qed_block_status takes (len, offset) like every other range call;
 * QedOpenOptions and QedCreateOptions gained locking and backing policy. */
/* 0.3.0: shrinking in qed_resize, qed_resize_preallocate, qed_change_backing_file,
 * qed_make_empty, qed_get_backing_name_max, QED_OPEN_NO_FLUSH, QED_OPEN_NO_SHARE,
 * QED_WRITE_ZERO_CLUSTERS, qed_check_progress (symbol version LIBQED_1.1). */
/* 0.4.0: allocating writes in parallel; their entries are durable after the
 * next qed_flush (or a FUA write), as the data is; no new symbols. */
#define LIBQED_VERSION "0.4.0"

/* Errors are reported twice: a call returns -errno, and *errp (when not
 * NULL) receives a GError in QED_ERROR whose code is the positive errno
 * value and whose message names the file and the problem. */
#define QED_ERROR (qed_error_quark())
GQuark qed_error_quark(void);

/* On-disk constants of the format (see docs/format.md). */
#define QED_MAGIC 0x00444551u
#define QED_MIN_CLUSTER_SIZE (4u * 1024)
#define QED_MAX_CLUSTER_SIZE (64u * 1024 * 1024)
#define QED_DEFAULT_CLUSTER_SIZE (64u * 1024)
#define QED_MIN_TABLE_SIZE 1u
#define QED_MAX_TABLE_SIZE 16u
#define QED_DEFAULT_TABLE_SIZE 4u

#define QED_F_BACKING_FILE 0x1ull
#define QED_F_NEED_CHECK 0x2ull
#define QED_F_BACKING_FORMAT_NO_PROBE 0x4ull

typedef struct QedImage QedImage;

/* How an image file is locked against other programs, as QEMU's file driver
 * option locking=auto|on|off. Locks are OFD byte-range locks on the bytes
 * QEMU uses (docs/format.md), so QEMU and libqed refuse each other exactly
 * as QEMU refuses itself. */
typedef enum QedLocking {
    QED_LOCKING_AUTO = 0, /* lock where the file system supports OFD locks; where it
                           * does not, open without a lock */
    QED_LOCKING_ON,       /* lock; the open fails where locks cannot be taken */
    QED_LOCKING_OFF,      /* take no lock and test for none */
} QedLocking;

typedef struct QedCreateOptions {
    uint64_t size;              /* virtual size in bytes, rounded up to 512 */
    uint32_t cluster_size;      /* bytes; 0 means QED_DEFAULT_CLUSTER_SIZE */
    uint32_t table_size;        /* clusters per table; 0 means the default */
    const char *backing_file;   /* stored as given; NULL for none */
    const char *backing_format; /* "raw" sets BACKING_FORMAT_NO_PROBE; "qed" or NULL probe */
    QedLocking locking;         /* locking of the new file while it is written */
    const char *format;         /* "qed" (also NULL) or "raw" */
    const char *preallocation;  /* raw only: "off" (also NULL) leaves the file sparse,
                                 * "falloc" reserves its space, "full" writes zeros */
} QedCreateOptions;

/* Writes a new, empty image, replacing any file at filename. The bytes
 * written are those of `qemu-img create -f qed` (or `-f raw`, which takes
 * only size and preallocation) for the same options. The backing file is
 * not opened. As qemu-img, it first takes the write and resize locks on an
 * existing file: when another process holds the image (a lock conflict,
 * -EAGAIN) the file is left byte for byte unchanged. */
int qed_create(const char *filename, const QedCreateOptions *opts, GError **errp);

/* Open flags */
enum {
    QED_OPEN_READ_ONLY = 1u << 0,    /* no writes; NEED_CHECK images open unrepaired */
    QED_OPEN_NO_BACKING = 1u << 1,   /* do not open the backing file; unallocated reads as zeros */
    QED_OPEN_DIRECT = 1u << 2,       /* O_DIRECT on the image file (cache=none) */
    QED_OPEN_WRITETHROUGH = 1u << 3, /* every write is followed by a flush */
    QED_OPEN_FORCE_SHARE = 1u << 4,  /* share every permission, so that a writer elsewhere does
                                      * not stop the open (qemu-img -U); read-only opens only */
    QED_OPEN_CHECK = 1u << 5,        /* for qed_check repairs (qemu-img check -r): a writable
                                      * open does not repair a NEED_CHECK image, and the flag
                                      * stays set until qed_check with fix flags leaves the
                                      * image consistent */
    QED_OPEN_BACKING_CONFINED = 1u << 6,      /* every file of the backing chain must lie beneath
                                               * QedOpenOptions.backing_dir (the image's own
                                               * directory when NULL), resolved without letting
                                               * a symlink or ".." lead out of it */
    QED_OPEN_BACKING_BLOCK_DEVICES = 1u << 7, /* a backing file may be a block device; without
                                               * it only regular files are accepted */
    QED_OPEN_NO_FLUSH = 1u << 8,        /* cache=unsafe: flushes of the image file do nothing, so a
                                         * crash may leave it inconsistent or lose data; for a copy
                                         * that is thrown away when it fails (qemu-img convert) */
    QED_OPEN_NO_SHARE = 1u << 9,        /* keep writers out of a raw image (and of the raw files of
                                         * the backing chain), as qemu-img does; a QED image always
                                         * keeps them out. Not with QED_OPEN_FORCE_SHARE */
    QED_OPEN_BACKING_REMOTE = 1u << 10, /* a backing file may be an NBD export named in an
                                         * image header ("nbd://...", see qed_open); without
                                         * it such a name fails the open with -EPERM, so an
                                         * untrusted image cannot make the host connect */
};

typedef struct QedOpenOptions {
    const char *format;      /* "qed", "raw", or NULL to probe */
    unsigned flags;          /* QED_OPEN_* */
    size_t l2_cache_bytes;   /* L2 cache budget; 0 means the default (32 MiB) */
    unsigned clean_after_ms; /* a writable image that has been idle this long
                              * is flushed and marked clean (NEED_CHECK
                              * cleared); 0 means the default (5000) */
    QedLocking locking;      /* for the image and every file of its backing chain */
    const char *backing_dir; /* with QED_OPEN_BACKING_CONFINED: the directory the
                              * backing chain must stay beneath */
} QedOpenOptions;

/* Opens an image and, unless QED_OPEN_NO_BACKING, its backing chain (each
 * backing file read-only). opts may be NULL (probe, read-write).
 *
 * Names, of the image and of its backing files, are read as QEMU reads
 * them: "file:NAME" is the local file NAME (a relative one from the working
 * directory, as in QEMU); an NBD address ("nbd://HOST[:PORT]/EXPORT",
 * "nbd+unix:///EXPORT?socket=PATH", "nbds://..." with TLS, or QEMU's
 * "nbd:HOST:PORT[:exportname=E]" and "nbd:unix:PATH") is an export on an
 * NBD server, opened through libnbd (-ENOTSUP in a build without it); any
 * other "protocol:" prefix (a ':' before the first '/') is refused, network
 * ones ("http://...") with -ENOTSUP, unknown ones with -EINVAL ("Unknown
 * protocol"), never read as a local path. A local file named "a:b" is
 * "./a:b". Other backing names are relative to the directory of the image
 * that names them; an image on an NBD server has no directory, so a
 * relative backing name in it is refused (-EINVAL).
 *
 * An NBD export is a container of fixed size: a QED image in it allocates
 * inside it (a write that needs more room fails with -ENOSPC), a raw one
 * cannot be resized, and no lock is taken (NBD has none; the server decides
 * who may connect). An NBD backing file named in a header is opened only
 * with QED_OPEN_BACKING_REMOTE, and its URI may not name local files (TLS
 * key files); the caller's own name may.
 *
 * Probing: a file that starts with the magic of another format QEMU knows
 * (qcow2, qcow, vmdk, vdi, vhdx, vpc, luks, parallels, bochs, cloop, and dmg
 * by its ".dmg" name) is refused ("Image format 'qcow2' is not supported"),
 * never opened as raw; so is such a backing file, and a backing file whose
 * probed format is neither raw nor qed. A file that probes as raw opens as
 * QEMU opens it: QedInfo.format_probed is set (tools print QEMU's warning)
 * and a write to the first 512 bytes that would make the file probe as
 * another format fails with -EPERM.
 *
 * The image may be a regular file or a block device. A backing file must be
 * a regular file (or, with QED_OPEN_BACKING_BLOCK_DEVICES, a block device:
 * else -EPERM); FIFOs, sockets and character devices (-EINVAL) and
 * directories (-EISDIR) are refused without being opened, so the open never
 * blocks on them.
 *
 * QED_OPEN_BACKING_CONFINED: each backing file is opened with openat2()
 * RESOLVE_BENEATH from the directory, so that no "..", symlink or /proc
 * link leads out of it; a relative name is found through the referring
 * image's path inside the directory, an absolute name must lie lexically
 * beneath it. A file outside fails the open with -EPERM and a message
 * naming the file and the directory; where the kernel lacks openat2 (Linux
 * before 5.6) every confined backing open fails with -ENOSYS.
 *
 * Locks: a read-write open takes QEMU's read-write lock set, a read-only
 * open its read-only set, QED_OPEN_FORCE_SHARE only the "consistent read"
 * byte; every backing file is a read-only open (force-shared under a
 * force-shared image), so a QED backing file keeps writers out as in QEMU;
 * a raw image takes the sets of QEMU's raw driver, which share everything
 * (with QED_OPEN_NO_SHARE, as qemu-img's opens, all but write and resize;
 * passed on to the backing chain). A conflict fails the open with -EAGAIN
 * and QEMU's words ('Failed to get "write" lock' / 'Is another process
 * using the image [FILE]?'). The locks belong to the open file
 * description: a second handle of the same process conflicts as another
 * process would, and a child forked after the open keeps them.
 *
 * Returns NULL and sets *errp on failure. The handle is freed by qed_close(). */
QedImage *qed_open(const char *filename, const QedOpenOptions *opts, GError **errp);

/* Switches an open image between read-only and read-write: flags are the
 * open flags with QED_OPEN_READ_ONLY set or not (no other flag may change).
 * No request may be in flight. Going read-write takes the read-write locks
 * (failing with -EAGAIN, as an open would, when another process holds the
 * image) and does what a writable open does, so an image marked NEED_CHECK
 * is checked and repaired then; going read-only flushes, marks the image
 * clean and drops to the read-only locks. A QED_OPEN_FORCE_SHARE handle
 * cannot go read-write (-EINVAL). On failure the handle stays as it was. */
int qed_reopen(QedImage *img, unsigned flags, GError **errp);

/* Flushes, clears NEED_CHECK when it was set by this handle, closes the
 * backing chain and frees img, even on error. NULL is a no-op. */
int qed_close(QedImage *img, GError **errp);

/* Write flags */
enum {
    QED_WRITE_FUA = 1u << 0,           /* the data is on stable storage when the call returns */
    QED_WRITE_ZERO_CLUSTERS = 1u << 1, /* qed_pwrite_zeroes: unallocated clusters become zero
                                        * clusters (or zeroed data at the ends) even without
                                        * a backing file, so that a backing file given later
                                        * (rebase) does not show through */
};

/* Reads len bytes at offset; the range must lie inside the virtual disk.
 * buf is zeroed before anything can fail. */
int qed_pread(QedImage *img, void *buf, size_t len, uint64_t offset, GError **errp);

/* Writes len bytes at any byte offset inside the virtual disk. Calls may run
 * in parallel from many threads, allocating writes too. A write is durable
 * after the next qed_flush (or with QED_WRITE_FUA): until then a crash, even
 * of the process alone, may lose it (an allocating write's table entries
 * wait in memory for that flush, as qcow2's do in QEMU), never corrupt the
 * image. */
int qed_pwrite(QedImage *img, const void *buf, size_t len, uint64_t offset, unsigned flags,
               GError **errp);

/* Makes the range read as zeros. Whole clusters become zero clusters, or
 * unallocated where nothing would show through from a backing file; the
 * partial clusters at the ends are zeroed. */
int qed_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t offset, unsigned flags, GError **errp);

/* The caller no longer needs the range. Here it reads as zeros afterwards
 * (like qed_pwrite_zeroes), so discarded data never reappears. */
int qed_discard(QedImage *img, uint64_t len, uint64_t offset, GError **errp);

/* Everything written before the call is on stable storage when it returns.
 * Concurrent flushes share one metadata commit and one fdatasync. Once a
 * flush of the image file (or a write of that commit) has failed, the
 * handle is failed: every
 * later flush and write fails too (-EIO), and only a new qed_open of the
 * image can tell what reached the disk. Reads go on working. */
int qed_flush(QedImage *img, GError **errp);

/* The virtual size in bytes. */
uint64_t qed_get_size(QedImage *img);

/* Changes the virtual size (a multiple of 512 for QED). Growing a QED image
 * is limited to what its tables can map ("Invalid image size specified");
 * the grown part reads as zeros: unallocated, and where the backing file is
 * longer than the image, zero clusters up to its end (QEMU refuses that
 * grow).
 *
 * Shrinking (which QEMU's qed driver refuses) gives the data past the new
 * end up: its clusters and L2 tables are freed (their entries cleared), the
 * clusters still in use are moved down into the freed space and the file is
 * cut after them, so that the image checks clean, without leaks, and a later
 * grow reads zeros past the old end, not the old data. A crash at any point
 * leaves the image consistent, at worst with leaks, and nothing inside the
 * new size changed (docs/design.md gives the order). Shrinking moves
 * clusters: no other request may be in flight on the handle meanwhile. A
 * shrink first checks the image (qed_check) and refuses one with corruptions
 * (-EIO, nothing changed): repair it first.
 * Raw files are truncated or extended. */
int qed_resize(QedImage *img, uint64_t size, GError **errp);

/* qed_resize, with the grown part preallocated as qemu-img resize
 * --preallocation asks: "off" (also NULL) is qed_resize; a raw file also
 * takes "falloc" (its space is reserved) and "full" (zeros are written).
 * Other modes fail with -ENOTSUP ("Unsupported preallocation mode"), and
 * a mode other than "off" with a size that does not grow with -EINVAL. */
int qed_resize_preallocate(QedImage *img, uint64_t size, const char *preallocation, GError **errp);

typedef enum QedExtentType {
    QED_EXTENT_DATA,        /* allocated in this image at file_offset */
    QED_EXTENT_ZERO,        /* reads as zeros, allocated in this image (zero cluster) */
    QED_EXTENT_UNALLOCATED, /* falls through to the backing file (zeros without one) */
} QedExtentType;

typedef struct QedExtent {
    uint64_t offset; /* virtual offset of the run */
    uint64_t length; /* bytes; the longest run of one type (and contiguous file offsets) */
    QedExtentType type;
    uint64_t file_offset; /* QED_EXTENT_DATA only */
} QedExtent;

/* Describes the run starting at offset, at most len bytes long. */
int qed_block_status(QedImage *img, uint64_t len, uint64_t offset, QedExtent *ext, GError **errp);

typedef struct QedInfo {
    const char *filename;  /* as given to qed_open (less a "file:" prefix) */
    const char *format;    /* "qed" or "raw" */
    uint64_t virtual_size; /* bytes */
    uint64_t file_length;  /* bytes */
    uint64_t actual_size;  /* bytes the file occupies on the host; UINT64_MAX when
                            * that is not known (an NBD export) */
    uint32_t cluster_size; /* 0 for raw */
    uint32_t table_size;   /* clusters; 0 for raw */
    uint32_t header_size;  /* clusters; 0 for raw */
    uint64_t features;     /* header fields as on disk */
    uint64_t compat_features;
    uint64_t autoclear_features;
    bool need_check;               /* NEED_CHECK is set in the header now */
    const char *backing_file;      /* name as stored, or NULL */
    const char *backing_format;    /* "raw" for BACKING_FORMAT_NO_PROBE, else NULL */
    const char *backing_file_full; /* the name resolved against the image's directory
                                    * (names with a protocol prefix as they are) */
    bool format_probed;            /* no format was given and the file probed as raw: tools
                                    * print QEMU's warning when it is writable */
} QedInfo;

/* Fills *info; its strings belong to img and live until qed_close(). */
int qed_get_info(QedImage *img, QedInfo *info, GError **errp);

/* The longest backing file name (in bytes) that the image's header holds,
 * which qed_change_backing_file accepts; 0 for formats without one (raw). */
uint32_t qed_get_backing_name_max(QedImage *img);

/* The opened backing image, or NULL. Owned by img. It may be switched to
 * read-write with qed_reopen (as qemu-img commit reopens its base: it then
 * takes the read-write locks); qed_close of img flushes it and marks it clean. */
QedImage *qed_get_backing(QedImage *img);

/* Rewrites the backing file that the header of a writable image names:
 * backing_file is stored as given (NULL or "" removes it and clears the
 * backing-file feature bits), backing_format "raw" sets
 * BACKING_FORMAT_NO_PROBE, "qed" or NULL let the opener probe. The file is
 * not opened, and the backing image this handle has open stays until the
 * image is opened again. The image is flushed first, so data written for
 * the new backing file is durable before the header names it; a crash
 * leaves the old name or the new one (docs/design.md). A name longer than
 * the header area holds (header_size clusters less the 64-byte header, and
 * at most 4095 bytes, the longest any QED reader takes) fails with -ENOSPC
 * and the image is unchanged; formats without a backing file (raw) fail
 * with -ENOTSUP. */
int qed_change_backing_file(QedImage *img, const char *backing_file, const char *backing_format,
                            GError **errp);

/* Empties a writable image whose clusters are all in its backing file (after
 * a commit): every L1 entry cleared, the L2 tables and data clusters dropped,
 * the file cut back to header + L1, so that every read falls through to the
 * backing file. The backing chain is flushed first. A crash at any point
 * leaves the image consistent but for leaks, which read the same data (see
 * docs/design.md). The backing file must be open (-EINVAL otherwise); no
 * other request may be in flight; raw images fail with -ENOTSUP. */
int qed_make_empty(QedImage *img, GError **errp);

/* How a backing name stored in image `filename` is found: absolute names
 * and names with a protocol prefix ("nbd://...", "file:x") as they are,
 * relative names against the image's directory. Free with g_free. */
char *qed_backing_path(const char *filename, const char *backing_name);

typedef struct QedCheckResult {
    uint64_t corruptions;         /* invalid references, plus one per cluster referenced again */
    uint64_t leaks;               /* whole clusters past the header that nothing references */
    uint64_t check_errors;        /* tables that could not be read (leaks are then not counted) */
    uint64_t corruptions_fixed;   /* of the corruptions, those the repair removed */
    uint64_t leaks_fixed;         /* leaked clusters the repair cut off or reused */
    uint64_t total_clusters;      /* clusters of the virtual disk */
    uint64_t allocated_clusters;  /* non-zero, non-one L2 entries (invalid ones too, as QEMU) */
    uint64_t fragmented_clusters; /* of those, the ones not right after their predecessor */
    uint64_t image_end_offset;    /* end of the last cluster in use */
} QedCheckResult;

/* What qed_check may repair. */
enum {
    QED_CHECK_FIX_ERRORS = 1u << 0,  /* clear invalid and duplicate references; grow the file
                                      * over a data cluster that sticks out past its end */
    QED_CHECK_FIX_LEAKS = 1u << 1,   /* cut leaked clusters off the end of the file (only when
                                      * no corruption is left) */
    QED_CHECK_FIX_COMPACT = 1u << 2, /* with FIX_LEAKS: first move the clusters at the end of
                                      * the file into leaked clusters lower down, so that
                                      * the file shrinks. No other request may be in flight
                                      * on the handle meanwhile */
};

/* Checks the image's metadata (qemu-img check); with fix flags, on a writable
 * handle, repairs it, and when the image is then consistent clears
 * NEED_CHECK. Counts as QEMU 7.2 counts (docs/format.md lists where they
 * differ). Every repair step leaves the image consistent but for leaks, so
 * an interrupted repair loses nothing. Returns 0 when the check ran,
 * whatever it found; -errno when a table could not be read (the check could
 * not finish; check_errors counts them) or a repair failed; -ENOTSUP for
 * formats without metadata (raw). */
int qed_check(QedImage *img, unsigned fix, QedCheckResult *result, GError **errp);

/* How far a long call has come: done of total, in units of the call's own. */
typedef void QedProgressFunc(void *opaque, uint64_t done, uint64_t total);

/* qed_check, calling progress (when not NULL), from the calling thread, as
 * the walk of the tables advances (done counts L1 entries walked). */
int qed_check_progress(QedImage *img, unsigned fix, QedCheckResult *result,
                       QedProgressFunc *progress, void *opaque, GError **errp);

/* Counters of the I/O that reached the image file (not its backing file). */
typedef struct QedStats {
    uint64_t reads, writes, flushes;
    uint64_t bytes_read, bytes_written;
} QedStats;
void qed_get_stats(QedImage *img, QedStats *stats);

#ifdef __cplusplus
}
#endif

#endif /* LIBQED_QED_H */
