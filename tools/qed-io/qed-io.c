/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-io: exercises a QED or raw image through libqed with qemu-io's command
 * syntax and output. This file holds the program: its options, the command
 * loop (-c commands, else lines from stdin) and open, reopen, close and quit.
 */
#include "open.h"
#include "qed-io.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "locking.h"
#include "probe-warning.h"

/* Turns a qemu cache mode into open flags; -EINVAL for an unknown one. */
static int parse_cache_mode(const char *mode, unsigned *flags)
{
    static const struct {
        const char *name;
        unsigned flags;
    } modes[] = {
        { "none", QED_OPEN_DIRECT },
        { "off", QED_OPEN_DIRECT },
        { "directsync", QED_OPEN_DIRECT | QED_OPEN_WRITETHROUGH },
        { "writeback", 0 },
        { "unsafe", 0 },
        { "writethrough", QED_OPEN_WRITETHROUGH },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            *flags = (*flags & ~(QED_OPEN_DIRECT | QED_OPEN_WRITETHROUGH)) | modes[i].flags;
            return 0;
        }
    }
    return -EINVAL;
}

/* The -d discard modes of qemu-io: ignore/off or unmap/on. */
static int parse_discard_mode(const char *mode, bool *ignore)
{
    if (strcmp(mode, "ignore") == 0 || strcmp(mode, "off") == 0) {
        *ignore = true;
    } else if (strcmp(mode, "unmap") == 0 || strcmp(mode, "on") == 0) {
        *ignore = false;
    } else {
        io_error_report("Invalid discard option: %s", mode);
        return -EINVAL;
    }
    return 0;
}

/* The -i aio modes of qemu-io. libqed does its own I/O whatever the mode
 * (threads, or O_DIRECT with -n), so the mode only keeps qemu-io's rule that
 * native aio needs the page cache bypassed. */
typedef enum IoAio { IO_AIO_THREADS, IO_AIO_NATIVE, IO_AIO_IO_URING } IoAio;

static int parse_aio_mode(const char *mode, IoAio *aio)
{
    if (strcmp(mode, "threads") == 0) {
        *aio = IO_AIO_THREADS;
    } else if (strcmp(mode, "native") == 0) {
        *aio = IO_AIO_NATIVE;
    } else if (strcmp(mode, "io_uring") == 0) {
        *aio = IO_AIO_IO_URING;
    } else {
        io_error_report("Invalid aio option: %s", mode);
        return -EINVAL;
    }
    return 0;
}

/* The library's open errors read "Could not open 'FILE': REASON", as
 * qemu-img prints them; qemu-io prints "can't open device FILE: REASON",
 * and only the REASON of a failed open(2) itself starts with "Could not
 * open 'FILE': ". */
static const char *open_error_reason(const char *filename, const GError *err)
{
    g_autofree char *prefix = g_strdup_printf("Could not open '%s': ", filename);
    const char *reason = err->message;

    if (g_str_has_prefix(reason, prefix) &&
        strcmp(reason + strlen(prefix), g_strerror(err->code)) != 0) {
        reason += strlen(prefix);
    }
    return reason;
}

/* Opens filename as the current image; format NULL probes. Backing files
 * may be any local file or block device, as in qemu-io. */
/* What the options that the program and `open` share ask of the open. */
typedef struct IoOpenMode {
    unsigned flags; /* QED_OPEN_* */
    IoAio aio;
    bool discard_ignore;
} IoOpenMode;

/* Handles option c of those the program and `open` share (-n -r -t -U -d
 * -i -k, and the refused -s -C). Returns 1 when c was one of them, 0 when
 * it was not, -errno (after the message) for a bad value or a refusal. */
static int parse_open_mode(int c, const char *arg, IoOpenMode *mode)
{
    switch (c) {
    case 'n':
        mode->flags = (mode->flags & ~QED_OPEN_WRITETHROUGH) | QED_OPEN_DIRECT;
        return 1;
    case 'r':
        mode->flags |= QED_OPEN_READ_ONLY;
        return 1;
    case 't':
        if (parse_cache_mode(arg, &mode->flags) < 0) {
            io_error_report("Invalid cache option: %s", arg);
            return -EINVAL;
        }
        return 1;
    case 'U':
        mode->flags |= QED_OPEN_FORCE_SHARE;
        return 1;
    case 'd':
        return parse_discard_mode(arg, &mode->discard_ignore) < 0 ? -EINVAL : 1;
    case 'i':
        return parse_aio_mode(arg, &mode->aio) < 0 ? -EINVAL : 1;
    case 'k':
        mode->aio = IO_AIO_NATIVE;
        return 1;
    case 's':
    case 'C':
        io_error_report("-%c is not supported: qed-io has no %s", c,
                        c == 's' ? "temporary snapshot overlay" : "copy-on-read");
        return -ENOTSUP;
    default:
        return 0;
    }
}

static int open_image(IoState *s, const char *filename, const char *format, const IoOpenMode *mode,
                      QedLocking locking)
{
    unsigned flags = mode->flags | QED_OPEN_BACKING_BLOCK_DEVICES;
    QedOpenOptions opts = { .format = format, .flags = flags, .locking = locking };
    GError *err = NULL;

    if (s->img) {
        io_error_report("file open already, try 'help close'");
        return -EINVAL;
    }
    if (mode->aio == IO_AIO_NATIVE && !(flags & QED_OPEN_DIRECT)) {
        io_error_report("can't open device %s: aio=native was specified, but it requires "
                        "cache.direct=on, which was not specified.",
                        filename);
        return -EINVAL;
    }
    s->img = tool_open(filename, &opts, &err);
    if (!s->img) {
        io_error_report("can't open device %s: %s", filename,
                        err ? open_error_reason(filename, err) : "unknown error");
        g_clear_error(&err);
        return -EINVAL;
    }
    s->read_only = flags & QED_OPEN_READ_ONLY;
    s->open_flags = flags;
    s->discard_ignore = mode->discard_ignore;
    if (!s->read_only) {
        probe_warning_print(s->img, filename);
    }
    return 0;
}

/* Waits for the image's aio requests and reports them, then closes it. */
static int close_image(IoState *s)
{
    GError *err = NULL;

    io_aio_poll(s, true);
    if (!s->img) {
        return 0;
    }
    int ret = qed_close(s->img, &err);
    s->img = NULL;
    return io_lib_error(ret, err);
}

/* "driver=FMT" and "file.locking=MODE" are the block options qed-io
 * understands. */
static int parse_open_options(const char *filename, const char *optstr, const char **format,
                              QedLocking *locking)
{
    g_auto(GStrv) opts = g_strsplit(optstr, ",", -1);

    for (char **opt = opts; *opt; opt++) {
        if (g_str_has_prefix(*opt, "driver=")) {
            *format = g_intern_string(*opt + strlen("driver="));
        } else if (g_str_has_prefix(*opt, "file.locking=")) {
            const char *mode = *opt + strlen("file.locking=");
            if (!locking_parse(mode, locking)) {
                io_error_report("can't open device %s: invalid parameter value: %s",
                                filename ? filename : "", mode);
                return -EINVAL;
            }
        } else if (**opt) {
            io_error_report("Unsupported open option '%s' (only driver= and file.locking= "
                            "are known)",
                            *opt);
            return -EINVAL;
        }
    }
    return 0;
}

static int open_f(IoState *s, int argc, char **argv)
{
    IoOpenMode mode = { .aio = IO_AIO_THREADS };
    const char *format = NULL;
    const char *optstr = NULL;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = getopt(argc, argv, "nro:t:Ud:i:ksC")) != -1) {
        int ret = parse_open_mode(c, optarg, &mode);
        if (ret < 0) {
            return ret;
        }
        if (ret > 0) {
            continue;
        }
        if (c != 'o') {
            io_print_usage(&io_open_cmd);
            return -EINVAL;
        }
        optstr = optarg;
    }
    if (optind != argc - 1) {
        io_print_usage(&io_open_cmd);
        return -EINVAL;
    }
    if (optstr && parse_open_options(argv[optind], optstr, &format, &locking) < 0) {
        return -EINVAL;
    }
    return open_image(s, argv[optind], format, &mode, locking);
}

const IoCmd io_open_cmd = {
    .name = "open",
    .altname = "o",
    .func = open_f,
    .argmin = 1,
    .argmax = -1,
    .flags = IO_CMD_NOFILE_OK,
    .args = "[-rnkU] [-t cache] [-d discard] [-i aio] [-o driver=FMT,file.locking=MODE] path",
    .oneline = "open the file specified by path",
    .help = "\n"
            " Opens an image for the other commands; only one is open at a time.\n"
            "\n"
            " Example:\n"
            " 'open -r -o driver=raw disk.img' - opens disk.img read-only as raw\n"
            "\n"
            " -r, -- open read-only\n"
            " -n, -- bypass the host page cache, the same as -t none\n"
            " -t, -- cache mode: writeback (default), writethrough, none, directsync,\n"
            "        off (as none), unsafe (as writeback)\n"
            " -d, -- discard mode: unmap or on (default: discard makes the range read\n"
            "        zeros), ignore or off (discard succeeds and changes nothing)\n"
            " -i, -- aio mode: threads (default), native (needs -n or -t none) or\n"
            "        io_uring; libqed does its own I/O whatever the mode\n"
            " -k, -- the same as -i native\n"
            " -U, -- force shared permissions (with -r): let others write meanwhile\n"
            " -o, -- driver=qed or driver=raw (the format is probed otherwise);\n"
            "        file.locking=auto, on or off (see qed-io --help)\n"
            "\n",
};

/* Switches the open image between read-only and read-write (qemu-io's
 * reopen; the cache mode and driver options cannot change here). */
static int reopen_f(IoState *s, int argc, char **argv)
{
    bool read_only = s->read_only;
    bool mode_given = false;
    int c;

    while ((c = getopt(argc, argv, "rw")) != -1) {
        switch (c) {
        case 'r':
        case 'w':
            if (mode_given) {
                io_error_report("Only one -r/-w option may be given");
                return -EINVAL;
            }
            mode_given = true;
            read_only = c == 'r';
            break;
        default:
            io_print_usage(&io_reopen_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc) {
        io_print_usage(&io_reopen_cmd);
        return -EINVAL;
    }
    io_aio_poll(s, true); /* qed_reopen wants no request in flight */
    unsigned flags = (s->open_flags & ~QED_OPEN_READ_ONLY) | (read_only ? QED_OPEN_READ_ONLY : 0);
    GError *err = NULL;
    int ret = tool_reopen(s->img, flags, &err);
    if (ret < 0) {
        return io_lib_error(ret, err);
    }
    s->open_flags = flags;
    s->read_only = read_only;
    return 0;
}

const IoCmd io_reopen_cmd = {
    .name = "reopen",
    .func = reopen_f,
    .argmin = 0,
    .argmax = -1,
    .args = "[(-r|-w)]",
    .oneline = "reopens an image with new options",
    .help = "\n"
            " Changes the open options of an already opened image\n"
            "\n"
            " Example:\n"
            " 'reopen -w' - makes a read-only image writable, if nobody else uses it\n"
            "\n"
            " -r, -- Reopen the image read-only\n"
            " -w, -- Reopen the image read-write\n"
            "\n",
};

static int close_f(IoState *s, int argc, char **argv)
{
    return close_image(s);
}

const IoCmd io_close_cmd = {
    .name = "close",
    .altname = "c",
    .func = close_f,
    .oneline = "close the current open file",
};

static int quit_f(IoState *s, int argc, char **argv)
{
    s->quit = true;
    return 0;
}

const IoCmd io_quit_cmd = {
    .name = "quit",
    .altname = "q",
    .func = quit_f,
    .argmin = -1,
    .argmax = -1,
    .flags = IO_CMD_GLOBAL,
    .oneline = "exit the program",
};

/* Runs the -c commands, or else every line of stdin after a prompt (the
 * prompt is printed whether or not stdin is a terminal, as by qemu-io).
 * Returns the last error of any command, or 0. */
static int command_loop(IoState *s, char **cmds, int ncmds)
{
    int last_error = 0, ret;

    if (ncmds > 0) {
        for (int i = 0; i < ncmds && !s->quit; i++) {
            ret = io_run_command(s, cmds[i]);
            if (ret < 0) {
                last_error = ret;
            }
        }
        return last_error;
    }

    char *line = NULL;
    size_t cap = 0;
    while (!s->quit) {
        printf("%s> ", g_get_prgname());
        fflush(stdout);
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            if (isatty(STDIN_FILENO)) {
                printf("\n");
            }
            break;
        }
        if (len > 0 && line[len - 1] == '\n') {
            line[len - 1] = '\0';
        }
        ret = io_run_command(s, line);
        if (ret < 0) {
            last_error = ret;
        }
    }
    free(line);
    return last_error;
}

static void usage(void)
{
    const char *name = g_get_prgname();

    printf("Usage: %s [OPTIONS]... [-c STRING]... [file]\n"
           "Runs qemu-io commands on a QED or raw disk image through libqed\n"
           "\n"
           "  -c, --cmd STRING     run this command (may be repeated); without -c,\n"
           "                       commands are read from standard input\n"
           "  -f, --format FMT     the image format, qed or raw (probed by default)\n"
           "  -r, --read-only      open the image read-only\n"
           "  -n, --nocache        bypass the host page cache, the same as -t none\n"
           "  -t, --cache=MODE     writeback (default), writethrough, none, directsync,\n"
           "                       off (as none), unsafe (as writeback)\n"
           "  -d, --discard=MODE   unmap or on (default: discard makes the range read\n"
           "                       zeros), ignore or off (discard changes nothing)\n"
           "  -i, --aio=MODE       threads (default), native (needs -n) or io_uring;\n"
           "                       libqed does its own I/O whatever the mode\n"
           "  -k, --native-aio     the same as -i native\n"
           "  -m, --misalign       misalign the I/O buffers (tests O_DIRECT paths)\n"
           "  -U, --force-share    force shared permissions (with -r only): let other\n"
           "                       programs write the image meanwhile\n"
           "  --locking=MODE       auto (default): lock the image as QEMU does where the\n"
           "                       file system allows it; on: fail where it does not;\n"
           "                       off: take no lock and ignore those of others\n"
           "  -T, --trace=EVENTS   accepted and ignored (with a warning): no tracing\n"
           "  --image-opts, --object, -s, --snapshot, -C, --copy-on-read\n"
           "                       refused: qed-io takes a file name and -f only, and\n"
           "                       has no snapshot overlay or copy-on-read\n"
           "  -h, --help           display this help and exit\n"
           "  -V, --version        output version information and exit\n"
           "\n"
           "The file (and a backing file it names) may be an export on an NBD server:\n"
           "nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds://... (TLS),\n"
           "nbd:HOST:PORT or nbd:unix:PATH. An export has a fixed size and no lock.\n"
           "\n"
           "See '%s -c help' for the commands.\n",
           name, name);
}

enum {
    OPTION_LOCKING = 256,
    OPTION_IMAGE_OPTS,
    OPTION_OBJECT,
};

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "cmd", required_argument, NULL, 'c' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "nocache", no_argument, NULL, 'n' },
        { "cache", required_argument, NULL, 't' },
        { "misalign", no_argument, NULL, 'm' },
        { "force-share", no_argument, NULL, 'U' },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { "aio", required_argument, NULL, 'i' },
        { "native-aio", no_argument, NULL, 'k' },
        { "discard", required_argument, NULL, 'd' },
        { "snapshot", no_argument, NULL, 's' },
        { "copy-on-read", no_argument, NULL, 'C' },
        { "trace", required_argument, NULL, 'T' },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { NULL, 0, NULL, 0 },
    };
    IoOpenMode mode = { .aio = IO_AIO_THREADS };
    IoState s = { 0 };
    QedLocking locking = QED_LOCKING_AUTO;
    GPtrArray *cmds = g_ptr_array_new();
    const char *format = NULL;
    int c, ret;
    char *prgname = g_path_get_basename(argv[0]);

    g_set_prgname(prgname); /* copies the name */
    g_free(prgname);
    while ((c = getopt_long(argc, argv, "hVc:f:rnt:mUd:i:ksCT:", long_opts, NULL)) != -1) {
        ret = parse_open_mode(c, optarg, &mode);
        if (ret < 0) {
            return 1;
        }
        if (ret > 0) {
            continue;
        }
        switch (c) {
        case 'T':
            io_error_report("warning: tracing is not supported; -T %s ignored", optarg);
            break;
        case OPTION_IMAGE_OPTS:
            io_error_report("--image-opts is not supported: name the image file (and give -f "
                            "FMT) instead");
            return 1;
        case OPTION_OBJECT:
            io_error_report("--object is not supported: qed-io has no QEMU objects (secrets, "
                            "TLS credentials, throttle groups) and QED images need none");
            return 1;
        case 'c':
            g_ptr_array_add(cmds, optarg);
            break;
        case 'f':
            format = optarg;
            break;
        case 'm':
            s.misalign = true;
            break;
        case OPTION_LOCKING:
            if (!locking_parse(optarg, &locking)) {
                io_error_report("--locking must be used with auto, on or off as argument.");
                return 1;
            }
            break;
        case 'V':
            printf("%s version %s (libqed)\n", g_get_prgname(), LIBQED_VERSION);
            return 0;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 1;
        }
    }
    if (argc - optind > 1) {
        usage();
        return 1;
    }

    s.aio = io_aio_pool_new();
    if (argc - optind == 1 && open_image(&s, argv[optind], format, &mode, locking) < 0) {
        return 1;
    }
    ret = command_loop(&s, (char **)cmds->pdata, (int)cmds->len);
    if (close_image(&s) < 0 && ret == 0) {
        ret = -EIO;
    }
    io_aio_pool_free(s.aio);
    g_ptr_array_free(cmds, TRUE);
    return ret < 0 ? 1 : 0;
}
