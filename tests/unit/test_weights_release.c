/* Dropping the resident pages of plan files: the page release helper, the CPU kernels' guard
 * (only ever inside the engine's file mapping), and an engine loaded from a file whose mapping
 * stays mostly non-resident through loading and running while its outputs stay right. Resident
 * sizes come from /proc/self/smaps (mincore would not do: it reports the page cache, which keeps
 * the pages). */
#include "kt.h"

#include "runtime/engine.h"

#include <stdbool.h>
#include <unistd.h>

/* Resident bytes of this process's mappings of `path` (-1 when smaps cannot be read). */
static long long resident_of(const char *path) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[4096];
    bool in_file = false;
    long long kb = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        /* Mapping headers start with "begin-end"; the fields under them with "Name:". */
        char *colon = strchr(line, ':'), *space = strchr(line, ' ');
        if (space && (!colon || space < colon)) {
            in_file = strstr(line, path) != NULL;
            continue;
        }
        if (in_file && sscanf(line, "Rss: %lld kB", &kb) == 1) total += kb * 1024;
    }
    fclose(f);
    return total;
}

static bool temp_file(char *path, const void *data, size_t size) {
    int fd = mkstemp(path);
    if (fd < 0) return false;
    close(fd);
    return kiln__write_file(path, data, size) == KILN_OK;
}

/* The core helper: whole pages inside the range leave, edge pages stay, the bytes read the same. */
static void test_file_map_release(void) {
    long page = sysconf(_SC_PAGESIZE);
    size_t size = (size_t)kt_randi(64, 96) * (size_t)page + (size_t)kt_randi(1, page - 1);
    uint8_t *bytes = malloc(size);
    char path[] = "/tmp/kiln_test_release_XXXXXX";
    KT_CHECK(bytes != NULL);
    if (!bytes) return;
    for (size_t i = 0; i < size; i++) bytes[i] = (uint8_t)kt_rand_u64();
    KT_CHECK(temp_file(path, bytes, size));
    kiln__file_map map = {0};
    KT_OK(kiln__map_file(path, &map));
    if (!map.data) goto done;
    KT_CHECK(memcmp(map.data, bytes, size) == 0);
    long long all = resident_of(path);
    KT_CHECK(all >= (long long)(size - (size_t)page));
    /* A range inside one page releases nothing. */
    kiln__file_map_release(map.data + 1, (size_t)page - 2);
    KT_CHECK(resident_of(path) == all);
    /* From inside page 1 to inside the last page: pages 2 .. last-1 go. */
    size_t from = (size_t)page + (size_t)kt_randi(1, page - 1);
    kiln__file_map_release(map.data + from, size - from - 1);
    long long left = resident_of(path);
    printf("file map release: %lld of %lld resident bytes left\n", left, all);
    KT_CHECK(left >= 0 && left <= 3 * page);
    KT_CHECK(memcmp(map.data, bytes, size) == 0);
    KT_CHECK(resident_of(path) == all);
    kiln__unmap_file(&map);
done:
    remove(path);
    free(bytes);
}

/* The kernels' entry point releases only ranges wholly inside ctx->map: never heap memory (it
 * would read as zeros), never past the mapping, nothing without a map. */
static void test_cpu_release_guard(void) {
    long page = sysconf(_SC_PAGESIZE);
    size_t size = (size_t)kt_randi(32, 48) * (size_t)page;
    uint8_t *bytes = malloc(size), *heap = aligned_alloc((size_t)page, size);
    char path[] = "/tmp/kiln_test_guard_XXXXXX";
    KT_CHECK(bytes && heap);
    if (!bytes || !heap) goto freeing;
    for (size_t i = 0; i < size; i++) bytes[i] = (uint8_t)(kt_rand_u64() | 1);
    memcpy(heap, bytes, size);
    KT_CHECK(temp_file(path, bytes, size));
    kiln__file_map map = {0};
    KT_OK(kiln__map_file(path, &map));
    if (!map.data) goto done;
    KT_CHECK(memcmp(map.data, bytes, size) == 0);
    long long all = resident_of(path);
    kiln__cpu_ctx none = {0}, ctx = {.map = &map};
    kiln__cpu_release_weights(&ctx, heap, size);
    KT_CHECK(memcmp(heap, bytes, size) == 0);
    kiln__cpu_release_weights(&none, map.data, size);
    KT_CHECK(resident_of(path) == all);
    kiln__cpu_release_weights(&ctx, map.data + page, size); /* runs one page past the end */
    KT_CHECK(resident_of(path) == all);
    kiln__cpu_release_weights(&ctx, map.data, size);
    KT_CHECK(resident_of(path) == 0);
    KT_CHECK(memcmp(map.data, bytes, size) == 0);
    kiln__unmap_file(&map);
done:
    remove(path);
freeing:
    free(heap);
    free(bytes);
}

/* y[m, n] = x[m, k] x w[k, n], w a constant. */
static kiln_engine *matmul_engine(kiln_builder *b, int64_t m, int64_t k, int64_t n, const float *w) {
    kiln_network *net = NULL;
    KT_OK(kiln_network_create(b, &net));
    if (!net) return NULL;
    kiln_dims xd = {.nb_dims = 2, .d = {m, k}}, wd = {.nb_dims = 2, .d = {k, n}};
    kiln_tensor *x = NULL;
    kiln_layer *c = NULL, *mm = NULL;
    kiln_engine *e = NULL;
    KT_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, &xd, &x));
    if (x) KT_OK(kiln_network_add_constant(net, &wd, (kiln_weights){KILN_FLOAT32, w, k * n}, &c));
    if (c) KT_OK(kiln_network_add_matmul(net, x, KILN_MATRIX_NONE, kiln_layer_output(c, 0), KILN_MATRIX_NONE, &mm));
    if (mm) {
        KT_OK(kiln_tensor_set_name(kiln_layer_output(mm, 0), "y"));
        KT_OK(kiln_network_mark_output(net, kiln_layer_output(mm, 0)));
        kiln_builder_config *config = NULL;
        KT_OK(kiln_builder_config_create(b, &config));
        if (config) KT_OK(kiln_builder_build_engine(b, net, config, &e));
        kiln_builder_config_destroy(config);
    }
    kiln_network_destroy(net);
    return e;
}

/* Executes ctx on x and checks y against want. */
static void run_check(const char *what, kiln_context *ctx, const float *x, size_t x_bytes, const float *want,
                      int64_t ny) {
    void *y = NULL;
    KT_OK(kiln_context_set_tensor_address(ctx, "x", (void *)x, x_bytes));
    KT_OK(kiln_context_execute(ctx));
    KT_OK(kiln_context_get_tensor_address(ctx, "y", &y));
    KT_CHECK(y != NULL);
    if (y) kt_close(what, y, want, ny, 1e-4f, 1e-4f);
}

/* An engine loaded by path: loading leaves the file non-resident, the matmul's first run drops
 * the weights it packed, and every run (again, from a second context packing from refaulted
 * pages, from an engine built in-process whose heap weights must stay) matches the reference. */
static void test_engine_from_file(void) {
    int64_t m = kt_randi(1, 9), k = kt_randi(400, 1000), n = kt_randi(500, 1100);
    size_t w_bytes = (size_t)(k * n) * sizeof(float);
    float *w = malloc(w_bytes), *x = malloc((size_t)(m * k) * sizeof(float)),
          *want = malloc((size_t)(m * n) * sizeof(float));
    kiln_builder *b = NULL;
    kiln_runtime *rt = NULL;
    kiln_engine *built = NULL, *loaded = NULL;
    kiln_context *c1 = NULL, *c2 = NULL, *cb = NULL;
    char path[] = "/tmp/kiln_test_weights_XXXXXX";
    int fd = mkstemp(path);
    KT_CHECK(fd >= 0 && w && x && want);
    if (fd < 0 || !w || !x || !want) goto done;
    close(fd);
    kt_fill(w, k * n, -1, 1);
    kt_fill(x, m * k, -1, 1);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t q = 0; q < k; q++) s += (double)x[i * k + q] * w[q * n + j];
            want[i * n + j] = (float)s;
        }
    KT_OK(kiln_builder_create(NULL, &b));
    built = b ? matmul_engine(b, m, k, n, w) : NULL;
    KT_OK(kiln_runtime_create(NULL, &rt));
    if (!built || !rt) goto done;
    KT_OK(kiln_engine_save(built, path));
    KT_OK(kiln_runtime_load_engine(rt, path, &loaded));
    if (!loaded) goto done;
    KT_CHECK(loaded->map.data != NULL && built->map.data == NULL);
    long long after_load = resident_of(path);
    printf("plan of %zu weight bytes: %lld bytes resident after loading\n", w_bytes, after_load);
    KT_CHECK(after_load >= 0 && after_load < (long long)w_bytes / 4);

    size_t x_bytes = (size_t)(m * k) * sizeof(float);
    KT_OK(kiln_engine_create_context(loaded, &c1));
    if (!c1) goto done;
    run_check("first run", c1, x, x_bytes, want, m * n);
    long long after_run = resident_of(path);
    printf("%lld bytes resident after the first run\n", after_run);
    KT_CHECK(after_run >= 0 && after_run < (long long)w_bytes / 4);
    run_check("second run", c1, x, x_bytes, want, m * n);
    KT_OK(kiln_engine_create_context(loaded, &c2));
    if (c2) run_check("second context", c2, x, x_bytes, want, m * n);
    /* The engine's weights still read right: serialized again, the plan is the file. */
    kiln_blob *blob = NULL, *again = NULL;
    KT_OK(kiln_engine_serialize(built, &blob));
    KT_OK(kiln_engine_serialize(loaded, &again));
    KT_CHECK(blob && again && kiln_blob_size(blob) == kiln_blob_size(again) &&
             memcmp(kiln_blob_data(blob), kiln_blob_data(again), kiln_blob_size(blob)) == 0);
    kiln_blob_destroy(blob);
    kiln_blob_destroy(again);
    /* Built in-process: no mapping, nothing released, two contexts agree with the reference. */
    for (int r = 0; r < 2; r++) {
        KT_OK(kiln_engine_create_context(built, &cb));
        if (cb) run_check("built engine", cb, x, x_bytes, want, m * n);
        kiln_context_destroy(cb);
        cb = NULL;
    }
done:
    kiln_context_destroy(c1);
    kiln_context_destroy(c2);
    kiln_engine_destroy(loaded);
    kiln_engine_destroy(built);
    kiln_runtime_destroy(rt);
    kiln_builder_destroy(b);
    if (fd >= 0) remove(path);
    free(w);
    free(x);
    free(want);
}

int main(void) {
    kt_seed();
    if (access("/proc/self/smaps", R_OK) != 0) {
        printf("no /proc/self/smaps: skipped\n");
        return kt_summary("test_weights_release");
    }
    test_file_map_release();
    test_cpu_release_guard();
    test_engine_from_file();
    return kt_summary("test_weights_release");
}
