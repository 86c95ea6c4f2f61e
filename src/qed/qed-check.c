/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Consistency check and repair (qemu-img check): every table and data offset
 * must be valid and referenced once; whole clusters past the header that
 * nothing references are leaks.
 *
 * Design notes:
 * - The counts are QEMU 7.2's (block/qed-check.c), so that qed-img check and
 *   qemu-img check agree: the L1 entries are walked in order, each valid L2
 *   table right after its L1 entry; a reference is valid when it is cluster
 *   aligned, past the header area and inside the file; a cluster met a
 *   second time is one corruption per cluster (a table that overlaps one is
 *   not read); every L2 entry other than 0 and 1 counts as allocated, valid
 *   or not, and fragmentation is counted within each table. Leaks are counted
 *   right, where QEMU miscounts past cluster_size - 1 clusters (its cluster
 *   index divides by cluster_size - 1; docs/format.md).
 * - "Inside the file" means inside the file's length rounded up to a cluster,
 *   as for the reads (qed-table.c), so that a file cut inside its last
 *   cluster still reads. QEMU rounds the length down and calls a reference
 *   that reaches into a partial last cluster a corruption; so does this
 *   check (libqed never writes such a file: it grows the file ahead of
 *   allocation, qed-alloc.c), and any repair grows the file over the
 *   cluster instead of dropping the reference, so no data is lost (as any
 *   writable handle does when it marks the image clean).
 * - Memory: one bit per cluster of the file, the L1 table and one L2 table
 *   (the tables are read straight from disk, not through the L2 cache); a
 *   compaction adds at most max(entries per table, 64 Ki) move records of
 *   16 bytes. A compaction needs the handle to itself (qed-img check -r
 *   opens one with QED_OPEN_CHECK): a concurrent write into a cluster being
 *   moved would be lost.
 * - A reference into metadata (a data cluster inside a table, an L2 table
 *   over the L1 table or over another table) is met as a cluster referenced
 *   twice, and counted where QEMU counts it. A repair (QED_CHECK_FIX_ERRORS)
 *   follows the aliasing rule of qed-meta.c instead of the walk order: the
 *   tables win, so it clears the data entry that points into a table, or the
 *   L1 entry of a table that overlaps the L1 table or an earlier table, and
 *   never the table that is metadata; a request refuses exactly those
 *   references (qed-cluster.c).
 * - On a writable handle, the room grown ahead of allocation past file_end
 *   (qed-alloc.c) is the handle's own, not leaked clusters.
 * - Repair keeps the image consistent but for leaks after every step, so an
 *   interrupted repair loses nothing and changes no data:
 *   1. invalid and duplicate references are cleared (the first reference to
 *      a cluster, in walk order, is the one kept, but for the tables: see
 *      above) and the table rewritten;
 *      the file is grown to a whole number of clusters; then a flush, after
 *      which what was cleared is leaked;
 *   2. compaction: clusters at the end of the file move into leaked clusters
 *      lower down: copy, flush, point the one reference at the copy, flush;
 *      L2 tables move after their data references are updated, the L1 table
 *      last (the header points at the copy);
 *   3. the leaked clusters at the end of the file are cut off.
 *   Leaks are repaired only when no corruption is left: a reference the
 *   check could not follow might still lead to clusters that look leaked.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct Check {
    QedState *s;
    unsigned fix;
    QedCheckResult *res;
    uint64_t length;           /* bytes in the file (changed by the repair) */
    uint64_t *used;            /* one bit per cluster of the file, a partial last one included */
    uint64_t nbits;            /* clusters of the file, rounded up: references must end by then */
    uint64_t nmap;             /* bits in used: nbits plus room for two tables past the end */
    uint64_t *l1;              /* the whole L1 table as on disk, host order */
    uint64_t *l2;              /* one L2 table (or a cluster being copied) */
    int read_error;            /* the last table read that failed (-errno), or 0 */
    bool tables_win;           /* repairing errors: meta decides which references go */
    QedMeta meta;              /* with tables_win: the tables of l1 the aliasing rule keeps */
    bool l1_dirty;             /* l1 differs from s->l1 */
    bool l2_written;           /* some L2 table on disk changed or moved: the cache is stale */
    QedProgressFunc *progress; /* told of each L1 entry walked, or NULL */
    void *opaque;
} Check;

/* ------------------------------------------------------------------ bitmap */

static inline bool bit_test(const uint64_t *map, uint64_t i)
{
    return (map[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *map, uint64_t i)
{
    map[i >> 6] |= 1ull << (i & 63);
}

static inline void bit_clear(uint64_t *map, uint64_t i)
{
    map[i >> 6] &= ~(1ull << (i & 63));
}

/* Zero bits in [first, end). */
static uint64_t count_zeros(const uint64_t *map, uint64_t first, uint64_t end)
{
    uint64_t n = 0;
    while (first < end && (first & 63)) {
        n += !bit_test(map, first++);
    }
    for (; first + 64 <= end; first += 64) {
        n += 64 - (uint64_t)__builtin_popcountll(map[first >> 6]);
    }
    for (; first < end; first++) {
        n += !bit_test(map, first);
    }
    return n;
}

/* The first zero bit in [from, end), or end. */
static uint64_t find_zero(const uint64_t *map, uint64_t from, uint64_t end)
{
    while (from < end) {
        uint64_t word = ~map[from >> 6] >> (from & 63);
        if (word) {
            from += (uint64_t)__builtin_ctzll(word);
            return MIN(from, end);
        }
        from = (from | 63) + 1;
    }
    return end;
}

/* The last set bit below end, or UINT64_MAX when there is none. */
static uint64_t find_last_set(const uint64_t *map, uint64_t end)
{
    while (end > 0) {
        uint64_t i = end - 1;
        uint64_t word = map[i >> 6] & (~0ull >> (63 - (i & 63)));
        if (word) {
            return (i & ~63ull) + 63 - (uint64_t)__builtin_clzll(word);
        }
        end = i & ~63ull;
    }
    return UINT64_MAX;
}

/* The first run of n zero bits inside [from, end), or end. */
static uint64_t find_zero_run(const uint64_t *map, uint64_t from, uint64_t n, uint64_t end)
{
    for (uint64_t i = find_zero(map, from, end); i + n <= end; i = find_zero(map, i, end)) {
        uint64_t j = 1;
        while (j < n && !bit_test(map, i + j)) {
            j++;
        }
        if (j == n) {
            return i;
        }
        i += j;
    }
    return end;
}

/* ------------------------------------------------------------------- scan */

/* Whether a table or cluster of `bytes` may start at offset. */
static bool ref_valid(const Check *c, uint64_t offset, uint64_t bytes)
{
    const QedState *s = c->s;
    uint64_t end = c->nbits << s->cluster_bits;
    return qed_offset_into_cluster(s, offset) == 0 && offset >= s->header_bytes && offset < end &&
           bytes <= end - offset;
}

/* QEMU rounds the length of the file down to a cluster: to its check a
 * reference that reaches into a partial last cluster is a corruption. It
 * counts as one here too; the repair keeps the reference and grows the file
 * over it (repair()), so no data is lost. */
static bool sticks_out(Check *c, uint64_t offset, uint64_t bytes)
{
    const QedState *s = c->s;
    uint64_t whole = c->length >> s->cluster_bits << s->cluster_bits;
    if (offset + bytes <= whole) {
        return false;
    }
    c->res->corruptions++;
    if (c->fix && !s->file->fixed_length) {
        c->res->corruptions_fixed++; /* repair() grows the file over it */
    }
    return true;
}

/* Clusters of [offset, offset + n clusters) already marked. */
static uint64_t count_marked(const Check *c, uint64_t offset, uint64_t n)
{
    uint64_t first = offset >> c->s->cluster_bits, marked = 0;
    for (uint64_t i = first; i < first + n && i < c->nmap; i++) {
        marked += bit_test(c->used, i);
    }
    return marked;
}

static void mark(Check *c, uint64_t offset, uint64_t n)
{
    uint64_t first = offset >> c->s->cluster_bits;
    for (uint64_t i = first; i < first + n && i < c->nmap; i++) {
        bit_set(c->used, i); /* (only the header and L1 table, if the file shrank) */
    }
}

/* One corruption (or n, for the clusters of a table met again); with
 * FIX_ERRORS the reference is dropped. Returns whether it was. */
static bool corrupt(Check *c, uint64_t n)
{
    c->res->corruptions += n;
    if (c->fix & QED_CHECK_FIX_ERRORS) {
        c->res->corruptions_fixed += n;
        return true;
    }
    return false;
}

/* Checks the entries of the L2 table in c->l2; returns whether it changed. */
static bool check_l2(Check *c)
{
    QedState *s = c->s;
    bool changed = false;
    uint64_t last = 0;
    for (uint32_t j = 0; j < s->table_nelems; j++) {
        uint64_t e = c->l2[j];
        if (e == 0 || e == QED_L2_ENTRY_ZERO) {
            continue;
        }
        c->res->allocated_clusters++;
        if (last && last + s->cluster_size != e) {
            c->res->fragmented_clusters++;
        }
        last = e;

        bool aliases = c->tables_win &&
                       qed_meta_first_overlap(s, &c->meta, e, s->cluster_size) != UINT64_MAX;
        if (!ref_valid(c, e, s->cluster_size) || aliases || count_marked(c, e, 1) > 0) {
            if (corrupt(c, 1)) {
                c->l2[j] = 0;
                changed = true;
            }
            continue;
        }
        sticks_out(c, e, s->cluster_size);
        mark(c, e, 1);
    }
    return changed;
}

static int write_table(QedState *s, uint64_t offset, uint64_t *entries, BlkTag tag)
{
    uint64_t n = s->table_bytes / sizeof(uint64_t);
    for (uint64_t i = 0; i < n; i++) {
        entries[i] = GUINT64_TO_LE(entries[i]);
    }
    int ret = blk_pwrite(s->file, entries, s->table_bytes, offset, tag);
    for (uint64_t i = 0; i < n; i++) {
        entries[i] = GUINT64_FROM_LE(entries[i]);
    }
    return ret;
}

/* Walks the L1 table and every L2 table it leads to, marking what they
 * reference and (when fixing) dropping bad references. */
static int scan(Check *c)
{
    QedState *s = c->s;
    uint32_t table_size = s->header.table_size;

    mark(c, 0, s->header.header_size);
    mark(c, s->header.l1_table_offset, table_size);
    int ret = blk_pread(s->file, c->l1, s->table_bytes, s->header.l1_table_offset);
    if (ret < 0) {
        c->res->check_errors++;
        c->read_error = ret;
        return 0;
    }
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        c->l1[i] = GUINT64_FROM_LE(c->l1[i]);
    }
    if (c->fix & QED_CHECK_FIX_ERRORS) {
        ret = qed_meta_build(s, c->l1, s->header.l1_table_offset, c->nbits << s->cluster_bits,
                             &c->meta);
        if (ret < 0) {
            return ret;
        }
        c->tables_win = true;
    }

    for (uint32_t i = 0; i < s->table_nelems; i++) {
        if (c->progress && i % 64 == 0) {
            c->progress(c->opaque, i, s->table_nelems);
        }
        uint64_t e = c->l1[i];
        if (e == 0) {
            continue;
        }
        uint64_t again = 0;
        bool bad = !ref_valid(c, e, s->table_bytes);
        if (!bad) {
            /* A repair keeps the tables the aliasing rule keeps; a count
             * follows QEMU's walk. */
            again = count_marked(c, e, table_size);
            bad = c->tables_win ? !qed_meta_owns(&c->meta, i) : again > 0;
        }
        if (bad) {
            if (corrupt(c, MAX(again, 1))) {
                c->l1[i] = 0;
                c->l1_dirty = true;
            } else if (again) {
                mark(c, e, table_size); /* as QEMU: the table is not read */
            }
            continue;
        }
        sticks_out(c, e, s->table_bytes);
        mark(c, e, table_size);
        ret = qed_read_l2(s, e, c->l2);
        if (ret < 0) {
            c->res->check_errors++; /* go on, as QEMU does, to fix what can be */
            c->read_error = ret;
            ret = 0;
            continue;
        }
        if (check_l2(c)) {
            ret = write_table(s, e, c->l2, BLK_TAG_L2);
            if (ret < 0) {
                return ret;
            }
            c->l2_written = true;
        }
    }
    if (c->l1_dirty) {
        ret = write_table(s, s->header.l1_table_offset, c->l1, BLK_TAG_L1);
    }
    return ret;
}

/* -------------------------------------------------------------- compaction */

typedef struct Move {
    uint64_t src, dst; /* cluster indices */
} Move;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_move_src(const void *a, const void *b)
{
    return cmp_u64(&((const Move *)a)->src, &((const Move *)b)->src);
}

/* The start of the table (among the n sorted starts) that holds cluster i,
 * or UINT64_MAX when i is a data cluster. */
static uint64_t table_holding(const uint64_t *starts, size_t n, uint64_t table_size, uint64_t i)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (starts[mid] <= i) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo > 0 && i < starts[lo - 1] + table_size) {
        return starts[lo - 1];
    }
    return UINT64_MAX;
}

static int copy_clusters(Check *c, uint64_t src, uint64_t dst, uint64_t n, BlkTag tag)
{
    QedState *s = c->s;
    size_t bytes = (size_t)(n << s->cluster_bits);
    int ret = blk_pread(s->file, c->l2, bytes, src << s->cluster_bits);
    if (ret == 0) {
        ret = blk_pwrite(s->file, c->l2, bytes, dst << s->cluster_bits, tag);
    }
    return ret;
}

/* Carries out one round of moves. Data first: copy, flush, update the L2
 * entries, flush. Then L2 tables: copy (with the entries just updated),
 * flush, update L1, flush. Then the L1 table: copy, flush, update the
 * header, flush. */
static int run_moves(Check *c, Move *data, size_t ndata, Move *tables, size_t ntables,
                     const Move *l1_move)
{
    QedState *s = c->s;
    int ret = 0;
    uint64_t table_size = s->header.table_size;

    if (ndata > 0) {
        for (size_t k = 0; k < ndata && ret == 0; k++) {
            ret = copy_clusters(c, data[k].src, data[k].dst, 1, BLK_TAG_DATA);
        }
        if (ret == 0) {
            ret = blk_flush(s->file);
        }
        qsort(data, ndata, sizeof(Move), cmp_move_src);
        bool wrote = false;
        for (uint32_t i = 0; i < s->table_nelems && ret == 0; i++) {
            if (c->l1[i] == 0) {
                continue;
            }
            ret = qed_read_l2(s, c->l1[i], c->l2);
            bool changed = false;
            for (uint32_t j = 0; j < s->table_nelems && ret == 0; j++) {
                uint64_t e = c->l2[j];
                if (e == 0 || e == QED_L2_ENTRY_ZERO) {
                    continue;
                }
                Move key = { .src = e >> s->cluster_bits };
                Move *m = bsearch(&key, data, ndata, sizeof(Move), cmp_move_src);
                if (m) {
                    c->l2[j] = m->dst << s->cluster_bits;
                    changed = true;
                }
            }
            if (ret == 0 && changed) {
                ret = write_table(s, c->l1[i], c->l2, BLK_TAG_L2);
                wrote = true;
            }
        }
        if (ret == 0 && wrote) {
            ret = blk_flush(s->file);
            c->l2_written = true;
        }
    }

    if (ntables > 0 && ret == 0) {
        qsort(tables, ntables, sizeof(Move), cmp_move_src);
        for (size_t k = 0; k < ntables && ret == 0; k++) {
            ret = copy_clusters(c, tables[k].src, tables[k].dst, table_size, BLK_TAG_L2);
        }
        if (ret == 0) {
            ret = blk_flush(s->file);
        }
        for (uint32_t i = 0; i < s->table_nelems && ret == 0; i++) {
            Move key = { .src = c->l1[i] >> s->cluster_bits };
            Move *m = c->l1[i] ? bsearch(&key, tables, ntables, sizeof(Move), cmp_move_src) : NULL;
            if (m) {
                c->l1[i] = m->dst << s->cluster_bits;
                c->l1_dirty = true;
            }
        }
        if (ret == 0) {
            ret = write_table(s, s->header.l1_table_offset, c->l1, BLK_TAG_L1);
        }
        if (ret == 0) {
            ret = blk_flush(s->file);
            c->l2_written = true;
        }
    }

    if (l1_move && ret == 0) {
        uint64_t offset = l1_move->dst << s->cluster_bits;
        ret = write_table(s, offset, c->l1, BLK_TAG_L1);
        if (ret == 0) {
            ret = blk_flush(s->file);
        }
        QedHeader h = s->header;
        h.l1_table_offset = offset;
        if (ret == 0) {
            ret = qed_write_header(s, &h);
        }
        if (ret == 0) {
            ret = blk_flush(s->file);
        }
        if (ret == 0) {
            pthread_mutex_lock(&s->lock);
            s->header.l1_table_offset = offset;
            pthread_mutex_unlock(&s->lock);
        }
    }
    return ret;
}

/* Moves the clusters at the end of the file into the leaked clusters lower
 * down, in rounds. A round first moves data clusters, from the top down,
 * into the lowest holes (at most max(one table's entries, 64 Ki) of them),
 * then each table into the lowest run of free clusters below it that is long
 * enough. When nothing moves but holes are left (no run is long enough for
 * the table above them), the lowest table above a hole goes to the end of
 * the file, which frees a run where it was; the next rounds pack the rest.
 * Within a round no destination is the source of another move. */
static int compact(Check *c)
{
    QedState *s = c->s;
    uint64_t table_size = s->header.table_size;
    uint64_t header_size = s->header.header_size;
    size_t max_data = MAX(s->table_nelems, 65536u);
    size_t max_tables = (size_t)s->table_nelems + 1;
    Move *data = g_try_new(Move, max_data);
    Move *tables = g_try_new(Move, max_tables);
    uint64_t *starts = g_try_new(uint64_t, max_tables);
    int ret = 0;
    if (!data || !tables || !starts) {
        ret = -ENOMEM;
        goto out;
    }

    for (unsigned fallbacks = 0; ret == 0;) {
        /* The tables as they are now, to tell their clusters from data. */
        uint64_t l1_start = s->header.l1_table_offset >> s->cluster_bits;
        size_t nstarts = 0;
        starts[nstarts++] = l1_start;
        for (uint32_t i = 0; i < s->table_nelems; i++) {
            if (c->l1[i]) {
                starts[nstarts++] = c->l1[i] >> s->cluster_bits;
            }
        }
        qsort(starts, nstarts, sizeof(uint64_t), cmp_u64);

        /* Data: a round stops above the highest hole it filled, whose move is
         * not on disk yet. Sources are freed at once: nothing below the top
         * picks them. */
        size_t ndata = 0;
        uint64_t floor = 0;
        uint64_t hole = find_zero(c->used, header_size, c->nmap);
        uint64_t top = find_last_set(c->used, c->nmap);
        while (top != UINT64_MAX && top >= floor && hole < top && ndata < max_data) {
            uint64_t start = table_holding(starts, nstarts, table_size, top);
            if (start != UINT64_MAX) {
                top = find_last_set(c->used, start);
                continue;
            }
            data[ndata++] = (Move){ .src = top, .dst = hole };
            bit_clear(c->used, top);
            bit_set(c->used, hole);
            floor = hole + 1;
            hole = find_zero(c->used, hole, c->nmap);
            top = find_last_set(c->used, top);
        }

        /* Tables, from the top down. Their sources stay marked until the
         * round is done, so that no table lands on another one's source;
         * landing on a data source is safe, as tables are copied after the
         * data references are updated. */
        size_t ntables = 0;
        Move l1_move = { 0 };
        bool l1_moves = false;
        hole = find_zero(c->used, header_size, c->nmap);
        for (size_t k = nstarts; k-- > 0;) {
            uint64_t dst = find_zero_run(c->used, hole, table_size, starts[k]);
            if (dst == starts[k]) {
                continue;
            }
            Move m = { .src = starts[k], .dst = dst };
            if (m.src == l1_start) {
                l1_move = m;
                l1_moves = true;
            } else {
                tables[ntables++] = m;
            }
            for (uint64_t b = 0; b < table_size; b++) {
                bit_set(c->used, dst + b);
            }
        }

        if (ndata == 0 && ntables == 0 && !l1_moves) {
            /* Stuck. Any hole left below the end? */
            uint64_t last = find_last_set(c->used, c->nmap);
            hole = find_zero(c->used, header_size, last);
            /* The end must have room: in a container of fixed size only its
             * own whole clusters (an export, a block device); what cannot
             * move stays leaked. */
            uint64_t limit = s->file->fixed_length ? MIN(c->nmap, c->length >> s->cluster_bits)
                                                   : c->nmap;
            if (hole >= last || fallbacks >= 2 * nstarts + 2 || last + 1 + table_size > limit) {
                break;
            }
            size_t k = 0;
            while (k < nstarts && starts[k] < hole) {
                k++;
            }
            if (k == nstarts) {
                break;
            }
            Move m = { .src = starts[k], .dst = last + 1 };
            if (m.src == l1_start) {
                l1_move = m;
                l1_moves = true;
            } else {
                tables[ntables++] = m;
            }
            for (uint64_t b = 0; b < table_size; b++) {
                bit_set(c->used, m.dst + b);
            }
            fallbacks++;
        }

        ret = run_moves(c, data, ndata, tables, ntables, l1_moves ? &l1_move : NULL);
        for (size_t k = 0; k < ntables + l1_moves; k++) {
            uint64_t src = k < ntables ? tables[k].src : l1_move.src;
            for (uint64_t b = 0; b < table_size; b++) {
                bit_clear(c->used, src + b);
            }
        }
    }
out:
    g_free(data);
    g_free(tables);
    g_free(starts);
    return ret;
}

/* ----------------------------------------------------------------- repair */

/* After the scan: grow the file over a last cluster that sticks out, make
 * the cleared references durable, then reclaim leaks. */
static int repair(Check *c)
{
    QedState *s = c->s;
    QedCheckResult *res = c->res;
    int ret = 0;

    uint64_t whole = c->nbits << s->cluster_bits;
    if (c->length < whole && !s->file->fixed_length) {
        ret = blk_truncate(s->file, whole);
        c->length = whole;
    }
    if (ret == 0) {
        ret = blk_flush(s->file);
    }
    bool consistent = res->corruptions == res->corruptions_fixed && res->check_errors == 0;
    if (ret < 0 || !(c->fix & QED_CHECK_FIX_LEAKS) || !consistent) {
        return ret;
    }

    if (c->fix & QED_CHECK_FIX_COMPACT) {
        ret = compact(c);
        if (ret < 0) {
            return ret;
        }
    }
    uint64_t last = find_last_set(c->used, c->nmap);
    uint64_t end = (last + 1) << s->cluster_bits;
    c->length = MAX(c->length, end); /* a table moved to the end grew the file */
    if (c->length > end && !s->file->fixed_length) {
        ret = blk_truncate(s->file, end);
        if (ret == 0) {
            ret = blk_flush(s->file);
        }
        if (ret < 0) {
            return ret;
        }
        c->length = end;
    }
    uint64_t left = count_zeros(c->used, s->header.header_size, last + 1);
    res->leaks_fixed = res->leaks > left ? res->leaks - left : 0;
    return 0;
}

/* Called with maint held exclusive and no request in flight that changes metadata. */
static int check_locked_progress(QedState *s, unsigned fix, QedCheckResult *res,
                                 QedProgressFunc *progress, void *opaque)
{
    Check c = { .s = s, .fix = fix, .res = res, .progress = progress, .opaque = opaque };
    /* The check reads the tables from the disk: queued changes go first
     * (nothing is queued on a read-only handle, so nothing is written). */
    int ret = qed_commit(s, false);
    if (ret < 0) {
        return ret;
    }
    int64_t length = blk_get_length(s->file);
    if (length < 0) {
        return (int)length;
    }
    c.length = (uint64_t)length;

    res->total_clusters = (s->header.image_size + s->cluster_size - 1) / s->cluster_size;
    c.nbits = qed_round_up_cluster(s, c.length) >> s->cluster_bits;
    c.nmap = c.nbits + 2 * (uint64_t)s->header.table_size;
    c.used = g_try_new0(uint64_t, c.nmap / 64 + 1);
    c.l1 = g_try_malloc(s->table_bytes);
    c.l2 = g_try_malloc(s->table_bytes);
    ret = 0;
    if (!c.used || !c.l1 || !c.l2) {
        ret = -ENOMEM;
        goto out;
    }

    ret = scan(&c);
    if (ret == 0 && c.read_error) {
        /* The walk is incomplete: leaks cannot be told, nothing more may be
         * repaired, and the check could not finish. */
        ret = c.read_error;
    }
    if (ret == 0) {
        /* Whole clusters only: a partial last one is not counted, as in
         * QEMU. In a container of fixed size, only below the image's end;
         * on a handle that allocates, not its room past file_end either. */
        uint64_t whole = c.length >> s->cluster_bits;
        bool allocates = !s->read_only && !(s->img->opts.flags & QED_OPEN_CHECK);
        if (s->file->fixed_length || allocates) {
            whole = MIN(whole, s->file_end >> s->cluster_bits);
        }
        res->leaks = count_zeros(c.used, s->header.header_size, whole);
    }
    if (ret == 0 && fix) {
        ret = repair(&c);
    }
    uint64_t last = find_last_set(c.used, c.nmap);
    res->image_end_offset = (last + 1) << s->cluster_bits;

    /* The in-memory view follows what was rewritten, also after a failure. */
    pthread_mutex_lock(&s->lock);
    if (c.l1_dirty) {
        memcpy(s->l1, c.l1, s->table_bytes);
    }
    if (c.l2_written) {
        GList *cached = g_hash_table_get_values(s->l2_cache.tables);
        for (GList *l = cached; l; l = l->next) {
            qed_l2_cache_invalidate_locked(s, l->data);
        }
        g_list_free(cached);
    }
    if (ret == 0 && fix) {
        s->file_end = s->file->fixed_length
                          ? res->image_end_offset
                          : MAX(qed_round_up_cluster(s, c.length), s->header_bytes);
    }
    /* The tables may have moved, or lost their entries. */
    int meta_ret = qed_meta_rebuild_locked(s);
    if (ret == 0) {
        ret = meta_ret;
    }
    pthread_mutex_unlock(&s->lock);
    /* A repair flushed what it cut or grew. */
    if (fix && !s->file->fixed_length) {
        s->length_durable = MIN(s->length_durable, c.length);
        s->length_set = c.length;
        if (ret == 0) {
            s->length_durable = c.length;
        }
    }

    if (ret == 0 && fix && res->corruptions == res->corruptions_fixed) {
        s->unchecked = false;
        ret = qed_mark_clean_excl(s);
    }
out:
    g_free(c.used);
    g_free(c.l1);
    g_free(c.l2);
    qed_meta_free(&c.meta);
    return ret;
}

static int check_locked(QedState *s, unsigned fix, QedCheckResult *res)
{
    return check_locked_progress(s, fix, res, NULL, NULL);
}

int qed_check_repair(QedState *s, GError **errp)
{
    QedCheckResult res = { 0 };
    pthread_rwlock_wrlock(&s->maint);
    int ret = check_locked(s, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS, &res);
    pthread_rwlock_unlock(&s->maint);
    if (ret == 0 && res.corruptions > res.corruptions_fixed) {
        ret = -EIO;
    }
    if (ret < 0) {
        g_set_error(errp, QED_ERROR, -ret, "Image corrupted"); /* QEMU's words */
    }
    return ret;
}

int qed_reclaim_excl(QedState *s)
{
    QedCheckResult res = { 0 };
    return check_locked(s, QED_CHECK_FIX_LEAKS | QED_CHECK_FIX_COMPACT, &res);
}

int qed_find_image_end(QedState *s)
{
    QedCheckResult res = { 0 };
    pthread_rwlock_wrlock(&s->maint);
    int ret = check_locked(s, 0, &res);
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->file_end = res.image_end_offset;
        ret = qed_meta_rebuild_locked(s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_rwlock_unlock(&s->maint);
    return ret;
}

int qed_driver_check(QedImage *img, unsigned fix, QedCheckResult *res, QedProgressFunc *progress,
                     void *opaque, GError **errp)
{
    QedState *s = qed_state(img);
    pthread_rwlock_wrlock(&s->maint);
    int ret = check_locked_progress(s, fix, res, progress, opaque);
    pthread_rwlock_unlock(&s->maint);
    if (ret < 0) {
        return image_error(img, errp, ret, "check failed");
    }
    return 0;
}
