/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The requests of aio_read and aio_write: each runs on a thread of a pool,
 * concurrently with the others and with the main thread's own commands,
 * through the thread-safe library handle.
 *
 * Design notes: workers never print. A finished request goes onto the
 * `done` queue; the main thread reports it when it polls (before every
 * command, in aio_flush, truncate and close, and at exit), so report lines
 * never interleave and appear in completion order, much like qemu-io's
 * callbacks, which run whenever its main loop turns.
 */
#include "qed-io.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Enough threads for real overlap without one thread per queued request. */
#define AIO_MAX_THREADS 32

/* pthreads rather than GThreadPool and GMutex, whose futex-based locking
 * ThreadSanitizer cannot see: a TSan build then checks the library's own
 * synchronization, not false reports about this hand-off. */
struct IoAioPool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* signalled when a request is queued or on stop */
    pthread_cond_t idle; /* broadcast when in_flight drops to 0 */
    GQueue queued;       /* of IoAioRequest, not yet started; guarded by lock */
    GQueue done;         /* of IoAioRequest, finished, not reported; guarded by lock */
    unsigned in_flight;  /* submitted, not yet on done; guarded by lock */
    unsigned nthreads;   /* started workers; guarded by lock */
    unsigned nwaiting;   /* workers waiting for work; guarded by lock */
    bool stopping;       /* workers exit once the queue is empty; guarded by lock */
    pthread_t threads[AIO_MAX_THREADS];
};

/* Called with pool->lock held. */
static void finish_locked(IoAioPool *pool, IoAioRequest *req)
{
    g_queue_push_tail(&pool->done, req);
    if (--pool->in_flight == 0) {
        pthread_cond_broadcast(&pool->idle);
    }
}

static void run_request(IoAioRequest *req)
{
    switch (req->kind) {
    case IO_AIO_READ:
        req->ret = qed_pread(req->img, req->buf, (size_t)req->bytes, (uint64_t)req->offset,
                             &req->err);
        break;
    case IO_AIO_WRITE:
        req->ret = qed_pwrite(req->img, req->buf, (size_t)req->bytes, (uint64_t)req->offset,
                              req->write_flags, &req->err);
        break;
    case IO_AIO_WRITE_ZEROES:
        req->ret = qed_pwrite_zeroes(req->img, (uint64_t)req->bytes, (uint64_t)req->offset,
                                     req->write_flags, &req->err);
        break;
    }
    clock_gettime(CLOCK_MONOTONIC, &req->t2);
}

static void *worker(void *opaque)
{
    IoAioPool *pool = opaque;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        IoAioRequest *req = g_queue_pop_head(&pool->queued);
        if (!req) {
            if (pool->stopping) {
                break;
            }
            pool->nwaiting++;
            pthread_cond_wait(&pool->work, &pool->lock);
            pool->nwaiting--;
            continue;
        }
        pthread_mutex_unlock(&pool->lock);
        run_request(req);
        pthread_mutex_lock(&pool->lock);
        finish_locked(pool, req);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

IoAioPool *io_aio_pool_new(void)
{
    IoAioPool *pool = g_new0(IoAioPool, 1);

    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work, NULL);
    pthread_cond_init(&pool->idle, NULL);
    g_queue_init(&pool->queued);
    g_queue_init(&pool->done);
    return pool;
}

void io_aio_submit(IoState *s, IoAioRequest *req, int ret)
{
    IoAioPool *pool = s->aio;

    clock_gettime(CLOCK_MONOTONIC, &req->t1);
    pthread_mutex_lock(&pool->lock);
    pool->in_flight++;
    if (ret < 0) {
        req->ret = ret;
        req->t2 = req->t1;
        finish_locked(pool, req);
        pthread_mutex_unlock(&pool->lock);
        return;
    }
    g_queue_push_tail(&pool->queued, req);
    /* Start a worker unless an idle one can take the request. */
    if (pool->nwaiting < pool->queued.length && pool->nthreads < AIO_MAX_THREADS &&
        pthread_create(&pool->threads[pool->nthreads], NULL, worker, pool) == 0) {
        pool->nthreads++;
    }
    if (pool->nthreads == 0) {
        /* Not even one thread: run the request here rather than never. */
        g_queue_pop_tail(&pool->queued);
        pthread_mutex_unlock(&pool->lock);
        run_request(req);
        pthread_mutex_lock(&pool->lock);
        finish_locked(pool, req);
    }
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
}

static void report(IoState *s, IoAioRequest *req)
{
    bool is_read = req->kind == IO_AIO_READ;

    if (req->err) {
        io_error_report("%s", req->err->message);
    }
    if (req->ret < 0) {
        printf("%s failed: %s\n", is_read ? "readv" : "aio_write", strerror(-req->ret));
        return;
    }
    if (is_read && req->pflag && !io_buf_has_pattern(req->buf, req->bytes, req->pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64 " bytes\n",
               req->offset, req->bytes);
    }
    if (req->qflag) {
        return;
    }
    if (is_read && req->vflag) {
        io_dump_buffer(req->buf, req->offset, req->bytes);
    }
    io_print_report(is_read ? "read" : "wrote", &req->t1, &req->t2, req->offset, req->bytes,
                    req->bytes, 1, req->cflag);
}

static void request_free(IoState *s, IoAioRequest *req)
{
    io_buf_free(s, req->buf);
    g_clear_error(&req->err);
    g_free(req);
}

void io_aio_poll(IoState *s, bool wait)
{
    IoAioPool *pool = s->aio;
    GQueue finished;
    IoAioRequest *req;

    pthread_mutex_lock(&pool->lock);
    while (wait && pool->in_flight > 0) {
        pthread_cond_wait(&pool->idle, &pool->lock);
    }
    finished = pool->done;
    g_queue_init(&pool->done);
    pthread_mutex_unlock(&pool->lock);

    while ((req = g_queue_pop_head(&finished)) != NULL) {
        report(s, req);
        request_free(s, req);
    }
}

void io_aio_pool_free(IoAioPool *pool)
{
    pthread_mutex_lock(&pool->lock);
    g_assert(pool->in_flight == 0 && g_queue_is_empty(&pool->done));
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->nthreads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->idle);
    g_free(pool);
}
