/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Creating a QED image, and the geometry rules that create and open share.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

bool qed_cluster_size_valid(uint32_t cluster_size)
{
    return cluster_size >= QED_MIN_CLUSTER_SIZE && cluster_size <= QED_MAX_CLUSTER_SIZE &&
           (cluster_size & (cluster_size - 1)) == 0;
}

bool qed_table_size_valid(uint32_t table_size)
{
    return table_size >= QED_MIN_TABLE_SIZE && table_size <= QED_MAX_TABLE_SIZE &&
           (table_size & (table_size - 1)) == 0;
}

/* entries² × cluster_size, saturated at INT64_MAX rounded down to 512 (the
 * largest size a file API can address). QEMU computes this in 64 bits and
 * wraps for the largest geometries; see docs/format.md. */
uint64_t qed_max_image_size(uint32_t cluster_size, uint32_t table_size)
{
    unsigned cluster_bits = (unsigned)g_bit_nth_lsf(cluster_size, -1);
    unsigned table_bits = cluster_bits + (unsigned)g_bit_nth_lsf(table_size, -1) - 3;
    unsigned bits = cluster_bits + 2 * table_bits;
    if (bits >= 63) {
        return (uint64_t)INT64_MAX & ~511ull;
    }
    return 1ull << bits;
}

int qed_format_create(BlkDev *file, const QedCreateOptions *opts, GError **errp)
{
    uint32_t cluster_size = opts->cluster_size ? opts->cluster_size : QED_DEFAULT_CLUSTER_SIZE;
    uint32_t table_size = opts->table_size ? opts->table_size : QED_DEFAULT_TABLE_SIZE;
    uint64_t size = opts->size;

    if (!qed_cluster_size_valid(cluster_size)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED cluster size must be within range [%u, %u] and power of 2",
                    QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE);
        return -EINVAL;
    }
    if (!qed_table_size_valid(table_size)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED table size must be within range [%u, %u] and power of 2",
                    QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE);
        return -EINVAL;
    }
    uint64_t max = qed_max_image_size(cluster_size, table_size);
    if (size > max || (size + 511) / 512 * 512 > max) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED image size must be a non-zero multiple of cluster size and "
                    "less than %" PRIu64 " bytes",
                    max);
        return -EINVAL;
    }
    size = (size + 511) / 512 * 512;
    size_t name_len = opts->backing_file ? strlen(opts->backing_file) : 0;
    if (name_len > cluster_size - QED_HEADER_BYTES) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "Backing file name is too long for the header (%zu bytes, at most %u)",
                    name_len, cluster_size - QED_HEADER_BYTES);
        return -EINVAL;
    }

    QedHeader h = {
        .magic = QED_MAGIC,
        .cluster_size = cluster_size,
        .table_size = table_size,
        .header_size = 1,
        .l1_table_offset = cluster_size,
        .image_size = size,
    };
    if (opts->backing_file) {
        h.features |= QED_F_BACKING_FILE;
        h.backing_filename_offset = QED_HEADER_BYTES;
        h.backing_filename_size = (uint32_t)name_len;
        if (opts->backing_format && strcmp(opts->backing_format, "raw") == 0) {
            h.features |= QED_F_BACKING_FORMAT_NO_PROBE;
        }
    }

    /* A container of fixed length that cannot hold the header and the L1
     * table is refused before anything is written, not left with a header
     * whose table was cut short. */
    uint64_t tables_end = (uint64_t)cluster_size * (1 + (uint64_t)table_size);
    int64_t container = file->fixed_length ? blk_get_length(file) : -1;
    if (file->fixed_length && container >= 0 && tables_end > (uint64_t)container) {
        g_set_error(errp, QED_ERROR, ENOSPC,
                    "The header and L1 table (%" PRIu64 " bytes) do not fit in the %" PRId64
                    " bytes of the container",
                    tables_end, container);
        return -ENOSPC;
    }

    /* The same writes as qemu-img, so that the file (and its allocation on
     * the host) is the same: header, backing name, and a zeroed L1 table. */
    uint8_t hbuf[QED_HEADER_BYTES];
    qed_header_to_le(&h, hbuf);
    /* A container of fixed length (a block device) keeps its size; its
     * tables say where the image ends. */
    int ret = file->fixed_length ? 0 : blk_truncate(file, 0);
    if (ret == 0) {
        ret = blk_pwrite(file, hbuf, sizeof(hbuf), 0, BLK_TAG_CREATE);
    }
    if (ret == 0 && name_len > 0) {
        ret = blk_pwrite(file, opts->backing_file, name_len, QED_HEADER_BYTES, BLK_TAG_CREATE);
    }
    if (ret == 0) {
        ret = blk_write_zeros(file, h.l1_table_offset, (uint64_t)cluster_size * table_size,
                              BLK_TAG_CREATE);
    }
    return image_create_finish(file, ret, errp);
}
