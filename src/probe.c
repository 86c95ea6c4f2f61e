/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format probing as QEMU 7.2 does it (block.c bdrv_probe_all and each
 * driver's bdrv_probe), so that a file QEMU opens as qcow2 is never opened
 * here as raw.
 *
 * Design notes:
 * - QEMU reads the first 512 bytes (zeros past the end of a short file; an
 *   empty file is raw without probing), asks every driver for a score and
 *   takes the highest; on a tie the driver first in its list wins. Formats
 *   with a magic score 100, cloop and dmg 2, raw 1.
 * - Ties are possible because vdi looks at offset 64 while the others look
 *   at offset 0. QEMU 7.2's list (observed with qemu-img info on files that
 *   carry two signatures) puts qed and parallels before vdi, and vdi before
 *   every other magic format; dmg comes before cloop. The table below is in
 *   that order.
 * - The rules are QEMU's to the byte, including its oddities: a VMDK text
 *   descriptor may start with comments and blank lines made of spaces, but
 *   not with an empty line; qcow2 is any version from 2 up; dmg is known
 *   only by a name ending in ".dmg".
 */
#include "probe.h"

#include <string.h>

#include <glib.h>

#include "image.h"

typedef struct ProbeRule {
    const char *format;
    /* QEMU's score for the file: 0 for no match */
    int (*score)(const uint8_t *buf, const char *filename);
} ProbeRule;

static uint32_t be32_at(const uint8_t *buf, size_t offset)
{
    uint32_t v;
    memcpy(&v, buf + offset, sizeof(v));
    return GUINT32_FROM_BE(v);
}

static uint32_t le32_at(const uint8_t *buf, size_t offset)
{
    uint32_t v;
    memcpy(&v, buf + offset, sizeof(v));
    return GUINT32_FROM_LE(v);
}

/* Does buf hold the NUL-terminated string s at offset (C strcmp on a
 * fixed-size field, as QEMU compares them)? */
static bool cstring_at(const uint8_t *buf, size_t offset, const char *s)
{
    return memcmp(buf + offset, s, strlen(s) + 1) == 0;
}

#define QCOW_MAGIC 0x514649fbu /* "QFI\xfb" */
#define VDI_SIGNATURE 0xbeda107fu
#define VMDK3_MAGIC 0x434f5744u /* "COWD" */
#define VMDK4_MAGIC 0x4b444d56u /* "KDMV" */

static int score_qed(const uint8_t *buf, const char *filename)
{
    return qed_driver.probe(buf, PROBE_BYTES) ? 100 : 0;
}

static int score_parallels(const uint8_t *buf, const char *filename)
{
    bool magic = memcmp(buf, "WithoutFreeSpace", 16) == 0 ||
                 memcmp(buf, "WithouFreSpacExt", 16) == 0;
    return magic && le32_at(buf, 16) == 2 ? 100 : 0;
}

static int score_vdi(const uint8_t *buf, const char *filename)
{
    /* The signature follows 64 bytes of free text. */
    return le32_at(buf, 64) == VDI_SIGNATURE ? 100 : 0;
}

static int score_qcow(const uint8_t *buf, const char *filename)
{
    return be32_at(buf, 0) == QCOW_MAGIC && be32_at(buf, 4) == 1 ? 100 : 0;
}

static int score_qcow2(const uint8_t *buf, const char *filename)
{
    return be32_at(buf, 0) == QCOW_MAGIC && be32_at(buf, 4) >= 2 ? 100 : 0;
}

static int score_luks(const uint8_t *buf, const char *filename)
{
    static const uint8_t magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
    return memcmp(buf, magic, sizeof(magic)) == 0 && buf[6] == 0 && buf[7] == 1 ? 100 : 0;
}

static int score_vhdx(const uint8_t *buf, const char *filename)
{
    return memcmp(buf, "vhdxfile", 8) == 0 ? 100 : 0;
}

/* A text descriptor: comment lines and lines of spaces, then "version=1",
 * 2 or 3 at the start of a line ending in LF or CRLF. */
static bool vmdk_descriptor(const uint8_t *buf)
{
    size_t i = 0;
    while (i < PROBE_BYTES) {
        if (buf[i] == '#') {
            while (i < PROBE_BYTES && buf[i] != '\n') {
                i++;
            }
            i++;
            continue;
        }
        if (buf[i] == ' ') {
            while (i < PROBE_BYTES && buf[i] == ' ') {
                i++;
            }
            if (i < PROBE_BYTES && buf[i] == '\r') {
                i++;
            }
            if (i == PROBE_BYTES || buf[i] != '\n') {
                return false;
            }
            i++;
            continue;
        }
        const char *p = (const char *)buf + i;
        size_t left = PROBE_BYTES - i;
        for (char v = '1'; v <= '3'; v++) {
            char lf[] = { 'v', 'e', 'r', 's', 'i', 'o', 'n', '=', v, '\n' };
            char crlf[] = { 'v', 'e', 'r', 's', 'i', 'o', 'n', '=', v, '\r', '\n' };
            if ((left >= sizeof(lf) && memcmp(p, lf, sizeof(lf)) == 0) ||
                (left >= sizeof(crlf) && memcmp(p, crlf, sizeof(crlf)) == 0)) {
                return true;
            }
        }
        return false;
    }
    return false;
}

static int score_vmdk(const uint8_t *buf, const char *filename)
{
    uint32_t magic = be32_at(buf, 0);
    if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC) {
        return 100;
    }
    return vmdk_descriptor(buf) ? 100 : 0;
}

static int score_vpc(const uint8_t *buf, const char *filename)
{
    return memcmp(buf, "conectix", 8) == 0 ? 100 : 0;
}

static int score_bochs(const uint8_t *buf, const char *filename)
{
    /* Fixed fields of 32, 16 and 16 bytes compared as C strings. */
    if (!cstring_at(buf, 0, "Bochs Virtual HD Image") || !cstring_at(buf, 32, "Redolog") ||
        !cstring_at(buf, 48, "Growing")) {
        return 0;
    }
    uint32_t version = le32_at(buf, 64);
    return version == 0x00020000 || version == 0x00010000 ? 100 : 0;
}

static int score_dmg(const uint8_t *buf, const char *filename)
{
    size_t len = filename ? strlen(filename) : 0;
    return len > 4 && strcmp(filename + len - 4, ".dmg") == 0 ? 2 : 0;
}

static int score_cloop(const uint8_t *buf, const char *filename)
{
    static const char magic[] = "#!/bin/sh\n"
                                "#V2.0 Format\n"
                                "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";
    return memcmp(buf, magic, strlen(magic)) == 0 ? 2 : 0;
}

/* In QEMU 7.2's driver list order, which decides ties; one rule a line. */
/* clang-format off */
static const ProbeRule rules[] = {
    { "qed", score_qed },
    { "parallels", score_parallels },
    { "vdi", score_vdi },
    { "qcow", score_qcow },
    { "qcow2", score_qcow2 },
    { "luks", score_luks },
    { "vhdx", score_vhdx },
    { "vmdk", score_vmdk },
    { "vpc", score_vpc },
    { "bochs", score_bochs },
    { "dmg", score_dmg },
    { "cloop", score_cloop },
};
/* clang-format on */

const char *probe_format(const uint8_t buf[PROBE_BYTES], const char *filename)
{
    const char *best = "raw";
    int best_score = 1; /* raw's: anything that no other format claims */
    for (size_t i = 0; i < G_N_ELEMENTS(rules); i++) {
        int score = rules[i].score(buf, filename);
        if (score > best_score) {
            best_score = score;
            best = rules[i].format;
        }
    }
    return best;
}

bool probe_is_foreign_format(const char *format)
{
    for (size_t i = 0; i < G_N_ELEMENTS(rules); i++) {
        if (strcmp(rules[i].format, format) == 0) {
            return strcmp(format, "qed") != 0;
        }
    }
    return false;
}
