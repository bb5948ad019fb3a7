/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian, C-order arrays of the
 * plain numeric dtypes. kiln's bfloat16 has no NumPy dtype; it is written as raw '<u2' bits. */
#ifndef KILN_TOOLS_NPY_H
#define KILN_TOOLS_NPY_H

#include "kiln.h"

#include <stddef.h>

typedef struct npy_array {
    kiln_dtype dtype;
    kiln_dims dims;
    void *data; /* malloc'ed, nbytes long */
    size_t nbytes;
} npy_array;

/* The .npy descr ("<f4", "|u1", ...) of a dtype; NULL when .npy cannot hold it. bfloat16
 * maps to "<u2" (the caller should warn). */
const char *npy_descr(kiln_dtype dtype);

/* Parses a whole .npy file held in memory. On failure returns -1 and writes a message
 * (without the file name) to err. */
int npy_parse(const void *bytes, size_t size, npy_array *out, char *err, size_t err_size);
/* Reads path; the message in err names the file. */
int npy_read(const char *path, npy_array *out, char *err, size_t err_size);
/* Writes an array to path as format version 1.0 (headers of <= 8 dims always fit it). */
int npy_write(const char *path, kiln_dtype dtype, const kiln_dims *dims, const void *data, char *err,
              size_t err_size);
void npy_free(npy_array *array);

#endif
