/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The -o option lists of qed-img ("cluster_size=64k,table_size=4"), parsed,
 * checked and printed with the syntax and messages of qemu-img's QemuOpts.
 *
 * Design notes: a list is split at single commas; ",," stands for a comma in
 * a value. A name without "=value" means "on", or "off" for "noNAME". Values
 * are checked by type while parsing; a later occurrence replaces an earlier
 * one. The printed form (the tail of the "Formatting" line) walks the
 * descriptions in order and shows every option that is set or has a default.
 */
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "units.h"

struct ImgOpts {
    const ImgOptDesc *desc;
    size_t count;     /* entries in desc */
    char **values;    /* indexed like desc: the value as given, NULL when unset */
    uint64_t *parsed; /* indexed like desc: the value of a size option */
};

/* ------------------------------------------------------------- list syntax */

bool img_opts_accumulate(char **list, const char *arg)
{
    size_t len = strlen(arg);
    size_t trailing = 0;

    while (trailing < len && arg[len - 1 - trailing] == ',') {
        trailing++;
    }
    /* An empty list, a leading comma or a lone trailing comma leaves an
     * empty element; an even run of trailing commas is escaped commas. */
    if (len == 0 || arg[0] == ',' || trailing % 2 == 1) {
        img_error("Invalid option list: %s", arg);
        return false;
    }
    char *joined = *list ? g_strdup_printf("%s,%s", *list, arg) : g_strdup(arg);
    g_free(*list);
    *list = joined;
    return true;
}

/* Reads one element of the list at *p: its name and its value (NULL when
 * the element has no '='), unescaping ",,". Advances *p past the element. */
static void next_element(const char **p, char **name, char **value)
{
    const char *s = *p;
    size_t n = strcspn(s, "=,");

    *name = g_strndup(s, n);
    s += n;
    *value = NULL;
    if (*s == '=') {
        GString *v = g_string_new(NULL);
        for (s++; *s; s++) {
            if (*s == ',') {
                if (s[1] != ',') {
                    break;
                }
                s++;
            }
            g_string_append_c(v, *s);
        }
        *value = g_string_free(v, false);
    }
    if (*s == ',') {
        s++;
    }
    *p = s;
}

bool img_opts_wants_help(const char *list)
{
    const char *p = list;
    bool help = false;

    while (*p && !help) {
        char *name, *value;
        next_element(&p, &name, &value);
        help = strcmp(name, "help") == 0 || strcmp(name, "?") == 0;
        g_free(name);
        g_free(value);
    }
    return help;
}

static const char *type_placeholder(ImgOptType type)
{
    switch (type) {
    case IMG_OPT_SIZE:
        return "<size>";
    case IMG_OPT_BOOL:
        return "<bool (on/off)>";
    case IMG_OPT_STRING:
    default:
        return "<str>";
    }
}

static int compare_desc_names(gconstpointer a, gconstpointer b)
{
    const ImgOptDesc *const *da = a;
    const ImgOptDesc *const *db = b;
    return strcmp((*da)->name, (*db)->name);
}

void img_opts_print_help(const ImgOptDesc *desc, bool with_file_level)
{
    g_autoptr(GPtrArray) sorted = g_ptr_array_new();

    for (const ImgOptDesc *d = desc; d->name; d++) {
        if (with_file_level || !d->file_level) {
            g_ptr_array_add(sorted, (gpointer)d);
        }
    }
    g_ptr_array_sort(sorted, compare_desc_names);
    for (guint i = 0; i < sorted->len; i++) {
        const ImgOptDesc *d = g_ptr_array_index(sorted, i);
        g_autofree char *left = g_strconcat(d->name, "=", type_placeholder(d->type), NULL);
        printf("  %-22s - %s\n", left, d->help);
    }
}

/* ----------------------------------------------------------------- parsing */

static ssize_t find_desc(const ImgOpts *opts, const char *name)
{
    for (size_t i = 0; i < opts->count; i++) {
        if (strcmp(opts->desc[i].name, name) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

static bool is_bool(const char *value)
{
    static const char *const words[] = { "on", "yes", "true", "y", "off", "no", "false", "n" };

    for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
        if (strcmp(value, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks value against the type of option i and stores it. */
static bool store_value(ImgOpts *opts, size_t i, const char *value, GError **errp)
{
    const ImgOptDesc *d = &opts->desc[i];
    uint64_t parsed = 0;

    if (d->type == IMG_OPT_SIZE) {
        int ret = units_parse_size(value, 'B', &parsed);
        if (ret == -ERANGE) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "Value '%s' is out of range for parameter '%s'", value, d->name);
            return false;
        }
        if (ret < 0) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "Parameter '%s' expects a non-negative number below 2^64\n"
                        "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                        "tera-, peta-\nand exabytes, respectively.",
                        d->name);
            return false;
        }
    } else if (d->type == IMG_OPT_BOOL) {
        if (!is_bool(value)) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "Parameter '%s' expects 'on' or 'off'", d->name);
            return false;
        }
    }
    g_free(opts->values[i]);
    opts->values[i] = g_strdup(value);
    opts->parsed[i] = parsed;
    return true;
}

ImgOpts *img_opts_parse(const ImgOptDesc *desc, const char *list, GError **errp)
{
    ImgOpts *opts = g_new0(ImgOpts, 1);

    opts->desc = desc;
    while (desc[opts->count].name) {
        opts->count++;
    }
    opts->values = g_new0(char *, opts->count);
    opts->parsed = g_new0(uint64_t, opts->count);

    const char *p = list ? list : "";
    while (*p) {
        g_autofree char *name = NULL;
        g_autofree char *value = NULL;
        next_element(&p, &name, &value);

        const char *key = name;
        if (!value) {
            /* "flag" means flag=on, "noflag" means flag=off */
            bool negated = g_str_has_prefix(name, "no");
            key = negated ? name + 2 : name;
            value = g_strdup(negated ? "off" : "on");
        }
        ssize_t i = find_desc(opts, key);
        if (i < 0) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION,
                        "Invalid parameter '%s'", key);
            img_opts_free(opts);
            return NULL;
        }
        if (!store_value(opts, (size_t)i, value, errp)) {
            img_opts_free(opts);
            return NULL;
        }
    }
    return opts;
}

void img_opts_free(ImgOpts *opts)
{
    if (!opts) {
        return;
    }
    for (size_t i = 0; i < opts->count; i++) {
        g_free(opts->values[i]);
    }
    g_free(opts->values);
    g_free(opts->parsed);
    g_free(opts);
}

/* ---------------------------------------------------------------- accessors */

const char *img_opts_get(const ImgOpts *opts, const char *name)
{
    ssize_t i = find_desc(opts, name);
    return i < 0 ? NULL : opts->values[i];
}

bool img_opts_is_set(const ImgOpts *opts, const char *name)
{
    return img_opts_get(opts, name) != NULL;
}

void img_opts_set(ImgOpts *opts, const char *name, const char *value)
{
    ssize_t i = find_desc(opts, name);
    g_return_if_fail(i >= 0 && opts->desc[i].type == IMG_OPT_STRING);
    g_free(opts->values[i]);
    opts->values[i] = g_strdup(value);
}

void img_opts_set_size(ImgOpts *opts, const char *name, uint64_t value)
{
    ssize_t i = find_desc(opts, name);
    g_return_if_fail(i >= 0 && opts->desc[i].type == IMG_OPT_SIZE);
    g_free(opts->values[i]);
    opts->values[i] = g_strdup_printf("%" PRIu64, value);
    opts->parsed[i] = value;
}

uint64_t img_opts_get_size(const ImgOpts *opts, const char *name, uint64_t def)
{
    ssize_t i = find_desc(opts, name);
    g_return_val_if_fail(i >= 0 && opts->desc[i].type == IMG_OPT_SIZE, def);
    return opts->values[i] ? opts->parsed[i] : def;
}

char *img_opts_to_string(const ImgOpts *opts)
{
    GString *out = g_string_new(NULL);

    for (size_t i = 0; i < opts->count; i++) {
        const ImgOptDesc *d = &opts->desc[i];
        const char *value = opts->values[i] ? opts->values[i] : d->default_value;
        if (!value) {
            continue;
        }
        if (out->len) {
            g_string_append_c(out, ' ');
        }
        g_string_append_printf(out, "%s=", d->name);
        if (d->type == IMG_OPT_SIZE && opts->values[i]) {
            /* qemu-img prints sizes as signed 64-bit numbers */
            g_string_append_printf(out, "%" PRId64, (int64_t)opts->parsed[i]);
        } else if (d->type == IMG_OPT_STRING) {
            for (const char *c = value; *c; c++) {
                if (*c == ',') {
                    g_string_append_c(out, ','); /* escaped as on the command line */
                }
                g_string_append_c(out, *c);
            }
        } else {
            g_string_append(out, value);
        }
    }
    return g_string_free(out, false);
}
