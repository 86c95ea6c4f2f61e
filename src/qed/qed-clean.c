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
    /* One thread sets the bit; the others wait for it. */
    while (s->need_check_busy) {
        pthread_cond_wait(&s->changed, &s->lock);
    }
    if (s->header.features & QED_F_NEED_CHECK) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    s->need_check_busy = true;
    QedHeader h = s->header;
    pthread_mutex_unlock(&s->lock);

    int ret = 0;
    /* The cleaner starts with the first change, not at open: a process that
     * forks after opening (nbdkit does) would lose it otherwise. (The
     * cleaner is stopped only under maint exclusive, so no allocator is
     * here then.) */
    if (!s->cleaner_started) {
        ret = qed_cleaner_start(s);
    }
    h.features |= QED_F_NEED_CHECK;
    if (ret == 0) {
        ret = qed_write_header(s, &h);
    }
    if (ret == 0) {
        ret = qed_flush_file(s); /* (also makes a length just grown durable) */
    }
    pthread_mutex_lock(&s->lock);
    if (ret == 0) {
        s->header.features |= QED_F_NEED_CHECK;
        pthread_cond_signal(&s->cleaner_cond);
    }
    s->need_check_busy = false;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

int qed_mark_clean_excl(QedState *s)
{
    /* Queued entries go to the disk, then the room grown ahead of allocation
     * is cut: a clean image has no leaks at its end. A failed handle writes
     * nothing more. */
    int ret = qed_commit(s, false);
    if (ret == 0) {
        ret = qed_trim_file_excl(s);
    }
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    pthread_mutex_lock(&s->lock);
    QedHeader h = s->header;
    pthread_mutex_unlock(&s->lock);
    if (ret < 0 || !(h.features & QED_F_NEED_CHECK) || s->unchecked) {
        return ret;
    }
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

void qed_note_reclaimed(QedState *s)
{
    pthread_mutex_lock(&s->lock);
    s->freed_clusters = 0;
    s->reclaims++;
    pthread_mutex_unlock(&s->lock);
}

int qed_reclaim_and_mark_clean_excl(QedState *s)
{
    /* Queued entries first: a failure here is the one to report. */
    int ret = qed_commit(s, false);
    if (ret < 0) {
        return ret;
    }
    if (s->freed_clusters > 0 && !s->unchecked && !blk_failed(s->file)) {
        /* Best effort: a failed compaction leaves leaks, which are harmless. */
        if (qed_reclaim_excl(s) == 0) {
            qed_note_reclaimed(s);
        }
    }
    return qed_mark_clean_excl(s);
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
        pthread_rwlock_wrlock(&s->maint);
        pthread_mutex_lock(&s->lock);
        bool still_idle = g_get_monotonic_time() >= s->last_change_us + s->clean_after_us;
        pthread_mutex_unlock(&s->lock);
        if (still_idle && qed_mark_clean_excl(s) < 0) {
            /* Try again after another idle period rather than spin. */
            pthread_mutex_lock(&s->lock);
            s->last_change_us = g_get_monotonic_time();
            pthread_mutex_unlock(&s->lock);
        }
        pthread_rwlock_unlock(&s->maint);
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
