/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img: entry point. Parses the global options, finds the command in the
 * command table and runs it; holds the help texts and the error helpers that
 * every command shares, so that messages look like qemu-img's.
 */
#include "qed-img.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qed.h>

#include "locking.h"

/* In the order of qemu-img's command list. */
static const ImgCommand *const commands[] = {
    &img_amend_command,    &img_bench_command,   &img_bitmap_command,  &img_check_command,
    &img_commit_command,   &img_compare_command, &img_convert_command, &img_create_command,
    &img_dd_command,       &img_info_command,    &img_map_command,     &img_measure_command,
    &img_snapshot_command, &img_rebase_command,  &img_resize_command,
};

static void report(const char *fmt, va_list ap)
{
    fflush(stdout); /* keep the order of what was already printed */
    fputs(QED_IMG_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void img_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(fmt, ap);
    va_end(ap);
}

void img_error_exit(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(fmt, ap);
    va_end(ap);
    fputs("Try '" QED_IMG_NAME " --help' for more information\n", stderr);
    exit(EXIT_FAILURE);
}

/* Prints prefix and then the synopsis, wrapped under its own start so that
 * lines stay within 80 columns; breaks only between bracketed groups. */
static void print_synopsis(const char *prefix, const char *synopsis)
{
    const int width = 79;
    int indent = (int)strlen(prefix);
    int column = indent;
    const char *p = synopsis;

    fputs(prefix, stdout);
    while (*p) {
        /* one unit: up to the next space outside brackets */
        int depth = 0;
        const char *end = p;
        while (*end && (*end != ' ' || depth > 0)) {
            depth += (*end == '[') - (*end == ']');
            end++;
        }
        int len = (int)(end - p);
        if (column > indent && column + 1 + len > width) {
            printf("\n%*s", indent, "");
            column = indent;
        } else if (column > indent) {
            putchar(' ');
            column++;
        }
        printf("%.*s", len, p);
        column += len;
        p = *end ? end + 1 : end;
    }
    putchar('\n');
}

void img_command_help(const ImgCommand *cmd)
{
    char *prefix = g_strdup_printf("usage: " QED_IMG_NAME " %s ", cmd->name);

    print_synopsis(prefix, cmd->synopsis);
    g_free(prefix); /* before exit(), which skips g_autofree */
    printf("\n%s", cmd->help);
    exit(EXIT_SUCCESS);
}

bool img_parse_output(const char *output, bool *json)
{
    *json = output && strcmp(output, "json") == 0;
    if (output && !*json && strcmp(output, "human") != 0) {
        img_error("--output must be used with human or json as argument.");
        return false;
    }
    return true;
}

bool img_parse_locking(const char *arg, QedLocking *mode)
{
    if (!locking_parse(arg, mode)) {
        img_error("--locking must be used with auto, on or off as argument.");
        return false;
    }
    return true;
}

bool img_parse_cache(const char *mode, unsigned *flags)
{
    static const struct {
        const char *name;
        unsigned flags;
    } modes[] = {
        { "writeback", 0 },
        { "unsafe", QED_OPEN_NO_FLUSH },
        { "none", QED_OPEN_DIRECT },
        { "off", QED_OPEN_DIRECT },
        { "directsync", QED_OPEN_DIRECT | QED_OPEN_WRITETHROUGH },
        { "writethrough", QED_OPEN_WRITETHROUGH },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            *flags = modes[i].flags;
            return true;
        }
    }
    return false;
}

G_NORETURN void img_refuse_image_opts(void)
{
    img_error("--image-opts is not supported: name the image file (and give -f fmt) instead");
    exit(EXIT_FAILURE);
}

G_NORETURN void img_refuse_object(void)
{
    img_error("--object is not supported: qed-img has no QEMU objects (secrets, TLS "
              "credentials, throttle groups) and QED images need none");
    exit(EXIT_FAILURE);
}

int img_getopt(const ImgCommand *cmd, int argc, char **argv, const char *short_opts,
               const struct option *long_opts)
{
    /* short_opts starts with ':' so that a missing argument is told apart
     * from an unknown option, as qemu-img does. */
    int c = getopt_long(argc, argv, short_opts, long_opts, NULL);

    switch (c) {
    case ':':
        img_error_exit("missing argument for option '%s'", argv[optind - 1]);
    case '?':
        img_error_exit("unrecognized option '%s'", argv[optind - 1]);
    case 'h':
        img_command_help(cmd);
    default:
        return c;
    }
}

static G_NORETURN void print_help(void)
{
    printf("usage: " QED_IMG_NAME " [-h | --help] [-V | --version] COMMAND [COMMAND OPTIONS]\n"
           "\n"
           "Create, inspect, convert and change QED (QEMU Enhanced Disk) and raw images.\n"
           "The commands take the options of qemu-img and print what qemu-img 7.2\n"
           "prints, so that scripts written for qemu-img work unchanged on QED and raw\n"
           "images.\n"
           "\n"
           "Options:\n"
           "  -h, --help       display this help and exit\n"
           "  -V, --version    output version information and exit\n"
           "\n"
           "Commands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        printf("  %-10s %s\n", commands[i]->name, commands[i]->summary);
    }
    printf("\n"
           "Run '" QED_IMG_NAME " COMMAND --help' for the options of one command.\n"
           "\n"
           "Command syntax:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        g_autofree char *prefix = g_strdup_printf("  %s ", commands[i]->name);
        print_synopsis(prefix, commands[i]->synopsis);
    }
    printf("\n"
           "Parameters:\n"
           "  'filename' is a disk image file name; relative backing file names are\n"
           "    found in the directory of the image that names them; 'file:a:b' names\n"
           "    the file 'a:b' (a colon before any '/' otherwise means a protocol)\n"
           "    It may also be an export on an NBD server, as a backing file may be:\n"
           "    nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds://...\n"
           "    (TLS), nbd:HOST:PORT or nbd:unix:PATH; an export has a fixed size and\n"
           "    no lock (see 'NBD images' in the manual)\n"
           "  'fmt' is the image format, 'qed' or 'raw'; when omitted, an existing\n"
           "    image is probed\n"
           "  'size' is a number of bytes with an optional suffix: 'k' or 'K' (1024),\n"
           "    'M' (1024k), 'G' (1024M), 'T' (1024G), 'P' (1024T), 'E' (1024P); a\n"
           "    fraction needs a suffix ('1.5G'); 'B' means bytes\n"
           "  'options' is a comma separated list of name=value format options;\n"
           "    write ',,' for a comma inside a value; '-o help' lists them\n"
           "  '-q' quiet mode: print nothing but errors\n"
           "  '-U' force share: open the image read-only without locking out writers\n"
           "  '--locking' locks the image as QEMU does ('auto', the default), also where\n"
           "    the file system cannot ('on'), or not at all ('off')\n"
           "  '--output' takes the format of the output: 'human' or 'json'\n"
           "\n"
           "Exit status: 0 on success, 1 on any error; check and compare have codes of\n"
           "their own (see their --help).\n"
           "\n"
           "Supported formats: qed raw\n");
    exit(EXIT_SUCCESS);
}

static G_NORETURN void print_version(void)
{
    printf(QED_IMG_NAME
           " version " LIBQED_VERSION "\n"
           "Part of libqed, a standalone implementation of QEMU's QED image format.\n");
    exit(EXIT_SUCCESS);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    /* A write past the file size limit (ulimit -f) fails with EFBIG, and the
     * command says so and cleans up, as qemu-img (whose I/O threads block
     * the signal), instead of dying of SIGXFSZ midway. */
    signal(SIGXFSZ, SIG_IGN);

    /* '+': stop at the command name; its options are the command's. */
    while ((c = getopt_long(argc, argv, "+:hV", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
            img_error_exit("missing argument for option '%s'", argv[optind - 1]);
        case '?':
            img_error_exit("unrecognized option '%s'", argv[optind - 1]);
        case 'h':
            print_help();
        case 'V':
            print_version();
        }
    }
    if (optind >= argc) {
        img_error_exit("Not enough arguments");
    }

    const char *name = argv[optind];
    argc -= optind;
    argv += optind;
    optind = 0; /* restart getopt for the command's own options */

    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            return commands[i]->run(argc, argv);
        }
    }
    img_error_exit("Command not found: %s", name);
}
