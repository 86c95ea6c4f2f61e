/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * On a kernel without openat2() (Linux before 5.6) confinement cannot be
 * enforced, so a confined open must fail with a clear error rather than
 * open the backing file unconfined. This program plays such a kernel: it
 * defines syscall(), which the library calls for openat2, and answers
 * ENOSYS for that one system call.
 */
#include "testutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>

typedef long (*SyscallFn)(long, ...);

static int openat2_calls;

long syscall(long number, ...)
{
    if (number == SYS_openat2) {
        openat2_calls++;
        errno = ENOSYS;
        return -1;
    }
    /* Anything else (GLib's futex calls) goes to the C library: every
     * argument of a Linux system call is passed as a long. */
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    static SyscallFn real;
    if (!real) {
        real = (SyscallFn)dlsym(RTLD_NEXT, "syscall");
    }
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static void test_confined_open_fails_closed(void)
{
    g_autofree char *base = tu_raw_file("base.raw", 1024 * 1024, 1);
    g_autofree char *top = tu_create("top.qed", 1024 * 1024, 0, "base.raw", "raw");
    QedOpenOptions opts = { .flags = QED_OPEN_READ_ONLY | QED_OPEN_BACKING_CONFINED };
    GError *err = NULL;
    g_assert_null(qed_open(top, &opts, &err));
    g_assert_cmpint(openat2_calls, >, 0);
    g_assert_cmpint(err->code, ==, ENOSYS);
    g_assert_nonnull(strstr(err->message, "openat2"));
    g_assert_nonnull(strstr(err->message, "base.raw"));
    g_error_free(err);
    /* Unconfined opens do not need it. */
    QedImage *img = tu_open(top, QED_OPEN_READ_ONLY);
    g_assert_nonnull(qed_get_backing(img));
    TU_OK(qed_close(img, &tu_err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/confine/no-openat2-fails-closed", test_confined_open_fails_closed);
    return g_test_run();
}
