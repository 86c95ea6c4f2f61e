/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Allocating writes: new clusters are carved out at the end of the file and
 * the cached L2 entries (and, for a new table, the L1 entry) pointed at
 * them; qed-commit.c writes the entries to the disk.
 *
 * Design notes:
 * - Allocations run in parallel. Each owns the range of virtual clusters it
 *   changes (qed-inflight.c) from before it looks at their entries until it
 *   has set them; space is taken from file_end and a new L2 table is made
 *   in the cache, both under `lock`, so two allocators never take one
 *   cluster or make two tables for one L1 entry. The data I/O runs without
 *   any lock.
 * - The write order that keeps an image safe across power loss:
 *   1. NEED_CHECK is set and flushed before the first allocation after a
 *      clean state (qed_set_need_check, one thread at a time), so a torn
 *      update is always checked and a clean image has no leaks.
 *   2. The file is grown ahead of allocation in steps (fallocate), and space
 *      is taken only below the length set. The commit makes that length
 *      durable (a flush) before an entry on the disk points into it: QEMU's
 *      check calls a cluster past the end of the file a corruption. The room
 *      left at the end is cut when the image is marked clean; after a crash
 *      it is leaks. A container of fixed length (an nbdkit plugin's disk)
 *      cannot grow: an allocation past its end fails (ENOSPC).
 *   3. The data is written into the new clusters. Without a backing file
 *      the parts of a new cluster the request does not cover are not
 *      written: the room reads as zeros. With a backing file, the parts of an
 *      unallocated cluster are copied from it, and the commit flushes before
 *      the entry lands (QedCommit.data_first); otherwise a crash could leave an
 *      entry pointing at a cluster that never reached the disk, and zeros
 *      would show where the backing file's data was.
 *   4. The entries change in the cached table, which the commit writes.
 *   A crash between the steps leaks clusters at worst; the check reclaims
 *   them.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* The most a single allocation copies through memory, in bytes. */
#define ALLOC_MAX_BYTES (16u * 1024 * 1024)

/* The room the file grows by ahead of allocation: an eighth of what is in
 * use, at least 1 MiB and at most 64 MiB (and always enough for the
 * request). It is reserved (fallocate), and cut when the image is marked
 * clean. */
#define GROW_MIN_BYTES (1ull << 20)
#define GROW_MAX_BYTES (64ull << 20)

/* Grows the file from length_set to target, reserving the new space
 * (fallocate); where the file system cannot reserve, a truncate makes a
 * hole. Reserved space matters: ext4 runs O_DIRECT writes into reserved
 * (unwritten) blocks in parallel, but into holes one at a time under the
 * inode lock, held until each write completes. A file system with less
 * room than the step gets only the room up to end (*target is lowered).
 * Called with grow_lock held. */
static int grow_file(QedState *s, uint64_t *target, uint64_t end)
{
    pthread_mutex_lock(&s->lock);
    uint64_t from = s->length_set;
    pthread_mutex_unlock(&s->lock);
    int ret = blk_allocate(s->file, from, *target - from);
    if ((ret == -ENOSPC || ret == -EDQUOT) && qed_round_up_cluster(s, end) < *target) {
        /* Too full for the step: the room this allocation needs, at least. */
        *target = qed_round_up_cluster(s, end);
        ret = blk_allocate(s->file, from, *target - from);
    }
    if (ret == -ENOTSUP || ret == -EOPNOTSUPP) {
        ret = blk_truncate(s->file, *target);
    }
    return ret;
}

/* Makes the file at least end bytes long (its length set; the commit makes
 * it durable), growing it by a step. */
static int grow(QedState *s, uint64_t end)
{
    pthread_mutex_lock(&s->grow_lock);
    pthread_mutex_lock(&s->lock);
    bool enough = end <= s->length_set;
    uint64_t in_use = s->file_end;
    pthread_mutex_unlock(&s->lock);
    int ret = 0;
    if (!enough) {
        uint64_t step = CLAMP(in_use / 8, GROW_MIN_BYTES, GROW_MAX_BYTES);
        uint64_t target = qed_round_up_cluster(s, end + step);
        ret = grow_file(s, &target, end);
        if (ret == 0) {
            pthread_mutex_lock(&s->lock);
            s->length_set = MAX(s->length_set, target);
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_unlock(&s->grow_lock);
    return ret;
}

/* Makes room for bytes more at file_end inside the length set (the caller
 * then takes it by raising file_end, before it drops the lock). Called with
 * lock held; drops it to grow the file. */
static int reserve_locked(QedState *s, uint64_t bytes)
{
    while (s->file_end + bytes > s->length_set) {
        if (s->file->fixed_length) {
            return -ENOSPC; /* the container is full */
        }
        uint64_t end = s->file_end + bytes;
        pthread_mutex_unlock(&s->lock);
        int ret = grow(s, end);
        pthread_mutex_lock(&s->lock);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

int qed_trim_file_excl(QedState *s)
{
    if (s->file->fixed_length) {
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    uint64_t end = s->file_end;
    pthread_mutex_unlock(&s->lock);
    int64_t length = blk_get_length(s->file);
    if (length < 0) {
        return (int)length;
    }
    if ((uint64_t)length != end) {
        int ret = blk_truncate(s->file, end);
        if (ret < 0) {
            return ret;
        }
    }
    /* Either length may be on the disk until the next flush; both cover
     * every cluster in use. */
    pthread_mutex_lock(&s->lock);
    s->length_set = end;
    s->length_durable = MIN(s->length_durable, end);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void qed_range_take(QedState *s, uint64_t start, uint64_t end)
{
    pthread_mutex_lock(&s->lock);
    while (qed_inflight_overlaps_locked(&s->inflight, start, end)) {
        pthread_cond_wait(&s->changed, &s->lock);
    }
    qed_inflight_add_locked(&s->inflight, start, end);
    pthread_mutex_unlock(&s->lock);
}

void qed_range_give(QedState *s, uint64_t start, uint64_t end)
{
    pthread_mutex_lock(&s->lock);
    qed_inflight_remove_locked(&s->inflight, start, end);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* The cached table of L1 entry l1_index, with a reference; a new, empty one
 * (queued for the commit) when the entry has none and create is set, else
 * NULL with *err 0. Checks that the table may be used. Called with lock
 * held (dropped to load a table or grow the file). */
static QedL2Table *table_for_locked(QedState *s, uint32_t l1_index, bool create, int *err)
{
    *err = 0;
    uint64_t l2_offset = s->l1[l1_index];
    if (l2_offset == 0) {
        if (!create) {
            return NULL;
        }
        *err = reserve_locked(s, s->table_bytes);
        if (*err < 0) {
            return NULL;
        }
        if (s->l1[l1_index] != 0) {
            /* Another allocator made it while the file grew. */
            return table_for_locked(s, l1_index, create, err);
        }
        l2_offset = s->file_end;
        if (qed_meta_add(s, &s->meta, l2_offset, l1_index) < 0) {
            *err = -ENOMEM;
            return NULL;
        }
        QedL2Table *t = qed_l2_cache_new_locked(s, l2_offset);
        if (!t) {
            qed_meta_remove(s, &s->meta, l2_offset, l1_index);
            *err = -ENOMEM;
            return NULL;
        }
        s->file_end += s->table_bytes;
        s->l1[l1_index] = l2_offset;
        qed_commit_new_table_locked(s, t, l1_index);
        return t;
    }
    /* Never update a table that another one overlaps, or the L1 table. */
    if (!qed_table_offset_valid_locked(s, l2_offset) || !qed_meta_owns(&s->meta, l1_index)) {
        *err = -EIO;
        return NULL;
    }
    return qed_l2_cache_get_locked(s, l2_offset, err);
}

int qed_set_cluster_entries(QedState *s, uint64_t pos, uint64_t n, uint64_t value)
{
    uint32_t l1_index = qed_l1_index(s, pos);
    uint32_t first = qed_l2_index(s, pos);
    g_assert(first + n <= s->table_nelems);

    int ret = qed_set_need_check(s);
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&s->lock);
    QedL2Table *t = table_for_locked(s, l1_index, value != 0, &ret);
    if (t) {
        for (uint64_t i = 0; i < n; i++) {
            t->entries[first + i] = value;
        }
        qed_commit_queue_locked(s, t, first, (uint32_t)n, false);
        qed_l2_cache_put_locked(s, t);
    }
    pthread_mutex_unlock(&s->lock);
    return ret; /* (no table and value 0: already unallocated) */
}

/* Fills dst (the virtual range [pos, pos+len)) as the clusters read before
 * the write: from the backing file when unallocated, zeros otherwise. */
static int read_old(QedState *s, QedExtentType type, void *dst, uint64_t pos, uint64_t len)
{
    if (type == QED_EXTENT_UNALLOCATED) {
        return image_read_backing(s->img, dst, len, pos);
    }
    memset(dst, 0, len);
    return 0;
}

/* Returns the n clusters at offset, when no entry can point at them yet
 * (their data write failed: ENOSPC, EIO) and they are still the last ones
 * taken, so that a failed request leaves no leak behind and the next one
 * does not grow the file further. The failed write may have landed, and a
 * new cluster must read as zeros (an allocation without a backing file
 * writes only what its request covers): the clusters are punched and
 * flushed first, and kept (leaked) should that fail too, or should another
 * allocation have taken space after them. A container of fixed length
 * writes new clusters whole and needs no punch. */
static void give_back(QedState *s, uint64_t offset, uint64_t n)
{
    uint64_t len = n * s->cluster_size;
    if (!s->file->fixed_length &&
        (blk_punch_zeroes(s->file, offset, len) < 0 || qed_flush_file(s) < 0)) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->file_end == offset + len) {
        s->file_end = offset;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Allocates clusters for [pos, pos+len), all of one type (unallocated or
 * zero) and inside one L2 table, and writes buf (zeros when NULL) there.
 * The caller owns the clusters' range. *wb is set when the commit queue
 * wants writing back. */
static int64_t alloc_run(QedState *s, const QedExtent *ext, const void *buf, uint64_t pos,
                         uint64_t len, bool *wb)
{
    uint64_t cs = s->cluster_size;
    uint64_t cstart = qed_start_of_cluster(s, pos);
    uint64_t end = pos + MIN(len, ext->length);
    uint64_t cend = qed_round_up_cluster(s, end);
    uint64_t n = (cend - cstart) / cs;
    uint32_t l1_index = qed_l1_index(s, pos);
    bool cow = ext->type == QED_EXTENT_UNALLOCATED && image_has_backing(s->img);
    /* In a container of fixed length the space past the image may hold old
     * data: new clusters are written whole there. */
    bool whole = cow || s->file->fixed_length;

    /* The clusters first, then a new table after them (QEMU's layout, which
     * convert keeps), both inside the length set. */
    pthread_mutex_lock(&s->lock);
    int ret;
    for (;;) {
        bool need_table = s->l1[l1_index] == 0;
        ret = reserve_locked(s, n * cs + (need_table ? s->table_bytes : 0));
        if (ret < 0 || (s->l1[l1_index] == 0) == need_table) {
            break;
        }
        /* (Another allocator made the table while the file grew.) */
    }
    QedL2Table *t = NULL;
    uint64_t new_offset = s->file_end;
    if (ret == 0) {
        s->file_end += n * cs;
        t = table_for_locked(s, l1_index, true, &ret);
        if (!t && s->file_end == new_offset + n * cs) {
            s->file_end = new_offset; /* nothing was written there */
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!t) {
        return ret;
    }

    if (whole) {
        /* Head and tail come from the backing file (or are zeros); all in
         * one write. */
        uint8_t *cbuf = g_try_malloc(cend - cstart);
        ret = cbuf ? 0 : -ENOMEM;
        if (ret == 0) {
            ret = read_old(s, ext->type, cbuf, cstart, pos - cstart);
        }
        if (ret == 0) {
            ret = read_old(s, ext->type, cbuf + (end - cstart), end, cend - end);
        }
        if (ret == 0) {
            if (buf) {
                memcpy(cbuf + (pos - cstart), buf, end - pos);
            } else {
                memset(cbuf + (pos - cstart), 0, end - pos);
            }
            ret = blk_pwrite(s->file, cbuf, cend - cstart, new_offset, BLK_TAG_COW);
        }
        g_free(cbuf);
    } else if (buf) {
        ret = blk_pwrite(s->file, buf, end - pos, new_offset + (pos - cstart), BLK_TAG_DATA);
    }
    if (ret < 0) {
        give_back(s, new_offset, n);
        pthread_mutex_lock(&s->lock);
        qed_l2_cache_put_locked(s, t);
        pthread_mutex_unlock(&s->lock);
        return ret;
    }

    /* The data is written: reads may find it from now on. */
    uint32_t first = qed_l2_index(s, cstart);
    pthread_mutex_lock(&s->lock);
    for (uint64_t i = 0; i < n; i++) {
        t->entries[first + i] = new_offset + i * cs;
    }
    /* The data goes to disk before the entry where the cluster's space may
     * hold other bytes: copied-on-write parts, and a container of fixed
     * length (its free space holds old data, also a moved cluster's old
     * copy after a reclaim). */
    *wb = qed_commit_queue_locked(s, t, first, (uint32_t)n, cow || s->file->fixed_length);
    qed_l2_cache_put_locked(s, t);
    pthread_mutex_unlock(&s->lock);
    return (int64_t)(end - pos);
}

int64_t qed_alloc_write(QedState *s, const void *buf, uint64_t pos, uint64_t len)
{
    uint64_t cstart = qed_start_of_cluster(s, pos);
    uint64_t table_end = (pos | (qed_l2_coverage(s) - 1)) + 1;
    uint64_t end = MIN(pos + len, table_end);
    end = MIN(end, cstart + MAX(ALLOC_MAX_BYTES, s->cluster_size));
    len = end - pos;
    uint64_t rstart = cstart, rend = qed_round_up_cluster(s, end);

    int ret = qed_set_need_check(s);
    if (ret < 0) {
        return ret;
    }
    qed_range_take(s, rstart, rend);
    /* Look again: another request may have allocated here meanwhile. */
    QedExtent ext;
    int64_t done = qed_find_cluster(s, pos, len, &ext);
    bool wb = false;
    if (done < 0) {
        /* (failed) */
    } else if (ext.type == QED_EXTENT_DATA) {
        ret = buf ? blk_pwrite(s->file, buf, ext.length, ext.file_offset, BLK_TAG_DATA)
                  : blk_punch_zeroes(s->file, ext.file_offset, ext.length);
        done = ret < 0 ? ret : (int64_t)ext.length;
    } else if (ext.type == QED_EXTENT_ZERO && !buf) {
        done = (int64_t)ext.length;
    } else {
        done = alloc_run(s, &ext, buf, pos, len, &wb);
    }
    qed_range_give(s, rstart, rend);
    if (wb) {
        /* The queued tables cannot be evicted: write them (no flush). An
         * error fails the handle; this write's data is in place already. */
        qed_commit(s, false);
    }
    return done;
}
