/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-io's internal interface: the state of the one open image, the command
 * table, the qemu-io-compatible output helpers and the aio request pool.
 */
#ifndef QED_IO_H
#define QED_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "qed.h"

/* qemu-io's limit for one request: INT_MAX rounded down to 512 bytes. */
#define IO_REQUEST_MAX_BYTES ((int64_t)0x7ffffe00)

typedef struct IoAioPool IoAioPool;

/* Everything the commands share. Only the main thread touches it; aio
 * workers see just the QedImage handle, which is thread-safe. */
typedef struct IoState {
    QedImage *img;       /* NULL while no file is open; owned */
    bool read_only;      /* img was opened without write access */
    unsigned open_flags; /* the QED_OPEN_* flags img has now */
    bool misalign;       /* -m: buffers start 16 bytes past an alignment */
    bool discard_ignore; /* -d ignore/off: discard succeeds and changes nothing, as in
                          * qemu-io (the default, unmap, makes the range read zeros) */
    bool quit;           /* set by "quit"; the command loop stops */
    IoAioPool *aio;      /* requests started by aio_read/aio_write; owned */
} IoState;

typedef int (*IoCmdFunc)(IoState *s, int argc, char **argv);

enum {
    IO_CMD_GLOBAL = 1u << 0,    /* runs with or without an open file */
    IO_CMD_NOFILE_OK = 1u << 1, /* may run without an open file */
    IO_CMD_WRITES = 1u << 2,    /* needs a writable image */
};

typedef struct IoCmd {
    const char *name;
    const char *altname; /* short alias, or NULL */
    IoCmdFunc func;      /* returns 0 or -errno; prints its own messages */
    int argmin, argmax;  /* argument count without the name; -1 = no limit */
    unsigned flags;      /* IO_CMD_* */
    const char *args;    /* synopsis of the arguments, or NULL */
    const char *oneline; /* what the command does, for help */
    const char *help;    /* longer help text, or NULL */
} IoCmd;

/* qed-io.c: the program, its image and the commands that manage it (open,
 * reopen, close, quit) */
extern const IoCmd io_open_cmd, io_close_cmd, io_quit_cmd, io_reopen_cmd;

/* qed-io-cmds.c: the command table, dispatch, and the commands that ask the
 * image about itself */
extern const IoCmd io_alloc_cmd, io_discard_cmd, io_flush_cmd, io_help_cmd, io_info_cmd;
extern const IoCmd io_length_cmd, io_map_cmd, io_sleep_cmd, io_truncate_cmd;
int io_run_command(IoState *s, const char *line);
void io_print_usage(const IoCmd *cmd);
void io_error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Fails with -EIO when [offset, offset + bytes) leaves the virtual disk. */
int io_check_range(IoState *s, int64_t offset, int64_t bytes);
/* Prints the library's message (it names the file) and returns ret. Call
 * the library first and pass its result: as io_lib_error(qed_x(..., &err),
 * err), C may read err before qed_x sets it, losing the message. */
int io_lib_error(int ret, GError *err);

/* qed-io-rw.c: read, readv, write, writev and their aio forms */
extern const IoCmd io_read_cmd, io_readv_cmd, io_write_cmd, io_writev_cmd;
extern const IoCmd io_aio_read_cmd, io_aio_write_cmd, io_aio_flush_cmd;
void *io_buf_alloc(IoState *s, size_t len, int pattern);
void io_buf_free(IoState *s, void *buf);
bool io_buf_has_pattern(const uint8_t *buf, size_t len, int pattern);

/* qed-io-report.c: numbers in and out exactly as qemu-io parses and prints
 * them */
int io_parse_num(const char *str, int64_t *value);
void io_print_num_error(int err, const char *arg);
int io_parse_pattern(const char *arg);
void io_size_str(double value, char *out, size_t size);
void io_dump_buffer(const uint8_t *buf, int64_t offset, int64_t len);
void io_print_report(const char *op, const struct timespec *t1, const struct timespec *t2,
                     int64_t offset, int64_t count, int64_t total, int cnt, bool cflag);

/* qed-io-aio.c: concurrent requests on a thread pool; their reports are
 * printed by the main thread when it polls, in completion order. */
typedef enum IoAioKind {
    IO_AIO_READ,
    IO_AIO_WRITE,
    IO_AIO_WRITE_ZEROES,
} IoAioKind;

typedef struct IoAioRequest {
    IoAioKind kind;
    QedImage *img;
    int64_t offset;
    int64_t bytes;
    unsigned write_flags; /* QED_WRITE_* */
    uint8_t *buf;         /* from io_buf_alloc, NULL for zero writes; owned */
    bool qflag, vflag, cflag, pflag;
    int pattern; /* checked on reads when pflag */
    int ret;     /* 0 or -errno, set by the worker */
    GError *err; /* the library's error, set by the worker; owned */
    struct timespec t1, t2;
} IoAioRequest;

IoAioPool *io_aio_pool_new(void);
/* Frees the pool, after io_aio_poll(s, true) reported every request. */
void io_aio_pool_free(IoAioPool *pool);
/* Takes ownership of req. Starts it on a worker thread, or, when ret < 0,
 * records it as already failed with ret. */
void io_aio_submit(IoState *s, IoAioRequest *req, int ret);
/* Reports every finished request; with wait, first waits for all of them. */
void io_aio_poll(IoState *s, bool wait);

#endif
