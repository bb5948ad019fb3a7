/*
 * mnist_api: TensorRT's sampleMNISTAPI through kiln's network-definition API.
 *
 *   mnist_api WEIGHTS.wts DIGIT.(pgm|npy) [--saveEngine=FILE]
 *
 * Builds LeNet layer by layer for the CPU, serializes the engine to bytes, deserializes it with
 * a runtime, runs it on one 28x28 digit and prints the ten class probabilities and the argmax.
 *
 *   data [1,1,28,28] float32, pixel values 0..255
 *   scale       (x - mean) * 0.0125         (uniform scale layer; 0.0125 as the sample)
 *   conv1       20 maps, 5x5, stride 1       -> [1,20,24,24]
 *   pool1       max 2x2, stride 2            -> [1,20,12,12]
 *   conv2       50 maps, 5x5, stride 1       -> [1,50,8,8]
 *   pool2       max 2x2, stride 2            -> [1,50,4,4]
 *   ip1         fully connected 500          -> [1,500]
 *   relu1
 *   ip2         fully connected 10           -> [1,10]
 *   prob        softmax over the 10 classes  (network output "prob")
 *
 * Weights file: TensorRT's .wts text format. The first token is the number of entries; each
 * entry is `name type count v1 ... vcount`, where type 0 means float32 and each value is the
 * IEEE-754 bit pattern of one float in hexadecimal (e.g. 3f800000 for 1.0). Entries: conv1filter
 * [20,1,5,5], conv1bias [20], conv2filter [50,20,5,5], conv2bias [50], ip1filter [500,800]
 * (800 = 50*4*4 in C order), ip1bias [500], ip2filter [10,500], ip2bias [10], and optionally
 * mean [1] (default 0). Filters are row-major, output channel first.
 *
 * Digit: a binary PGM (P5, 28x28, maxval <= 255) or a .npy of 784 float32 values (any shape,
 * C order), both holding pixel values 0..255.
 */
#include "kiln.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 28
#define W 28

static const float kScale = 0.0125f;

typedef struct entry {
    char name[64];
    int64_t count;
    float *values;
} entry;

typedef struct weights {
    int count;
    entry *entries;
} weights;

static void free_weights(weights *w) {
    for (int i = 0; i < w->count; i++) free(w->entries[i].values);
    free(w->entries);
}

static int read_weights(const char *path, weights *w) {
    memset(w, 0, sizeof *w);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mnist_api: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    int n;
    if (fscanf(f, "%d", &n) != 1 || n <= 0 || n > 64) {
        fprintf(stderr, "mnist_api: '%s': expected the number of entries (1..64) first\n", path);
        fclose(f);
        return -1;
    }
    w->entries = calloc((size_t)n, sizeof *w->entries);
    if (!w->entries) {
        fclose(f);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        entry *e = &w->entries[i];
        int type;
        long long count;
        if (fscanf(f, "%63s %d %lld", e->name, &type, &count) != 3) {
            fprintf(stderr, "mnist_api: '%s': entry %d: expected 'name type count'\n", path, i);
            goto fail;
        }
        if (type != 0 || count <= 0 || count > (1 << 24)) {
            fprintf(stderr, "mnist_api: '%s': entry '%s': type %d count %lld (expected type 0 = float32, count 1..2^24)\n",
                    path, e->name, type, count);
            goto fail;
        }
        e->count = count;
        e->values = malloc((size_t)count * sizeof(float));
        w->count = i + 1;
        if (!e->values) goto fail;
        for (long long k = 0; k < count; k++) {
            unsigned int bits;
            if (fscanf(f, "%x", &bits) != 1) {
                fprintf(stderr, "mnist_api: '%s': entry '%s' ends after %lld of %lld values\n", path, e->name, k,
                        count);
                goto fail;
            }
            memcpy(&e->values[k], &bits, sizeof bits);
        }
    }
    fclose(f);
    return 0;
fail:
    fclose(f);
    free_weights(w);
    memset(w, 0, sizeof *w);
    return -1;
}

/* The weights named `name`, which must hold `count` floats. */
static int get(const weights *w, const char *name, int64_t count, kiln_weights *out) {
    for (int i = 0; i < w->count; i++) {
        if (strcmp(w->entries[i].name, name) != 0) continue;
        if (w->entries[i].count != count) {
            fprintf(stderr, "mnist_api: weights '%s' hold %lld values, expected %lld\n", name,
                    (long long)w->entries[i].count, (long long)count);
            return -1;
        }
        out->dtype = KILN_FLOAT32;
        out->values = w->entries[i].values;
        out->count = count;
        return 0;
    }
    fprintf(stderr, "mnist_api: the weights file has no entry '%s'\n", name);
    return -1;
}

static int read_file(const char *path, unsigned char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mnist_api: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 14, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *grown = realloc(buf, cap *= 2);
        if (!grown) free(buf);
        buf = grown;
    }
    fclose(f);
    if (!buf) return -1;
    *data = buf;
    *size = n;
    return 0;
}

/* Binary PGM: "P5 <w> <h> <maxval>" (with # comments) then w*h bytes. */
static int read_pgm(const unsigned char *d, size_t size, float *pixels) {
    size_t p = 2;
    long fields[3];
    if (size < 2 || d[0] != 'P' || d[1] != '5') return -1;
    for (int k = 0; k < 3; k++) {
        while (p < size && (d[p] == ' ' || d[p] == '\n' || d[p] == '\r' || d[p] == '\t' || d[p] == '#')) {
            if (d[p] == '#')
                while (p < size && d[p] != '\n') p++;
            else
                p++;
        }
        if (p >= size || d[p] < '0' || d[p] > '9') return -1;
        fields[k] = 0;
        while (p < size && d[p] >= '0' && d[p] <= '9' && fields[k] < 100000) fields[k] = fields[k] * 10 + (d[p++] - '0');
    }
    p++; /* the single whitespace before the pixels */
    if (fields[0] != W || fields[1] != H || fields[2] <= 0 || fields[2] > 255 || size < p + H * W) return -1;
    for (int i = 0; i < H * W; i++) pixels[i] = (float)d[p + (size_t)i];
    return 0;
}

/* .npy of 784 little-endian float32 values in C order. */
static int read_npy(const unsigned char *d, size_t size, float *pixels) {
    if (size < 10 || memcmp(d, "\x93NUMPY", 6) != 0) return -1;
    size_t start = d[6] == 1 ? 10 : 12;
    if (size < start) return -1;
    size_t hlen = d[6] == 1 ? (size_t)(d[8] | d[9] << 8)
                            : (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
    if (!hlen || hlen > 4096 || start + hlen > size) return -1;
    char header[4097];
    memcpy(header, d + start, hlen);
    header[hlen] = 0;
    const char *q = strstr(header, "'shape': (");
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False") || !q) return -1;
    long long count = 1;
    for (q += 10; *q && *q != ')';) {
        if (*q >= '0' && *q <= '9') {
            char *end;
            count *= strtoll(q, &end, 10);
            q = end;
        } else {
            q++;
        }
    }
    if (count != H * W || size - start - hlen != H * W * sizeof(float)) return -1;
    memcpy(pixels, d + start + hlen, H * W * sizeof(float));
    return 0;
}

static void log_stderr(void *user, kiln_log_level level, const char *message) {
    (void)user;
    fprintf(stderr, "[kiln] %s: %s\n", level == KILN_LOG_ERROR ? "error" : "warning", message);
}

#define CHECK(call)                                                                                            \
    do {                                                                                                       \
        kiln_status st_ = (call);                                                                              \
        if (st_ != KILN_OK) {                                                                                  \
            fprintf(stderr, "mnist_api: %s failed: %s (%s)\n", #call, kiln_last_error(), kiln_status_name(st_)); \
            goto done;                                                                                         \
        }                                                                                                      \
    } while (0)

/* Adds the layers of LeNet; returns the softmax output or NULL. */
static kiln_tensor *define_network(kiln_network *net, const weights *w, float mean) {
    kiln_weights k, b, none = {KILN_FLOAT32, NULL, 0};
    kiln_layer *layer = NULL;
    kiln_tensor *x = NULL;
    kiln_dims dims = {4, {1, 1, H, W}};
    CHECK(kiln_network_add_input(net, "data", KILN_FLOAT32, &dims, &x));

    float shift = -mean * kScale, scale = kScale;
    kiln_weights shift_w = {KILN_FLOAT32, &shift, 1}, scale_w = {KILN_FLOAT32, &scale, 1};
    CHECK(kiln_network_add_scale(net, x, KILN_SCALE_UNIFORM, 1, shift_w, scale_w, none, &layer));
    CHECK(kiln_layer_set_name(layer, "scale"));
    x = kiln_layer_output(layer, 0);

    static const struct {
        const char *name, *filter, *bias;
        int32_t maps, channels;
    } convs[2] = {{"conv1", "conv1filter", "conv1bias", 20, 1}, {"conv2", "conv2filter", "conv2bias", 50, 20}};
    for (int i = 0; i < 2; i++) {
        kiln_convolution_desc conv = {.struct_size = sizeof conv, .nb_output_maps = convs[i].maps, .nb_spatial_dims = 2,
                                      .kernel = {5, 5}, .stride = {1, 1}};
        if (get(w, convs[i].filter, (int64_t)convs[i].maps * convs[i].channels * 25, &k) ||
            get(w, convs[i].bias, convs[i].maps, &b))
            return NULL;
        CHECK(kiln_network_add_convolution(net, x, &conv, k, b, &layer));
        CHECK(kiln_layer_set_name(layer, convs[i].name));
        x = kiln_layer_output(layer, 0);

        kiln_pooling_desc pool = {.struct_size = sizeof pool, .type = KILN_POOL_MAX, .nb_spatial_dims = 2,
                                  .window = {2, 2}, .stride = {2, 2}};
        CHECK(kiln_network_add_pooling(net, x, &pool, &layer));
        CHECK(kiln_layer_set_name(layer, i == 0 ? "pool1" : "pool2"));
        x = kiln_layer_output(layer, 0);
    }

    if (get(w, "ip1filter", 500 * 800, &k) || get(w, "ip1bias", 500, &b)) return NULL;
    CHECK(kiln_network_add_fully_connected(net, x, 500, k, b, &layer));
    CHECK(kiln_layer_set_name(layer, "ip1"));
    CHECK(kiln_network_add_activation(net, kiln_layer_output(layer, 0), KILN_ACT_RELU, 0, 0, &layer));
    CHECK(kiln_layer_set_name(layer, "relu1"));
    x = kiln_layer_output(layer, 0);

    if (get(w, "ip2filter", 10 * 500, &k) || get(w, "ip2bias", 10, &b)) return NULL;
    CHECK(kiln_network_add_fully_connected(net, x, 10, k, b, &layer));
    CHECK(kiln_layer_set_name(layer, "ip2"));
    CHECK(kiln_network_add_softmax(net, kiln_layer_output(layer, 0), 1, 0, &layer));
    CHECK(kiln_layer_set_name(layer, "prob"));
    x = kiln_layer_output(layer, 0);
    CHECK(kiln_tensor_set_name(x, "prob"));
    CHECK(kiln_network_mark_output(net, x));
    return x;
done:
    return NULL;
}

int main(int argc, char **argv) {
    const char *save_path = NULL, *paths[2] = {NULL, NULL};
    int nb_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--saveEngine=", 13) == 0) {
            save_path = argv[i] + 13;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: mnist_api WEIGHTS.wts DIGIT.(pgm|npy) [--saveEngine=FILE]\n");
            return 0;
        } else if (argv[i][0] == '-' || nb_paths == 2) {
            fprintf(stderr, "mnist_api: unexpected argument '%s'\n", argv[i]);
            return 2;
        } else {
            paths[nb_paths++] = argv[i];
        }
    }
    if (nb_paths != 2) {
        fprintf(stderr, "usage: mnist_api WEIGHTS.wts DIGIT.(pgm|npy) [--saveEngine=FILE]\n");
        return 2;
    }

    int rc = 1;
    weights w = {0, NULL};
    unsigned char *digit = NULL;
    size_t digit_size = 0;
    float pixels[H * W];
    kiln_builder *builder = NULL;
    kiln_network *net = NULL;
    kiln_builder_config *config = NULL;
    kiln_engine *built = NULL, *engine = NULL;
    kiln_blob *plan = NULL;
    kiln_runtime *runtime = NULL;
    kiln_context *ctx = NULL;

    if (read_weights(paths[0], &w) || read_file(paths[1], &digit, &digit_size)) goto done;
    size_t len = strlen(paths[1]);
    int is_pgm = len >= 4 && strcmp(paths[1] + len - 4, ".pgm") == 0;
    if ((is_pgm ? read_pgm : read_npy)(digit, digit_size, pixels)) {
        fprintf(stderr, "mnist_api: '%s' is not a %s\n", paths[1],
                is_pgm ? "binary 28x28 PGM (P5, maxval <= 255)" : ".npy of 784 little-endian float32 values");
        goto done;
    }
    float mean = 0;
    kiln_weights mean_w;
    for (int i = 0; i < w.count; i++)
        if (strcmp(w.entries[i].name, "mean") == 0) {
            if (get(&w, "mean", 1, &mean_w)) goto done;
            mean = *(const float *)mean_w.values;
        }

    kiln_logger logger = {log_stderr, NULL, KILN_LOG_WARNING};
    kiln_builder_options bopts = {.struct_size = sizeof bopts, .logger = &logger};
    CHECK(kiln_builder_create(&bopts, &builder));
    CHECK(kiln_network_create(builder, &net));
    if (!define_network(net, &w, mean)) goto done;
    CHECK(kiln_builder_config_create(builder, &config));
    CHECK(kiln_builder_config_set_device(config, KILN_DEVICE_CPU));
    CHECK(kiln_builder_build_engine(builder, net, config, &built));
    CHECK(kiln_engine_serialize(built, &plan));
    printf("Built LeNet: %d layers, plan of %zu bytes\n", kiln_engine_num_layers(built), kiln_blob_size(plan));

    kiln_runtime_options ropts = {.struct_size = sizeof ropts, .logger = &logger};
    CHECK(kiln_runtime_create(&ropts, &runtime));
    CHECK(kiln_runtime_deserialize_engine(runtime, kiln_blob_data(plan), kiln_blob_size(plan), &engine));
    if (save_path) {
        CHECK(kiln_engine_save(engine, save_path));
        printf("Engine saved to %s\n", save_path);
    }
    CHECK(kiln_engine_create_context(engine, &ctx));
    float prob[10];
    CHECK(kiln_context_set_tensor_address(ctx, "data", pixels, sizeof pixels));
    CHECK(kiln_context_set_tensor_address(ctx, "prob", prob, sizeof prob));
    CHECK(kiln_context_execute(ctx));

    int best = 0;
    for (int i = 0; i < 10; i++) {
        printf("prob[%d] = %.9g\n", i, prob[i]);
        if (prob[i] > prob[best]) best = i;
    }
    printf("argmax = %d\n", best);
    rc = 0;
done:
    kiln_context_destroy(ctx);
    kiln_engine_destroy(engine);
    kiln_runtime_destroy(runtime);
    kiln_blob_destroy(plan);
    kiln_engine_destroy(built);
    kiln_builder_config_destroy(config);
    kiln_network_destroy(net);
    kiln_builder_destroy(builder);
    free_weights(&w);
    free(digit);
    return rc;
}
