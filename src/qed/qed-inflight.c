/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cluster ranges that allocations and entry updates own while they run.
 * An allocating write takes its range before it looks at the entries, and
 * gives it back after it has set them: a second request for the same
 * clusters waits (on QedState.changed) and then looks again, finding the
 * clusters allocated. Requests in other clusters, also of the same L2
 * table, go on in parallel.
 *
 * Design notes: there are as many ranges as requests in flight (the queue
 * depth), so an unordered array searched from end to end is the fastest
 * set there is at that size. Every function is called with QedState.lock
 * held.
 */
#include "qed/qed-internal.h"

void qed_inflight_init(QedInflight *f)
{
    f->ranges = g_array_new(FALSE, FALSE, sizeof(QedRange));
}

void qed_inflight_destroy(QedInflight *f)
{
    g_array_unref(f->ranges);
    f->ranges = NULL;
}

bool qed_inflight_overlaps_locked(const QedInflight *f, uint64_t start, uint64_t end)
{
    for (guint i = 0; i < f->ranges->len; i++) {
        const QedRange *r = &g_array_index(f->ranges, QedRange, i);
        if (r->start < end && start < r->end) {
            return true;
        }
    }
    return false;
}

void qed_inflight_add_locked(QedInflight *f, uint64_t start, uint64_t end)
{
    g_assert(start < end && !qed_inflight_overlaps_locked(f, start, end));
    QedRange r = { start, end };
    g_array_append_val(f->ranges, r);
}

void qed_inflight_remove_locked(QedInflight *f, uint64_t start, uint64_t end)
{
    for (guint i = 0; i < f->ranges->len; i++) {
        const QedRange *r = &g_array_index(f->ranges, QedRange, i);
        if (r->start == start && r->end == end) {
            g_array_remove_index_fast(f->ranges, i);
            return;
        }
    }
    g_assert_not_reached();
}

size_t qed_inflight_count_locked(const QedInflight *f)
{
    return f->ranges->len;
}
