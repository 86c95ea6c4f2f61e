/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The names QEMU's tools print for images: qemu-img info's "image:", map's
 * file column and the probing warning show an NBD export under the name
 * QEMU gives the node it opened, not as the user typed it.
 */
#include "names.h"

#include <string.h>

#include <glib.h>

#include "blk/blk.h"

/* The name QEMU gives an NBD export it opened by URI: the socket or host
 * and port (10809 unless given) and the export, respelt; NULL where QEMU
 * has no such name (nbds://, or a name GLib cannot parse as a URI). */
static char *nbd_display_name(const char *name)
{
    g_autofree char *uri_text = blk_nbd_uri(name, NULL);
    g_autoptr(GUri) uri = uri_text ? g_uri_parse(uri_text, G_URI_FLAGS_ENCODED, NULL) : NULL;
    if (!uri) {
        return NULL;
    }
    const char *scheme = g_uri_get_scheme(uri);
    const char *path = g_uri_get_path(uri);
    const char *export = path[0] == '/' ? path + 1 : path;
    if (g_ascii_strcasecmp(scheme, "nbd+unix") == 0) {
        const char *query = g_uri_get_query(uri);
        g_autoptr(GHashTable)
            params = query ? g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, NULL) : NULL;
        const char *socket = params ? g_hash_table_lookup(params, "socket") : NULL;
        if (!socket) {
            return NULL;
        }
        return g_strdup_printf("nbd+unix://%s%s?socket=%s", *export ? "/" : "", export, socket);
    }
    if (g_ascii_strcasecmp(scheme, "nbd") == 0 && g_uri_get_host(uri)) {
        int port = g_uri_get_port(uri);
        return g_strdup_printf("nbd://%s:%d%s%s", g_uri_get_host(uri), port > 0 ? port : 10809,
                               *export ? "/" : "", export);
    }
    return NULL;
}

char *tool_display_name(const char *name)
{
    if (blk_nbd_name(name)) {
        char *shown = nbd_display_name(name);
        return shown ? shown : g_strdup(name);
    }
    const char *colon = strchr(name, ':');
    const char *slash = strchr(name, '/');
    if (colon && (!slash || colon < slash)) {
        return g_strconcat("./", name, NULL);
    }
    return g_strdup(name);
}
