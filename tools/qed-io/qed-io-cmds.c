/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command table and dispatcher of qed-io (how a line becomes a call, with
 * qemu-io's checks and messages), and the commands that ask the image about
 * itself or change it as a whole: help, info, length, map, alloc, discard,
 * flush, truncate, sleep.
 */
#include "qed-io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sorted by name: help lists them in this order. */
static const IoCmd *const commands[] = {
    &io_aio_flush_cmd, &io_aio_read_cmd, &io_aio_write_cmd, &io_alloc_cmd, &io_close_cmd,
    &io_discard_cmd,   &io_flush_cmd,    &io_help_cmd,      &io_info_cmd,  &io_length_cmd,
    &io_map_cmd,       &io_open_cmd,     &io_quit_cmd,      &io_read_cmd,  &io_readv_cmd,
    &io_reopen_cmd,    &io_sleep_cmd,    &io_truncate_cmd,  &io_write_cmd, &io_writev_cmd,
};

static const IoCmd *find_command(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        const IoCmd *cmd = commands[i];
        if (strcmp(cmd->name, name) == 0 || (cmd->altname && strcmp(cmd->altname, name) == 0)) {
            return cmd;
        }
    }
    return NULL;
}

void io_print_usage(const IoCmd *cmd)
{
    printf("%s %s -- %s\n", cmd->name, cmd->args ? cmd->args : "", cmd->oneline);
}

void io_error_report(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: ", g_get_prgname());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int io_lib_error(int ret, GError *err)
{
    if (err) {
        io_error_report("%s", err->message);
        g_error_free(err);
    }
    return ret;
}

static int64_t image_length(IoState *s)
{
    QedInfo info;
    int ret = qed_get_info(s->img, &info, NULL);

    return ret < 0 ? ret : (int64_t)info.virtual_size;
}

int io_check_range(IoState *s, int64_t offset, int64_t bytes)
{
    int64_t len = image_length(s);

    if (len < 0) {
        return (int)len;
    }
    if (offset < 0 || bytes < 0 || offset > len || len - offset < bytes) {
        return -EIO;
    }
    return 0;
}

/* Words are separated by single spaces; empty words are skipped. */
static char **split_line(char *input, int *count)
{
    GPtrArray *words = g_ptr_array_new();
    char *word;

    while ((word = strsep(&input, " ")) != NULL) {
        if (*word) {
            g_ptr_array_add(words, word);
        }
    }
    *count = (int)words->len;
    g_ptr_array_add(words, NULL);
    return (char **)g_ptr_array_free(words, FALSE);
}

static int run_argv(IoState *s, int argc, char **argv)
{
    const IoCmd *cmd = find_command(argv[0]);
    int nargs = argc - 1;

    if (!cmd) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        return -EINVAL;
    }
    if (!(cmd->flags & (IO_CMD_GLOBAL | IO_CMD_NOFILE_OK)) && !s->img) {
        fprintf(stderr, "no file open, try 'help open'\n");
        return -EINVAL;
    }
    if (nargs < cmd->argmin || (cmd->argmax != -1 && nargs > cmd->argmax)) {
        if (cmd->argmax == -1) {
            fprintf(stderr, "bad argument count %d to %s, expected at least %d arguments\n", nargs,
                    argv[0], cmd->argmin);
        } else if (cmd->argmin == cmd->argmax) {
            fprintf(stderr, "bad argument count %d to %s, expected %d arguments\n", nargs, argv[0],
                    cmd->argmin);
        } else {
            fprintf(stderr, "bad argument count %d to %s, expected between %d and %d arguments\n",
                    nargs, argv[0], cmd->argmin, cmd->argmax);
        }
        return -EINVAL;
    }
    if ((cmd->flags & IO_CMD_WRITES) && s->img && s->read_only) {
        io_error_report("Block node is read-only");
        return -EPERM;
    }
    optind = 0; /* glibc: start a fresh scan, argv[0] names the command */
    return cmd->func(s, argc, argv);
}

int io_run_command(IoState *s, const char *line)
{
    char *input = g_strdup(line);
    int argc;
    char **argv = split_line(input, &argc);
    int ret = 0;

    io_aio_poll(s, false);
    if (argc > 0) {
        ret = run_argv(s, argc, argv);
    }
    g_free(argv);
    g_free(input);
    return ret;
}

static int help_f(IoState *s, int argc, char **argv)
{
    if (argc < 2) {
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
            const IoCmd *cmd = commands[i];
            printf("%s %s%s-- %s\n", cmd->name, cmd->args ? cmd->args : "", cmd->args ? " " : "",
                   cmd->oneline);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    const IoCmd *cmd = find_command(argv[1]);
    if (!cmd) {
        printf("command %s not found\n", argv[1]);
        return -EINVAL;
    }
    printf("%s %s%s-- %s\n", argv[1], cmd->args ? cmd->args : "", cmd->args ? " " : "",
           cmd->oneline);
    if (cmd->help) {
        printf("%s", cmd->help);
    }
    return 0;
}

const IoCmd io_help_cmd = {
    .name = "help",
    .altname = "?",
    .func = help_f,
    .argmin = 0,
    .argmax = 1,
    .flags = IO_CMD_GLOBAL,
    .args = "[command]",
    .oneline = "help for one or all commands",
};

static int info_f(IoState *s, int argc, char **argv)
{
    QedInfo info;
    GError *err = NULL;
    char cluster[64], vmstate[64];
    int ret = qed_get_info(s->img, &info, &err);

    if (ret < 0) {
        return io_lib_error(ret, err);
    }
    printf("format name: %s\n", info.format);
    io_size_str(info.cluster_size, cluster, sizeof(cluster));
    io_size_str(0, vmstate, sizeof(vmstate)); /* neither format stores VM state */
    printf("cluster size: %s\n", cluster);
    printf("vm state offset: %s\n", vmstate);
    return 0;
}

const IoCmd io_info_cmd = {
    .name = "info",
    .altname = "i",
    .func = info_f,
    .oneline = "prints information about the current file",
};

static int length_f(IoState *s, int argc, char **argv)
{
    int64_t len = image_length(s);
    char str[64];

    if (len < 0) {
        printf("getlength: %s\n", strerror((int)-len));
        return (int)len;
    }
    io_size_str((double)len, str, sizeof(str));
    printf("%s\n", str);
    return 0;
}

const IoCmd io_length_cmd = {
    .name = "length",
    .altname = "l",
    .func = length_f,
    .oneline = "gets the length of the current file",
};

/* Whether [offset, offset + *num) is allocated in this image (data or zero
 * clusters; not what falls through to a backing file), for the longest
 * such run of at most bytes. *num is 0 at or past the end of the disk. */
static int is_allocated(IoState *s, int64_t offset, int64_t bytes, int64_t *num)
{
    int64_t len = image_length(s);
    QedExtent ext;
    GError *err = NULL;

    if (len < 0) {
        return (int)len;
    }
    if (offset >= len) {
        *num = 0;
        return 0;
    }
    int ret = qed_block_status(s->img, MIN(bytes, len - offset), offset, &ext, &err);
    if (ret < 0) {
        return io_lib_error(ret, err);
    }
    *num = (int64_t)ext.length;
    return ext.type != QED_EXTENT_UNALLOCATED;
}

static int alloc_f(IoState *s, int argc, char **argv)
{
    int64_t offset, count = 512, remaining, sum_alloc = 0;
    char offset_str[64];
    int ret = io_parse_num(argv[1], &offset);

    if (ret < 0) {
        io_print_num_error(ret, argv[1]);
        return ret;
    }
    if (argc == 3) {
        ret = io_parse_num(argv[2], &count);
        if (ret < 0) {
            io_print_num_error(ret, argv[2]);
            return ret;
        }
    }

    int64_t pos = offset;
    remaining = count;
    while (remaining) {
        int64_t num;
        ret = is_allocated(s, pos, remaining, &num);
        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        if (num == 0) {
            count -= remaining; /* the request ran past the end of the disk */
            break;
        }
        pos += num;
        remaining -= num;
        if (ret) {
            sum_alloc += num;
        }
    }

    io_size_str((double)offset, offset_str, sizeof(offset_str));
    printf("%" PRId64 "/%" PRId64 " bytes allocated at offset %s\n", sum_alloc, count, offset_str);
    return 0;
}

const IoCmd io_alloc_cmd = {
    .name = "alloc",
    .altname = "a",
    .func = alloc_f,
    .argmin = 1,
    .argmax = 2,
    .args = "offset [count]",
    .oneline = "checks if offset is allocated in the file",
};

static int map_f(IoState *s, int argc, char **argv)
{
    int64_t offset = 0, bytes = image_length(s);

    if (bytes < 0) {
        io_error_report("Failed to query image length: %s", strerror((int)-bytes));
        return (int)bytes;
    }
    while (bytes) {
        int64_t run = 0, num;
        int first = -1, ret;

        /* Merge consecutive extents of the same allocation status. */
        while (run < bytes) {
            ret = is_allocated(s, offset + run, bytes - run, &num);
            if (ret < 0) {
                io_error_report("Failed to get allocation status: %s", strerror(-ret));
                return ret;
            }
            if (num == 0 || (first >= 0 && ret != first)) {
                break;
            }
            first = ret;
            run += num;
        }
        if (run == 0) {
            io_error_report("Unexpected end of image");
            return -EIO;
        }

        char run_str[64], offset_str[64];
        io_size_str((double)run, run_str, sizeof(run_str));
        io_size_str((double)offset, offset_str, sizeof(offset_str));
        printf("%s (0x%" PRIx64 ") bytes %s at offset %s (0x%" PRIx64 ")\n", run_str,
               (uint64_t)run, first ? "    allocated" : "not allocated", offset_str,
               (uint64_t)offset);
        offset += run;
        bytes -= run;
    }
    return 0;
}

const IoCmd io_map_cmd = {
    .name = "map",
    .func = map_f,
    .args = "",
    .oneline = "prints the allocated areas of a file",
};

static int discard_f(IoState *s, int argc, char **argv)
{
    bool cflag = false, qflag = false;
    int64_t offset, bytes;
    struct timespec t1, t2;
    int c, ret;

    while ((c = getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C':
            cflag = true;
            break;
        case 'q':
            qflag = true;
            break;
        default:
            io_print_usage(&io_discard_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        io_print_usage(&io_discard_cmd);
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &offset);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    optind++;
    ret = io_parse_num(argv[optind], &bytes);
    if (ret < 0) {
        io_print_num_error(ret, argv[optind]);
        return ret;
    }
    if (bytes > IO_REQUEST_MAX_BYTES) {
        printf("length cannot exceed %" PRIu64 ", given %s\n", (uint64_t)IO_REQUEST_MAX_BYTES,
               argv[optind]);
        return -EINVAL;
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    ret = io_check_range(s, offset, bytes);
    if (ret == 0 && !s->discard_ignore) {
        GError *err = NULL;
        ret = qed_discard(s->img, bytes, offset, &err);
        ret = io_lib_error(ret, err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
        return ret;
    }
    if (!qflag) {
        io_print_report("discard", &t1, &t2, offset, bytes, bytes, 1, cflag);
    }
    return 0;
}

const IoCmd io_discard_cmd = {
    .name = "discard",
    .altname = "d",
    .func = discard_f,
    .argmin = 2,
    .argmax = -1,
    .flags = IO_CMD_WRITES,
    .args = "[-Cq] off len",
    .oneline = "discards a number of bytes at a specified offset",
    .help = "\n"
            " Makes a range of the open image read as zeros; an image file with a\n"
            " backing file stops showing the backing data there.\n"
            "\n"
            " Example:\n"
            " 'discard 64k 4k' - discards 4 KiB starting 64 KiB into the image\n"
            "\n"
            " -C, -- print the statistics as comma-separated values\n"
            " -q, -- quiet: print no statistics\n"
            "\n",
};

static int flush_f(IoState *s, int argc, char **argv)
{
    GError *err = NULL;

    int ret = qed_flush(s->img, &err);

    return io_lib_error(ret, err);
}

const IoCmd io_flush_cmd = {
    .name = "flush",
    .altname = "f",
    .func = flush_f,
    .oneline = "flush all in-core file state to disk",
};

/* qemu's preallocation modes: only "off" is something our images can do. */
static bool prealloc_mode_known(const char *mode)
{
    static const char *const modes[] = { "off", "metadata", "falloc", "full" };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(mode, modes[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int truncate_f(IoState *s, int argc, char **argv)
{
    const char *prealloc = "off";
    int64_t size;
    GError *err = NULL;
    int c, ret;

    while ((c = getopt(argc, argv, "m:")) != -1) {
        switch (c) {
        case 'm':
            if (!prealloc_mode_known(optarg)) {
                io_error_report("Invalid preallocation mode '%s'", optarg);
                return -EINVAL;
            }
            prealloc = optarg;
            break;
        default:
            io_print_usage(&io_truncate_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        io_print_usage(&io_truncate_cmd);
        return -EINVAL;
    }
    ret = io_parse_num(argv[optind], &size);
    if (ret < 0) {
        io_print_num_error(ret, argv[1]); /* qemu-io names argv[1] here, even after -m */
        return ret;
    }
    if (strcmp(prealloc, "off") != 0) {
        io_error_report("Unsupported preallocation mode '%s'", prealloc);
        return -ENOTSUP;
    }
    io_aio_poll(s, true);
    ret = qed_resize(s->img, (uint64_t)size, &err);
    return io_lib_error(ret, err);
}

const IoCmd io_truncate_cmd = {
    .name = "truncate",
    .altname = "t",
    .func = truncate_f,
    .argmin = 1,
    .argmax = 3,
    .flags = IO_CMD_WRITES,
    .args = "[-m prealloc_mode] off",
    .oneline = "truncates the current file at the given offset",
};

static int sleep_f(IoState *s, int argc, char **argv)
{
    char *end;
    long ms = strtol(argv[1], &end, 0);

    if (ms < 0 || *end != '\0') {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    g_usleep((gulong)ms * 1000);
    return 0;
}

const IoCmd io_sleep_cmd = {
    .name = "sleep",
    .func = sleep_f,
    .argmin = 1,
    .argmax = 1,
    .flags = IO_CMD_NOFILE_OK,
    .oneline = "waits for the given value in milliseconds",
};
