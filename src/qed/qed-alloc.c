/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Allocating writes: new clusters are appended at the end of the file and
 * the L2 (and, for a new table, L1) entries pointed at them.
 *
 * Design notes, the write order that keeps an image safe across power loss:
 * 1. NEED_CHECK is set and flushed before the first metadata change after a
 *    clean state (qed_set_need_check), so a torn update is always checked.
 * 2. The file is long enough, durably, before an entry points into it: it
 *    is grown ahead of allocation in steps (ftruncate, then a flush, which
 *    makes the new length durable as fdatasync does), and new clusters and
 *    tables are carved out of the room below that length. QEMU's check
 *    calls a cluster that sticks out past the end of the file a corruption,
 *    and its repair drops the data; with the length made durable first, no
 *    crash can leave one. The room left at the end is cut off when the image
 *    is marked clean (qed_trim_file_locked); after a crash it is leaks.
 *    A container of fixed length (an nbdkit plugin's disk) cannot grow: its
 *    length is durable as it is, and an allocation past it fails (ENOSPC).
 * 3. The data is written into the new clusters. Without a backing file the
 *    parts of a new cluster the request does not cover are not written: the
 *    room reads as zeros. With a backing file, the parts of an unallocated
 *    cluster are copied from it, and the file is flushed before any L2 entry
 *    points at the cluster (also when the cluster was a zero cluster);
 *    otherwise a crash could leave an entry pointing at a cluster that never
 *    reached the disk, which the check clears to "unallocated", and backing
 *    data would show where the image held data or zeros. That flush also
 *    makes the grown length durable.
 * 4. A new L2 table is written whole before the L1 entry that points at it.
 * A crash between the steps leaks clusters at worst; the check reclaims them.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* The most a single allocation copies through memory, in bytes. */
#define ALLOC_MAX_BYTES (16u * 1024 * 1024)

/* The room the file grows by ahead of allocation: an eighth of what is in
 * use, at least 1 MiB and at most 256 MiB (and always enough for the
 * request). Each step costs a flush; the room is sparse, and cut at close. */
#define GROW_MIN_BYTES (1ull << 20)
#define GROW_MAX_BYTES (256ull << 20)

int qed_flush_locked(QedState *s)
{
    int ret = blk_flush(s->file);
    if (ret == 0) {
        s->length_durable = s->length_set;
    }
    return ret;
}

/* Makes the file at least end bytes long: grows it by a step when it is
 * shorter, and then, with flush, makes the length durable. Without flush the
 * caller flushes before any entry points below end. */
static int grow_locked(QedState *s, uint64_t end, bool flush)
{
    if (end <= s->length_durable) {
        return 0;
    }
    if (s->file->fixed_length) {
        int64_t length = blk_get_length(s->file);
        if (length < 0) {
            return (int)length;
        }
        if (end > (uint64_t)length) {
            return -ENOSPC; /* the container is full */
        }
        s->length_set = s->length_durable = (uint64_t)length;
        return 0;
    }
    if (end > s->length_set) {
        pthread_mutex_lock(&s->lock);
        uint64_t in_use = s->file_end;
        pthread_mutex_unlock(&s->lock);
        uint64_t step = CLAMP(in_use / 8, GROW_MIN_BYTES, GROW_MAX_BYTES);
        uint64_t target = qed_round_up_cluster(s, end + step);
        int ret = blk_truncate(s->file, target);
        if (ret < 0) {
            return ret;
        }
        s->length_set = target;
    }
    return flush ? qed_flush_locked(s) : 0;
}

int qed_trim_file_locked(QedState *s)
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
    s->length_set = end;
    s->length_durable = MIN(s->length_durable, end);
    return 0;
}

/* Points the entries of n clusters starting at virtual pos at consecutive
 * clusters from base (or, with step false, all at base). */
static int update_l2(QedState *s, uint64_t pos, uint64_t n, uint64_t base, bool step)
{
    uint32_t l1_index = qed_l1_index(s, pos);
    uint32_t first = qed_l2_index(s, pos);
    g_assert(first + n <= s->table_nelems);

    int ret = qed_set_need_check(s);
    if (ret < 0) {
        return ret;
    }

    /* Entries may point only into durable length: the data clusters the
     * caller took (below file_end) and a new table. alloc_lock keeps
     * file_end still until the table is taken below. */
    pthread_mutex_lock(&s->lock);
    bool table_needed = s->l1[l1_index] == 0 && base != 0;
    uint64_t need = s->file_end + (table_needed ? s->table_bytes : 0);
    pthread_mutex_unlock(&s->lock);
    if (step || table_needed) {
        ret = grow_locked(s, need, true);
        if (ret < 0) {
            return ret;
        }
    }

    pthread_mutex_lock(&s->lock);
    uint64_t l2_offset = s->l1[l1_index];
    bool new_table = l2_offset == 0;
    QedL2Table *t;
    if (new_table) {
        if (base == 0) {
            pthread_mutex_unlock(&s->lock);
            return 0; /* no table, so already unallocated */
        }
        l2_offset = s->file_end;
        if (qed_meta_add(s, &s->meta, l2_offset, l1_index) < 0) {
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        t = qed_l2_cache_new_locked(s, l2_offset);
        if (!t) {
            qed_meta_remove(s, &s->meta, l2_offset, l1_index);
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        s->file_end += s->table_bytes;
    } else {
        /* Never update a table that another one overlaps, or the L1 table. */
        if (!qed_table_offset_valid_locked(s, l2_offset) || !qed_meta_owns(&s->meta, l1_index)) {
            pthread_mutex_unlock(&s->lock);
            return -EIO;
        }
        t = qed_l2_cache_get_locked(s, l2_offset, &ret);
        if (!t) {
            pthread_mutex_unlock(&s->lock);
            return ret;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        t->entries[first + i] = step ? base + i * s->cluster_size : base;
    }
    pthread_mutex_unlock(&s->lock);

    bool l1_unknown = false;
    if (new_table) {
        ret = qed_write_l2(s, t, 0, s->table_nelems);
        if (ret == 0) {
            ret = qed_write_l1_entry(s, l1_index, l2_offset);
            l1_unknown = ret < 0;
        }
    } else {
        ret = qed_write_l2(s, t, first, (uint32_t)n);
    }

    pthread_mutex_lock(&s->lock);
    if (ret < 0) {
        /* What reached the disk is unknown: forget the cached copy, and the
         * L1 entry that was never (or maybe not) written. */
        qed_l2_cache_invalidate_locked(s, t);
        if (new_table) {
            s->l1[l1_index] = 0;
            qed_meta_remove(s, &s->meta, l2_offset, l1_index);
        }
    }
    qed_l2_cache_put_locked(s, t);
    pthread_mutex_unlock(&s->lock);
    if (l1_unknown) {
        /* A failed write may still have reached the disk. Were the entry
         * taken for 0 while the disk points at the new table, a later zero
         * write or discard here would do nothing, and the data of this
         * request would come back after a reopen: take what the disk says. */
        uint64_t le;
        uint64_t at = s->header.l1_table_offset + (uint64_t)l1_index * sizeof(le);
        if (blk_pread(s->file, &le, sizeof(le), at) == 0 && GUINT64_FROM_LE(le) == l2_offset) {
            pthread_mutex_lock(&s->lock);
            /* (Nothing took the table's place: file_end only grows here.) */
            if (qed_meta_add(s, &s->meta, l2_offset, l1_index) == 0) {
                s->l1[l1_index] = l2_offset;
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
    return ret;
}

int qed_set_cluster_entries(QedState *s, uint64_t pos, uint64_t n, uint64_t value)
{
    return update_l2(s, pos, n, value, false);
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

/* Returns the n clusters at offset, the last ones taken, when no entry can
 * point at them yet (their data write failed: ENOSPC, EIO), so that a failed
 * request leaves no leak behind and the next one does not grow the file
 * further. The failed write may have landed, and a new cluster past file_end
 * must read as zeros (an allocation without a backing file writes only what
 * its request covers, and no later flush need come before its entry): the
 * clusters are punched and flushed first, and kept (leaked) should that fail
 * too. A container of fixed length writes new clusters
 * whole and needs no punch. Called with alloc_lock held, which keeps
 * file_end still. */
static void give_back_locked(QedState *s, uint64_t offset, uint64_t n)
{
    uint64_t len = n * s->cluster_size;
    if (!s->file->fixed_length &&
        (blk_punch_zeroes(s->file, offset, len) < 0 || qed_flush_locked(s) < 0)) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->file_end == offset + len) {
        s->file_end = offset;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Allocates clusters for [pos, pos+len), all of one type (unallocated or
 * zero) and inside one L2 table, and writes buf (zeros when NULL) there. */
static int64_t alloc_run(QedState *s, const QedExtent *ext, const void *buf, uint64_t pos,
                         uint64_t len)
{
    uint64_t cs = s->cluster_size;
    uint64_t cstart = qed_start_of_cluster(s, pos);
    uint64_t end = pos + MIN(len, ext->length);
    uint64_t max_bytes = MAX(ALLOC_MAX_BYTES, cs);
    if (end - cstart > max_bytes) {
        end = cstart + max_bytes;
    }
    uint64_t cend = qed_round_up_cluster(s, end);
    uint64_t n = (cend - cstart) / cs;
    bool cow = ext->type == QED_EXTENT_UNALLOCATED && s->img->backing;
    /* In a container of fixed length the space past the image may hold old
     * data, and with O_DIRECT a partial write past the end of the file is a
     * read-modify-write of whole blocks: write new clusters whole. */
    bool whole = cow || s->file->fixed_length || s->file->request_align > 512;

    /* Room for the clusters and a new table if one is needed, made durable
     * by the flush of NEED_CHECK on the first allocation, by the flush below
     * with a backing file, or else by update_l2. alloc_lock keeps file_end
     * and the L1 table still. */
    pthread_mutex_lock(&s->lock);
    uint64_t new_offset = s->file_end;
    uint64_t table = s->l1[qed_l1_index(s, pos)] == 0 ? s->table_bytes : 0;
    pthread_mutex_unlock(&s->lock);
    int ret = grow_locked(s, new_offset + n * cs + table, false);
    if (ret == 0) {
        ret = qed_set_need_check(s);
    }
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&s->lock);
    s->file_end += n * cs;
    pthread_mutex_unlock(&s->lock);

    if (whole) {
        /* Head and tail come from the backing file (or are zeros); all in
         * one write. */
        uint8_t *cbuf = g_try_malloc(cend - cstart);
        if (!cbuf) {
            give_back_locked(s, new_offset, n);
            return -ENOMEM;
        }
        ret = read_old(s, ext->type, cbuf, cstart, pos - cstart);
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
    /* With a backing file, an entry that reached the disk before its cluster
     * would be cleared by the check after a crash, and the backing data would
     * show through where the image held other data (or zeros): the cluster
     * goes to disk first. */
    if (ret == 0 && s->img->backing) {
        ret = qed_flush_locked(s);
    }
    if (ret < 0) {
        give_back_locked(s, new_offset, n);
        return ret;
    }

    /* From here on an entry on the disk may point at the clusters (a failed
     * L2 write may have landed): a failure leaks them, for the check. */
    ret = update_l2(s, cstart, n, new_offset, true);
    if (ret < 0) {
        return ret;
    }
    return (int64_t)(end - pos);
}

int64_t qed_alloc_write(QedState *s, const void *buf, uint64_t pos, uint64_t len)
{
    QedExtent ext;
    /* Look again: another request may have allocated here meanwhile. */
    int ret = qed_find_cluster(s, pos, len, &ext);
    if (ret < 0) {
        return ret;
    }
    if (ext.type == QED_EXTENT_DATA) {
        if (buf) {
            ret = blk_pwrite(s->file, buf, ext.length, ext.file_offset, BLK_TAG_DATA);
        } else {
            ret = blk_punch_zeroes(s->file, ext.file_offset, ext.length);
        }
        return ret < 0 ? ret : (int64_t)ext.length;
    }
    if (ext.type == QED_EXTENT_ZERO && !buf) {
        return (int64_t)ext.length;
    }
    return alloc_run(s, &ext, buf, pos, len);
}
