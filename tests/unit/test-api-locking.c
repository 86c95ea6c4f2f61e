/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image locking through the public API: the lock bytes each open mode holds
 * (read from /proc/locks), conflicts between two handles of one process,
 * reopen switching the set (also against a qemu-io holder), create over a
 * held image, locks kept by a forked child, and locking=auto|on|off on a
 * file system without OFD locks (simulated by failing F_OFD_SETLK).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024u * 1024)

/* ---------------------------------------------- a file system without locks */

/* The library's fcntl calls land here: a definition in the program takes
 * precedence over libc's, under whichever name <fcntl.h> gives fcntl (the
 * library is compiled with the same flags). With no_ofd_locks set,
 * F_OFD_SETLK fails as on a file system without OFD locks. */
static int no_ofd_locks;
static int ofd_setlk_calls;

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    if (cmd == F_OFD_SETLK) {
        ofd_setlk_calls++;
        if (no_ofd_locks) {
            errno = no_ofd_locks;
            return -1;
        }
    }
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

/* ------------------------------------------------------------------ helpers */

/* The bytes of path that anybody holds an OFD lock on, as "100 101 ...". */
static char *locked_bytes(const char *path)
{
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents("/proc/locks", &text, NULL, NULL));
    gboolean held[512] = { FALSE };
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        unsigned maj, min;
        unsigned long ino;
        long start, end;
        if (strstr(*l, "->") || !strstr(*l, "OFDLCK") ||
            sscanf(strstr(*l, "OFDLCK"), "OFDLCK ADVISORY %*s %*s %x:%x:%lu %ld %ld", &maj, &min,
                   &ino, &start, &end) != 5) {
            continue;
        }
        if (ino != (unsigned long)st.st_ino || start < 0 || end >= (long)G_N_ELEMENTS(held)) {
            continue;
        }
        for (long b = start; b <= end; b++) {
            held[b] = TRUE;
        }
    }
    GString *s = g_string_new(NULL);
    for (size_t b = 0; b < G_N_ELEMENTS(held); b++) {
        if (held[b]) {
            g_string_append_printf(s, "%s%zu", s->len ? " " : "", b);
        }
    }
    return g_string_free(s, FALSE);
}

#define BYTES_RW "100 101 103 201 203"
#define BYTES_RO "100 201 203"
#define BYTES_SHARED "100"

static void assert_locked(const char *path, const char *want)
{
    g_autofree char *got = locked_bytes(path);
    g_assert_cmpstr(got, ==, want);
}

static QedImage *open_with(const char *path, unsigned flags, QedLocking locking, GError **errp)
{
    QedOpenOptions o = { .flags = flags, .locking = locking };
    return qed_open(path, &o, errp);
}

/* Opening path with flags must fail with -EAGAIN and QEMU's message. */
static void assert_open_conflicts(const char *path, unsigned flags, const char *lock)
{
    GError *err = NULL;
    QedImage *img = open_with(path, flags, QED_LOCKING_AUTO, &err);
    g_assert_null(img);
    g_assert_error(err, QED_ERROR, EAGAIN);
    g_autofree char *want = g_strdup_printf(
        "Could not open '%s': %s\nIs another process using the image [%s]?", path, lock, path);
    g_assert_cmpstr(err->message, ==, want);
    g_error_free(err);
}

/* -------------------------------------------------------------------- tests */

static void test_bytes_of_each_mode_are_qemus(void)
{
    g_autofree char *base = tu_raw_file("base.raw", MiB, 1);
    g_autofree char *path = tu_create("modes.qed", MiB, 0, "base.raw", "raw");
    const struct {
        unsigned flags;
        const char *bytes;
    } modes[] = {
        { 0, BYTES_RW },
        { QED_OPEN_READ_ONLY, BYTES_RO },
        { QED_OPEN_READ_ONLY | QED_OPEN_FORCE_SHARE, BYTES_SHARED },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        QedImage *img = tu_open(path, modes[i].flags);
        assert_locked(path, modes[i].bytes);
        assert_locked(base, BYTES_SHARED); /* a backing file: consistent read only */
        TU_OK(qed_close(img, &tu_err));
        assert_locked(path, "");
        assert_locked(base, "");
    }
}

/* QEMU's raw driver passes its user's needs through and shares everything:
 * two writers of a raw file do not keep each other out. */
static void test_raw_images_lock_as_qemus_raw_driver(void)
{
    g_autofree char *path = tu_raw_file("plain.raw", MiB, 3);
    QedOpenOptions o = { .format = "raw" };
    QedImage *a = qed_open(path, &o, NULL);
    g_assert_nonnull(a);
    assert_locked(path, "100 101");
    QedImage *b = qed_open(path, &o, NULL);
    g_assert_nonnull(b);
    TU_OK(qed_close(b, &tu_err));
    TU_OK(qed_reopen(a, QED_OPEN_READ_ONLY, &tu_err));
    assert_locked(path, "100");
    TU_OK(qed_close(a, &tu_err));
    assert_locked(path, "");
}

static void test_second_writer_in_one_process_is_refused(void)
{
    g_autofree char *path = tu_create("two.qed", MiB, 0, NULL, NULL);
    QedImage *a = tu_open(path, 0);
    assert_open_conflicts(path, 0, "Failed to get \"write\" lock");
    assert_open_conflicts(path, QED_OPEN_READ_ONLY, "Failed to get shared \"write\" lock");
    /* -U readers pass, and a writer opens while one reads. */
    QedImage *b = tu_open(path, QED_OPEN_READ_ONLY | QED_OPEN_FORCE_SHARE);
    TU_OK(qed_close(a, &tu_err));
    a = tu_open(path, 0);
    TU_OK(qed_close(a, &tu_err));
    TU_OK(qed_close(b, &tu_err));
    /* The refused opens changed nothing: the first handle's lock is gone. */
    a = tu_open(path, 0);
    TU_OK(qed_close(a, &tu_err));
}

static void test_readers_share(void)
{
    g_autofree char *path = tu_create("readers.qed", MiB, 0, NULL, NULL);
    QedImage *a = tu_open(path, QED_OPEN_READ_ONLY);
    QedImage *b = tu_open(path, QED_OPEN_READ_ONLY);
    assert_open_conflicts(path, 0, "Failed to get \"write\" lock");
    TU_OK(qed_close(a, &tu_err));
    assert_locked(path, BYTES_RO); /* b's, untouched by a's close */
    TU_OK(qed_close(b, &tu_err));
}

static void test_force_share_needs_read_only(void)
{
    g_autofree char *path = tu_create("fs.qed", MiB, 0, NULL, NULL);
    GError *err = NULL;
    g_assert_null(open_with(path, QED_OPEN_FORCE_SHARE, QED_LOCKING_AUTO, &err));
    g_assert_error(err, QED_ERROR, EINVAL);
    g_autofree char *want = g_strdup_printf(
        "Could not open '%s': force-share=on can only be used with read-only images", path);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);

    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY | QED_OPEN_FORCE_SHARE);
    g_assert_cmpint(qed_reopen(img, QED_OPEN_FORCE_SHARE, &err), ==, -EINVAL);
    g_assert_error(err, QED_ERROR, EINVAL);
    g_clear_error(&err);
    assert_locked(path, BYTES_SHARED);
    TU_OK(qed_close(img, &tu_err));
}

static void test_reopen_switches_the_lock_set(void)
{
    g_autofree char *path = tu_create("reopen.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    assert_locked(path, BYTES_RO);
    TU_OK(qed_reopen(img, 0, &tu_err));
    assert_locked(path, BYTES_RW);
    char buf[512] = "reopened";
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    assert_open_conflicts(path, QED_OPEN_READ_ONLY, "Failed to get shared \"write\" lock");
    TU_OK(qed_reopen(img, QED_OPEN_READ_ONLY, &tu_err));
    assert_locked(path, BYTES_RO);

    /* Another reader (a second handle here: another open file description)
     * keeps it from going read-write; the handle stays read-only, locked. */
    QedImage *other = tu_open(path, QED_OPEN_READ_ONLY);
    GError *err = NULL;
    g_assert_cmpint(qed_reopen(img, 0, &err), ==, -EAGAIN);
    g_assert_error(err, QED_ERROR, EAGAIN);
    g_autofree char *want = g_strdup_printf(
        "Failed to get \"write\" lock\nIs another process using the image [%s]?", path);
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    g_assert_cmpint(qed_pwrite(img, buf, sizeof(buf), 0, 0, &err), ==, -EROFS);
    g_clear_error(&err);
    TU_OK(qed_pread(img, buf, sizeof(buf), 0, &tu_err));
    g_assert_cmpstr(buf, ==, "reopened");
    TU_OK(qed_close(other, &tu_err));
    assert_locked(path, BYTES_RO); /* img's, which the failed switch restored */
    TU_OK(qed_reopen(img, 0, &tu_err));
    assert_locked(path, BYTES_RW);
    TU_OK(qed_close(img, &tu_err));
    assert_locked(path, "");
}

/* Waits (at most 20 s) until path's locked bytes are want. */
static void wait_for_locks(const char *path, const char *want)
{
    for (int i = 0; i < 400; i++) {
        g_autofree char *got = locked_bytes(path);
        if (strcmp(got, want) == 0) {
            return;
        }
        g_usleep(50000);
    }
    assert_locked(path, want);
}

static void test_reopen_refused_while_qemu_reads(void)
{
    g_autofree char *qemu_io = g_find_program_in_path("qemu-io");
    if (!qemu_io) {
        g_test_skip("qemu-io is not installed");
        return;
    }
    g_autofree char *path = tu_create("qemu.qed", MiB, 64 * 1024, NULL, NULL);
    char *argv[] = { qemu_io, "-r", "-c", "sleep 100000", path, NULL };
    GPid pid;
    GError *err = NULL;
    g_assert_true(
        g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &err));
    wait_for_locks(path, BYTES_RO);

    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    g_assert_cmpint(qed_reopen(img, 0, &err), ==, -EAGAIN);
    g_assert_nonnull(strstr(err->message, "Failed to get \"write\" lock"));
    g_clear_error(&err);

    kill(pid, SIGTERM);
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    g_spawn_close_pid(pid);
    TU_OK(qed_reopen(img, 0, &tu_err));
    assert_locked(path, BYTES_RW);
    TU_OK(qed_close(img, &tu_err));
}

static void test_create_over_a_held_image_changes_nothing(void)
{
    g_autofree char *path = tu_create("held.qed", MiB, 0, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        QedImage *holder = tu_open(path, i == 0 ? 0 : QED_OPEN_READ_ONLY);
        g_autoptr(GBytes) before = tu_file_bytes(path);
        QedCreateOptions o = { .size = 4 * MiB, .cluster_size = 4096 };
        GError *err = NULL;
        g_assert_cmpint(qed_create(path, &o, &err), ==, -EAGAIN);
        g_autofree char *want = g_strdup_printf(
            "%s: Failed to get \"write\" lock\nIs another process using the image [%s]?", path,
            path);
        g_assert_cmpstr(err->message, ==, want);
        g_clear_error(&err);
        g_autoptr(GBytes) after = tu_file_bytes(path);
        g_assert_true(g_bytes_equal(before, after));
        TU_OK(qed_close(holder, &tu_err));
    }
    /* Free again: create works, and leaves no lock behind. */
    QedCreateOptions o = { .size = 4 * MiB };
    TU_OK(qed_create(path, &o, &tu_err));
    assert_locked(path, "");
    /* locking=off overwrites whoever holds it. */
    QedImage *holder = tu_open(path, QED_OPEN_READ_ONLY);
    o.size = 2 * MiB;
    o.locking = QED_LOCKING_OFF;
    TU_OK(qed_create(path, &o, &tu_err));
    TU_OK(qed_close(holder, &tu_err));
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    g_assert_cmpuint(qed_get_size(img), ==, 2 * MiB);
    TU_OK(qed_close(img, &tu_err));
}

static void test_locking_off_takes_and_tests_nothing(void)
{
    g_autofree char *path = tu_create("off.qed", MiB, 0, NULL, NULL);
    QedImage *a = tu_open(path, 0);
    GError *err = NULL;
    QedImage *b = open_with(path, 0, QED_LOCKING_OFF, &err);
    g_assert_no_error(err);
    assert_locked(path, BYTES_RW); /* a's only */
    TU_OK(qed_close(a, &tu_err));
    assert_locked(path, "");
    TU_OK(qed_reopen(b, QED_OPEN_READ_ONLY, &tu_err));
    TU_OK(qed_reopen(b, 0, &tu_err));
    assert_locked(path, "");
    TU_OK(qed_close(b, &tu_err));
}

/* nbdkit opens the image, then forks and the parent exits: the child, which
 * shares the open file description, must keep the image locked. */
static void test_forked_child_keeps_the_locks(void)
{
    g_autofree char *path = tu_create("fork.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    int release[2], gone[2];
    g_assert_cmpint(pipe(release), ==, 0);
    g_assert_cmpint(pipe(gone), ==, 0);
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        char c;
        close(release[1]);
        close(gone[0]);
        while (read(release[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0); /* closes gone[1], which tells the parent */
    }
    close(release[0]);
    close(gone[1]);
    TU_OK(qed_close(img, &tu_err)); /* the parent lets go of its descriptor */
    assert_locked(path, BYTES_RW);
    assert_open_conflicts(path, 0, "Failed to get \"write\" lock");

    close(release[1]);
    char c;
    while (read(gone[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(gone[0]);
    g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
    assert_locked(path, "");
    img = tu_open(path, 0);
    TU_OK(qed_close(img, &tu_err));
}

static void test_no_ofd_locks(void)
{
    g_autofree char *path = tu_create("nolocks.qed", MiB, 0, NULL, NULL);
    static const int errors[] = { ENOLCK, EINVAL, EOPNOTSUPP };
    for (size_t i = 0; i < G_N_ELEMENTS(errors); i++) {
        no_ofd_locks = errors[i];
        /* auto: opens, unlocked, and reopen does not try again */
        GError *err = NULL;
        QedImage *img = open_with(path, 0, QED_LOCKING_AUTO, &err);
        g_assert_no_error(err);
        assert_locked(path, "");
        int calls = ofd_setlk_calls;
        TU_OK(qed_reopen(img, QED_OPEN_READ_ONLY, &tu_err));
        TU_OK(qed_reopen(img, 0, &tu_err));
        g_assert_cmpint(ofd_setlk_calls, ==, calls);
        TU_OK(qed_close(img, &tu_err));

        /* on: fails, saying why */
        g_assert_null(open_with(path, 0, QED_LOCKING_ON, &err));
        g_assert_error(err, QED_ERROR, errors[i]);
        g_autofree char *want = g_strdup_printf(
            "Could not open '%s': Failed to lock byte 100: %s\n"
            "The file system does not support OFD locks (locking=on)",
            path, g_strerror(errors[i]));
        g_assert_cmpstr(err->message, ==, want);
        g_clear_error(&err);

        /* off: never asks */
        calls = ofd_setlk_calls;
        img = open_with(path, 0, QED_LOCKING_OFF, &err);
        g_assert_no_error(err);
        TU_OK(qed_close(img, &tu_err));
        g_assert_cmpint(ofd_setlk_calls, ==, calls);
    }
    /* Any other failure to lock is an error in auto mode too. */
    no_ofd_locks = EIO;
    GError *err = NULL;
    g_assert_null(open_with(path, 0, QED_LOCKING_AUTO, &err));
    g_assert_error(err, QED_ERROR, EIO);
    g_autofree char *want = g_strdup_printf("Could not open '%s': Failed to lock byte 100: %s",
                                            path, g_strerror(EIO));
    g_assert_cmpstr(err->message, ==, want);
    g_clear_error(&err);
    no_ofd_locks = 0;
    QedImage *img = tu_open(path, 0);
    assert_locked(path, BYTES_RW);
    TU_OK(qed_close(img, &tu_err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (!g_file_test("/proc/locks", G_FILE_TEST_EXISTS)) {
        g_print("1..0 # SKIP no /proc/locks\n");
        return 77;
    }
    g_test_add_func("/locking/bytes-of-each-mode-are-qemus", test_bytes_of_each_mode_are_qemus);
    g_test_add_func("/locking/raw-images-lock-as-qemus-raw-driver",
                    test_raw_images_lock_as_qemus_raw_driver);
    g_test_add_func("/locking/second-writer-in-one-process-is-refused",
                    test_second_writer_in_one_process_is_refused);
    g_test_add_func("/locking/readers-share", test_readers_share);
    g_test_add_func("/locking/force-share-needs-read-only", test_force_share_needs_read_only);
    g_test_add_func("/locking/reopen-switches-the-lock-set", test_reopen_switches_the_lock_set);
    g_test_add_func("/locking/reopen-refused-while-qemu-reads",
                    test_reopen_refused_while_qemu_reads);
    g_test_add_func("/locking/create-over-a-held-image-changes-nothing",
                    test_create_over_a_held_image_changes_nothing);
    g_test_add_func("/locking/off-takes-and-tests-nothing",
                    test_locking_off_takes_and_tests_nothing);
    g_test_add_func("/locking/forked-child-keeps-the-locks", test_forked_child_keeps_the_locks);
    g_test_add_func("/locking/no-ofd-locks", test_no_ofd_locks);
    return g_test_run();
}
