/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QED format driver's table of contents: the in-memory header, the
 * driver state with the lock that guards each field, and a prototype section
 * per source file.
 *
 * Locks (take them in this order, never the other way round):
 *   maint       a read-write lock. Allocating writes, zero-cluster updates and
 *               flushes hold it shared, and run in parallel; the jobs that
 *               change metadata wholesale hold it exclusive, with no
 *               allocation in flight: marking clean (the cleaner, close,
 *               reopen), check and repair, reclaim, resize, make_empty,
 *               change_backing. Held across I/O. Functions named *_excl are
 *               called with it held exclusive.
 *   grow_lock   serializes growing the file (a truncate). Held across it.
 *   lock        guards the in-memory metadata: header, L1, L2 cache, file_end,
 *               the in-flight cluster ranges, the commit queue, the file's
 *               lengths. Held only briefly and never across I/O (an L2 load
 *               drops it). Functions named *_locked are called with it held.
 * Reads and writes to allocated clusters take only `lock`, to translate.
 * An allocation in flight owns its range of clusters (QedInflight): nobody
 * else allocates or changes entries there until it ends. Entries change only
 * in the cached tables; qed-commit.c alone writes L2 and L1 sectors.
 */
#ifndef QED_INTERNAL_H
#define QED_INTERNAL_H

#include "image.h"

#define QED_HEADER_BYTES 64u       /* the fixed part of the header on disk */
#define QED_MAX_BACKING_NAME 4096u /* the longest backing file name we read */
#define QED_DEFAULT_L2_CACHE_BYTES (32u * 1024 * 1024)
#define QED_L2_ENTRY_ZERO 1ull /* an L2 entry that marks a zero cluster */

typedef struct QedHeader {
    uint32_t magic;
    uint32_t cluster_size; /* bytes */
    uint32_t table_size;   /* clusters per table */
    uint32_t header_size;  /* clusters */
    uint64_t features;
    uint64_t compat_features;
    uint64_t autoclear_features;
    uint64_t l1_table_offset;         /* bytes */
    uint64_t image_size;              /* bytes */
    uint32_t backing_filename_offset; /* bytes */
    uint32_t backing_filename_size;   /* bytes */
} QedHeader;

/* One cached L2 table. */
typedef struct QedL2Table {
    uint64_t offset;   /* file offset of the table; the cache key */
    uint64_t *entries; /* table_nelems entries in host byte order */
    int ref;           /* holders; the cache evicts only unreferenced tables */
    /* Commit state (qed-commit.c), under QedState.lock: */
    uint64_t *dirty; /* one bit per write unit whose entries differ from the disk, or NULL */
    bool queued;     /* in the commit queue, which holds a reference */
    bool unwritten;  /* new, not yet written whole: its L1 entry stays 0 on the disk */
    bool loading;    /* being read from disk: wait on QedState.l2_loaded */
    int load_error;  /* -errno when that read failed */
    GList *lru_link; /* position in QedL2Cache.lru while unreferenced */
} QedL2Table;

typedef struct QedL2Cache {
    GHashTable *tables; /* offset (uint64_t *) -> QedL2Table * */
    GQueue lru;         /* unreferenced tables, most recently used first */
    size_t bytes;       /* bytes of all cached tables */
    size_t budget;      /* evict unreferenced tables beyond this */
} QedL2Cache;

/* A table in the metadata map (qed-meta.c). */
typedef struct QedMetaTable {
    uint64_t offset; /* bytes; the table is table_bytes long */
    uint32_t owner;  /* the L1 index whose table it is, or QED_META_L1 */
} QedMetaTable;
#define QED_META_L1 UINT32_MAX

/* The tables a request may use: the L1 table and the L2 tables its entries
 * reference that overlap nothing before them (qed-meta.c). */
typedef struct QedMeta {
    QedMetaTable *tables; /* sorted by offset; they do not overlap */
    size_t n;             /* tables */
    size_t cap;           /* room in tables */
    uint64_t *owned;      /* one bit per L1 entry: its table is in the map */
} QedMeta;

/* The virtual cluster ranges that allocations and entry updates own while
 * they run (qed-inflight.c); all calls with QedState.lock held. */
typedef struct QedInflight {
    GArray *ranges; /* QedRange, unordered: as many as requests in flight */
} QedInflight;
typedef struct QedRange {
    uint64_t start, end; /* virtual bytes, [start, end) */
} QedRange;

/* The commit queue (qed-commit.c), under QedState.lock. Changes join batch
 * `gen`; one leader at a time writes a batch and advances `written` (and,
 * after an fdatasync, `durable`) to it. */
typedef struct QedCommit {
    GPtrArray *tables; /* queued tables, each holding a reference */
    GArray *l1_dirty;  /* uint32_t L1 indices of new tables */
    bool data_first;   /* a queued entry points at a cluster whose data must be
                        * durable before the entry (copy-on-write) */
    uint64_t gen;      /* the batch that changes join now */
    uint64_t written;  /* the last batch whose tables are written */
    uint64_t durable;  /* the last batch flushed */
    bool busy;         /* a leader is at work */
    int error;         /* a commit failed: what is on the disk is unknown */
    uint32_t unit;     /* bytes per dirty bit: the atomic write unit */
} QedCommit;

typedef struct QedState {
    QedImage *img; /* the image this driver state belongs to */
    BlkDev *file;  /* img->file */
    bool read_only;

    /* Geometry, fixed at open. */
    uint32_t cluster_size;   /* bytes */
    uint32_t cluster_bits;   /* log2(cluster_size) */
    uint32_t table_nelems;   /* entries per table */
    uint32_t table_bits;     /* log2(table_nelems) */
    uint64_t table_bytes;    /* bytes per table */
    uint64_t header_bytes;   /* bytes of the header area */
    uint64_t max_image_size; /* what the tables can map, saturated at INT64_MAX */

    char *backing_name;       /* as stored in the header, or NULL */
    char *backing_full;       /* resolved against the image's directory, or NULL */
    GPtrArray *retired_names; /* maint exclusive; names replaced by qed_change_backing_file,
                               * kept until close for qed_get_info's callers (g_free) */

    pthread_rwlock_t maint;
    pthread_mutex_t grow_lock;
    pthread_mutex_t lock;
    pthread_cond_t l2_loaded; /* signalled (with lock) when an L2 load ends */
    pthread_cond_t changed;   /* broadcast (with lock) when an in-flight range ends, when
                               * setting NEED_CHECK ends and when a commit ends */
    QedInflight inflight;     /* lock */
    QedCommit commit;         /* lock */
    bool need_check_busy;     /* lock; a thread is setting NEED_CHECK: wait for it */
    QedHeader header;         /* lock */
    uint64_t *l1;             /* lock; the whole L1 table (table_nelems entries), host order */
    uint32_t l1_nelems;       /* lock; entries that cover image_size, the ones translation uses */
    QedMeta meta;             /* lock; the tables in use, kept in step with l1 and the header */
    QedL2Cache l2_cache;      /* lock */
    uint64_t file_end;        /* lock; offset of the next cluster to allocate */
    /* The file is grown ahead of allocation (qed-alloc.c): */
    uint64_t length_set;     /* lock (and grow_lock to raise it); bytes the file is long,
                              * as this handle set it */
    uint64_t length_durable; /* lock; bytes of it a flush made durable: an entry on the
                              * disk may point only below this */
    uint64_t freed_clusters; /* lock; data clusters zero writes gave up */
    uint64_t reclaims;       /* lock; reclaims after ENOSPC so far (qed.c) */
    bool unchecked;          /* maint; NEED_CHECK was found at a QED_OPEN_CHECK open and
                              * no check has repaired the image yet: the mark must stay */

    /* The cleaner thread marks a writable image clean once no metadata has
     * changed for clean_after_us (qed.c). */
    pthread_t cleaner;
    bool cleaner_started;
    bool cleaner_stop;           /* lock */
    pthread_cond_t cleaner_cond; /* lock; CLOCK_MONOTONIC */
    int64_t last_change_us;      /* lock; monotonic time of the last metadata change */
    int64_t clean_after_us;
} QedState;

/* Scope-bound locking for functions that return on many paths: the mutex
 * is held from here to the end of the enclosing block. */
static inline void qed_mutex_unlock_cleanup(pthread_mutex_t **m)
{
    pthread_mutex_unlock(*m);
}
#define QED_MUTEX_GUARD(m) \
    pthread_mutex_t *qed_guard_ __attribute__((cleanup(qed_mutex_unlock_cleanup))) = (m); \
    pthread_mutex_lock(qed_guard_)

static inline QedState *qed_state(QedImage *img)
{
    return img->opaque;
}

/* Unit conversions. */
static inline uint64_t qed_offset_into_cluster(const QedState *s, uint64_t pos)
{
    return pos & (s->cluster_size - 1);
}
static inline uint64_t qed_start_of_cluster(const QedState *s, uint64_t pos)
{
    return pos & ~(uint64_t)(s->cluster_size - 1);
}
static inline uint64_t qed_round_up_cluster(const QedState *s, uint64_t pos)
{
    return qed_start_of_cluster(s, pos + s->cluster_size - 1);
}
static inline uint32_t qed_l1_index(const QedState *s, uint64_t pos)
{
    return (uint32_t)(pos >> (s->cluster_bits + s->table_bits));
}
static inline uint32_t qed_l2_index(const QedState *s, uint64_t pos)
{
    return (uint32_t)((pos >> s->cluster_bits) & (s->table_nelems - 1));
}
/* Bytes of virtual disk one L2 table maps. */
static inline uint64_t qed_l2_coverage(const QedState *s)
{
    return (uint64_t)s->table_nelems << s->cluster_bits;
}
static inline uint32_t qed_l1_nelems_for(const QedState *s, uint64_t image_size)
{
    uint64_t n = (image_size + qed_l2_coverage(s) - 1) / qed_l2_coverage(s);
    return (uint32_t)MAX(n, 1);
}

/* qed-create.c */
/* The driver's create: writes a new QED image into file. */
int qed_format_create(BlkDev *file, const QedCreateOptions *opts, GError **errp);
uint64_t qed_max_image_size(uint32_t cluster_size, uint32_t table_size);
bool qed_cluster_size_valid(uint32_t cluster_size);
bool qed_table_size_valid(uint32_t table_size);

/* qed-open.c: the driver's open, close, reopen, shutdown, probe and info. */
int qed_drv_open(QedImage *img, int depth, GPtrArray *chain, GError **errp);
void qed_drv_close(QedImage *img);
int qed_drv_reopen(QedImage *img, bool writable, GError **errp);
int qed_drv_shutdown(QedImage *img, GError **errp);
bool qed_drv_probe(const uint8_t *buf, size_t len);
void qed_drv_get_info(QedImage *img, QedInfo *info);

/* qed-clean.c */
/* Sets NEED_CHECK and flushes, unless it is set; one thread at a time, the
 * others wait for it. Called with maint held (or from the commit leader). */
int qed_set_need_check(QedState *s);
/* Grows the file over every allocated cluster, flushes, clears NEED_CHECK
 * and flushes again. Called with maint held exclusive. */
int qed_mark_clean_excl(QedState *s);
/* The same, first reclaiming the clusters zero writes gave up (moving the
 * last clusters into them, cutting the file): for close, with no request
 * in flight. Called with maint held exclusive. */
int qed_reclaim_and_mark_clean_excl(QedState *s);
/* After a reclaim gave the freed clusters back: none are freed now, and the
 * writers that met ENOSPC meanwhile may try again (qed.c). No lock held. */
void qed_note_reclaimed(QedState *s);
/* The cleaner thread starts with the first metadata change; stop joins it. */
int qed_cleaner_start(QedState *s);
void qed_cleaner_stop(QedState *s);

/* qed-check.c */
/* Checks the image of a writable open that found NEED_CHECK set, repairs
 * what it can (called before any request, with no lock held). */
int qed_check_repair(QedState *s, GError **errp);
/* Sets file_end to the end of the last cluster in use (for a file of fixed
 * length, whose length says nothing about the image). */
int qed_find_image_end(QedState *s);
/* Reclaims leaked clusters (compaction; no request in flight). Called with
 * maint held exclusive. */
int qed_reclaim_excl(QedState *s);
/* The driver's check entry point (qed_check). */
int qed_driver_check(QedImage *img, unsigned fix, QedCheckResult *res, QedProgressFunc *progress,
                     void *opaque, GError **errp);

/* qed-backing-name.c */
/* The longest backing file name the header area holds (and an open accepts). */
uint32_t qed_backing_name_max(const QedState *s);
/* The driver's change_backing entry point (qed_change_backing_file). */
int qed_drv_change_backing(QedImage *img, const char *name, const char *format, GError **errp);

/* qed-empty.c */
/* The driver's make_empty entry point (qed_make_empty). */
int qed_drv_make_empty(QedImage *img, GError **errp);

/* qed-table.c */
void qed_header_from_le(QedHeader *h, const uint8_t *buf);
void qed_header_to_le(const QedHeader *h, uint8_t *buf);
int qed_write_header(QedState *s, const QedHeader *h);
/* Copies n table entries to dst in the on-disk (little-endian) order. */
void qed_entries_to_le(uint8_t *dst, const uint64_t *src, size_t n);
int qed_read_l1(QedState *s, uint32_t first, uint32_t count);
int qed_write_l1_entry(QedState *s, uint32_t index, uint64_t value);
int qed_read_l2(QedState *s, uint64_t offset, uint64_t *entries);
int qed_write_l2(QedState *s, QedL2Table *t, uint32_t first, uint32_t count);
/* Whether a table of the image may start at offset: aligned, past the header,
 * and wholly inside the allocated part of the file. Called with lock held. */
bool qed_table_offset_valid_locked(const QedState *s, uint64_t offset);
/* Likewise for a data cluster. Called with lock held. */
bool qed_cluster_offset_valid_locked(const QedState *s, uint64_t offset);

/* qed-l2-cache.c (all called with lock held) */
void qed_l2_cache_init(QedL2Cache *cache, size_t budget);
void qed_l2_cache_destroy(QedL2Cache *cache);
/* Returns the table at offset with a reference, reading it if needed (the lock
 * is dropped during the read). NULL with *err set on failure. */
QedL2Table *qed_l2_cache_get_locked(QedState *s, uint64_t offset, int *err);
/* A new, all-zero table at offset, with a reference. NULL on ENOMEM. */
QedL2Table *qed_l2_cache_new_locked(QedState *s, uint64_t offset);
void qed_l2_cache_put_locked(QedState *s, QedL2Table *t);
/* One more reference to t, which the caller holds one of or found in the cache. */
void qed_l2_cache_ref_locked(QedState *s, QedL2Table *t);
/* Forgets t, whose on-disk copy may differ after a failed write; it is freed
 * when its last holder puts it. */
void qed_l2_cache_invalidate_locked(QedState *s, QedL2Table *t);

/* qed-meta.c */
/* Builds into meta (replacing what it held) the map of the tables that the
 * L1 table at l1_offset, whose table_nelems entries are l1, references in a
 * file whose clusters end at end. -ENOMEM leaves meta as it was. */
int qed_meta_build(const QedState *s, const uint64_t *l1, uint64_t l1_offset, uint64_t end,
                   QedMeta *meta);
/* The same from s->l1, the header and file_end into s->meta. Called with lock held. */
int qed_meta_rebuild_locked(QedState *s);
void qed_meta_free(QedMeta *meta);
/* Whether L1 entry l1_index may use its table (the map has it for the
 * entry). One bit test: translation asks it for every request. */
static inline bool qed_meta_owns(const QedMeta *meta, uint32_t l1_index)
{
    return (meta->owned[l1_index / 64] >> (l1_index % 64)) & 1;
}
/* The offset of the first table in the map that overlaps [start, start+len),
 * or UINT64_MAX. */
uint64_t qed_meta_first_overlap(const QedState *s, const QedMeta *meta, uint64_t start,
                                uint64_t len);
/* Adds the table at offset for L1 entry l1_index; it must overlap no table
 * of the map. -ENOMEM on failure. */
int qed_meta_add(const QedState *s, QedMeta *meta, uint64_t offset, uint32_t l1_index);
/* Removes the table of L1 entry l1_index at offset. */
void qed_meta_remove(const QedState *s, QedMeta *meta, uint64_t offset, uint32_t l1_index);

/* qed-cluster.c */
/* Describes the run at pos (at most len bytes, never crossing an L2 table's
 * range): data (with its file offset), zero cluster, or unallocated. */
int qed_find_cluster(QedState *s, uint64_t pos, uint64_t len, QedExtent *ext);

/* qed-resize.c (called with maint held exclusive) */
/* Shrinks the image to size (below image_size): gives up the clusters and
 * tables past it, compacts and cuts the file, marks the image clean. No
 * other request may be in flight. */
int qed_shrink_excl(QedState *s, uint64_t size);
/* Before a grow from image_size `from`: makes [from, to) (to at most the
 * backing file's size) read as zeros instead of the backing file, and
 * flushes. */
int qed_zero_grown_excl(QedState *s, uint64_t from, uint64_t to);

/* qed-alloc.c (called with maint held, shared or exclusive) */
/* Writes buf (zeros when NULL) at pos, allocating clusters where the image has
 * none. Returns the bytes done (> 0, maybe fewer than len) or -errno. */
int64_t qed_alloc_write(QedState *s, const void *buf, uint64_t pos, uint64_t len);
/* Points the cached L2 entries of n whole clusters at value (0 or
 * QED_L2_ENTRY_ZERO) and queues them for the commit, making the L2 table
 * when value needs one. The clusters lie in one table, and the caller owns
 * their range (qed_range_take) or holds maint exclusive. */
int qed_set_cluster_entries(QedState *s, uint64_t pos, uint64_t n, uint64_t value);
/* Waits until no allocation owns part of the virtual range [start, end),
 * then owns it; give hands it back and wakes the waiters. */
void qed_range_take(QedState *s, uint64_t start, uint64_t end);
void qed_range_give(QedState *s, uint64_t start, uint64_t end);
/* Sets the file's length to exactly file_end, cutting the room grown ahead
 * of allocation (or growing over clusters an allocation that failed left
 * past the end), for marking the image clean. Does not flush. */
int qed_trim_file_excl(QedState *s);

/* qed-inflight.c (all called with lock held but init and destroy) */
void qed_inflight_init(QedInflight *f);
void qed_inflight_destroy(QedInflight *f);
bool qed_inflight_overlaps_locked(const QedInflight *f, uint64_t start, uint64_t end);
/* Adds [start, end), which must overlap no range in the set. */
void qed_inflight_add_locked(QedInflight *f, uint64_t start, uint64_t end);
/* Removes the range added as [start, end). */
void qed_inflight_remove_locked(QedInflight *f, uint64_t start, uint64_t end);
size_t qed_inflight_count_locked(const QedInflight *f);

/* qed-commit.c */
/* Sets up the queue (after the geometry and the file are known); destroy
 * drops what is queued (called with no other thread left). */
void qed_commit_init(QedState *s);
void qed_commit_destroy(QedState *s);
/* Queues entries [first, first+count) of t, changed in the cache. With
 * data_first, the data of the clusters they point at must be durable before
 * they are. Returns whether the queue wants writing back (qed_commit(s,
 * false)). Called with lock held. */
bool qed_commit_queue_locked(QedState *s, QedL2Table *t, uint32_t first, uint32_t count,
                             bool data_first);
/* Queues t, new and all zeros, and the L1 entry l1_index that points at it.
 * Called with lock held. */
void qed_commit_new_table_locked(QedState *s, QedL2Table *t, uint32_t l1_index);
/* Writes what was queued before the call (and, with flush, makes every
 * write completed before the call durable): 0, or the -errno of a failed
 * commit, which fails the handle. No lock held. */
int qed_commit(QedState *s, bool flush);
/* Flushes the file and records the length it made durable. No lock held. */
int qed_flush_file(QedState *s);

#endif
