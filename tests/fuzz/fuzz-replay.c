/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replays inputs through the fuzz target without libFuzzer: each argument is
 * an input file or a directory of them. The regression test runs the seed
 * corpus and the saved crash inputs through it (test-fuzz-replay.sh).
 */
#include <glib.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    gchar *data;
    gsize len;
    GError *err = NULL;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        g_printerr("fuzz-replay: %s\n", err->message);
        g_error_free(err);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    g_free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0, replayed = 0;
    for (int i = 1; i < argc; i++) {
        if (!g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            failed |= replay_file(argv[i]);
            replayed++;
            continue;
        }
        GDir *dir = g_dir_open(argv[i], 0, NULL);
        if (!dir) {
            g_printerr("fuzz-replay: cannot open %s\n", argv[i]);
            return 1;
        }
        const char *name;
        while ((name = g_dir_read_name(dir))) {
            char *path = g_build_filename(argv[i], name, NULL);
            failed |= replay_file(path);
            replayed++;
            g_free(path);
        }
        g_dir_close(dir);
    }
    g_print("fuzz-replay: %d inputs replayed\n", replayed);
    return failed;
}
