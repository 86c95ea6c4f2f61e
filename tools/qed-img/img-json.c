/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON output of qed-img (--output=json), written by hand so that it is
 * byte-identical to qemu-img's: same indentation, same string escapes and
 * the same order of object members.
 *
 * Design notes: qemu-img builds a QDict and prints it in the order of its
 * hash table: 512 buckets in ascending order, the newest member first within
 * a bucket. An object here keeps its members in insertion order (the order
 * in which QEMU's QAPI visitor adds them) and sorts them the same way when it
 * is printed. Strings are printed as ASCII: every other code point as \uXXXX
 * (UTF-16 surrogate pairs above U+FFFF), invalid UTF-8 as \uFFFD.
 */
#include "qed-img.h"

#include <inttypes.h>
#include <string.h>

typedef enum JsonType {
    JSON_INT,
    JSON_BOOL,
    JSON_STRING,
    JSON_OBJECT,
    JSON_ARRAY,
} JsonType;

typedef struct JsonMember {
    char *key;
    ImgJson *value;
    unsigned bucket;   /* position of the key in QEMU's QDict */
    unsigned inserted; /* insertion order */
} JsonMember;

struct ImgJson {
    JsonType type;
    int64_t number;
    bool boolean;
    char *string;
    GPtrArray *items; /* JsonMember * for an object, ImgJson * for an array */
};

/* ---------------------------------------------------------------- building */

static ImgJson *json_new(JsonType type)
{
    ImgJson *json = g_new0(ImgJson, 1);
    json->type = type;
    return json;
}

static void member_free(gpointer p)
{
    JsonMember *m = p;
    g_free(m->key);
    img_json_free(m->value);
    g_free(m);
}

ImgJson *img_json_object(void)
{
    ImgJson *json = json_new(JSON_OBJECT);
    json->items = g_ptr_array_new_with_free_func(member_free);
    return json;
}

ImgJson *img_json_array(void)
{
    ImgJson *json = json_new(JSON_ARRAY);
    json->items = g_ptr_array_new_with_free_func((GDestroyNotify)img_json_free);
    return json;
}

void img_json_free(ImgJson *json)
{
    if (!json) {
        return;
    }
    if (json->items) {
        g_ptr_array_unref(json->items);
    }
    g_free(json->string);
    g_free(json);
}

/* The hash bucket of a key in QEMU's QDict (512 buckets). */
static unsigned qdict_bucket(const char *key)
{
    uint32_t h = 0x238F13AFu * (uint32_t)strlen(key);

    for (size_t i = 0; key[i]; i++) {
        h += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * h + 12345u) % 512;
}

void img_json_add(ImgJson *object, const char *key, ImgJson *value)
{
    g_return_if_fail(object->type == JSON_OBJECT);
    JsonMember *m = g_new0(JsonMember, 1);
    m->key = g_strdup(key);
    m->value = value;
    m->bucket = qdict_bucket(key);
    m->inserted = object->items->len;
    g_ptr_array_add(object->items, m);
}

void img_json_add_int(ImgJson *object, const char *key, int64_t value)
{
    ImgJson *json = json_new(JSON_INT);
    json->number = value;
    img_json_add(object, key, json);
}

void img_json_add_bool(ImgJson *object, const char *key, bool value)
{
    ImgJson *json = json_new(JSON_BOOL);
    json->boolean = value;
    img_json_add(object, key, json);
}

void img_json_add_string(ImgJson *object, const char *key, const char *value)
{
    ImgJson *json = json_new(JSON_STRING);
    json->string = g_strdup(value);
    img_json_add(object, key, json);
}

void img_json_append(ImgJson *array, ImgJson *value)
{
    g_return_if_fail(array->type == JSON_ARRAY);
    g_ptr_array_add(array->items, value);
}

/* ---------------------------------------------------------------- printing */

/* Decodes the UTF-8 sequence at s into *cp (-1 when invalid) and returns its
 * length in bytes. Invalid means: a stray or missing continuation byte, 0xFE
 * or 0xFF, an overlong form (except C0 80 for U+0000), a surrogate, a
 * noncharacter, or a code point above U+10FFFF. */
static size_t decode_utf8(const unsigned char *s, int32_t *cp)
{
    static const int32_t min_for_length[] = { 0, 0, 0x80, 0x800, 0x10000, 0x200000, 0x4000000 };
    unsigned char lead = s[0];

    if (lead < 0x80) {
        *cp = lead;
        return 1;
    }
    if (lead >= 0xFE || !(lead & 0x40)) {
        *cp = -1;
        return 1;
    }
    size_t len = 0;
    unsigned mask = 0x80;
    while (lead & mask) {
        len++;
        mask >>= 1;
    }
    int32_t value = lead & (mask - 1);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = -1;
            return i; /* the byte that broke the sequence starts the next one */
        }
        value = (value << 6) | (s[i] & 0x3F);
    }
    bool overlong = value < min_for_length[len] && !(value == 0 && len == 2);
    bool noncharacter = (value >= 0xFDD0 && value <= 0xFDEF) || (value & 0xFFFE) == 0xFFFE;
    bool surrogate = value >= 0xD800 && value <= 0xDFFF;
    *cp = (value > 0x10FFFF || overlong || noncharacter || surrogate) ? -1 : value;
    return len;
}

static void print_string(GString *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    g_string_append_c(out, '"');
    while (*s) {
        int32_t cp;
        s += decode_utf8(s, &cp);
        switch (cp) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\b':
            g_string_append(out, "\\b");
            break;
        case '\f':
            g_string_append(out, "\\f");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (cp < 0) {
                g_string_append(out, "\\uFFFD");
            } else if (cp >= 0x20 && cp <= 0x7E) {
                g_string_append_c(out, (char)cp);
            } else if (cp > 0xFFFF) {
                cp -= 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X", 0xD800 + (cp >> 10),
                                       0xDC00 + (cp & 0x3FF));
            } else {
                g_string_append_printf(out, "\\u%04X", cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

static gint compare_members(gconstpointer a, gconstpointer b)
{
    const JsonMember *ma = *(const JsonMember *const *)a;
    const JsonMember *mb = *(const JsonMember *const *)b;

    if (ma->bucket != mb->bucket) {
        return ma->bucket < mb->bucket ? -1 : 1;
    }
    return ma->inserted > mb->inserted ? -1 : 1; /* newest first */
}

static void print_value(GString *out, const ImgJson *json, int depth);

static void newline(GString *out, int depth)
{
    g_string_append_printf(out, "\n%*s", depth * 4, "");
}

static void print_container(GString *out, const ImgJson *json, int depth)
{
    bool object = json->type == JSON_OBJECT;
    /* A view of the members, sorted for printing; it owns nothing. */
    g_autoptr(GPtrArray) items = g_ptr_array_sized_new(json->items->len);

    for (guint i = 0; i < json->items->len; i++) {
        g_ptr_array_add(items, g_ptr_array_index(json->items, i));
    }
    if (object) {
        g_ptr_array_sort(items, compare_members);
    }
    g_string_append_c(out, object ? '{' : '[');
    for (guint i = 0; i < items->len; i++) {
        if (i > 0) {
            g_string_append_c(out, ',');
        }
        newline(out, depth + 1);
        if (object) {
            const JsonMember *m = g_ptr_array_index(items, i);
            print_string(out, m->key);
            g_string_append(out, ": ");
            print_value(out, m->value, depth + 1);
        } else {
            print_value(out, g_ptr_array_index(items, i), depth + 1);
        }
    }
    newline(out, depth);
    g_string_append_c(out, object ? '}' : ']');
}

static void print_value(GString *out, const ImgJson *json, int depth)
{
    switch (json->type) {
    case JSON_INT:
        g_string_append_printf(out, "%" PRId64, json->number);
        break;
    case JSON_BOOL:
        g_string_append(out, json->boolean ? "true" : "false");
        break;
    case JSON_STRING:
        print_string(out, json->string);
        break;
    case JSON_OBJECT:
    case JSON_ARRAY:
        print_container(out, json, depth);
        break;
    }
}

char *img_json_to_string(const ImgJson *json)
{
    GString *out = g_string_new(NULL);
    print_value(out, json, 0);
    return g_string_free(out, false);
}
