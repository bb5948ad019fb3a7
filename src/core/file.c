#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

kiln_status kiln__map_file(const char *path, kiln__file_map *map) {
    map->data = NULL;
    map->size = 0;
    if (!path) return kiln__error(KILN_INVALID_ARGUMENT, "file path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kiln__error(KILN_IO_ERROR, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kiln__error(KILN_IO_ERROR, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return KILN_OK; /* an empty mapping: callers see size 0 */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return kiln__error(KILN_IO_ERROR, "cannot map '%s': %s", path, strerror(errno));
    map->data = p;
    map->size = (size_t)st.st_size;
    return KILN_OK;
}

void kiln__unmap_file(kiln__file_map *map) {
    if (map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

void kiln__file_map_release(const void *p, size_t bytes) {
    /* kiln__map_file maps read-only and private, so no page was ever written: each is a clean
     * page-cache page, and MADV_DONTNEED only unmaps it from this process (the resident size
     * drops); a later read faults the same bytes back in from the file. On anonymous or heap
     * memory the same call would replace the data with zeros. A failure only leaves the pages
     * resident, so it is not an error. */
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !p || bytes == 0) return;
    uintptr_t mask = (uintptr_t)page - 1, begin = ((uintptr_t)p + mask) & ~mask,
              end = ((uintptr_t)p + bytes) & ~mask;
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

kiln_status kiln__write_file(const char *path, const void *data, size_t size) {
    if (!path) return kiln__error(KILN_INVALID_ARGUMENT, "file path is NULL");
    FILE *f = fopen(path, "wb");
    if (!f) return kiln__error(KILN_IO_ERROR, "cannot create '%s': %s", path, strerror(errno));
    size_t written = size ? fwrite(data, 1, size, f) : 0;
    int closed = fclose(f);
    if (written != size || closed != 0) return kiln__error(KILN_IO_ERROR, "cannot write '%s'", path);
    return KILN_OK;
}
