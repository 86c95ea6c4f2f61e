/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What an image may name as its backing file: regular files only (block
 * devices when the caller allows them), never FIFOs, sockets, character
 * devices, directories or network names, and with QED_OPEN_BACKING_CONFINED
 * only files beneath one directory, however the name or a symlink tries to
 * lead out. An alarm fails the test if any open hangs.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define MiB (1024u * 1024)

/* Opening path with opts fails with code and a message that holds each of
 * the texts (NULL-terminated). */
static void assert_open_fails(const char *path, const QedOpenOptions *opts, int code, ...)
{
    GError *err = NULL;
    QedImage *img = qed_open(path, opts, &err);
    if (img) {
        g_error("opening %s succeeded", path);
    }
    if (err->code != code) {
        g_error("opening %s: code %d, expected %d: %s", path, err->code, code, err->message);
    }
    va_list ap;
    va_start(ap, code);
    for (const char *text = va_arg(ap, const char *); text; text = va_arg(ap, const char *)) {
        if (!strstr(err->message, text)) {
            g_error("message \"%s\" lacks \"%s\"", err->message, text);
        }
    }
    va_end(ap);
    g_error_free(err);
}

/* Opens path with opts (failing the test on error) and checks that the
 * first bytes read through the chain are those of want. */
static void assert_reads(const char *path, const QedOpenOptions *opts, const char *want)
{
    GError *err = NULL;
    QedImage *img = qed_open(path, opts, &err);
    if (!img) {
        g_error("open %s: %s", path, err->message);
    }
    g_autoptr(GBytes) bytes = tu_file_bytes(want);
    uint8_t buf[4096];
    TU_OK(qed_pread(img, buf, sizeof(buf), 0, &tu_err));
    g_assert_cmpmem(buf, sizeof(buf), g_bytes_get_data(bytes, NULL), sizeof(buf));
    TU_OK(qed_close(img, &tu_err));
}

static char *make_dir(const char *name)
{
    char *path = tu_path(name);
    g_assert_cmpint(g_mkdir_with_parents(path, 0755), ==, 0);
    return path;
}

static void make_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    close(fd);
}

static const QedOpenOptions read_only = { .flags = QED_OPEN_READ_ONLY };

/* A FIFO would block an open for reading until a writer came; a socket, a
 * character device or a directory is no disk. */
static void test_special_backing_files_are_refused(void)
{
    g_autofree char *fifo = tu_path("fifo");
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    g_autofree char *sock = tu_path("sock");
    make_socket(sock);
    g_autofree char *dir = make_dir("dir");
    g_autofree char *link = tu_path("fifo-link");
    g_assert_cmpint(symlink("fifo", link), ==, 0);
    const struct {
        const char *backing;
        int code;
        const char *kind;
    } cases[] = {
        { "fifo", EINVAL, "it is a FIFO, not a regular file" },
        { "fifo-link", EINVAL, "it is a FIFO, not a regular file" },
        { "sock", EINVAL, "it is a socket, not a regular file" },
        { "/dev/null", EINVAL, "it is a character device, not a regular file" },
        { "dir", EISDIR, "Is a directory" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("special%zu.qed", i);
        g_autofree char *top = tu_create(name, MiB, 0, cases[i].backing, "raw");
        g_autofree char *named = g_strdup_printf("%s': ", cases[i].backing);
        assert_open_fails(top, &read_only, cases[i].code, "Could not open backing file", named,
                          cases[i].kind, NULL);
        assert_open_fails(top, NULL, cases[i].code, cases[i].kind, NULL);
    }
}

/* The image itself may be a regular file or a block device, nothing else. */
static void test_special_top_files_are_refused(void)
{
    g_autofree char *fifo = tu_path("top-fifo");
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    assert_open_fails(fifo, &read_only, EINVAL, "it is a FIFO, not a regular file or block device",
                      NULL);
    assert_open_fails(fifo, NULL, EINVAL, "FIFO", NULL);
    assert_open_fails("/dev/null", NULL, EINVAL, "character device", NULL);
    g_autofree char *dir = make_dir("top-dir");
    assert_open_fails(dir, &read_only, EISDIR, "Is a directory", NULL);
    /* qed_create refuses to write an image into a FIFO, which would block. */
    QedCreateOptions co = { .size = MiB };
    GError *err = NULL;
    g_assert_cmpint(qed_create(fifo, &co, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "FIFO"));
    g_error_free(err);
}

/* Runs a command; true when it exits 0. *out gets its stdout. */
static bool run(char **argv, char **out)
{
    int status;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                      NULL, out, NULL, &status, NULL)) {
        return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static char *loop_device;

static void detach_loop_device(void)
{
    char *detach[] = { "losetup", "-d", loop_device, NULL };
    /* The kernel may still be busy with the new device (a partition scan):
     * then the detach fails with EBUSY for a moment. */
    int tries = 0;
    while (!run(detach, NULL)) {
        if (++tries == 50) {
            g_printerr("could not detach %s\n", loop_device);
            break;
        }
        g_usleep(100 * 1000);
    }
    g_free(loop_device);
}

/* A block device as backing file only with QED_OPEN_BACKING_BLOCK_DEVICES
 * (a loop device over a raw file, where this test may make one). */
static void test_block_device_backing_needs_the_flag(void)
{
    g_autofree char *raw = tu_raw_file("loop.raw", MiB, 5);
    g_autofree char *out = NULL;
    char *attach[] = { "losetup", "-f", "--show", raw, NULL };
    if (!run(attach, &out)) {
        g_test_skip("no loop device (losetup needs root and /dev/loop*)");
        return;
    }
    loop_device = g_strstrip(g_strdup(out));
    atexit(detach_loop_device); /* also when an assertion fails */
    const char *dev = loop_device;
    g_autofree char *top = tu_create("over-device.qed", MiB, 0, dev, "raw");
    assert_open_fails(top, &read_only, EPERM, "it is a block device, not a regular file", NULL);
    QedOpenOptions allow = { .flags = QED_OPEN_READ_ONLY | QED_OPEN_BACKING_BLOCK_DEVICES };
    assert_reads(top, &allow, raw);
    /* The image itself may be a block device (raw, by probing). */
    assert_reads(dev, &read_only, raw);
}

/* A name QEMU would open through a protocol is never a relative local path
 * here; network protocols are refused by name. (The local files that the
 * names would reach as relative paths exist, so that opening them as such
 * would succeed.) */
static void test_network_names_are_refused(void)
{
    /* NBD names need the opener's consent; other network protocols are not
     * spoken at all. Neither is ever read as a local path. */
    const char *names[] = {
        "nbd://localhost/x",  "nbd+unix:///x?socket=/tmp/s", "nbd:localhost:10809",
        "http://localhost/x", "https://localhost/x",         "ssh://localhost/x",
        "ftp://localhost/x",  "iscsi://localhost/iqn.x/0",   "gluster://localhost/v/x",
        "nfs://localhost/x",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *local = tu_path(names[i]);
        g_autofree char *parent = g_path_get_dirname(local);
        g_assert_cmpint(g_mkdir_with_parents(parent, 0755), ==, 0);
        g_assert_true(g_file_set_contents(local, "data", 4, NULL));
        g_autofree char *name = g_strdup_printf("net%zu.qed", i);
        g_autofree char *top = tu_create(name, MiB, 0, names[i], "raw");
        g_autofree char *quoted = g_strdup_printf("'%s'", names[i]);
        if (g_str_has_prefix(names[i], "nbd")) {
            assert_open_fails(top, &read_only, EPERM, quoted,
                              "backing files on NBD servers are not allowed here", NULL);
        } else {
            g_autofree char *protocol = g_strndup(names[i], strcspn(names[i], ":"));
            g_autofree char *why = g_strdup_printf(
                "network backing files over protocol '%s' are not supported", protocol);
            assert_open_fails(top, &read_only, ENOTSUP, quoted, why, NULL);
        }
        g_autofree char *full = qed_backing_path(top, names[i]);
        g_assert_cmpstr(full, ==, names[i]);
    }
    g_autofree char *json = tu_create("json.qed", MiB, 0, "json:{\"driver\":\"null-co\"}", NULL);
    assert_open_fails(json, &read_only, ENOTSUP, "protocol 'json' is not supported", NULL);
    g_autofree char *unknown = tu_create("unknown.qed", MiB, 0, "frob:x.raw", "raw");
    assert_open_fails(unknown, &read_only, EINVAL, "Unknown protocol 'frob'", NULL);
    /* The name of the image itself is read the same way: an NBD name is
     * connected to (here a socket that does not exist), never a local file. */
    g_autofree char *sock_dir = tu_path("nbd+unix:");
    g_assert_cmpint(g_mkdir_with_parents(sock_dir, 0755), ==, 0);
    g_autofree char *missing = tu_path("missing.sock");
    g_autofree char *nbd_name = g_strdup_printf("nbd+unix:///x?socket=%s", missing);
    g_autofree char *nbd_quoted = g_strdup_printf("Could not open '%s'", nbd_name);
    assert_open_fails(nbd_name, &read_only, ENOENT, nbd_quoted, NULL);
    assert_open_fails("http://localhost/x", &read_only, ENOTSUP,
                      "network images over protocol 'http' are not supported", NULL);
    g_autofree char *prefixed = g_strconcat("file:", unknown, NULL);
    QedOpenOptions no_backing = { .flags = QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING };
    QedImage *img = qed_open(prefixed, &no_backing, NULL);
    g_assert_nonnull(img);
    TU_OK(qed_close(img, &tu_err));
}

/* "file:" names a local file; as in QEMU, a relative one is found from the
 * working directory, not from the image's. */
static void test_file_prefix_names_a_local_file(void)
{
    g_autofree char *cwd_dir = make_dir("fp-cwd");
    g_autofree char *img_dir = make_dir("fp-img");
    g_autofree char *in_cwd = tu_raw_file("fp-cwd/base.raw", MiB, 1);
    g_autofree char *in_img = tu_raw_file("fp-img/base.raw", MiB, 2);
    g_autofree char *top = tu_create("fp-img/top.qed", MiB, 0, "file:base.raw", "raw");
    g_autofree char *old = g_get_current_dir();
    g_assert_cmpint(chdir(cwd_dir), ==, 0);
    assert_reads(top, &read_only, in_cwd);
    g_assert_cmpint(chdir(old), ==, 0);
    g_autofree char *abs = g_strconcat("file:", in_img, NULL);
    g_autofree char *top2 = tu_create("fp-img/top2.qed", MiB, 0, abs, "raw");
    assert_reads(top2, &read_only, in_img);
}

/* ------------------------------------------------------------ confinement */

static QedOpenOptions confined(const char *dir)
{
    return (QedOpenOptions){ .flags = QED_OPEN_READ_ONLY | QED_OPEN_BACKING_CONFINED,
                             .backing_dir = dir };
}

static void test_confined_refuses_host_files(void)
{
    g_autofree char *dir = make_dir("jail");
    g_autofree char *real = realpath(dir, NULL);
    g_autofree char *outside = tu_raw_file("outside.raw", MiB, 3);
    g_autofree char *link_abs = g_build_filename(dir, "passwd-link", NULL);
    g_assert_cmpint(symlink("/etc/passwd", link_abs), ==, 0);
    g_autofree char *link_rel = g_build_filename(dir, "outside-link", NULL);
    g_assert_cmpint(symlink("../outside.raw", link_rel), ==, 0);
    const char *names[] = {
        "/etc/passwd",  "../../../../etc/passwd", "../outside.raw", "passwd-link",
        "outside-link", "file:/etc/passwd",       outside,
    };
    QedOpenOptions opts = confined(NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *name = g_strdup_printf("jail/escape%zu.qed", i);
        g_autofree char *top = tu_create(name, MiB, 0, names[i], "raw");
        assert_open_fails(top, &opts, EPERM, "Could not open backing file", real,
                          "the directory the backing chain is confined to", NULL);
        /* Unconfined, as in QEMU, every one of them opens. */
        QedImage *img = tu_open(top, QED_OPEN_READ_ONLY);
        TU_OK(qed_close(img, &tu_err));
    }
    /* The message names the backing file as it would be opened. */
    g_autofree char *top = tu_create("jail/named.qed", MiB, 0, "/etc/passwd", "raw");
    assert_open_fails(top, &opts, EPERM, "'/etc/passwd'", NULL);
}

/* sub/top.qed -> ../mid.qed -> sub/base.raw (via a symlink that stays
 * inside): works beneath the jail; beneath sub (the default, the image's own
 * directory) the first step already leads out. */
static void test_confined_chain_inside_works(void)
{
    g_autofree char *dir = make_dir("jail2/sub");
    g_autofree char *jail = tu_path("jail2");
    g_autofree char *base = tu_raw_file("jail2/sub/base.raw", MiB, 7);
    g_autofree char *link = tu_path("jail2/base-link.raw");
    g_assert_cmpint(symlink("sub/base.raw", link), ==, 0);
    g_autofree char *mid = tu_create("jail2/mid.qed", MiB, 0, "base-link.raw", "raw");
    g_autofree char *top = tu_create("jail2/sub/top.qed", MiB, 0, "../mid.qed", NULL);
    QedOpenOptions opts = confined(jail);
    assert_reads(top, &opts, base);
    QedOpenOptions own_dir = confined(NULL);
    assert_open_fails(top, &own_dir, EPERM, "jail2/sub/../mid.qed'", "jail2/sub'", NULL);
    /* An absolute name inside the directory is fine too. */
    g_autofree char *abs_top = tu_create("jail2/abs.qed", MiB, 0, mid, NULL);
    assert_reads(abs_top, &opts, base);
    /* A loop inside the directory is still found. */
    g_autofree char *a = tu_create("jail2/loop-a.qed", MiB, 0, "loop-b.qed", "qed");
    g_autofree char *b = tu_create("jail2/loop-b.qed", MiB, 0, "loop-a.qed", "qed");
    assert_open_fails(a, &opts, ELOOP, "creates an infinite loop", NULL);
}

/* backing_dir names a directory other than the image's: backing files must
 * lie beneath it, and those beside the image do not. */
static void test_confined_to_another_directory(void)
{
    g_autofree char *images = make_dir("images");
    g_autofree char *bases = make_dir("bases");
    g_autofree char *base = tu_raw_file("bases/base.raw", MiB, 9);
    g_autofree char *beside = tu_raw_file("images/base.raw", MiB, 10);
    g_autofree char *top = tu_create("images/top.qed", MiB, 0, base, "raw");
    QedOpenOptions opts = confined(bases);
    assert_reads(top, &opts, base);
    g_autofree char *top2 = tu_create("images/top2.qed", MiB, 0, "base.raw", "raw");
    g_autofree char *real = realpath(bases, NULL);
    assert_open_fails(top2, &opts, EPERM, real, NULL);
    QedOpenOptions own_dir = confined(NULL);
    assert_reads(top2, &own_dir, beside);
    /* A directory that is not there fails the open, naming it. */
    g_autofree char *gone = tu_path("no-such-dir");
    QedOpenOptions missing = confined(gone);
    assert_open_fails(top2, &missing, ENOENT, gone, NULL);
    /* ... unless the backing chain is not opened at all. */
    missing.flags |= QED_OPEN_NO_BACKING;
    QedImage *img = qed_open(top2, &missing, NULL);
    g_assert_nonnull(img);
    TU_OK(qed_close(img, &tu_err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    alarm(120); /* an open that blocks fails the test instead of hanging it */
    g_test_add_func("/policy/special-backing-files-are-refused",
                    test_special_backing_files_are_refused);
    g_test_add_func("/policy/special-top-files-are-refused", test_special_top_files_are_refused);
    g_test_add_func("/policy/block-device-backing-needs-the-flag",
                    test_block_device_backing_needs_the_flag);
    g_test_add_func("/policy/network-names-are-refused", test_network_names_are_refused);
    g_test_add_func("/policy/file-prefix-names-a-local-file", test_file_prefix_names_a_local_file);
    g_test_add_func("/policy/confined-refuses-host-files", test_confined_refuses_host_files);
    g_test_add_func("/policy/confined-chain-inside-works", test_confined_chain_inside_works);
    g_test_add_func("/policy/confined-to-another-directory", test_confined_to_another_directory);
    return g_test_run();
}
