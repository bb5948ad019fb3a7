/* kiln bench: latency and throughput of an engine, reported as trtexec does. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char help[] =
    "usage: kiln bench (--loadEngine=FILE | --onnx=FILE [build options]) [options]\n"
    "\n"
    "Runs the engine on random inputs, first for the warm-up time, then for at least the given\n"
    "duration and number of iterations, and prints throughput, latency statistics, the host\n"
    "walltime, the number of executions, activation memory and the process's peak memory.\n"
    "\n"
    "  --loadEngine=FILE   an engine plan\n"
    "  --onnx=FILE         or build this model first (accepts the options of kiln build:\n"
    "                      --fp16 --bf16 --tf32 --int8 --minShapes --optShapes --maxShapes\n"
    "                      --timingCacheFile --workspace --saveEngine --verbose)\n"
    "  --device=cpu|cuda   device to build for (with --loadEngine: must match the engine)\n"
    "  --threads=N         CPU worker threads (default: one per core)\n"
    "  --shapes=SPEC       shapes of dynamic inputs, name:1x3x224x224[,...] (default: profile opt)\n"
    "  --warmUp=MS         warm-up time in milliseconds (default 200)\n"
    "  --duration=S        minimum timed duration in seconds (default 3)\n"
    "  --iterations=N      minimum number of timed executions (default 10)\n"
    "  --dumpProfile       time every layer during the timed runs and print a table sorted by\n"
    "                      total time: average and median ms per run (the median over the first\n"
    "                      2048 runs), share of the summed layer time (CPU engines)\n"
    "  --exportProfile=F   write that per-layer profile to F as JSON: an array of\n"
    "                      {name, type, averageMs, medianMs, totalMs, percentage, count}\n"
    "  --exportTimes=F     write every timed execution to F as JSON: an array of\n"
    "                      {startMs, endMs, latencyMs} in execution order, start and end on\n"
    "                      CLOCK_MONOTONIC (Python's time.monotonic() * 1000 on Linux)\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p) {
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* ---- per-layer profile */

typedef struct prof_row {
    const char *name, *type;
    int64_t count;
    double total_ms, median_ms;
} prof_row;

/* Each layer's time in every timed run, up to PROF_MAX_RUNS runs (4 bytes per layer and run):
 * the means the context keeps count a layer's rare slow runs (a worker thread the system did not
 * schedule at once) in full, where a median does not, and bench/layers_vs_ort.py compares with
 * onnxruntime's per-node medians. */
#define PROF_MAX_RUNS 2048
typedef struct prof_samples {
    int32_t layers;
    size_t runs;       /* runs recorded (at most PROF_MAX_RUNS) */
    float *ms;         /* [layer][PROF_MAX_RUNS] */
    double *last_total; /* each layer's total_ms at the previous read */
} prof_samples;

static void prof_samples_free(prof_samples *ps) {
    free(ps->ms);
    free(ps->last_total);
    *ps = (prof_samples){0};
}

/* Sized to the context's layers, their totals read as the baseline (just after a reset: zero). */
static int prof_samples_init(kiln_context *ctx, prof_samples *ps) {
    *ps = (prof_samples){0};
    kiln_status st = kiln_context_profiling_num_layers(ctx, &ps->layers);
    if (st != KILN_OK) return cli_kiln_fail(st, "reading the layer profile");
    size_t layers = (size_t)(ps->layers ? ps->layers : 1);
    ps->ms = malloc(layers * PROF_MAX_RUNS * sizeof *ps->ms);
    ps->last_total = calloc(layers, sizeof *ps->last_total);
    if (!ps->ms || !ps->last_total) {
        prof_samples_free(ps);
        cli_error("out of memory");
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Records each layer's time in the run that just finished. */
static int prof_samples_add(kiln_context *ctx, prof_samples *ps) {
    if (ps->runs >= PROF_MAX_RUNS) return CLI_OK;
    for (int32_t i = 0; i < ps->layers; i++) {
        kiln_layer_profile lp = {.struct_size = sizeof lp};
        kiln_status st = kiln_context_profiling_layer(ctx, i, &lp);
        if (st != KILN_OK) return cli_kiln_fail(st, "reading the profile of layer %d", i);
        ps->ms[(size_t)i * PROF_MAX_RUNS + ps->runs] = (float)(lp.total_ms - ps->last_total[i]);
        ps->last_total[i] = lp.total_ms;
    }
    ps->runs++;
    return CLI_OK;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Layer i's median over the recorded runs (the mean of the middle two for an even count). */
static double prof_samples_median(prof_samples *ps, int32_t i) {
    if (!ps->runs) return 0;
    float *v = ps->ms + (size_t)i * PROF_MAX_RUNS;
    qsort(v, ps->runs, sizeof *v, cmp_float);
    size_t h = ps->runs / 2;
    return ps->runs % 2 ? v[h] : 0.5 * ((double)v[h - 1] + v[h]);
}

/* Longest total first; ties by name so the order is stable. */
static int cmp_row(const void *a, const void *b) {
    const prof_row *x = a, *y = b;
    if (x->total_ms != y->total_ms) return x->total_ms < y->total_ms ? 1 : -1;
    return strcmp(x->name, y->name);
}

static double row_avg(const prof_row *r) { return r->count ? r->total_ms / (double)r->count : 0; }

/* The context's per-layer profile with the medians of ps, sorted; *rows is malloc'ed. */
static int read_profile(kiln_context *ctx, prof_samples *ps, prof_row **rows, int32_t *n, double *total_ms) {
    *rows = NULL;
    *total_ms = 0;
    kiln_status st = kiln_context_profiling_num_layers(ctx, n);
    if (st != KILN_OK) return cli_kiln_fail(st, "reading the layer profile");
    *rows = malloc((size_t)(*n ? *n : 1) * sizeof **rows);
    if (!*rows) {
        cli_error("out of memory");
        return CLI_FAIL;
    }
    for (int32_t i = 0; i < *n; i++) {
        kiln_layer_profile lp = {.struct_size = sizeof lp};
        if ((st = kiln_context_profiling_layer(ctx, i, &lp)) != KILN_OK) {
            free(*rows);
            *rows = NULL;
            return cli_kiln_fail(st, "reading the profile of layer %d", i);
        }
        (*rows)[i] = (prof_row){lp.name, lp.type_name, lp.count, lp.total_ms,
                                i < ps->layers ? prof_samples_median(ps, i) : 0};
        *total_ms += lp.total_ms;
    }
    qsort(*rows, (size_t)*n, sizeof **rows, cmp_row);
    return CLI_OK;
}

static void print_profile(const prof_row *rows, int32_t n, double total_ms, size_t runs, double mean_latency_ms) {
    double pct = total_ms > 0 ? 100.0 / total_ms : 0;
    printf("=== Profile (%zu runs) ===\n", runs);
    printf("%12s %12s %12s %8s   %-16s %s\n", "Time(ms)", "Avg.(ms)", "Median(ms)", "Time(%)", "Type", "Layer");
    for (int32_t i = 0; i < n; i++)
        printf("%12.3f %12.5f %12.5f %8.1f   %-16s %s\n", rows[i].total_ms, row_avg(&rows[i]), rows[i].median_ms,
               rows[i].total_ms * pct, rows[i].type, rows[i].name);
    double avg = runs ? total_ms / (double)runs : 0;
    printf("%12.3f %12.5f %12s %8.1f   %-16s %s\n", total_ms, avg, "", total_ms > 0 ? 100.0 : 0.0, "", "Total");
    printf("Layers cover %.1f%% of the mean latency (%.5f ms); the rest is the run loop around them\n",
           mean_latency_ms > 0 ? 100.0 * avg / mean_latency_ms : 0.0, mean_latency_ms);
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static int export_profile(const char *path, const prof_row *rows, int32_t n, double total_ms) {
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("cannot write the profile to '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    fputs("[\n", f);
    for (int32_t i = 0; i < n; i++) {
        fputs("  {\"name\": ", f);
        json_string(f, rows[i].name);
        fputs(", \"type\": ", f);
        json_string(f, rows[i].type);
        fprintf(f,
                ", \"averageMs\": %.6f, \"medianMs\": %.6f, \"totalMs\": %.6f, \"percentage\": %.4f, "
                "\"count\": %lld}%s\n",
                row_avg(&rows[i]), rows[i].median_ms, rows[i].total_ms,
                total_ms > 0 ? 100.0 * rows[i].total_ms / total_ms : 0.0, (long long)rows[i].count,
                i + 1 < n ? "," : "");
    }
    fputs("]\n", f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        cli_error("cannot write the profile to '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    printf("Profile written to %s\n", path);
    return CLI_OK;
}

static int report_profile(kiln_context *ctx, prof_samples *ps, int dump, const char *export_path, size_t runs,
                          double mean_latency_ms) {
    prof_row *rows;
    int32_t n;
    double total_ms;
    if (read_profile(ctx, ps, &rows, &n, &total_ms)) return CLI_FAIL;
    if (dump) print_profile(rows, n, total_ms, runs, mean_latency_ms);
    int rc = export_path ? export_profile(export_path, rows, n, total_ms) : CLI_OK;
    free(rows);
    return rc;
}

/* ---- timing */

/* Each timed execution's start and latency, in execution order. */
static int export_times(const char *path, const double *start_s, const double *lat_ms, size_t n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error("cannot write the times to '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    fputs("[\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  {\"startMs\": %.6f, \"endMs\": %.6f, \"latencyMs\": %.6f}%s\n", start_s[i] * 1e3,
                start_s[i] * 1e3 + lat_ms[i], lat_ms[i], i + 1 < n ? "," : "");
    fputs("]\n", f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        cli_error("cannot write the times to '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int measure(kiln_engine *engine, const char *shapes, double warm_ms, double duration_s, int64_t iterations,
                   int dump_profile, const char *export_path, const char *times_path) {
    kiln_device_type device = kiln_engine_device(engine);
    kiln_context *ctx = NULL;
    void *stream = NULL;
    cli_ios ios = {0, NULL, KILN_DEVICE_CPU};
    double *lat = NULL, *enq = NULL, *starts = NULL;
    size_t n = 0, cap = 0;
    prof_samples ps = {0};
    int rc = CLI_FAIL;
    kiln_status st = kiln_engine_create_context(engine, &ctx);
    if (st != KILN_OK) return cli_kiln_fail(st, "creating an execution context");
    if ((rc = cli_prepare_inputs(engine, ctx, shapes, NULL, 1, &ios)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    if (device == KILN_DEVICE_CUDA && cli_cuda_stream_create(&stream)) goto done;
    /* Enabled before the warm-up so an engine without profiling fails at once; the warm-up
     * runs are then reset away. */
    int profiling = dump_profile || export_path;
    if (profiling && (st = kiln_context_set_profiling(ctx, 1)) != KILN_OK) {
        cli_kiln_fail(st, "enabling the per-layer profile");
        goto done;
    }

    int64_t warm_count = 0;
    double t0 = cli_now();
    while ((cli_now() - t0) * 1e3 < warm_ms) {
        if (cli_execute(ctx, device, stream)) goto done;
        warm_count++;
    }
    printf("Warm-up: %lld executions in %.1f ms\n", (long long)warm_count, (cli_now() - t0) * 1e3);
    if (profiling && (st = kiln_context_reset_profiling(ctx)) != KILN_OK) {
        cli_kiln_fail(st, "resetting the per-layer profile");
        goto done;
    }
    if (profiling && prof_samples_init(ctx, &ps)) goto done;

    double start = cli_now(), now = start;
    while (now - start < duration_s || (int64_t)n < iterations) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            double *l2 = realloc(lat, cap * sizeof *lat), *e2 = l2 ? realloc(enq, cap * sizeof *enq) : NULL;
            double *s2 = e2 ? realloc(starts, cap * sizeof *starts) : NULL;
            if (l2) lat = l2;
            if (e2) enq = e2;
            if (s2) starts = s2;
            if (!l2 || !e2 || !s2) {
                cli_error("out of memory");
                goto done;
            }
        }
        double a = cli_now();
        st = device == KILN_DEVICE_CUDA ? kiln_context_enqueue(ctx, stream) : kiln_context_execute(ctx);
        double b = cli_now();
        if (st != KILN_OK) {
            cli_kiln_fail(st, "execution failed");
            goto done;
        }
        if (device == KILN_DEVICE_CUDA && cli_cuda_stream_sync(stream)) goto done;
        now = cli_now();
        starts[n] = a;
        lat[n] = (now - a) * 1e3;
        enq[n] = (b - a) * 1e3;
        n++;
        if (profiling && prof_samples_add(ctx, &ps)) goto done;
    }
    double wall = now - start;
    uint64_t act = kiln_context_activation_bytes(ctx);
    double sum = 0, enq_sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += lat[i];
        enq_sum += enq[i];
    }
    if (times_path && export_times(times_path, starts, lat, n)) goto done;
    qsort(lat, n, sizeof *lat, cmp_double);
    qsort(enq, n, sizeof *enq, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    printf("=== Performance summary ===\n");
    printf("Throughput: %.3f qps\n", (double)n / wall);
    printf("Latency: min = %.5f ms, max = %.5f ms, mean = %.5f ms, median = %.5f ms, percentile(90%%) = %.5f ms, "
           "percentile(95%%) = %.5f ms, percentile(99%%) = %.5f ms\n",
           lat[0], lat[n - 1], sum / (double)n, percentile(lat, n, 50), percentile(lat, n, 90),
           percentile(lat, n, 95), percentile(lat, n, 99));
    printf("Enqueue Time: min = %.5f ms, max = %.5f ms, mean = %.5f ms, median = %.5f ms\n", enq[0], enq[n - 1],
           enq_sum / (double)n, percentile(enq, n, 50));
    printf("Total Host Walltime: %.5f s\n", wall);
    printf("Enqueue count: %zu\n", n);
    printf("Activation memory: %.3f MiB (%llu bytes)\n", (double)act / (1 << 20), (unsigned long long)act);
    printf("Peak resident memory: %.3f MiB\n", (double)ru.ru_maxrss / 1024.0);
    printf("Device: %s; latencies are host wall times (CLOCK_MONOTONIC) of one %s\n",
           device == KILN_DEVICE_CUDA ? "cuda" : "cpu",
           device == KILN_DEVICE_CUDA ? "enqueue + stream synchronize" : "execute");
    rc = profiling ? report_profile(ctx, &ps, dump_profile, export_path, n, sum / (double)n) : CLI_OK;
done:
    prof_samples_free(&ps);
    free(lat);
    free(enq);
    free(starts);
    cli_ios_free(&ios);
    cli_cuda_stream_destroy(stream);
    kiln_context_destroy(ctx);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    cli_build_opts o = {0};
    const char *engine_path = NULL, *threads_text = NULL, *shapes = NULL, *warm_text = NULL, *duration_text = NULL,
               *iter_text = NULL, *export_path = NULL, *times_path = NULL;
    int dump_profile = 0;
    const cli_opt extra[] = {{"loadEngine", &engine_path, NULL},   {"threads", &threads_text, NULL},
                             {"shapes", &shapes, NULL},            {"warmUp", &warm_text, NULL},
                             {"duration", &duration_text, NULL},   {"iterations", &iter_text, NULL},
                             {"dumpProfile", NULL, &dump_profile}, {"exportProfile", &export_path, NULL},
                             {"exportTimes", &times_path, NULL}};
    enum { NB_EXTRA = sizeof extra / sizeof extra[0] };
    cli_opt opts[CLI_BUILD_NB_OPTS + NB_EXTRA];
    int n = cli_build_opt_table(&o, opts);
    memcpy(opts + n, extra, sizeof extra);
    int rc = cli_parse(argc, argv, opts, n + NB_EXTRA);
    if (rc < 0) {
        fputs(help, stdout);
        return CLI_OK;
    }
    if (rc) return rc;
    if (!engine_path == !o.onnx) {
        cli_error("give exactly one of --loadEngine=FILE and --onnx=FILE (see kiln bench --help)");
        return CLI_USAGE;
    }
    if (engine_path && (o.save_engine || o.min_shapes || o.opt_shapes || o.max_shapes || o.timing_cache ||
                        o.workspace || o.fp16 || o.bf16 || o.tf32 || o.int8)) {
        cli_error("build options need --onnx; --loadEngine runs the engine as it was built");
        return CLI_USAGE;
    }
    int64_t threads = 0, iterations = 10;
    double warm_ms = 200, duration_s = 3;
    kiln_device_type device;
    if (export_path && !*export_path) {
        cli_error("--exportProfile needs a file name: --exportProfile=FILE");
        return CLI_USAGE;
    }
    if (times_path && !*times_path) {
        cli_error("--exportTimes needs a file name: --exportTimes=FILE");
        return CLI_USAGE;
    }
    if ((threads_text && cli_parse_i64("threads", threads_text, 0, 4096, &threads)) ||
        (warm_text && cli_parse_f64("warmUp", warm_text, 0, 3.6e6, &warm_ms)) ||
        (duration_text && cli_parse_f64("duration", duration_text, 0, 86400, &duration_s)) ||
        (iter_text && cli_parse_i64("iterations", iter_text, 1, INT64_C(1) << 40, &iterations)) ||
        cli_parse_device(o.device, &device))
        return CLI_USAGE;

    kiln_runtime *runtime = NULL;
    kiln_engine *engine = NULL;
    if (engine_path) {
        if (cli_load_engine(engine_path, (int32_t)threads, &runtime, &engine)) return CLI_FAIL;
        if (o.device && kiln_engine_device(engine) != device) {
            cli_error("--device=%s but the engine was built for %s", o.device,
                      kiln_engine_device(engine) == KILN_DEVICE_CUDA ? "cuda" : "cpu");
            rc = CLI_USAGE;
            goto done;
        }
    } else {
        kiln_engine *built = NULL;
        if ((rc = cli_build_engine(&o, &built)) != CLI_OK) return rc;
        rc = cli_reload_engine(built, (int32_t)threads, &runtime, &engine);
        if (rc) return rc;
    }
    cli_print_engine_summary(engine);
    rc = measure(engine, shapes, warm_ms, duration_s, iterations, dump_profile, export_path, times_path);
done:
    kiln_engine_destroy(engine);
    kiln_runtime_destroy(runtime);
    return rc;
}
