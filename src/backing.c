/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a backing file name stored in an image may lead to: the local file
 * QEMU would open for it, an NBD export only with QED_OPEN_BACKING_REMOTE,
 * and with QED_OPEN_BACKING_CONFINED only a file beneath one directory.
 * (The name given to qed_open is read by the same protocol rules.)
 *
 * Design notes:
 * - QEMU treats a name with a ':' before any '/' as "protocol:rest"
 *   (block.c path_has_protocol). "file:" names a local file, relative to
 *   the working directory and not to the image (QEMU 7.2 does so); NBD
 *   names go to blk-nbd.c (an operator's consent, QED_OPEN_BACKING_REMOTE,
 *   for a name from a header); every other protocol is refused here,
 *   network ones (http, ssh, ...) with their own message. Names without a
 *   protocol are relative to the directory of the image that names them;
 *   an image on an NBD server has none, so they are refused there.
 * - Confinement leaves the resolution to the kernel: the name is expressed
 *   relative to the directory and opened with openat2(RESOLVE_BENEATH |
 *   RESOLVE_NO_MAGICLINKS) from a descriptor of it, so ".." that stays
 *   inside works and no "..", absolute symlink or /proc link leads out. A
 *   relative name is joined to the referring image's own path inside the
 *   directory. An absolute name (or one relative to the working directory)
 *   is accepted when it lies lexically beneath the directory, as spelt or
 *   with its symlinks resolved; the rest of it (".." included) is again
 *   resolved by the kernel beneath the directory.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Protocols of QEMU 7.2's block drivers that reach over the network. */
static const char *const network_protocols[] = {
    "nbd",     "nbd+tcp",     "nbd+unix",     "http",         "https", "ftp",  "ftps", "ssh",
    "gluster", "gluster+tcp", "gluster+unix", "gluster+rdma", "iscsi", "iser", "nfs",  "rbd",
};

/* Its other protocols: local, but not a file to read an image from. */
static const char *const other_protocols[] = {
    "blkdebug", "blkverify", "fat", "host_cdrom", "host_device", "null-aio", "null-co", "nvme",
};

static bool in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

bool backing_has_protocol(const char *name)
{
    return name[strcspn(name, ":/")] == ':';
}

/* An absolute version of path with empty and "." components dropped; ".."
 * stays, for the kernel to resolve. Relative paths start at the working
 * directory. */
static char *absolute_path(const char *path)
{
    g_autofree char *cwd = path[0] == '/' ? NULL : g_get_current_dir();
    g_autofree char *joined = cwd ? g_strconcat(cwd, "/", path, NULL) : g_strdup(path);
    g_auto(GStrv) parts = g_strsplit(joined, "/", -1);
    GString *out = g_string_new(NULL);
    for (char **p = parts; *p; p++) {
        if (**p == '\0' || strcmp(*p, ".") == 0) {
            continue;
        }
        g_string_append_c(out, '/');
        g_string_append(out, *p);
    }
    if (out->len == 0) {
        g_string_append_c(out, '/');
    }
    return g_string_free(out, FALSE);
}

/* The part of the absolute path abs below directory dir ("." for dir
 * itself), or NULL when abs does not lie beneath dir. */
static const char *path_beneath(const char *abs, const char *dir)
{
    size_t n = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
    if (strncmp(abs, dir, n) != 0 || (abs[n] != '/' && abs[n] != '\0')) {
        return NULL;
    }
    while (abs[n] == '/') {
        n++;
    }
    return abs[n] ? abs + n : ".";
}

/* The remainder of a local path beneath c's directory, or NULL. */
static char *lexically_beneath(const Confinement *c, const char *path)
{
    g_autofree char *abs = absolute_path(path);
    const char *rest = path_beneath(abs, c->dir_real);
    if (!rest) {
        rest = path_beneath(abs, c->dir_abs);
    }
    return rest ? g_strdup(rest) : NULL;
}

int confinement_refused(const Confinement *c, const char *path, GError **errp)
{
    g_set_error(errp, QED_ERROR, EPERM,
                "Could not open '%s': it lies outside '%s', the directory the backing chain "
                "is confined to",
                path, c->dir_real);
    return -EPERM;
}

int confinement_init(Confinement *c, const char *filename, const char *backing_dir,
                     char **top_path, GError **errp)
{
    memset(c, 0, sizeof(*c));
    c->dirfd = -1;
    c->dir = backing_dir ? g_strdup(backing_dir) : g_path_get_dirname(filename);
    c->dirfd = open(c->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->dirfd < 0) {
        int err = errno;
        g_set_error(errp, QED_ERROR, err, "Could not open the backing directory '%s': %s", c->dir,
                    g_strerror(err));
        confinement_fini(c);
        return -err;
    }
    char real[PATH_MAX];
    c->dir_abs = absolute_path(c->dir);
    c->dir_real = realpath(c->dir, real) ? g_strdup(real) : g_strdup(c->dir_abs);
    /* Relative backing names of the image are found through its own place
     * in the directory; by default the directory is the image's own. */
    *top_path = backing_dir ? lexically_beneath(c, filename) : g_path_get_basename(filename);
    return 0;
}

void confinement_fini(Confinement *c)
{
    if (c->dirfd >= 0) {
        close(c->dirfd);
    }
    g_free(c->dir);
    g_free(c->dir_abs);
    g_free(c->dir_real);
    memset(c, 0, sizeof(*c));
    c->dirfd = -1;
}

int image_local_name(const char *name, const char *what, const char **local, bool *from_cwd,
                     GError **errp)
{
    *local = name;
    if (from_cwd) {
        *from_cwd = false;
    }
    if (!backing_has_protocol(name)) {
        return 0;
    }
    g_autofree char *protocol = g_strndup(name, strcspn(name, ":"));
    if (strcmp(protocol, "file") == 0) {
        *local = name + strlen("file:");
        if (from_cwd) {
            *from_cwd = (*local)[0] != '/';
        }
        return 0;
    }
    if (in_list(network_protocols, G_N_ELEMENTS(network_protocols), protocol)) {
        g_set_error(
            errp, QED_ERROR, ENOTSUP,
            "Could not open '%s': network %s over protocol '%s' are not supported "
            "(NBD ones are: serve the file with an NBD server, such as nbdkit's %s plugin)",
            name, what, protocol,
            g_str_has_prefix(protocol, "http") || g_str_has_prefix(protocol, "ftp") ? "curl"
            : strcmp(protocol, "ssh") == 0                                          ? "ssh"
                                                                                    : "nbd");
        return -ENOTSUP;
    }
    if (strcmp(protocol, "json") == 0 ||
        in_list(other_protocols, G_N_ELEMENTS(other_protocols), protocol)) {
        g_set_error(errp, QED_ERROR, ENOTSUP,
                    "Could not open '%s': protocol '%s' is not supported for %s", name, protocol,
                    what);
        return -ENOTSUP;
    }
    g_set_error(errp, QED_ERROR, EINVAL, "Could not open '%s': Unknown protocol '%s'", name,
                protocol);
    return -EINVAL;
}

int backing_locate(const QedImage *img, const char *name, BackingLocation *loc, GError **errp)
{
    memset(loc, 0, sizeof(*loc));
    if (blk_nbd_name(name)) {
        if (!(img->opts.flags & QED_OPEN_BACKING_REMOTE)) {
            g_set_error(errp, QED_ERROR, EPERM,
                        "Could not open '%s': backing files on NBD servers are not allowed here "
                        "(QED_OPEN_BACKING_REMOTE; for nbdkit qed, backing-remote=true)",
                        name);
            return -EPERM;
        }
        loc->path = g_strdup(name);
        loc->remote = true;
        return 0;
    }
    const char *local;
    bool from_cwd;
    int ret = image_local_name(name, "backing files", &local, &from_cwd, errp);
    if (ret < 0) {
        return ret;
    }
    if (img->remote) {
        /* An export has no directory; a local file it names is the host's. */
        if (local[0] != '/') {
            g_set_error(errp, QED_ERROR, EINVAL,
                        "Could not open '%s': the image '%s' is on an NBD server, so a relative "
                        "backing file name has no directory to be relative to",
                        name, img->filename);
            return -EINVAL;
        }
        if (img->opts.flags & QED_OPEN_BACKING_CONFINED) {
            g_set_error(errp, QED_ERROR, EPERM,
                        "Could not open '%s': the image '%s' is on an NBD server, and its "
                        "backing chain is confined to local files beneath a directory",
                        name, img->filename);
            return -EPERM;
        }
    }
    loc->path = from_cwd ? g_strdup(local) : qed_backing_path(img->filename, local);
    if (!img->confine) {
        return 0;
    }
    if (local[0] != '/' && !from_cwd && img->confined_path) {
        /* Joined as QEMU joins it to the image's name; the kernel resolves it. */
        loc->beneath = qed_backing_path(img->confined_path, local);
        return 0;
    }
    loc->beneath = lexically_beneath(img->confine, loc->path);
    if (!loc->beneath) {
        ret = confinement_refused(img->confine, loc->path, errp);
        backing_location_clear(loc);
    }
    return ret;
}

void backing_location_clear(BackingLocation *loc)
{
    g_free(loc->path);
    g_free(loc->beneath);
    memset(loc, 0, sizeof(*loc));
}
