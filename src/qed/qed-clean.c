/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * NEED_CHECK and the cleaner: the bit is set (and flushed) before the first
 * metadata change after a clean state, and cleared after a flush when no
 * metadata has changed for a while (the cleaner thread) or at close.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int qed_set_need_check(QedState *s)
{
    pthread_mutex_lock(&s->lock);
    s->last_change_us = g_get_monotonic_time();
    bool set = s->header.features & QED_F_NEED_CHECK;
    pthread_mutex_unlock(&s->lock);
    if (set) {
        return 0;
    }
    /* The cleaner starts with the first change, not at open: a process that
     * forks after opening (nbdkit does) would lose it otherwise. */
    if (!s->cleaner_started) {
        int ret = qed_cleaner_start(s);
        if (ret < 0) {
            return ret;
        }
    }
    QedHeader h = s->header;
    h.features |= QED_F_NEED_CHECK;
    int ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = qed_flush_locked(s); /* (also makes a length just grown durable) */
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->header.features |= QED_F_NEED_CHECK;
        pthread_cond_signal(&s->cleaner_cond);
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

int qed_mark_clean_locked(QedState *s)
{
    /* The room grown ahead of allocation goes first: a clean image has no
     * leaks at its end. A failed handle writes nothing more. */
    int ret = qed_trim_file_locked(s);
    if (ret == 0) {
        ret = qed_flush_locked(s);
    }
    if (ret < 0 || !(s->header.features & QED_F_NEED_CHECK) || s->unchecked) {
        return ret;
    }
    QedHeader h = s->header;
    h.features &= ~QED_F_NEED_CHECK;
    ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = blk_flush(s->file);
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->header.features = h.features;
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

int qed_reclaim_and_mark_clean_locked(QedState *s)
{
    if (s->freed_clusters > 0 && !s->unchecked && !blk_failed(s->file)) {
        /* Best effort: a failed compaction leaves leaks, which are harmless. */
        if (qed_reclaim_locked(s) == 0) {
            s->freed_clusters = 0;
        }
    }
    return qed_mark_clean_locked(s);
}

/* The cleaner: waits until NEED_CHECK is set and no metadata has changed for
 * clean_after_us, then marks the image clean, so that a long-running export
 * is not left dirty. Failures are left for close to report. */
static void *cleaner_main(void *opaque)
{
    QedState *s = opaque;
    pthread_mutex_lock(&s->lock);
    while (!s->cleaner_stop) {
        if (!(s->header.features & QED_F_NEED_CHECK)) {
            pthread_cond_wait(&s->cleaner_cond, &s->lock);
            continue;
        }
        int64_t deadline = s->last_change_us + s->clean_after_us;
        if (g_get_monotonic_time() < deadline) {
            struct timespec ts = { .tv_sec = deadline / G_USEC_PER_SEC,
                                   .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000 };
            pthread_cond_timedwait(&s->cleaner_cond, &s->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->alloc_lock);
        pthread_mutex_lock(&s->lock);
        bool still_idle = g_get_monotonic_time() >= s->last_change_us + s->clean_after_us;
        pthread_mutex_unlock(&s->lock);
        if (still_idle && qed_mark_clean_locked(s) < 0) {
            /* Try again after another idle period rather than spin. */
            pthread_mutex_lock(&s->lock);
            s->last_change_us = g_get_monotonic_time();
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&s->alloc_lock);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int qed_cleaner_start(QedState *s)
{
    unsigned ms = s->img->opts.clean_after_ms ? s->img->opts.clean_after_ms : 5000;
    s->clean_after_us = (int64_t)ms * 1000;
    s->cleaner_stop = false;
    int err = pthread_create(&s->cleaner, NULL, cleaner_main, s);
    if (err) {
        return -err;
    }
    s->cleaner_started = true;
    return 0;
}

void qed_cleaner_stop(QedState *s)
{
    if (!s->cleaner_started) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->cleaner_stop = true;
    pthread_cond_signal(&s->cleaner_cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->cleaner, NULL);
    s->cleaner_started = false;
}
