/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-io's data commands: read, readv, write, writev, and aio_read,
 * aio_write and aio_flush, which hand their requests to the pool in
 * qed-io-aio.c. Options, checks and messages follow qemu-io 7.2.
 */
#include "qed-io.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Buffers are aligned for O_DIRECT; -m moves them 16 bytes off. */
#define BUF_ALIGN 4096
#define MISALIGN_OFFSET 16

void *io_buf_alloc(IoState *s, size_t len, int pattern)
{
    size_t shift = s->misalign ? MISALIGN_OFFSET : 0;
    uint8_t *base = g_aligned_alloc(1, len + shift + 1, BUF_ALIGN);

    memset(base, pattern, len + shift);
    return base + shift;
}

void io_buf_free(IoState *s, void *buf)
{
    if (buf) {
        g_aligned_free((uint8_t *)buf - (s->misalign ? MISALIGN_OFFSET : 0));
    }
}

bool io_buf_has_pattern(const uint8_t *buf, size_t len, int pattern)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != pattern) {
            return false;
        }
    }
    return true;
}

/* The buffer of a write -s: the file's bytes, repeated to fill len. Prints
 * why and returns NULL when the file cannot be used. */
static void *buf_from_file(IoState *s, size_t len, const char *name)
{
    FILE *f = fopen(name, "r");

    if (!f) {
        fflush(stdout);
        perror(name);
        return NULL;
    }
    uint8_t *buf = io_buf_alloc(s, len, 0);
    size_t got = fread(buf, 1, len, f);
    if (ferror(f)) {
        fflush(stdout);
        perror(name);
        goto fail;
    }
    if (got == 0) {
        fflush(stdout);
        fprintf(stderr, "%s: file is empty\n", name);
        goto fail;
    }
    fclose(f);
    for (size_t done = got; done < len; done += MIN(got, len - done)) {
        memcpy(buf + done, buf, MIN(got, len - done));
    }
    return buf;

fail:
    io_buf_free(s, buf);
    fclose(f);
    return NULL;
}

/* Adds the lengths of a readv/writev style list. Prints why and returns
 * -EINVAL when one is malformed or the total is too large for one request. */
static int vector_length(char **args, int nr, int64_t *total)
{
    *total = 0;
    for (int i = 0; i < nr; i++) {
        int64_t len;
        int ret = io_parse_num(args[i], &len);

        if (ret < 0) {
            io_print_num_error(ret, args[i]);
            return -EINVAL;
        }
        if (len > IO_REQUEST_MAX_BYTES) {
            printf("Argument '%s' exceeds maximum size %" PRIu64 "\n", args[i],
                   (uint64_t)IO_REQUEST_MAX_BYTES);
            return -EINVAL;
        }
        if (*total > IO_REQUEST_MAX_BYTES - len) {
            printf("The total number of bytes exceed the maximum size %" PRIu64 "\n",
                   (uint64_t)IO_REQUEST_MAX_BYTES);
            return -EINVAL;
        }
        *total += len;
    }
    return 0;
}

static int image_pread(IoState *s, void *buf, int64_t offset, int64_t bytes)
{
    GError *err = NULL;
    int ret = io_check_range(s, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    ret = qed_pread(s->img, buf, (size_t)bytes, (uint64_t)offset, &err);
    return io_lib_error(ret, err);
}

static int image_pwrite(IoState *s, const void *buf, int64_t offset, int64_t bytes, unsigned flags)
{
    GError *err = NULL;
    int ret = io_check_range(s, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    ret = qed_pwrite(s->img, buf, (size_t)bytes, (uint64_t)offset, flags, &err);
    return io_lib_error(ret, err);
}

static int image_pwrite_zeroes(IoState *s, int64_t offset, int64_t bytes, unsigned flags)
{
    GError *err = NULL;
    int ret = io_check_range(s, offset, bytes);

    if (ret < 0) {
        return ret;
    }
    ret = qed_pwrite_zeroes(s->img, (uint64_t)bytes, (uint64_t)offset, flags, &err);
    return io_lib_error(ret, err);
}

static int parse_offset_and_count(char **argv, int64_t *offset, int64_t *count)
{
    int ret = io_parse_num(argv[optind], offset);

    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    ret = io_parse_num(argv[optind], count);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    return 0;
}

static bool check_sector_aligned(int64_t offset, int64_t count)
{
    if (offset % 512) {
        printf("%" PRId64 " is not a sector-aligned value for 'offset'\n", offset);
        return false;
    }
    if (count % 512) {
        printf("%" PRId64 " is not a sector-aligned value for 'count'\n", count);
        return false;
    }
    return true;
}

static int read_f(IoState *s, int argc, char **argv)
{
    bool cflag = false, qflag = false, vflag = false;
    bool pflag = false, sflag = false, lflag = false, bflag = false;
    int pattern = 0, c, ret;
    int64_t offset, count, pattern_offset = 0, pattern_count = 0;
    struct timespec t1, t2;

    while ((c = getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        switch (c) {
        case 'b':
            bflag = true;
            break;
        case 'C':
            cflag = true;
            break;
        case 'l':
            lflag = true;
            ret = io_parse_num(optarg, &pattern_count);
            if (ret < 0) {
                io_print_num_error(ret, optarg);
                return ret;
            }
            break;
        case 'p':
            break; /* accepted and ignored, as by qemu-io */
        case 'P':
            pflag = true;
            pattern = io_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q':
            qflag = true;
            break;
        case 's':
            sflag = true;
            ret = io_parse_num(optarg, &pattern_offset);
            if (ret < 0) {
                io_print_num_error(ret, optarg);
                return ret;
            }
            break;
        case 'v':
            vflag = true;
            break;
        default:
            io_print_usage(&io_read_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        io_print_usage(&io_read_cmd);
        return -EINVAL;
    }
    ret = parse_offset_and_count(argv, &offset, &count);
    if (ret < 0) {
        return ret;
    }
    if (count > IO_REQUEST_MAX_BYTES) {
        printf("length cannot exceed %" PRIu64 ", given %s\n", (uint64_t)IO_REQUEST_MAX_BYTES,
               argv[optind]);
        return -EINVAL;
    }
    if (!pflag && (lflag || sflag)) {
        io_print_usage(&io_read_cmd);
        return -EINVAL;
    }
    if (!lflag) {
        pattern_count = count - pattern_offset;
    }
    if (pattern_count < 0 || pattern_count + pattern_offset > count) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }
    if (bflag && !check_sector_aligned(offset, count)) {
        return -EINVAL;
    }

    uint8_t *buf = io_buf_alloc(s, count, 0xab);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* -b reads VM state, which neither raw nor QED images store. */
    ret = bflag ? -ENOTSUP : image_pread(s, buf, offset, count);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (pflag && !io_buf_has_pattern(buf + pattern_offset, pattern_count, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64 " bytes\n",
               offset + pattern_offset, pattern_count);
        ret = -EINVAL;
    }
    if (!qflag) {
        if (vflag) {
            io_dump_buffer(buf, offset, count);
        }
        io_print_report("read", &t1, &t2, offset, count, count, 1, cflag);
    }
out:
    io_buf_free(s, buf);
    return ret;
}

const IoCmd io_read_cmd = {
    .name = "read",
    .altname = "r",
    .func = read_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-abCqv] [-P pattern [-s off] [-l len]] off len",
    .oneline = "reads a number of bytes at a specified offset",
    .help = "\n"
            " Reads len bytes of the virtual disk starting at off, where both take\n"
            " size suffixes (k, M, G...), and prints statistics.\n"
            "\n"
            " Example:\n"
            " 'read -v 1k 32' - prints 32 bytes from offset 1024 as a hex dump\n"
            "\n"
            " -b, -- read VM state instead (not stored by raw or QED images)\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -l, -- how many bytes to compare with the pattern (with -P)\n"
            " -p, -- accepted and ignored\n"
            " -P, -- fail unless the bytes read all equal this byte\n"
            " -q, -- quiet: print no statistics\n"
            " -s, -- where in the read data the comparison starts (with -P)\n"
            " -v, -- print the data as a hex dump\n"
            "\n",
};

static int readv_f(IoState *s, int argc, char **argv)
{
    bool cflag = false, qflag = false, vflag = false, pflag = false;
    int pattern = 0, c, ret;
    int64_t offset, count;
    struct timespec t1, t2;

    while ((c = getopt(argc, argv, "CP:qv")) != -1) {
        switch (c) {
        case 'C':
            cflag = true;
            break;
        case 'P':
            pflag = true;
            pattern = io_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q':
            qflag = true;
            break;
        case 'v':
            vflag = true;
            break;
        default:
            io_print_usage(&io_readv_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        io_print_usage(&io_readv_cmd);
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &offset);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    if (vector_length(&argv[optind], argc - optind, &count) < 0) {
        return -EINVAL;
    }

    /* The buffers of the list lie back to back: one call reads them all. */
    uint8_t *buf = io_buf_alloc(s, count, 0xab);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ret = image_pread(s, buf, offset, count);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (pflag && !io_buf_has_pattern(buf, count, pattern)) {
        printf("Pattern verification failed at offset %" PRId64 ", %" PRId64 " bytes\n", offset,
               count);
        ret = -EINVAL;
    }
    if (!qflag) {
        if (vflag) {
            io_dump_buffer(buf, offset, count);
        }
        io_print_report("read", &t1, &t2, offset, count, count, 1, cflag);
    }
out:
    io_buf_free(s, buf);
    return ret;
}

const IoCmd io_readv_cmd = {
    .name = "readv",
    .func = readv_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-Cqv] [-P pattern] off len [len..]",
    .oneline = "reads a number of bytes at a specified offset",
    .help = "\n"
            " Reads into a list of buffers of the given lengths, laid end to end,\n"
            " starting at off.\n"
            "\n"
            " Example:\n"
            " 'readv 4k 512 1k' - reads 1.5 KiB from offset 4096 into two buffers\n"
            "\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -P, -- fail unless the bytes read all equal this byte\n"
            " -q, -- quiet: print no statistics\n"
            " -v, -- print the data as a hex dump\n"
            "\n",
};

static int write_f(IoState *s, int argc, char **argv)
{
    bool cflag = false, qflag = false, bflag = false, compressed = false;
    bool pflag = false, zflag = false, sflag = false, fua = false;
    bool no_fallback = false, may_unmap = false;
    const char *file_name = NULL;
    int pattern = 0xcd, c, ret;
    int64_t offset, count;
    struct timespec t1, t2;

    while ((c = getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'b':
            bflag = true;
            break;
        case 'c':
            compressed = true;
            break;
        case 'C':
            cflag = true;
            break;
        case 'f':
            fua = true;
            break;
        case 'n':
            no_fallback = true;
            break;
        case 'p':
            break; /* accepted and ignored, as by qemu-io */
        case 'P':
            pflag = true;
            pattern = io_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q':
            qflag = true;
            break;
        case 's':
            sflag = true;
            file_name = optarg;
            break;
        case 'u':
            may_unmap = true;
            break;
        case 'z':
            zflag = true;
            break;
        default:
            io_print_usage(&io_write_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        io_print_usage(&io_write_cmd);
        return -EINVAL;
    }
    if (bflag && zflag) {
        printf("-b and -z cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (fua && (bflag || compressed)) {
        printf("-f and -b or -c cannot be specified at the same time\n");
        return -EINVAL;
    }
    if (no_fallback && !zflag) {
        printf("-n requires -z to be specified\n");
        return -EINVAL;
    }
    if (may_unmap && !zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (zflag + pflag + sflag > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same time\n");
        return -EINVAL;
    }
    ret = parse_offset_and_count(argv, &offset, &count);
    if (ret < 0) {
        return ret;
    }
    if (count > IO_REQUEST_MAX_BYTES && !no_fallback) {
        printf("length cannot exceed %" PRIu64 " without -n, given %s\n",
               (uint64_t)IO_REQUEST_MAX_BYTES, argv[optind]);
        return -EINVAL;
    }
    if ((bflag || compressed) && !check_sector_aligned(offset, count)) {
        return -EINVAL;
    }

    uint8_t *buf = NULL;
    if (!zflag) {
        buf = sflag ? buf_from_file(s, count, file_name) : io_buf_alloc(s, count, pattern);
        if (!buf) {
            return -EINVAL;
        }
    }

    unsigned flags = fua ? QED_WRITE_FUA : 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (bflag) {
        ret = -ENOTSUP; /* no VM state in raw or QED images */
    } else if (zflag) {
        ret = image_pwrite_zeroes(s, offset, count, flags);
    } else if (compressed) {
        /* Neither format compresses; qemu checks the range first. */
        ret = io_check_range(s, offset, count);
        ret = ret < 0 ? ret : -ENOTSUP;
    } else {
        ret = image_pwrite(s, buf, offset, count, flags);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (!qflag) {
        io_print_report("wrote", &t1, &t2, offset, count, count, 1, cflag);
    }
out:
    io_buf_free(s, buf);
    return ret;
}

const IoCmd io_write_cmd = {
    .name = "write",
    .altname = "w",
    .func = write_f,
    .argmin = 2,
    .argmax = -1,
    .flags = IO_CMD_WRITES,
    .args = "[-bcCfnquz] [-P pattern | -s source_file] off len",
    .oneline = "writes a number of bytes at a specified offset",
    .help = "\n"
            " Writes len bytes at off, by default all of them 0xcd.\n"
            "\n"
            " Example:\n"
            " 'write -P 0x55 64k 4k' - writes 4 KiB of 0x55 at offset 65536\n"
            "\n"
            " -b, -- write VM state instead (not stored by raw or QED images)\n"
            " -c, -- write compressed (not supported by raw or QED images)\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -f, -- the data is on stable storage when the write completes (FUA)\n"
            " -n, -- with -z: accepted; zeroes never fall back to writing buffers here\n"
            " -p, -- accepted and ignored\n"
            " -P, -- the byte to fill the data with\n"
            " -q, -- quiet: print no statistics\n"
            " -s, -- fill the data with this file's bytes, repeated as needed\n"
            " -u, -- with -z: the range may be deallocated\n"
            " -z, -- make the range read as zeros instead of writing data\n"
            "\n",
};

static int writev_f(IoState *s, int argc, char **argv)
{
    bool cflag = false, qflag = false;
    unsigned flags = 0;
    int pattern = 0xcd, c, ret;
    int64_t offset, count;
    struct timespec t1, t2;

    while ((c = getopt(argc, argv, "CfqP:")) != -1) {
        switch (c) {
        case 'C':
            cflag = true;
            break;
        case 'f':
            flags |= QED_WRITE_FUA;
            break;
        case 'q':
            qflag = true;
            break;
        case 'P':
            pattern = io_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        default:
            io_print_usage(&io_writev_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        io_print_usage(&io_writev_cmd);
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &offset);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    if (vector_length(&argv[optind], argc - optind, &count) < 0) {
        return -EINVAL;
    }

    uint8_t *buf = io_buf_alloc(s, count, pattern);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ret = image_pwrite(s, buf, offset, count, flags);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("writev failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (!qflag) {
        io_print_report("wrote", &t1, &t2, offset, count, count, 1, cflag);
    }
out:
    io_buf_free(s, buf);
    return ret;
}

const IoCmd io_writev_cmd = {
    .name = "writev",
    .func = writev_f,
    .argmin = 2,
    .argmax = -1,
    .flags = IO_CMD_WRITES,
    .args = "[-Cfq] [-P pattern] off len [len..]",
    .oneline = "writes a number of bytes at a specified offset",
    .help = "\n"
            " Writes a list of buffers of the given lengths, laid end to end, at off;\n"
            " by default every byte is 0xcd.\n"
            "\n"
            " Example:\n"
            " 'writev 4k 512 1k' - writes 1.5 KiB at offset 4096 from two buffers\n"
            "\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -f, -- the data is on stable storage when the write completes (FUA)\n"
            " -P, -- the byte to fill the data with\n"
            " -q, -- quiet: print no statistics\n"
            "\n",
};

static int aio_read_f(IoState *s, int argc, char **argv)
{
    IoAioRequest req = { .kind = IO_AIO_READ, .img = s->img };
    int c, ret;

    while ((c = getopt(argc, argv, "CP:iqv")) != -1) {
        switch (c) {
        case 'C':
            req.cflag = true;
            break;
        case 'P':
            req.pflag = true;
            req.pattern = io_parse_pattern(optarg);
            if (req.pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'i':
            /* qemu-io counts an invalid request in its statistics; we keep none. */
            printf("injecting invalid read request\n");
            return 0;
        case 'q':
            req.qflag = true;
            break;
        case 'v':
            req.vflag = true;
            break;
        default:
            io_print_usage(&io_aio_read_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        io_print_usage(&io_aio_read_cmd);
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &req.offset);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    if (vector_length(&argv[optind], argc - optind, &req.bytes) < 0) {
        return -EINVAL;
    }
    req.buf = io_buf_alloc(s, req.bytes, 0xab);
    io_aio_submit(s, g_memdup2(&req, sizeof(req)), io_check_range(s, req.offset, req.bytes));
    return 0;
}

const IoCmd io_aio_read_cmd = {
    .name = "aio_read",
    .func = aio_read_f,
    .argmin = 2,
    .argmax = -1,
    .args = "[-Ciqv] [-P pattern] off len [len..]",
    .oneline = "asynchronously reads a number of bytes",
    .help = "\n"
            " Starts a read like readv's and returns at once; the read runs on its\n"
            " own thread, and its result is printed once it is done, at the latest\n"
            " by aio_flush, which waits for every outstanding request.\n"
            "\n"
            " Example:\n"
            " 'aio_read -P 0x55 64k 4k' - reads 4 KiB at 65536 and checks the bytes\n"
            "\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -i, -- start no request; print that an invalid one was injected\n"
            " -P, -- complain unless the bytes read all equal this byte\n"
            " -q, -- quiet: print no statistics\n"
            " -v, -- print the data as a hex dump\n"
            "\n",
};

static int aio_write_f(IoState *s, int argc, char **argv)
{
    IoAioRequest req = { .kind = IO_AIO_WRITE, .img = s->img };
    bool may_unmap = false;
    int pattern = 0xcd, c, ret;

    while ((c = getopt(argc, argv, "CfiqP:uz")) != -1) {
        switch (c) {
        case 'C':
            req.cflag = true;
            break;
        case 'f':
            req.write_flags |= QED_WRITE_FUA;
            break;
        case 'q':
            req.qflag = true;
            break;
        case 'u':
            may_unmap = true;
            break;
        case 'P':
            /* Like qemu-io 7.2, -P is not rejected together with -z. */
            pattern = io_parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'i':
            printf("injecting invalid write request\n");
            return 0;
        case 'z':
            req.kind = IO_AIO_WRITE_ZEROES;
            break;
        default:
            io_print_usage(&io_aio_write_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        io_print_usage(&io_aio_write_cmd);
        return -EINVAL;
    }
    if (req.kind == IO_AIO_WRITE_ZEROES && optind != argc - 2) {
        printf("-z supports only a single length parameter\n");
        return -EINVAL;
    }
    if (may_unmap && req.kind != IO_AIO_WRITE_ZEROES) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &req.offset);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    if (req.kind == IO_AIO_WRITE_ZEROES) {
        ret = io_parse_num(argv[optind], &req.bytes);
        if (ret < 0) {
            io_print_num_error(ret, argv[optind]);
            return ret;
        }
    } else {
        if (vector_length(&argv[optind], argc - optind, &req.bytes) < 0) {
            return -EINVAL;
        }
        req.buf = io_buf_alloc(s, req.bytes, pattern);
    }
    io_aio_submit(s, g_memdup2(&req, sizeof(req)), io_check_range(s, req.offset, req.bytes));
    return 0;
}

const IoCmd io_aio_write_cmd = {
    .name = "aio_write",
    .func = aio_write_f,
    .argmin = 2,
    .argmax = -1,
    .flags = IO_CMD_WRITES,
    .args = "[-Cfiquz] [-P pattern] off len [len..]",
    .oneline = "asynchronously writes a number of bytes",
    .help = "\n"
            " Starts a write like writev's and returns at once; the write runs on\n"
            " its own thread, and its result is printed once it is done, at the\n"
            " latest by aio_flush, which waits for every outstanding request.\n"
            "\n"
            " Example:\n"
            " 'aio_write -P 0x55 64k 4k' - writes 4 KiB of 0x55 at offset 65536\n"
            "\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -f, -- the data is on stable storage when the write completes (FUA)\n"
            " -i, -- start no request; print that an invalid one was injected\n"
            " -P, -- the byte to fill the data with\n"
            " -q, -- quiet: print no statistics\n"
            " -u, -- with -z: the range may be deallocated\n"
            " -z, -- make the range read as zeros (one length only)\n"
            "\n",
};

static int aio_flush_f(IoState *s, int argc, char **argv)
{
    io_aio_poll(s, true);
    return 0;
}

const IoCmd io_aio_flush_cmd = {
    .name = "aio_flush",
    .func = aio_flush_f,
    .oneline = "completes all outstanding aio requests",
};
