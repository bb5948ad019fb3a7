/* kiln run: one execution of an engine; prints and exports the outputs. */
#include "cli.h"
#include "npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char help[] =
    "usage: kiln run --loadEngine=FILE [options]\n"
    "\n"
    "Runs an engine once and prints a summary of each output (dtype, shape, min/max/mean, first\n"
    "values).\n"
    "\n"
    "  --loadEngine=FILE            the engine plan\n"
    "  --loadInputs=name:FILE.npy[,name2:FILE2.npy]\n"
    "                               input data (dtype and shape must match); other inputs get\n"
    "                               random data: floats uniform in [-1, 1), integers in [0, 4)\n"
    "  --seed=N                     seed of the random inputs (default: from the clock; printed)\n"
    "  --shapes=name:1x3x224x224[,...]\n"
    "                               shapes of dynamic inputs (default: the .npy's shape, else the\n"
    "                               profile's opt shape)\n"
    "  --exportOutput=DIR           write each output to DIR/<name>.npy in its own dtype (characters\n"
    "                               other than A-Z a-z 0-9 . _ - in the name become '_')\n"
    "  --threads=N                  CPU worker threads (default: one per core)\n";

/* The file name of an output: sanitized, and made unique among the outputs. */
static void output_file_name(const cli_ios *ios, int index, char *buf, size_t size) {
    const char *name = ios->items[index].name;
    size_t n = 0;
    for (; name[n] && n + 1 < size; n++) {
        char c = name[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
        buf[n] = ok ? c : '_';
    }
    buf[n] = 0;
    /* "." and ".." would be directories once ".npy" is cut off by a reader; keep them plain */
    if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0) memset(buf, '_', n);
    for (int j = 0; j < index; j++) {
        if (ios->items[j].mode != KILN_IO_OUTPUT) continue;
        char other[KILN_MAX_NAME + 16];
        output_file_name(ios, j, other, sizeof other);
        if (strcmp(other, buf) == 0) {
            snprintf(buf + n, size - n, "_%d", index);
            return;
        }
    }
}

static void print_summary(const cli_io *io) {
    int64_t count = cli_volume(&io->dims);
    char shape[160];
    cli_format_dims(&io->dims, shape, sizeof shape);
    printf("Output '%s': %s %s", io->name, kiln_dtype_name(io->dtype), shape);
    if (!npy_descr(io->dtype)) {
        printf(" (values not shown for this dtype)\n");
        return;
    }
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t nans = 0;
    for (int64_t i = 0; i < count; i++) {
        double v = cli_element(io->dtype, io->host, i);
        if (isnan(v)) {
            nans++;
            continue;
        }
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        sum += v;
    }
    if (count > nans)
        printf(" min=%.6g max=%.6g mean=%.6g", mn, mx, sum / (double)(count - nans));
    if (nans) printf(" nan=%lld", (long long)nans);
    printf(" [");
    for (int64_t i = 0; i < count && i < 6; i++) printf("%s%.6g", i ? ", " : "", cli_element(io->dtype, io->host, i));
    printf("%s]\n", count > 6 ? ", ..." : "");
}

static int export_outputs(const cli_ios *ios, const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        cli_error("cannot create directory '%s': %s", dir, strerror(errno));
        return CLI_FAIL;
    }
    for (int i = 0; i < ios->count; i++) {
        const cli_io *io = &ios->items[i];
        if (io->mode != KILN_IO_OUTPUT) continue;
        char file[KILN_MAX_NAME + 16], path[4096], err[1024];
        output_file_name(ios, i, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s.npy", dir, file);
        if (!npy_descr(io->dtype)) {
            cli_error("output '%s' is %s, which .npy cannot hold", io->name, kiln_dtype_name(io->dtype));
            return CLI_FAIL;
        }
        if (io->dtype == KILN_BFLOAT16)
            cli_warn("output '%s' is bfloat16: written as raw uint16 bits ('<u2')", io->name);
        if (npy_write(path, io->dtype, &io->dims, io->host, err, sizeof err)) {
            cli_error("%s", err);
            return CLI_FAIL;
        }
        printf("Wrote %s\n", path);
    }
    return CLI_OK;
}

int cmd_run(int argc, char **argv) {
    const char *engine_path = NULL, *loads = NULL, *export_dir = NULL, *shapes = NULL, *threads_text = NULL,
               *seed_text = NULL;
    cli_opt opts[] = {{"loadEngine", &engine_path, NULL}, {"loadInputs", &loads, NULL},
                      {"exportOutput", &export_dir, NULL}, {"shapes", &shapes, NULL},
                      {"threads", &threads_text, NULL},     {"seed", &seed_text, NULL}};
    int rc = cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc < 0) {
        fputs(help, stdout);
        return CLI_OK;
    }
    if (rc) return rc;
    if (!engine_path) {
        cli_error("--loadEngine=FILE is required (see kiln run --help)");
        return CLI_USAGE;
    }
    int64_t threads = 0, seed;
    if (threads_text && cli_parse_i64("threads", threads_text, 0, 4096, &threads)) return CLI_USAGE;
    if (seed_text) {
        if (cli_parse_i64("seed", seed_text, 0, INT64_MAX, &seed)) return CLI_USAGE;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (int64_t)(((uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec) & INT64_MAX);
    }

    kiln_runtime *runtime = NULL;
    kiln_engine *engine = NULL;
    kiln_context *ctx = NULL;
    void *stream = NULL;
    cli_ios ios = {0, NULL, KILN_DEVICE_CPU};
    if (cli_load_engine(engine_path, (int32_t)threads, &runtime, &engine)) return CLI_FAIL;
    kiln_device_type device = kiln_engine_device(engine);
    kiln_status st = kiln_engine_create_context(engine, &ctx);
    if (st != KILN_OK) {
        rc = cli_kiln_fail(st, "creating an execution context");
        goto done;
    }
    printf("Random seed: %lld\n", (long long)seed);
    if ((rc = cli_prepare_inputs(engine, ctx, shapes, loads, (uint64_t)seed, &ios)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    if (device == KILN_DEVICE_CUDA && cli_cuda_stream_create(&stream)) goto done;
    double t0 = cli_now();
    if (cli_execute(ctx, device, stream)) goto done;
    printf("Execution time: %.3f ms\n", (cli_now() - t0) * 1e3);
    if (cli_fetch_outputs(ctx, &ios)) goto done;
    for (int i = 0; i < ios.count; i++)
        if (ios.items[i].mode == KILN_IO_OUTPUT) print_summary(&ios.items[i]);
    if (export_dir && export_outputs(&ios, export_dir)) goto done;
    rc = CLI_OK;
done:
    cli_ios_free(&ios);
    cli_cuda_stream_destroy(stream);
    kiln_context_destroy(ctx);
    kiln_engine_destroy(engine);
    kiln_runtime_destroy(runtime);
    return rc;
}
