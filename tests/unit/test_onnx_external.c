/* Borrowed weights: a model whose initializer lives in a sparse external data file of more
 * than 2 GiB is imported, built and run without its weights being copied (the constants point
 * into the mapped file, which the network and every engine built from it keep alive), while
 * unaligned data and data inside a caller's buffer are still copied. Also the reference
 * counting of kiln__shared through clone, set_weights and destroy. */
#include "kiln.h"
#include "kt.h"
#include "network/ir.h"
#include "onnx_writer.h"
#include "runtime/engine.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- ONNX messages */

enum { FLOAT = 1, INT64 = 7 };

static void kv(pb *t, const char *key, const char *value) {
    pb e = {0};
    pb_str(&e, 1, key);
    pb_str(&e, 2, value);
    pb_msg(t, 13, &e);
}

/* An initializer in `location` at `offset` (external_data, data_location EXTERNAL). */
static void external_tensor(pb *graph, const char *name, const int64_t *dims, int rank, const char *location,
                            uint64_t offset, uint64_t length) {
    pb t = {0};
    for (int i = 0; i < rank; i++) pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, FLOAT);
    pb_str(&t, 8, name);
    char num[32];
    kv(&t, "location", location);
    snprintf(num, sizeof num, "%llu", (unsigned long long)offset);
    kv(&t, "offset", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)length);
    kv(&t, "length", num);
    pb_int(&t, 14, 1);
    pb_msg(graph, 5, &t);
}

static void node(pb *graph, const char *op, const char *const *inputs, int nb_inputs, const char *output) {
    pb n = {0};
    for (int i = 0; i < nb_inputs; i++) pb_str(&n, 1, inputs[i]);
    pb_str(&n, 2, output);
    pb_str(&n, 3, output);
    pb_str(&n, 4, op);
    pb_msg(graph, 1, &n);
}

/* Wraps graph g (consumed) into a ModelProto of opset 13, written to dir/model.onnx and
 * returned in *out. */
static bool write_file_model(const char *dir, pb *g, pb *out) {
    pb m = pb_model(g, 13, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(m.data, 1, m.size, f) == m.size;
    if (f) fclose(f);
    KT_CHECK(ok);
    *out = m;
    return ok;
}

/* ---------------------------------------------------------------- the big model */

#define COLS 16
#define ROWS (((int64_t)1 << 25) + 1) /* ROWS x COLS float32 = 2 GiB + 64 bytes */
#define W_OFFSET ((uint64_t)4096)     /* 64-byte aligned: borrowed */
#define W_BYTES ((uint64_t)ROWS * COLS * sizeof(float))
#define U_OFFSET (W_OFFSET + W_BYTES + 4) /* not aligned: copied */
#define U_COUNT 4
#define FILE_BYTES (U_OFFSET + U_COUNT * sizeof(float))

/* Rows of W holding known values (the rest of the sparse file reads as zeros): the first,
 * one in the middle, and the last, which lies past 2 GiB into the file. */
static const int64_t known_rows[] = {0, 12345, ROWS - 1};

static float known_value(int k, int c) { return (float)(k * 100 + c + 1); }

static float w_value(int64_t row, int c) {
    for (int k = 0; k < 3; k++)
        if (known_rows[k] == row) return known_value(k, c);
    return 0.0f;
}

static float u_value(int i) { return 0.25f * (float)(i + 1); }

/* Writes w.bin (sparse) and model.onnx into dir; false (with the reason printed) when the
 * file system cannot hold the sparse file. */
static bool write_model(const char *dir, pb *model_out) {
    char path[512];
    snprintf(path, sizeof path, "%s/w.bin", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) {
        printf("SKIP: cannot create %s\n", path);
        return false;
    }
    signal(SIGXFSZ, SIG_IGN); /* past a file size limit: EFBIG and a skip, not a kill */
    bool ok = ftruncate(fd, (off_t)FILE_BYTES) == 0;
    struct stat sb;
    /* A file system without holes would really allocate 2 GiB: skip rather than fill the disk. */
    if (ok && (fstat(fd, &sb) != 0 || (uint64_t)sb.st_blocks * 512 > ((uint64_t)64 << 20))) ok = false;
    for (int k = 0; ok && k < 3; k++) {
        float row[COLS];
        for (int c = 0; c < COLS; c++) row[c] = known_value(k, c);
        off_t at = (off_t)(W_OFFSET + (uint64_t)known_rows[k] * COLS * sizeof(float));
        ok = pwrite(fd, row, sizeof row, at) == (ssize_t)sizeof row;
    }
    float u[U_COUNT];
    for (int i = 0; i < U_COUNT; i++) u[i] = u_value(i);
    if (ok) ok = pwrite(fd, u, sizeof u, (off_t)U_OFFSET) == (ssize_t)sizeof u;
    close(fd);
    if (!ok) {
        printf("SKIP: the file system under %s cannot hold a sparse %llu-byte file\n", dir,
               (unsigned long long)FILE_BYTES);
        return false;
    }

    /* rows = Gather(W, idx) at run time; last = Slice(W) folded at import; u2 = U + U. */
    pb g = {0};
    int64_t wd[] = {ROWS, COLS}, ud[] = {U_COUNT}, one[] = {1}, three[] = {3};
    external_tensor(&g, "W", wd, 2, "w.bin", W_OFFSET, W_BYTES);
    external_tensor(&g, "U", ud, 1, "w.bin", U_OFFSET, U_COUNT * sizeof(float));
    int64_t starts = ROWS - 1, ends = ROWS, axes = 0;
    pb_tensor(&g, 5, "starts", INT64, one, 1, &starts, 8);
    pb_tensor(&g, 5, "ends", INT64, one, 1, &ends, 8);
    pb_tensor(&g, 5, "axes", INT64, one, 1, &axes, 8);
    node(&g, "Gather", (const char *[]){"W", "idx"}, 2, "rows");
    node(&g, "Slice", (const char *[]){"W", "starts", "ends", "axes"}, 4, "last");
    node(&g, "Add", (const char *[]){"U", "U"}, 2, "u2");
    pb_value_info(&g, 11, "idx", INT64, three, 1, NULL);
    int64_t rd[] = {3, COLS}, ld[] = {1, COLS};
    pb_value_info(&g, 12, "rows", FLOAT, rd, 2, NULL);
    pb_value_info(&g, 12, "last", FLOAT, ld, 2, NULL);
    pb_value_info(&g, 12, "u2", FLOAT, ud, 1, NULL);
    return write_file_model(dir, &g, model_out);
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static const kiln_layer *constant_named(const kiln_network *net, const char *name) {
    for (int32_t i = 0; i < kiln_network_num_layers(net); i++) {
        const kiln_layer *l = kiln_network_layer(net, i);
        if (l->type == KILN_LAYER_CONSTANT && strcmp(l->name, name) == 0) return l;
    }
    return NULL;
}

/* Runs the engine with idx and checks all three outputs. */
static void check_engine(kiln_engine *e, const char *what) {
    kiln_context *c = NULL;
    KT_OK(kiln_engine_create_context(e, &c));
    if (!c) return;
    int64_t idx[3] = {ROWS - 1, 777, 0};
    KT_OK(kiln_context_set_tensor_address(c, "idx", idx, sizeof idx));
    KT_OK(kiln_context_execute(c));
    void *rows = NULL, *last = NULL, *u2 = NULL;
    KT_OK(kiln_context_get_tensor_address(c, "rows", &rows));
    KT_OK(kiln_context_get_tensor_address(c, "last", &last));
    KT_OK(kiln_context_get_tensor_address(c, "u2", &u2));
    float want_rows[3 * COLS], want_last[COLS], want_u2[U_COUNT];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < COLS; k++) want_rows[r * COLS + k] = w_value(idx[r], k);
    for (int k = 0; k < COLS; k++) want_last[k] = w_value(ROWS - 1, k);
    for (int i = 0; i < U_COUNT; i++) want_u2[i] = 2 * u_value(i);
    if (rows && last && u2) {
        int bad = 0;
        bad += !kt_close(what, rows, want_rows, 3 * COLS, 0, 0);
        bad += !kt_close(what, last, want_last, COLS, 0, 0);
        bad += !kt_close(what, u2, want_u2, U_COUNT, 0, 0);
        if (bad) fprintf(stderr, "%s: wrong values\n", what);
    } else {
        KT_CHECK(!"an output has no address");
    }
    kiln_context_destroy(c);
}

static void test_big_external(kiln_builder *b, const char *dir) {
    pb m = {0};
    if (!write_model(dir, &m)) {
        free(m.data);
        return;
    }
    long before = peak_rss_kib();
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);

    /* From the file: W (aligned, external) is borrowed, U (unaligned) copied. */
    kiln_network *net = NULL;
    KT_OK(kiln_onnx_parse_file(b, path, &net));
    if (net) {
        const kiln_layer *w = constant_named(net, "W");
        KT_CHECK(w && w->weights_owner && w->weights_bytes == W_BYTES && ((uintptr_t)w->weights & 63) == 0);
        const kiln_layer *u = constant_named(net, "U");
        KT_CHECK(!u || !u->weights_owner); /* U may have folded into u2 */
        /* The Slice was computed at import from one row of the mapping. */
        const kiln_layer *last = constant_named(net, "last");
        KT_CHECK(last && !last->weights_owner);
    }
    kiln_builder_config *cfg = NULL;
    KT_OK(kiln_builder_config_create(b, &cfg));
    kiln_engine *e1 = NULL, *e2 = NULL;
    if (net && cfg) {
        KT_OK(kiln_builder_build_engine(b, net, cfg, &e1));
        KT_OK(kiln_builder_build_engine(b, net, cfg, &e2));
        /* The engines read W in place too. */
        const kiln_layer *w = constant_named(net, "W");
        for (int k = 0; k < 2; k++) {
            kiln_engine *e = k ? e2 : e1;
            const kiln_layer *ew = e ? constant_named(e->net, "W") : NULL;
            KT_CHECK(w && ew && ew->weights == w->weights && ew->weights_owner == w->weights_owner);
        }
    }
    /* The engines share the mapping: it outlives the network and the other engine. */
    kiln_network_destroy(net);
    if (e1) check_engine(e1, "engine 1 after the network is gone");
    kiln_engine_destroy(e1);
    if (e2) check_engine(e2, "engine 2 after engine 1 is gone");
    kiln_engine_destroy(e2);

    /* From memory: the caller's buffer is freed right after parsing, so the raw_data
     * initializers must have been copied; external W is still borrowed. */
    uint8_t *bytes = malloc(m.size);
    memcpy(bytes, m.data, m.size);
    net = NULL;
    KT_OK(kiln_onnx_parse(b, bytes, m.size, dir, &net));
    free(bytes);
    if (net) {
        const kiln_layer *w = constant_named(net, "W");
        KT_CHECK(w && w->weights_owner);
        kiln_engine *e = NULL;
        KT_OK(kiln_builder_build_engine(b, net, cfg, &e));
        kiln_network_destroy(net);
        if (e) check_engine(e, "engine from a model in memory");
        kiln_engine_destroy(e);
    }
    kiln_builder_config_destroy(cfg);
    free(m.data);

    long grown_mib = (peak_rss_kib() - before) / 1024;
    printf("peak RSS grew by %ld MiB for a %llu MiB weight file\n", grown_mib,
           (unsigned long long)(FILE_BYTES >> 20));
    KT_CHECK(grown_mib < 256);
}

/* ---------------------------------------------------------------- reference counting */

static int releases;
static void count_release(void *ctx) {
    (void)ctx;
    releases++;
}

static void test_refcount(kiln_builder *b) {
    static _Alignas(64) float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    kiln__shared owner;
    kiln__shared_init(&owner, count_release, NULL);
    releases = 0;
    kiln_network *net = NULL;
    KT_OK(kiln_network_create(b, &net));
    if (!net) return;
    kiln_dims d = {1, {8}};
    float zeros[8] = {0};
    kiln_layer *l = NULL, *l2 = NULL;
    KT_OK(kiln_network_add_constant(net, &d, (kiln_weights){KILN_FLOAT32, zeros, 8}, &l));
    KT_OK(kiln_network_add_constant(net, &d, (kiln_weights){KILN_FLOAT32, zeros, 8}, &l2));
    if (!l || !l2) {
        kiln_network_destroy(net);
        return;
    }
    kiln__layer_borrow_weights(l, data, sizeof data, &owner);
    kiln__layer_borrow_weights(l2, data, sizeof data, &owner);
    KT_CHECK(owner.refs == 3 && l->weights == (void *)data);
    /* Borrowing again from the same owner keeps one reference for the layer. */
    kiln__layer_borrow_weights(l2, data, sizeof data, &owner);
    KT_CHECK(owner.refs == 3);
    kiln_network *copy = NULL;
    KT_OK(kiln__network_clone(net, &copy));
    KT_CHECK(owner.refs == 5);
    if (copy) KT_CHECK(copy->layers[0]->weights == (void *)data && copy->layers[0]->weights_owner == &owner);
    /* A writer replaces borrowed values with an owned copy. */
    KT_OK(kiln__layer_set_weights(l, data, sizeof data));
    KT_CHECK(owner.refs == 4 && !l->weights_owner && l->weights != (void *)data);
    KT_CHECK(memcmp(l->weights, data, sizeof data) == 0);
    kiln_network_destroy(copy);
    KT_CHECK(owner.refs == 2);
    kiln_network_destroy(net);
    KT_CHECK(owner.refs == 1 && releases == 0);
    kiln__shared_unref(&owner);
    KT_CHECK(releases == 1);
}

/* ---------------------------------------------------------------- allocation failures */

/* Counts blocks and fails allocation number fail_at (1-based; 0: never). */
typedef struct fault_alloc {
    long count, fail_at, live;
    bool failed;
} fault_alloc;

static void *fault_malloc(void *user, size_t size, size_t alignment) {
    fault_alloc *fa = user;
    long n = __atomic_add_fetch(&fa->count, 1, __ATOMIC_SEQ_CST);
    if (n == fa->fail_at) {
        fa->failed = true;
        return NULL;
    }
    void *p = NULL;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if (posix_memalign(&p, alignment, size) != 0) return NULL;
    __atomic_add_fetch(&fa->live, 1, __ATOMIC_SEQ_CST);
    return p;
}

static void fault_free(void *user, void *ptr) {
    fault_alloc *fa = user;
    if (!ptr) return;
    __atomic_sub_fetch(&fa->live, 1, __ATOMIC_SEQ_CST);
    free(ptr);
}

#define SMALL_ROWS 4
#define SMALL_W_OFFSET 64
#define SMALL_U_OFFSET (SMALL_W_OFFSET + SMALL_ROWS * COLS * 4 + 4)

static float small_w(int64_t r, int c) { return (float)(r * COLS + c) - 20.0f; }

/* dir/model.onnx with rows = Gather(W, idx), u2 = U + U; W (borrowed) and U (copied) in
 * dir/w.bin. */
static bool write_small_model(const char *dir) {
    float file[(SMALL_U_OFFSET + U_COUNT * 4) / 4 + 1];
    memset(file, 0, sizeof file);
    uint8_t *base = (uint8_t *)file;
    for (int64_t r = 0; r < SMALL_ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            float v = small_w(r, c);
            memcpy(base + SMALL_W_OFFSET + (r * COLS + c) * 4, &v, 4);
        }
    for (int i = 0; i < U_COUNT; i++) {
        float v = u_value(i);
        memcpy(base + SMALL_U_OFFSET + i * 4, &v, 4);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/w.bin", dir);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(base, 1, SMALL_U_OFFSET + U_COUNT * 4, f) == SMALL_U_OFFSET + U_COUNT * 4;
    if (f) fclose(f);
    KT_CHECK(ok);
    pb g = {0};
    int64_t wd[] = {SMALL_ROWS, COLS}, ud[] = {U_COUNT}, three[] = {3}, rd[] = {3, COLS};
    external_tensor(&g, "W", wd, 2, "w.bin", SMALL_W_OFFSET, SMALL_ROWS * COLS * 4);
    external_tensor(&g, "U", ud, 1, "w.bin", SMALL_U_OFFSET, U_COUNT * 4);
    node(&g, "Gather", (const char *[]){"W", "idx"}, 2, "rows");
    node(&g, "Add", (const char *[]){"U", "U"}, 2, "u2");
    pb_value_info(&g, 11, "idx", INT64, three, 1, NULL);
    pb_value_info(&g, 12, "rows", FLOAT, rd, 2, NULL);
    pb_value_info(&g, 12, "u2", FLOAT, ud, 1, NULL);
    pb m = {0};
    ok = write_file_model(dir, &g, &m) && ok;
    free(m.data);
    return ok;
}

/* Parse, build, drop the network, run; a mismatch is KILN_INTERNAL_ERROR. */
static kiln_status small_flow(const kiln_allocator *allocator, const char *path) {
    kiln_builder_options bo = {sizeof bo, allocator, NULL};
    kiln_builder *b = NULL;
    kiln_network *net = NULL;
    kiln_builder_config *cfg = NULL;
    kiln_engine *e = NULL;
    kiln_context *c = NULL;
    kiln_status st = kiln_builder_create(&bo, &b);
    if (st == KILN_OK) st = kiln_onnx_parse_file(b, path, &net);
    if (st == KILN_OK) st = kiln_builder_config_create(b, &cfg);
    if (st == KILN_OK) st = kiln_builder_build_engine(b, net, cfg, &e);
    kiln_network_destroy(net);
    if (st == KILN_OK) st = kiln_engine_create_context(e, &c);
    int64_t idx[3] = {3, 0, 2};
    if (st == KILN_OK) st = kiln_context_set_tensor_address(c, "idx", idx, sizeof idx);
    if (st == KILN_OK) st = kiln_context_execute(c);
    void *rows = NULL, *u2 = NULL;
    if (st == KILN_OK) st = kiln_context_get_tensor_address(c, "rows", &rows);
    if (st == KILN_OK) st = kiln_context_get_tensor_address(c, "u2", &u2);
    for (int r = 0; st == KILN_OK && r < 3; r++)
        for (int k = 0; k < COLS; k++)
            if (((float *)rows)[r * COLS + k] != small_w(idx[r], k)) st = KILN_INTERNAL_ERROR;
    for (int i = 0; st == KILN_OK && i < U_COUNT; i++)
        if (((float *)u2)[i] != 2 * u_value(i)) st = KILN_INTERNAL_ERROR;
    kiln_context_destroy(c);
    kiln_engine_destroy(e);
    kiln_builder_config_destroy(cfg);
    kiln_builder_destroy(b);
    return st;
}

/* Every allocation of the borrowing flow failing in turn: KILN_OUT_OF_MEMORY, nothing leaked
 * (the model owner included), and the flow succeeds once nothing fails. */
static void test_fault_injection(const char *dir) {
    if (!write_small_model(dir)) return;
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    fault_alloc fa = {0};
    kiln_allocator a = {fault_malloc, fault_free, &fa};
    int bad = 0;
    long n;
    for (n = 1; n < 100000 && bad <= 10; n++) {
        fa.count = 0;
        fa.fail_at = n;
        fa.failed = false;
        kiln_status st = small_flow(&a, path);
        if (fa.live != 0) {
            fprintf(stderr, "allocation %ld failing leaked %ld blocks\n", n, fa.live);
            bad++;
        }
        if (!fa.failed) {
            KT_STATUS(st, KILN_OK);
            break;
        }
        if (st != KILN_OUT_OF_MEMORY) {
            fprintf(stderr, "allocation %ld failing gave %s: %s\n", n, kiln_status_name(st), kiln_last_error());
            bad++;
        }
    }
    printf("fault injection: %ld allocations exercised\n", n);
    KT_CHECK(bad == 0);
    KT_CHECK(n > 20);
}

static void remove_model(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/w.bin", dir);
    unlink(path);
}

int main(void) {
    kt_seed();
    kiln_builder *b = NULL;
    KT_OK(kiln_builder_create(NULL, &b));
    if (!b) return kt_summary("test_onnx_external");
    test_refcount(b);
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/kiln_external_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir)) {
        test_fault_injection(dir);
        remove_model(dir);
        test_big_external(b, dir);
        remove_model(dir);
        rmdir(dir);
    } else {
        printf("SKIP: cannot make a folder under %s\n", tmp && *tmp ? tmp : "/tmp");
    }
    kiln_builder_destroy(b);
    return kt_summary("test_onnx_external");
}
