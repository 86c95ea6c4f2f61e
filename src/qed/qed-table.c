/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QED header, L1 and L2 table I/O: byte order conversion on the way to and
 * from disk, and the offset rules a table or cluster must obey.
 *
 * Design notes: tables are updated in place, a sector at a time. A 512-byte
 * aligned write is the unit a disk writes atomically, so one entry update can
 * be lost on power failure but never torn. A new L2 table is written whole
 * before the L1 entry that points at it.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

void qed_header_from_le(QedHeader *h, const uint8_t *buf)
{
    memcpy(&h->magic, buf + 0, 4);
    memcpy(&h->cluster_size, buf + 4, 4);
    memcpy(&h->table_size, buf + 8, 4);
    memcpy(&h->header_size, buf + 12, 4);
    memcpy(&h->features, buf + 16, 8);
    memcpy(&h->compat_features, buf + 24, 8);
    memcpy(&h->autoclear_features, buf + 32, 8);
    memcpy(&h->l1_table_offset, buf + 40, 8);
    memcpy(&h->image_size, buf + 48, 8);
    memcpy(&h->backing_filename_offset, buf + 56, 4);
    memcpy(&h->backing_filename_size, buf + 60, 4);
    h->magic = GUINT32_FROM_LE(h->magic);
    h->cluster_size = GUINT32_FROM_LE(h->cluster_size);
    h->table_size = GUINT32_FROM_LE(h->table_size);
    h->header_size = GUINT32_FROM_LE(h->header_size);
    h->features = GUINT64_FROM_LE(h->features);
    h->compat_features = GUINT64_FROM_LE(h->compat_features);
    h->autoclear_features = GUINT64_FROM_LE(h->autoclear_features);
    h->l1_table_offset = GUINT64_FROM_LE(h->l1_table_offset);
    h->image_size = GUINT64_FROM_LE(h->image_size);
    h->backing_filename_offset = GUINT32_FROM_LE(h->backing_filename_offset);
    h->backing_filename_size = GUINT32_FROM_LE(h->backing_filename_size);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, 8);
}

void qed_header_to_le(const QedHeader *h, uint8_t *buf)
{
    put_le32(buf + 0, h->magic);
    put_le32(buf + 4, h->cluster_size);
    put_le32(buf + 8, h->table_size);
    put_le32(buf + 12, h->header_size);
    put_le64(buf + 16, h->features);
    put_le64(buf + 24, h->compat_features);
    put_le64(buf + 32, h->autoclear_features);
    put_le64(buf + 40, h->l1_table_offset);
    put_le64(buf + 48, h->image_size);
    put_le32(buf + 56, h->backing_filename_offset);
    put_le32(buf + 60, h->backing_filename_size);
}

int qed_write_header(QedState *s, const QedHeader *h)
{
    uint8_t buf[QED_HEADER_BYTES];
    qed_header_to_le(h, buf);
    return blk_pwrite(s->file, buf, sizeof(buf), 0, BLK_TAG_HEADER);
}

static void entries_from_le(uint64_t *e, size_t n)
{
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
    for (size_t i = 0; i < n; i++) {
        e[i] = GUINT64_FROM_LE(e[i]);
    }
#else
    (void)e;
    (void)n;
#endif
}

int qed_read_l1(QedState *s, uint32_t first, uint32_t count)
{
    uint64_t offset = s->header.l1_table_offset + (uint64_t)first * sizeof(uint64_t);
    int ret = blk_pread(s->file, s->l1 + first, (size_t)count * sizeof(uint64_t), offset);
    if (ret < 0) {
        return ret;
    }
    entries_from_le(s->l1 + first, count);
    return 0;
}

/* The aligned byte span of a table that holds entries [first, first+count). */
static void entry_span(const QedState *s, uint32_t first, uint32_t count, uint64_t *start,
                       uint64_t *len)
{
    uint64_t align = MAX(s->file->request_align, sizeof(uint64_t));
    uint64_t a = (uint64_t)first * sizeof(uint64_t);
    uint64_t b = (uint64_t)(first + count) * sizeof(uint64_t);
    a -= a % align;
    b = MIN((b + align - 1) / align * align, s->table_bytes);
    *start = a;
    *len = b - a;
}

void qed_entries_to_le(uint8_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put_le64(dst + i * sizeof(uint64_t), src[i]);
    }
}

int qed_write_l1_entry(QedState *s, uint32_t index, uint64_t value)
{
    uint64_t start, len;
    entry_span(s, index, 1, &start, &len);
    uint8_t *buf = g_malloc(len);
    uint32_t first = (uint32_t)(start / sizeof(uint64_t));
    uint32_t n = (uint32_t)(len / sizeof(uint64_t));

    /* The whole L1 table is in memory: the neighbours in the span are
     * written back as they are. */
    pthread_mutex_lock(&s->lock);
    s->l1[index] = value;
    qed_entries_to_le(buf, s->l1 + first, n);
    pthread_mutex_unlock(&s->lock);

    int ret = blk_pwrite(s->file, buf, len, s->header.l1_table_offset + start, BLK_TAG_L1);
    g_free(buf);
    return ret;
}

int qed_read_l2(QedState *s, uint64_t offset, uint64_t *entries)
{
    int ret = blk_pread(s->file, entries, s->table_bytes, offset);
    if (ret < 0) {
        return ret;
    }
    entries_from_le(entries, s->table_nelems);
    return 0;
}

int qed_write_l2(QedState *s, QedL2Table *t, uint32_t first, uint32_t count)
{
    uint64_t start, len;
    entry_span(s, first, count, &start, &len);
    uint8_t *buf = g_try_malloc(len);
    if (!buf) {
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    qed_entries_to_le(buf, t->entries + start / sizeof(uint64_t), len / sizeof(uint64_t));
    pthread_mutex_unlock(&s->lock);
    int ret = blk_pwrite(s->file, buf, len, t->offset + start, BLK_TAG_L2);
    g_free(buf);
    return ret;
}

bool qed_table_offset_valid_locked(const QedState *s, uint64_t offset)
{
    return qed_offset_into_cluster(s, offset) == 0 && offset >= s->header_bytes &&
           offset <= s->file_end && s->file_end - offset >= s->table_bytes;
}

bool qed_cluster_offset_valid_locked(const QedState *s, uint64_t offset)
{
    return qed_offset_into_cluster(s, offset) == 0 && offset >= s->header_bytes &&
           offset < s->file_end;
}
