/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss while freed clusters are reused. The image sits in a container
 * of fixed size (BlkDev.fixed_length, as under nbdkit or on a block device),
 * recorded by blk-log: the length never changes, so a write that needs a
 * new cluster once the container is full meets ENOSPC, and when zero writes
 * or discards freed clusters this session, the write reclaims them
 * (compaction moves the last clusters into the holes and lowers the image's
 * end, qed-check.c) and succeeds. The same runs on a growing file, where
 * the full file system is a one-shot ENOSPC from a fault injector under
 * the image (blk-fault over blk-log): there the reclaim also cuts the file.
 *
 * The workload, one thread: fill the container with a distinct pattern per
 * cluster and flush; then rounds of discards and zero writes of whole
 * clusters (some flushed at once, some not), in-place and partial zero
 * writes, and writes to unallocated clusters that meet ENOSPC, reclaim and
 * succeed, with flushes and FUA writes mixed in. The room past the image
 * holds junk before the test, so a cluster that shows through without
 * being written is caught too.
 *
 * At every crash point of the log, with several random persisted subsets
 * each, the crash state must:
 *   - be consistent but for leaks (our check on the file cut to whole
 *     clusters; qemu-img check exits 0 or 3 on a sample of the crash
 *     points): no cluster referenced twice;
 *   - open (repairing itself) and check without corruption;
 *   - read, per sector, the newest durable write to it or a later write
 *     issued before the crash point, zeros where nothing was durable; never
 *     another offset's data (a reused cluster's old content through a stale
 *     reference), junk, or a torn sector; in particular a discarded sector,
 *     once the discard's flush returned, never again its own old data.
 * QED_CRASH_REUSE_SEEDS=N sets the persisted subsets per crash point
 * (default 3, 2 under a sanitizer); QED_CRASH_REUSE_QEMU_EVERY=N runs
 * qemu-img check on every N-th crash point and the last (default 5, 16
 * under a sanitizer), on its first subset.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"
#include "qed/qed-internal.h"

#define SECTOR 512u
#define CLUSTER 4096u
#define SPC (CLUSTER / SECTOR) /* sectors per cluster */
#define TABLE_SIZE 2u          /* a table maps 1024 clusters (4 MiB) */
#define IMAGE_SIZE (8u << 20)  /* two tables */
#define HALF 40u               /* slots in each table */
#define NSLOT (2 * HALF)       /* the virtual clusters the workload uses */
#define NDATA 48u              /* data clusters the container holds */
#define ZERO_ID 0u
#define JUNK 0xa5

typedef struct WriteOp {
    uint32_t first, count; /* sectors */
    uint32_t id;           /* the data's class, ZERO_ID for a zero write or discard */
    size_t log_start;      /* log length when it was issued */
    size_t durable_at;     /* a crash point from which it is durable, or SIZE_MAX */
} WriteOp;

typedef struct Run {
    QedImage *img;
    BlkDev *log;
    BlkDev *fault; /* a growing file: fails the first refill write of a round with ENOSPC */
    GRand *rand;
    GArray *writes;  /* WriteOp in program order */
    guint undurable; /* writes from this index on are not known durable */
    bool alloc[NSLOT];
    uint32_t nalloc;
    uint32_t next_id;
    uint64_t enospc_writes; /* writes that needed a reclaim */
} Run;

/* Slot i is virtual cluster i of the first table or 1024 + i - HALF of the second. */
static uint32_t slot_sector(uint32_t slot)
{
    uint32_t c = slot < HALF ? slot : 1024 + slot - HALF;
    return c * SPC;
}

/* Sector s of class id: the class and the sector in its first bytes, then
 * a pattern of both, so that another offset's sector or a torn one is told
 * apart. */
static void fill_sector(uint8_t *p, uint32_t s, uint32_t id)
{
    memcpy(p, &id, 4);
    memcpy(p + 4, &s, 4);
    for (uint32_t i = 8; i < SECTOR; i++) {
        p[i] = (uint8_t)(id * 131u + s * 7u + i);
    }
}

static uint32_t classify(size_t crash_at, const uint8_t *p, uint32_t s)
{
    static const uint8_t zeros[SECTOR];
    if (memcmp(p, zeros, SECTOR) == 0) {
        return ZERO_ID;
    }
    uint32_t id, at;
    memcpy(&id, p, 4);
    memcpy(&at, p + 4, 4);
    if (at != s) {
        g_error("crash at %zu: sector %u shows data of sector %u (class %#x): a stale "
                "reference to a reused cluster, or junk",
                crash_at, s, at, id);
    }
    uint8_t want[SECTOR];
    fill_sector(want, s, id);
    if (memcmp(p, want, SECTOR) != 0) {
        g_error("crash at %zu: sector %u is torn or foreign (class %#x)", crash_at, s, id);
    }
    return id;
}

static uint64_t reclaims(QedImage *img)
{
    QedState *s = qed_state(img);
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->reclaims;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void do_flush(Run *r)
{
    TU_OK(qed_flush(r->img, &tu_err));
    size_t after = blk_log_count(r->log);
    for (guint i = r->undurable; i < r->writes->len; i++) {
        g_array_index(r->writes, WriteOp, i).durable_at = after;
    }
    r->undurable = r->writes->len;
}

/* Writes count sectors from first: data of a new class, or zeros (a
 * discard when discard). */
static void do_write(Run *r, uint32_t first, uint32_t count, bool zero, bool discard, bool fua)
{
    WriteOp op = { .first = first,
                   .count = count,
                   .id = zero ? ZERO_ID : ++r->next_id,
                   .log_start = blk_log_count(r->log),
                   .durable_at = SIZE_MAX };
    uint64_t off = (uint64_t)first * SECTOR, len = (uint64_t)count * SECTOR;
    unsigned flags = fua ? QED_WRITE_FUA : 0;
    if (discard) {
        TU_OK(qed_discard(r->img, len, off, &tu_err));
    } else if (zero) {
        TU_OK(qed_pwrite_zeroes(r->img, len, off, flags, &tu_err));
    } else {
        uint8_t *buf = g_malloc(len);
        for (uint32_t s = 0; s < count; s++) {
            fill_sector(buf + (size_t)s * SECTOR, first + s, op.id);
        }
        uint64_t before = reclaims(r->img);
        TU_OK(qed_pwrite(r->img, buf, len, off, flags, &tu_err));
        r->enospc_writes += reclaims(r->img) != before;
        g_free(buf);
    }
    g_array_append_val(r->writes, op);
    if (fua && !zero) {
        g_array_index(r->writes, WriteOp, r->writes->len - 1).durable_at = blk_log_count(r->log);
    }
}

static uint32_t random_slot(Run *r, bool allocated)
{
    for (;;) {
        uint32_t i = (uint32_t)g_rand_int_range(r->rand, 0, NSLOT);
        if (r->alloc[i] == allocated) {
            return i;
        }
    }
}

/* A part of the cluster of slot: whole, or some sectors of it. */
static void random_part(Run *r, uint32_t slot, uint32_t *first, uint32_t *count)
{
    *first = slot_sector(slot);
    *count = SPC;
    if (g_rand_boolean(r->rand)) {
        *count = (uint32_t)g_rand_int_range(r->rand, 1, SPC);
        *first += (uint32_t)g_rand_int_range(r->rand, 0, (gint32)(SPC - *count + 1));
    }
}

static void workload(Run *r, int rounds)
{
    /* Fill the container. */
    while (r->nalloc < NDATA) {
        uint32_t slot = random_slot(r, false);
        do_write(r, slot_sector(slot), SPC, false, false, false);
        r->alloc[slot] = true;
        r->nalloc++;
    }
    do_flush(r);
    if (!r->fault) {
        /* Full, with nothing freed: ENOSPC, and nothing changes. */
        uint8_t one[SECTOR] = { 1 };
        size_t logged = blk_log_count(r->log);
        GError *err = NULL;
        uint32_t free_slot = random_slot(r, false);
        g_assert_cmpint(
            qed_pwrite(r->img, one, SECTOR, (uint64_t)slot_sector(free_slot) * SECTOR, 0, &err),
            ==, -ENOSPC);
        g_clear_error(&err);
        g_assert_cmpuint(blk_log_count(r->log), ==, logged);
    }

    for (int round = 0; round < rounds; round++) {
        uint64_t before = r->enospc_writes;
        /* Free a few clusters (and a run of two where it can), flushed at
         * once or not. */
        int nfree = g_rand_int_range(r->rand, 3, 8);
        for (int i = 0; i < nfree; i++) {
            uint32_t slot = random_slot(r, true);
            uint32_t n = slot + 1 < NSLOT && r->alloc[slot + 1] && slot + 1 != HALF ? 2 : 1;
            bool discard = g_rand_boolean(r->rand);
            do_write(r, slot_sector(slot), n * SPC, true, discard, false);
            for (uint32_t k = 0; k < n; k++) {
                r->alloc[slot + k] = false;
            }
            r->nalloc -= n;
            if (g_rand_boolean(r->rand)) {
                do_flush(r);
            }
        }
        /* Writes in place, and zero writes that free nothing. */
        for (int i = 0; i < 4; i++) {
            uint32_t slot = random_slot(r, true), first, count;
            random_part(r, slot, &first, &count);
            bool zero = i == 3 && count < SPC;
            do_write(r, first, count, zero, false, g_rand_int_range(r->rand, 0, 4) == 0);
        }
        /* Refill: the first of these meets the full container (or the full
         * file system) and reclaims. */
        if (r->fault) {
            BlkFault f = { .kind = BLK_FAULT_WRITE, .nth = 1, .error = ENOSPC };
            blk_fault_arm(r->fault, &f);
        }
        while (r->nalloc < NDATA) {
            uint32_t slot = random_slot(r, false), first, count;
            random_part(r, slot, &first, &count);
            do_write(r, first, count, false, false, g_rand_int_range(r->rand, 0, 6) == 0);
            r->alloc[slot] = true;
            r->nalloc++;
            if (g_rand_int_range(r->rand, 0, 4) == 0) {
                do_flush(r);
            }
        }
        g_assert_cmpuint(r->enospc_writes, >, before);
    }
    do_flush(r);
}

/* Per sector of the slots: indices into writes, in program order. */
static GArray **index_writes(const Run *r)
{
    GArray **by = g_new0(GArray *, IMAGE_SIZE / SECTOR);
    for (guint i = 0; i < r->writes->len; i++) {
        const WriteOp *op = &g_array_index(r->writes, WriteOp, i);
        for (uint32_t s = op->first; s < op->first + op->count; s++) {
            if (!by[s]) {
                by[s] = g_array_new(FALSE, FALSE, sizeof(guint));
            }
            g_array_append_val(by[s], i);
        }
    }
    return by;
}

/* Sector s read as class cls at crash_at: the newest durable write to it,
 * a later write issued before the crash point, or zeros when none was
 * durable. */
static void verify_sector(const Run *r, GArray **by, size_t crash_at, uint32_t s, uint32_t cls)
{
    GArray *list = by[s];
    guint n = list ? list->len : 0;
    gint d = -1;
    for (guint j = 0; j < n; j++) {
        const WriteOp *op = &g_array_index(r->writes, WriteOp, g_array_index(list, guint, j));
        if (op->durable_at <= crash_at) {
            d = (gint)j;
        }
    }
    if (d < 0 && cls == ZERO_ID) {
        return;
    }
    for (guint j = d < 0 ? 0 : (guint)d; j < n; j++) {
        const WriteOp *op = &g_array_index(r->writes, WriteOp, g_array_index(list, guint, j));
        if (op->log_start < crash_at && op->id == cls) {
            return;
        }
    }
    const WriteOp *dw = d < 0 ? NULL
                              : &g_array_index(r->writes, WriteOp, g_array_index(list, guint, d));
    g_error("crash at %zu: sector %u reads class %#x; the newest durable write: %s %#x%s",
            crash_at, s, cls, dw ? "class" : "none, zeros", dw ? dw->id : 0,
            dw && dw->id == ZERO_ID ? " (a durable discard or zero write)" : "");
}

static void check_qemu(GBytes *state, size_t crash_at, const char *path)
{
    g_assert_true(g_file_set_contents(path, g_bytes_get_data(state, NULL),
                                      (gssize)g_bytes_get_size(state), NULL));
    int status = tu_qemu_img_check(path);
    if (status != 0 && status != 3) {
        g_autofree char *show = g_strdup_printf("qemu-img check '%s'", path);
        g_assert_cmpint(system(show), >=, 0);
        g_error("crash at %zu: qemu-img check exits %d on the crash state", crash_at, status);
    }
}

typedef struct Case {
    const char *name;
    guint32 seed;
    bool fixed; /* a full container of fixed length; else a growing file meeting ENOSPC */
} Case;

static void run_reuse(gconstpointer data)
{
    const Case *cs = data;
    guint32 seed = cs->seed;
    int seeds = tu_env_int("QED_CRASH_REUSE_SEEDS", tu_sanitized() ? 2 : 3);
    int qemu_every = tu_env_int("QED_CRASH_REUSE_QEMU_EVERY", tu_sanitized() ? 16 : 5);
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");

    /* The container: a new image, then room for the two tables and NDATA
     * clusters, holding junk. A growing file: the new image alone. */
    BlkDev *mem = blk_mem_new("crash.qed", NULL, 0);
    QedCreateOptions co = { .size = IMAGE_SIZE,
                            .cluster_size = CLUSTER,
                            .table_size = TABLE_SIZE };
    TU_OK(qed_driver.create(mem, &co, &tu_err));
    GBytes *fresh = blk_mem_contents(mem);
    blk_close(mem);
    gsize image = g_bytes_get_size(fresh);
    gsize room = cs->fixed ? (2 * TABLE_SIZE + NDATA) * CLUSTER : 0;
    uint8_t *bytes = g_malloc(image + room);
    memcpy(bytes, g_bytes_get_data(fresh, NULL), image);
    memset(bytes + image, JUNK, room);
    g_bytes_unref(fresh);
    GBytes *base = g_bytes_new_take(bytes, image + room);

    Run r = { .rand = g_rand_new_with_seed(seed),
              .writes = g_array_new(FALSE, FALSE, sizeof(WriteOp)) };
    BlkDev *inner = blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), image + room);
    inner->fixed_length = cs->fixed;
    r.log = blk_log_new(inner);
    r.log->fixed_length = cs->fixed;
    GError *err = NULL;
    /* (The injector borrows the log, which outlives the image.) */
    r.fault = cs->fixed ? NULL : blk_fault_new(r.log);
    r.img = tu_open_on_blk(cs->fixed ? r.log : r.fault, NULL, &err);
    g_assert_no_error(err);
    workload(&r, 4);

    /* The live image reads the last write of every sector. */
    GArray **by = index_writes(&r);
    uint8_t *disk = g_malloc((size_t)NSLOT * CLUSTER);
    for (uint32_t slot = 0; slot < NSLOT; slot += HALF) {
        TU_OK(qed_pread(r.img, disk + (size_t)slot * CLUSTER, HALF * CLUSTER,
                        (uint64_t)slot_sector(slot) * SECTOR, &tu_err));
    }
    for (uint32_t slot = 0; slot < NSLOT; slot++) {
        for (uint32_t k = 0; k < SPC; k++) {
            uint32_t s = slot_sector(slot) + k;
            uint32_t cls = classify(SIZE_MAX, disk + ((size_t)slot * SPC + k) * SECTOR, s);
            uint32_t want = ZERO_ID;
            if (by[s]) {
                want = g_array_index(r.writes, WriteOp,
                                     g_array_index(by[s], guint, by[s]->len - 1))
                           .id;
            }
            g_assert_cmpuint(cls, ==, want);
        }
    }

    size_t total = blk_log_count(r.log);
    g_autofree char *state_path = tu_path("reuse-state.qed");
    GRand *crand = g_rand_new_with_seed(seed * 7919u);
    uint64_t states = 0, qemu_states = 0;
    for (size_t crash_at = 0; crash_at <= total; crash_at++) {
        for (int v = 0; v < seeds; v++) {
            GBytes *state = blk_log_crash_state(r.log, base, crash_at, crand, SECTOR, NULL);
            if (cs->fixed) {
                g_assert_cmpuint(g_bytes_get_size(state), ==, image + room);
            }
            g_autofree char *what = g_strdup_printf("%s: crash at %zu/%zu", cs->name, crash_at,
                                                    total);
            tu_assert_state_consistent(state, CLUSTER, what);
            bool qemu = (crash_at + seed) % (size_t)qemu_every == 0 || crash_at == total;
            if (v == 0 && qemu_img && qemu) {
                check_qemu(state, crash_at, state_path);
                qemu_states++;
            }
            QedImage *c = tu_open_crash_state(state, cs->fixed, NULL, what);
            g_bytes_unref(state);
            for (uint32_t slot = 0; slot < NSLOT; slot += HALF) {
                TU_OK(qed_pread(c, disk + (size_t)slot * CLUSTER, HALF * CLUSTER,
                                (uint64_t)slot_sector(slot) * SECTOR, &tu_err));
            }
            for (uint32_t slot = 0; slot < NSLOT; slot++) {
                for (uint32_t k = 0; k < SPC; k++) {
                    uint32_t s = slot_sector(slot) + k;
                    const uint8_t *p = disk + ((size_t)slot * SPC + k) * SECTOR;
                    verify_sector(&r, by, crash_at, s, classify(crash_at, p, s));
                }
            }
            TU_OK(qed_close(c, &tu_err));
            states++;
        }
    }
    g_print("# %s: %u writes, %" G_GUINT64_FORMAT
            " reclaims, %zu logged requests, %" G_GUINT64_FORMAT
            " crash states (%" G_GUINT64_FORMAT " also by qemu-img check)\n",
            cs->name, r.writes->len, r.enospc_writes, total, states, qemu_states);
    g_assert_true(!qemu_img || qemu_states > 0);

    TU_OK(qed_close(r.img, &tu_err));
    if (r.fault) {
        blk_close(r.log);
    }
    for (uint32_t s = 0; s < IMAGE_SIZE / SECTOR; s++) {
        if (by[s]) {
            g_array_free(by[s], TRUE);
        }
    }
    g_free(by);
    g_free(disk);
    g_array_free(r.writes, TRUE);
    g_rand_free(r.rand);
    g_rand_free(crand);
    g_bytes_unref(base);
}

static const Case cases[] = {
    { "fixed-1", 1, true },    { "fixed-2", 2, true },    { "fixed-3", 3, true },
    { "growing-1", 1, false }, { "growing-2", 2, false },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/crash-reuse/%s", cases[i].name);
        g_test_add_data_func(name, &cases[i], run_reuse);
    }
    return g_test_run();
}
