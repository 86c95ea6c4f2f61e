/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NBD device (blk-nbd.c) against real nbdkit servers: the pool of
 * connections (several with multi-conn or for reads, one for a writer
 * without it, counted in nbdkit's log), flush and zero mapped to NBD's
 * commands, block status, the fixed size, and what happens when the server
 * goes away and comes back; and NBD backing files through qed_open: the
 * QED_OPEN_BACKING_REMOTE consent, what an image on a server may name,
 * loops through the network, and URIs in headers that name local files.
 */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk/blk.h"
#include "qed.h"

#define MiB (1024u * 1024)

typedef struct Server {
    GPid pid;
    char *sock;
    char *uri;
    char *log;
    char *pidfile;
} Server;

/* Starts `nbdkit -f -U SOCK -P PIDFILE --filter=log [--filter=F...] PLUGIN ARGS...
 * logfile=LOG` (args NULL-terminated, filters first as "--filter=x") and
 * waits for its socket. */
static void server_start(Server *s, const char *name, const char *const *args)
{
    g_free(s->sock); /* a server started again */
    g_free(s->log);
    g_free(s->uri);
    g_free(s->pidfile);
    s->sock = tu_path(name);
    s->log = g_strconcat(s->sock, ".log", NULL);
    s->pidfile = g_strconcat(s->sock, ".pid", NULL);
    unlink(s->pidfile);
    s->uri = g_strdup_printf("nbd+unix:///?socket=%s", s->sock);
    unlink(s->sock);
    unlink(s->log);
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, g_strdup("nbdkit"));
    g_ptr_array_add(argv, g_strdup("-f"));
    g_ptr_array_add(argv, g_strdup("-U"));
    g_ptr_array_add(argv, g_strdup(s->sock));
    g_ptr_array_add(argv, g_strdup("-P"));
    g_ptr_array_add(argv, g_strdup(s->pidfile));
    g_ptr_array_add(argv, g_strdup("--filter=log"));
    for (const char *const *a = args; *a; a++) {
        g_ptr_array_add(argv, g_strdup(*a));
    }
    g_ptr_array_add(argv, g_strconcat("logfile=", s->log, NULL));
    g_ptr_array_add(argv, NULL);
    GError *err = NULL;
    gboolean ok = g_spawn_async(NULL, (char **)argv->pdata, NULL,
                                G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &s->pid, &err);
    g_assert_no_error(err);
    g_assert_true(ok);
    g_ptr_array_unref(argv);
    /* nbdkit writes its pid file once it accepts connections (the socket
     * exists a moment earlier, when a connection is still refused). */
    for (int i = 0; i < 200 && !g_file_test(s->pidfile, G_FILE_TEST_EXISTS); i++) {
        g_usleep(50 * 1000);
    }
    g_assert_true(g_file_test(s->pidfile, G_FILE_TEST_EXISTS));
}

static void server_stop(Server *s)
{
    if (s->pid) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        g_spawn_close_pid(s->pid);
        s->pid = 0;
    }
    unlink(s->sock);
}

static void server_free(Server *s)
{
    server_stop(s);
    g_free(s->sock);
    g_free(s->uri);
    g_free(s->log);
    g_free(s->pidfile);
}

/* How many connections nbdkit's log filter saw, and how many requests
 * whose log line holds word (" Flush ", " Zero "). */
static unsigned log_count(const Server *s, const char *word)
{
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(s->log, &text, NULL, NULL));
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += strlen(word)) {
        n++;
    }
    return n;
}

static bool have_nbdkit(void)
{
    g_autofree char *path = g_find_program_in_path("nbdkit");
    if (!path) {
        g_test_skip("nbdkit is not installed");
    }
    return path != NULL;
}

static BlkDev *open_nbd(const Server *s, unsigned flags)
{
    GError *err = NULL;
    BlkDev *dev = blk_nbd_open(s->uri, flags, &err);
    g_assert_no_error(err);
    g_assert_nonnull(dev);
    return dev;
}

typedef struct Worker {
    BlkDev *dev;
    unsigned index;
    bool write;
    int ret;
} Worker;

/* Each worker writes (or reads) its own MiB 4 times. */
static gpointer worker_run(gpointer opaque)
{
    Worker *w = opaque;
    g_autofree uint8_t *buf = g_malloc(MiB);
    for (int i = 0; i < 4 && w->ret == 0; i++) {
        if (w->write) {
            memset(buf, (int)(w->index + 1), MiB);
            w->ret = blk_pwrite(w->dev, buf, MiB, (uint64_t)w->index * MiB, BLK_TAG_DATA);
        } else {
            w->ret = blk_pread(w->dev, buf, MiB, (uint64_t)w->index * MiB);
        }
    }
    return NULL;
}

static void run_workers(BlkDev *dev, bool write)
{
    Worker w[8];
    GThread *t[8];
    for (unsigned i = 0; i < 8; i++) {
        w[i] = (Worker){ .dev = dev, .index = i, .write = write };
        t[i] = g_thread_new("nbd-worker", worker_run, &w[i]);
    }
    for (unsigned i = 0; i < 8; i++) {
        g_thread_join(t[i]);
        g_assert_cmpint(w[i].ret, ==, 0);
    }
}

/* A writer on a server with multi-conn spreads requests over several
 * connections, and every byte lands where it was written. */
static void test_multi_conn_writer_uses_several(void)
{
    if (!have_nbdkit()) {
        return;
    }
    Server s = { 0 };
    const char *args[] = { "--filter=delay", "memory", "16M", "wdelay=20ms", NULL };
    server_start(&s, "mc.sock", args);
    BlkDev *dev = open_nbd(&s, 0);
    g_assert_true(dev->fixed_length);
    g_assert_cmpint(blk_get_length(dev), ==, 16 * MiB);
    run_workers(dev, true);
    g_assert_cmpint(blk_flush(dev), ==, 0);
    uint8_t byte;
    for (unsigned i = 0; i < 8; i++) {
        g_assert_cmpint(blk_pread(dev, &byte, 1, (uint64_t)i * MiB + MiB - 1), ==, 0);
        g_assert_cmpuint(byte, ==, i + 1);
    }
    blk_close(dev);
    unsigned conns = log_count(&s, " Connect ");
    g_assert_cmpuint(conns, >, 1);
    g_assert_cmpuint(conns, <=, 8);
    g_assert_cmpuint(log_count(&s, " Flush "), >=, 1);
    server_free(&s);
}

/* Without multi-conn a writer keeps to one connection (a flush on it covers
 * only its own writes); a reader of the same export may use several. */
static void test_no_multi_conn_writer_uses_one(void)
{
    if (!have_nbdkit()) {
        return;
    }
    Server s = { 0 };
    const char *args[] = { "--filter=multi-conn",     "--filter=delay", "memory",      "16M",
                           "multi-conn-mode=disable", "rdelay=20ms",    "wdelay=20ms", NULL };
    server_start(&s, "single.sock", args);
    BlkDev *dev = open_nbd(&s, 0);
    run_workers(dev, true);
    run_workers(dev, false);
    blk_close(dev);
    g_assert_cmpuint(log_count(&s, " Connect "), ==, 1);

    dev = open_nbd(&s, BLK_OPEN_READ_ONLY);
    run_workers(dev, false);
    /* Going writable keeps one connection. */
    g_assert_cmpint(blk_reopen(dev, false), ==, 0);
    run_workers(dev, true);
    blk_close(dev);
    unsigned total = log_count(&s, " Connect ");
    g_assert_cmpuint(total, >, 2); /* the reader used several */
    server_free(&s);
}

/* Zeros go as NBD_CMD_WRITE_ZEROES, block status reports holes, and the
 * export keeps its size: reads past it see zeros, writes past it fail with
 * ENOSPC, and no other length is accepted. */
static void test_zero_status_and_bounds(void)
{
    if (!have_nbdkit()) {
        return;
    }
    Server s = { 0 };
    const char *args[] = { "memory", "4M", NULL };
    server_start(&s, "bounds.sock", args);
    BlkDev *dev = open_nbd(&s, 0);
    g_autofree uint8_t *buf = g_malloc(128 * 1024);
    memset(buf, 0xa5, 128 * 1024);
    g_assert_cmpint(blk_pwrite(dev, buf, 128 * 1024, MiB, BLK_TAG_DATA), ==, 0);
    bool is_data;
    uint64_t run;
    g_assert_cmpint(blk_data_status(dev, 0, 4 * MiB, &is_data, &run), ==, 0);
    g_assert_false(is_data);
    g_assert_cmpuint(run, ==, MiB);
    g_assert_cmpint(blk_data_status(dev, MiB, 4 * MiB, &is_data, &run), ==, 0);
    g_assert_true(is_data);
    g_assert_cmpint(blk_punch_zeroes(dev, MiB, 64 * 1024), ==, 0);
    g_assert_cmpuint(log_count(&s, " Zero "), ==, 1);
    g_assert_cmpint(blk_pread(dev, buf, 128 * 1024, MiB), ==, 0);
    g_assert_cmpuint(buf[0], ==, 0);
    g_assert_cmpuint(buf[64 * 1024 - 1], ==, 0);
    g_assert_cmpuint(buf[64 * 1024], ==, 0xa5);
    /* The last 64 KiB of the export and 64 KiB past it. */
    memset(buf, 0xff, 128 * 1024);
    g_assert_cmpint(blk_pread(dev, buf, 128 * 1024, 4 * MiB - 64 * 1024), ==, 0);
    g_assert_cmpuint(buf[128 * 1024 - 1], ==, 0);
    g_assert_cmpint(blk_pwrite(dev, buf, 128 * 1024, 4 * MiB - 64 * 1024, BLK_TAG_DATA), ==,
                    -ENOSPC);
    g_assert_cmpint(blk_truncate(dev, 4 * MiB), ==, 0);
    g_assert_cmpint(blk_truncate(dev, 8 * MiB), ==, -ENOTSUP);
    g_assert_cmpint(blk_allocated_bytes(dev), ==, -ENOTSUP);
    blk_close(dev);
    server_free(&s);
}

/* The server goes away and comes back on the same socket: a reader fails
 * while it is gone (no hang) and reads again once it is back; a writer
 * stays failed, since what the lost server had not flushed may be gone. */
static void test_server_gone_and_back(void)
{
    if (!have_nbdkit()) {
        return;
    }
    g_autofree char *golden = tu_raw_file("golden.raw", 2 * MiB, 7);
    g_autofree char *file_arg = g_strconcat("file=", golden, NULL);
    Server s = { 0 };
    const char *args[] = { "file", file_arg, NULL };
    server_start(&s, "gone.sock", args);
    BlkDev *reader = open_nbd(&s, BLK_OPEN_READ_ONLY);
    BlkDev *writer = open_nbd(&s, 0);
    run_workers(reader, false); /* several idle connections in the pool */
    uint8_t want[4096], got[4096];
    g_assert_cmpint(blk_pread(reader, want, sizeof(want), 4096), ==, 0);
    g_assert_cmpint(blk_pwrite(writer, want, sizeof(want), 4096, BLK_TAG_DATA), ==, 0);

    server_stop(&s);
    g_assert_cmpint(blk_pread(reader, got, sizeof(got), 4096), <, 0);
    g_autofree char *why = blk_nbd_last_error(reader);
    g_assert_nonnull(why);
    g_assert_cmpint(blk_pwrite(writer, want, sizeof(want), 4096, BLK_TAG_DATA), <, 0);

    server_start(&s, "gone.sock", args);
    g_assert_cmpint(blk_pread(reader, got, sizeof(got), 4096), ==, 0);
    g_assert_cmpmem(got, sizeof(got), want, sizeof(want));
    /* Gone and back between two requests: the read is retried at once on a
     * new connection and never fails. */
    server_stop(&s);
    server_start(&s, "gone.sock", args);
    memset(got, 0, sizeof(got));
    g_assert_cmpint(blk_pread(reader, got, sizeof(got), 4096), ==, 0);
    g_assert_cmpmem(got, sizeof(got), want, sizeof(want));
    g_assert_true(blk_failed(writer));
    g_assert_cmpint(blk_flush(writer), ==, -EIO);
    g_assert_cmpint(blk_pwrite(writer, want, sizeof(want), 4096, BLK_TAG_DATA), ==, -EIO);
    blk_close(reader);
    blk_close(writer);
    server_free(&s);
}

/* A new connection that finds another size fails its request and says so. */
static void test_size_change_is_refused(void)
{
    if (!have_nbdkit()) {
        return;
    }
    Server s = { 0 };
    const char *args[] = { "memory", "4M", NULL };
    server_start(&s, "size.sock", args);
    BlkDev *dev = open_nbd(&s, BLK_OPEN_READ_ONLY);
    server_stop(&s);
    const char *bigger[] = { "memory", "8M", NULL };
    server_start(&s, "size.sock", bigger);
    uint8_t buf[512];
    g_assert_cmpint(blk_pread(dev, buf, sizeof(buf), 0), ==, -EIO);
    g_autofree char *why = blk_nbd_last_error(dev);
    g_assert_nonnull(strstr(why, "size changed"));
    blk_close(dev);
    server_free(&s);
}

/* Names: QEMU's older spellings become libnbd URIs; junk is refused with a
 * message naming it. */
static void test_names(void)
{
    const struct {
        const char *name, *uri;
    } cases[] = {
        { "nbd:unix:/tmp/s.sock", "nbd+unix:///?socket=/tmp/s.sock" },
        { "nbd:unix:/tmp/s.sock:exportname=disk", "nbd+unix:///disk?socket=/tmp/s.sock" },
        { "nbd:localhost:10809", "nbd://localhost:10809/" },
        { "nbd:host:99:exportname=a b", "nbd://host:99/a%20b" },
        { "nbd:::1:10809", "nbd://[::1]:10809/" },
        { "nbd+tcp://host/x", "nbd://host/x" },
        { "nbd://host/x", "nbd://host/x" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_assert_true(blk_nbd_name(cases[i].name));
        GError *err = NULL;
        g_autofree char *uri = blk_nbd_uri(cases[i].name, &err);
        g_assert_no_error(err);
        g_assert_cmpstr(uri, ==, cases[i].uri);
    }
    g_assert_false(blk_nbd_name("nbdfile.raw"));
    g_assert_false(blk_nbd_name("http://host/x"));
    GError *err = NULL;
    g_assert_null(blk_nbd_uri("nbd:nonsense", &err));
    g_assert_nonnull(strstr(err->message, "'nbd:nonsense'"));
    g_error_free(err);
}

/* qed_open of path with flags must fail with code and a message holding
 * text. */
static void assert_open_fails(const char *path, unsigned flags, int code, const char *text)
{
    QedOpenOptions opts = { .flags = flags };
    GError *err = NULL;
    QedImage *img = qed_open(path, &opts, &err);
    if (img) {
        g_error("opening %s succeeded", path);
    }
    if (err->code != code || !strstr(err->message, text)) {
        g_error("opening %s: code %d (expected %d): %s (expected \"%s\")", path, err->code, code,
                err->message, text);
    }
    g_error_free(err);
}

/* A local overlay over an NBD export opens only with the opener's consent,
 * and then reads the export's bytes where it holds none. */
static void test_remote_backing_needs_consent(void)
{
    if (!have_nbdkit()) {
        return;
    }
    g_autofree char *golden = tu_raw_file("consent.raw", 2 * MiB, 3);
    g_autofree char *file_arg = g_strconcat("file=", golden, NULL);
    Server s = { 0 };
    const char *args[] = { "-r", "file", file_arg, NULL };
    server_start(&s, "consent.sock", args);
    g_autofree char *top = tu_create("consent.qed", 2 * MiB, 0, s.uri, "raw");
    assert_open_fails(top, QED_OPEN_READ_ONLY, EPERM, "QED_OPEN_BACKING_REMOTE");
    assert_open_fails(top, QED_OPEN_READ_ONLY | QED_OPEN_BACKING_CONFINED, EPERM,
                      "QED_OPEN_BACKING_REMOTE");
    g_assert_cmpuint(log_count(&s, " Connect "), ==, 0);

    QedImage *img = tu_open(top, QED_OPEN_BACKING_REMOTE);
    g_autoptr(GBytes) want = tu_file_bytes(golden);
    g_autofree uint8_t *got = g_malloc(2 * MiB);
    GError *err = NULL;
    g_assert_cmpint(qed_pread(img, got, 2 * MiB, 0, &err), ==, 0);
    g_assert_cmpmem(got, 2 * MiB, g_bytes_get_data(want, NULL), 2 * MiB);
    tu_write_byte(img, 0x5a, 4096, MiB);
    g_assert_cmpint(qed_close(img, &err), ==, 0);
    g_assert_no_error(err);
    /* Confined to the image's directory for local files, still remote. */
    img = tu_open(top, QED_OPEN_BACKING_REMOTE | QED_OPEN_BACKING_CONFINED | QED_OPEN_READ_ONLY);
    tu_assert_byte(img, 0x5a, 4096, MiB);
    g_assert_cmpint(qed_close(img, &err), ==, 0);
    g_assert_cmpint(tu_qemu_img_check(top), <=, 0);
    server_free(&s);
}

/* An image on a server has no directory: a relative backing name in it is
 * refused rather than read as a host file; an absolute one is a host file,
 * refused under confinement. */
static void test_remote_image_names_no_relative_file(void)
{
    if (!have_nbdkit()) {
        return;
    }
    g_autofree char *base = tu_raw_file("local-base.raw", MiB, 4);
    g_autofree char *rel = tu_create("rel.qed", MiB, 0, "local-base.raw", "raw");
    g_autofree char *abs = tu_create("abs.qed", MiB, 0, base, "raw");
    g_autofree char *rel_arg = g_strconcat("file=", rel, NULL);
    g_autofree char *abs_arg = g_strconcat("file=", abs, NULL);
    Server r = { 0 }, a = { 0 };
    const char *rargs[] = { "-r", "file", rel_arg, NULL };
    const char *aargs[] = { "-r", "file", abs_arg, NULL };
    server_start(&r, "rel.sock", rargs);
    server_start(&a, "abs.sock", aargs);
    assert_open_fails(r.uri, QED_OPEN_READ_ONLY, EINVAL, "has no directory to be relative to");
    assert_open_fails(a.uri, QED_OPEN_READ_ONLY | QED_OPEN_BACKING_CONFINED, EPERM,
                      "is on an NBD server");
    QedImage *img = tu_open(a.uri, QED_OPEN_READ_ONLY);
    g_autoptr(GBytes) want = tu_file_bytes(base);
    uint8_t got[4096];
    GError *err = NULL;
    g_assert_cmpint(qed_pread(img, got, sizeof(got), 0, &err), ==, 0);
    g_assert_cmpmem(got, sizeof(got), g_bytes_get_data(want, NULL), sizeof(got));
    QedInfo info;
    g_assert_cmpint(qed_get_info(img, &info, &err), ==, 0);
    g_assert_cmpuint(info.actual_size, ==, UINT64_MAX);
    g_assert_cmpint(qed_close(img, &err), ==, 0);
    server_free(&r);
    server_free(&a);
}

/* An image whose backing file is its own export: the chain ends with ELOOP
 * instead of connecting forever. */
static void test_loop_through_the_network(void)
{
    if (!have_nbdkit()) {
        return;
    }
    g_autofree char *sock = tu_path("loop.sock");
    g_autofree char *uri = g_strdup_printf("nbd+unix:///?socket=%s", sock);
    g_autofree char *top = tu_create("loop.qed", MiB, 0, uri, "qed");
    g_autofree char *arg = g_strconcat("file=", top, NULL);
    Server s = { 0 };
    const char *args[] = { "-r", "file", arg, NULL };
    server_start(&s, "loop.sock", args);
    assert_open_fails(top, QED_OPEN_READ_ONLY | QED_OPEN_BACKING_REMOTE, ELOOP,
                      "creates an infinite loop");
    server_free(&s);
}

/* TLS: the caller's own nbds:// URI may name its key file, and works; the
 * same URI in a header may not make libnbd read a host file (TLS key files
 * in its query string), even with remote backing files allowed. */
static void test_tls_and_header_uri_reads_no_local_file(void)
{
    if (!have_nbdkit()) {
        return;
    }
    g_autofree char *secret = tu_path("secret.psk");
    g_assert_true(g_file_set_contents(
        secret, "alice:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", -1,
        NULL));
    g_autofree char *psk_arg = g_strconcat("--tls-psk=", secret, NULL);
    Server s = { 0 };
    const char *args[] = { "--tls=require", psk_arg, "memory", "1M", NULL };
    server_start(&s, "psk.sock", args);
    g_autofree char *uri = g_strdup_printf("nbds+unix://alice@/?socket=%s&tls-psk-file=%s", s.sock,
                                           secret);
    GError *err = NULL;
    BlkDev *dev = blk_nbd_open(uri, 0, &err);
    g_assert_no_error(err);
    g_assert_cmpint(blk_get_length(dev), ==, MiB);
    blk_close(dev);
    /* Without TLS the server refuses; with the name from a header, the key
     * file is never read. */
    g_assert_null(blk_nbd_open(s.uri, 0, &err));
    g_assert_nonnull(strstr(err->message, "TLS"));
    g_clear_error(&err);
    g_assert_null(blk_nbd_open(uri, BLK_NBD_UNTRUSTED, &err));
    g_assert_cmpint(err->code, ==, EPERM);
    g_clear_error(&err);
    g_autofree char *top = tu_create("psk.qed", MiB, 0, uri, "raw");
    assert_open_fails(top, QED_OPEN_READ_ONLY | QED_OPEN_BACKING_REMOTE, EPERM, "local file");
    server_free(&s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/blk-nbd/names", test_names);
    g_test_add_func("/blk-nbd/multi-conn-writer-uses-several",
                    test_multi_conn_writer_uses_several);
    g_test_add_func("/blk-nbd/no-multi-conn-writer-uses-one", test_no_multi_conn_writer_uses_one);
    g_test_add_func("/blk-nbd/zero-status-and-bounds", test_zero_status_and_bounds);
    g_test_add_func("/blk-nbd/server-gone-and-back", test_server_gone_and_back);
    g_test_add_func("/blk-nbd/size-change-is-refused", test_size_change_is_refused);
    g_test_add_func("/blk-nbd/remote-backing-needs-consent", test_remote_backing_needs_consent);
    g_test_add_func("/blk-nbd/remote-image-names-no-relative-file",
                    test_remote_image_names_no_relative_file);
    g_test_add_func("/blk-nbd/loop-through-the-network", test_loop_through_the_network);
    g_test_add_func("/blk-nbd/tls-and-header-uri-reads-no-local-file",
                    test_tls_and_header_uri_reads_no_local_file);
    return g_test_run();
}
