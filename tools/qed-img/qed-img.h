/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img: the qemu-img compatible command-line tool. This header is the
 * table of contents shared by the command files: the command table, the error
 * helpers (only this tool prints), and the -o option lists of img-options.c.
 */
#ifndef QED_IMG_H
#define QED_IMG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include <qed.h>

#define QED_IMG_NAME "qed-img"

/* ---------------------------------------------------------------- qed-img.c */

/* One subcommand. run() gets argv with argv[0] == name and returns the exit
 * status. The help text is what `qed-img NAME --help` prints. */
typedef struct ImgCommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* the options and arguments, one line */
    const char *summary;  /* one line for the command list */
    const char *help;     /* the full description, man-page style */
} ImgCommand;

extern const ImgCommand img_amend_command;
extern const ImgCommand img_bench_command;
extern const ImgCommand img_bitmap_command;
extern const ImgCommand img_check_command;
extern const ImgCommand img_commit_command;
extern const ImgCommand img_compare_command;
extern const ImgCommand img_convert_command;
extern const ImgCommand img_create_command;
extern const ImgCommand img_dd_command;
extern const ImgCommand img_info_command;
extern const ImgCommand img_map_command;
extern const ImgCommand img_measure_command;
extern const ImgCommand img_rebase_command;
extern const ImgCommand img_resize_command;
extern const ImgCommand img_snapshot_command;

/* Prints "qed-img: " and the message to stderr, as qemu-img's error_report. */
void img_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* img_error() plus the "Try --help" hint; exits with status 1. */
G_NORETURN void img_error_exit(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* The value of --output: sets *json; false (after an error message, as
 * qemu-img words it) when it is neither human nor json. NULL means human. */
bool img_parse_output(const char *output, bool *json);
/* The value of --locking (auto, on or off) into *mode; false, after an
 * error message, when it is none of them. */
bool img_parse_locking(const char *arg, QedLocking *mode);

/* A qemu-img cache mode (-t/-T: writeback, unsafe, none, off, directsync,
 * writethrough) into QED_OPEN_* flags; false when unknown (the caller words
 * the error: "Invalid cache option: X" / "Invalid source cache option: X"). */
bool img_parse_cache(const char *mode, unsigned *flags);
/* The answer to --image-opts, which qed-img does not take: an error, exit 1. */
G_NORETURN void img_refuse_image_opts(void);
/* The answer to --object (qemu-img's secrets and TLS objects): an error, exit 1. */
G_NORETURN void img_refuse_object(void);

/* Prints the help of one command to stdout and exits with status 0. */
G_NORETURN void img_command_help(const ImgCommand *cmd);

/* getopt_long() wrapper shared by every command: reports a missing argument
 * or an unknown option the way qemu-img does (and exits 1), and answers
 * -h/--help with the command's help. Returns the option, or -1 at the end. */
int img_getopt(const ImgCommand *cmd, int argc, char **argv, const char *short_opts,
               const struct option *long_opts);

/* ----------------------------------------------------------- img-progress.c */

/* qemu-img's -p progress line, on stdout. init(enabled, min_skip) starts at
 * 0% (nothing printed while disabled); print(delta, max) advances by delta
 * percent of max percent (max 0: delta is absolute percent), redrawing when
 * min_skip percent has passed, at 0 and at 100; end() ends the line.
 * Commands call init, then print(0, 100) to draw 0%, as qemu-img does. */
void img_progress_init(bool enabled, double min_skip);
void img_progress_print(double delta, double max);
void img_progress_end(void);

/* ------------------------------------------------------------- img-status.c */

/* One range of the virtual disk as QEMU's block status describes it,
 * through the backing chain (qemu-img map and compare). */
typedef struct MapEntry {
    int64_t start;
    int64_t length;
    bool data;    /* stored as data */
    bool zero;    /* reads as zeros */
    bool present; /* some image of the chain holds it */
    bool has_offset;
    int64_t offset;       /* with has_offset: where it lies in filename */
    int64_t depth;        /* images down the chain where it was found */
    const char *filename; /* with has_offset: the file (owned by the image) */
} MapEntry;

/* The range at offset, at most bytes long, as qemu-img map sees it (each
 * layer's own status; the first with data or zeros ends the walk). */
int img_map_status(QedImage *img, int64_t offset, int64_t bytes, MapEntry *e, GError **errp);

/* QEMU's status bits of bdrv_block_status_above, as qemu-img compare -s
 * compares them. */
enum {
    IMG_STATUS_DATA = 1u << 0,
    IMG_STATUS_ZERO = 1u << 1,
    IMG_STATUS_OFFSET_VALID = 1u << 2,
    IMG_STATUS_ALLOCATED = 1u << 4,
    IMG_STATUS_EOF = 1u << 5,
};
/* The status of the range at offset through the whole chain (qemu-img
 * compare): the bits above into *status and the run's length into *pnum. */
int img_chain_status(QedImage *img, int64_t offset, int64_t bytes, unsigned *status, int64_t *pnum,
                     GError **errp);

/* ------------------------------------------------------------ img-options.c */

/* The -o option lists of `create` (and later convert, amend, measure), with
 * QemuOpts' syntax and behaviour: "name=value,name2=value2", ",," for a
 * literal comma, the last occurrence wins, "help" or "?" lists the options. */

typedef enum ImgOptType {
    IMG_OPT_STRING,
    IMG_OPT_SIZE, /* a byte count with an optional k/M/G/T/P/E suffix */
    IMG_OPT_BOOL, /* on/off, yes/no, true/false */
} ImgOptType;

typedef struct ImgOptDesc {
    const char *name;
    ImgOptType type;
    const char *help;
    const char *default_value; /* printed in the Formatting line when unset; may be NULL */
    bool file_level;           /* an option of the file, not of the format */
} ImgOptDesc;

/* The values given for a list of descriptions (terminated by a NULL name). */
typedef struct ImgOpts ImgOpts;

/* Checks one -o argument (no empty element) and appends it to *list.
 * Returns false, after printing "Invalid option list", when malformed. */
bool img_opts_accumulate(char **list, const char *arg);

/* True when the list asks for help ("help" or "?" as an element). */
bool img_opts_wants_help(const char *list);

/* Prints the options of desc sorted by name, as `-o help` does; the
 * file-level ones only when with_file_level. */
void img_opts_print_help(const ImgOptDesc *desc, bool with_file_level);

/* Parses list (may be NULL) against desc. Returns NULL and sets *errp on an
 * unknown name or a malformed value. Free with img_opts_free(). */
ImgOpts *img_opts_parse(const ImgOptDesc *desc, const char *list, GError **errp);
void img_opts_free(ImgOpts *opts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImgOpts, img_opts_free)

/* The value of an option as given (NULL when unset), and set or replace one. */
const char *img_opts_get(const ImgOpts *opts, const char *name);
bool img_opts_is_set(const ImgOpts *opts, const char *name);
void img_opts_set(ImgOpts *opts, const char *name, const char *value);
void img_opts_set_size(ImgOpts *opts, const char *name, uint64_t value);

/* The parsed value of a size option; def when unset. */
uint64_t img_opts_get_size(const ImgOpts *opts, const char *name, uint64_t def);

/* "name=value name2=value2" for every option that is set or has a default,
 * in description order: the tail of qemu-img's "Formatting" line. */
char *img_opts_to_string(const ImgOpts *opts);

/* ------------------------------------------------------------ img-create.c */

/* The -o descriptions of format fmt ("qed" or "raw"), NULL for another. */
const ImgOptDesc *img_create_options(const char *fmt);
/* Writes a new image of format fmt as `create` does with the -o values in
 * opts (parsed against img_create_options(fmt)); no "Formatting" line. The
 * QED_ERROR messages name the file, the others do not. */
int img_create_with_options(const char *filename, const char *fmt, const ImgOpts *opts,
                            QedLocking locking, GError **errp);

/* ------------------------------------------------------------- img-json.c */

/* JSON values printed the way qemu-img's --output=json prints them. */
typedef struct ImgJson ImgJson;

ImgJson *img_json_object(void);
ImgJson *img_json_array(void);
void img_json_free(ImgJson *json);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImgJson, img_json_free)

/* Add a member to an object; add takes ownership of value. */
void img_json_add(ImgJson *object, const char *key, ImgJson *value);
void img_json_add_int(ImgJson *object, const char *key, int64_t value);
void img_json_add_bool(ImgJson *object, const char *key, bool value);
void img_json_add_string(ImgJson *object, const char *key, const char *value);

/* Append to an array, taking ownership of value. */
void img_json_append(ImgJson *array, ImgJson *value);

/* The pretty-printed text without a final newline. Free with g_free. */
char *img_json_to_string(const ImgJson *json);

#endif
