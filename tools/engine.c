/* Building, loading and describing engines. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_stderr(void *user, kiln_log_level level, const char *message) {
    (void)user;
    static const char tags[] = "EWIV";
    fprintf(stderr, "[kiln] %c: %s\n", tags[level <= KILN_LOG_VERBOSE ? level : KILN_LOG_VERBOSE], message);
}

kiln_logger cli_logger(int verbose) {
    kiln_logger logger = {log_stderr, NULL, verbose ? KILN_LOG_VERBOSE : KILN_LOG_WARNING};
    return logger;
}

int cli_build_opt_table(cli_build_opts *o, cli_opt *opts) {
    const cli_opt table[CLI_BUILD_NB_OPTS] = {
        {"onnx", &o->onnx, NULL},
        {"saveEngine", &o->save_engine, NULL},
        {"device", &o->device, NULL},
        {"minShapes", &o->min_shapes, NULL},
        {"optShapes", &o->opt_shapes, NULL},
        {"maxShapes", &o->max_shapes, NULL},
        {"timingCacheFile", &o->timing_cache, NULL},
        {"workspace", &o->workspace, NULL},
        {"fp16", NULL, &o->fp16},
        {"bf16", NULL, &o->bf16},
        {"tf32", NULL, &o->tf32},
        {"int8", NULL, &o->int8},
        {"verbose", NULL, &o->verbose},
    };
    memcpy(opts, table, sizeof table);
    return CLI_BUILD_NB_OPTS;
}

int cli_parse_device(const char *text, kiln_device_type *device) {
    if (!text) {
        *device = kiln_device_available(KILN_DEVICE_CUDA) ? KILN_DEVICE_CUDA : KILN_DEVICE_CPU;
        return CLI_OK;
    }
    if (strcmp(text, "cpu") == 0) {
        *device = KILN_DEVICE_CPU;
    } else if (strcmp(text, "cuda") == 0) {
        *device = KILN_DEVICE_CUDA;
    } else {
        cli_error("--device=%s: expected cpu or cuda", text);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static double now_ms(void) { return cli_now() * 1e3; }

/* Whole file into malloc'ed memory; NULL with a message printed on failure. */
static void *read_whole(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *grown = realloc(data, cap);
            if (!grown) {
                cli_error("'%s': out of memory", path);
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (!got) break;
    }
    if (ferror(f)) {
        cli_error("cannot read '%s'", path);
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = n;
    return data;
}

static int write_whole(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        cli_error("cannot create '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    int ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        cli_error("cannot write '%s': %s", path, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Fills a profile for every dynamic network input as trtexec does: a missing min/opt/max
 * takes the given ones (min <- opt, max; opt <- max, min; max <- opt, min); inputs given in
 * none get their dynamic dims set to 1. Static inputs may be named only with their own shape. */
static int make_profile(kiln_builder *builder, kiln_network *net, const cli_shapes specs[3],
                        kiln_optimization_profile **profile_out) {
    static const char *flags[3] = {"minShapes", "optShapes", "maxShapes"};
    int32_t nb_inputs = kiln_network_num_inputs(net);
    for (int w = 0; w < 3; w++)
        for (int i = 0; i < specs[w].count; i++) {
            int found = 0;
            for (int32_t k = 0; k < nb_inputs; k++)
                if (strcmp(kiln_tensor_name(kiln_network_input(net, k)), specs[w].items[i].name) == 0) found = 1;
            if (!found) {
                cli_error("--%s names '%s', which is not a network input", flags[w], specs[w].items[i].name);
                fprintf(stderr, "inputs:");
                for (int32_t k = 0; k < nb_inputs; k++)
                    fprintf(stderr, " %s", kiln_tensor_name(kiln_network_input(net, k)));
                fputc('\n', stderr);
                return CLI_USAGE;
            }
        }

    kiln_optimization_profile *profile = NULL;
    kiln_status st;
    for (int32_t k = 0; k < nb_inputs; k++) {
        kiln_tensor *input = kiln_network_input(net, k);
        const char *name = kiln_tensor_name(input);
        kiln_dims dims;
        if ((st = kiln_tensor_shape(input, &dims)) != KILN_OK) {
            kiln_optimization_profile_destroy(profile);
            return cli_kiln_fail(st, "shape of input '%s'", name);
        }
        const cli_shape *given[3];
        for (int w = 0; w < 3; w++) given[w] = cli_shapes_find(&specs[w], name);
        int dynamic = cli_volume(&dims) < 0;
        char want[160], got[160];
        for (int w = 0; w < 3; w++) {
            if (!given[w]) continue;
            const kiln_dims *g = &given[w]->dims;
            int ok = g->nb_dims == dims.nb_dims;
            for (int i = 0; ok && i < dims.nb_dims; i++) ok = dims.d[i] < 0 || dims.d[i] == g->d[i];
            if (!ok) {
                cli_format_dims(&dims, want, sizeof want);
                cli_format_dims(g, got, sizeof got);
                cli_error("--%s gives '%s' the shape %s; the network's input has shape %s (-1 is free)", flags[w],
                          name, got, want);
                kiln_optimization_profile_destroy(profile);
                return CLI_USAGE;
            }
        }
        if (!dynamic) continue;
        kiln_dims set[3];
        if (!given[0] && !given[1] && !given[2]) {
            set[0] = dims;
            for (int i = 0; i < dims.nb_dims; i++)
                if (set[0].d[i] < 0) set[0].d[i] = 1;
            set[1] = set[2] = set[0];
            cli_format_dims(&set[0], got, sizeof got);
            cli_warn("input '%s' has dynamic dims but no --minShapes/--optShapes/--maxShapes; using %s", name, got);
        } else {
            const cli_shape *mn = given[0], *op = given[1], *mx = given[2];
            set[0] = (mn ? mn : op ? op : mx)->dims;
            set[1] = (op ? op : mx ? mx : mn)->dims;
            set[2] = (mx ? mx : op ? op : mn)->dims;
        }
        if (!profile && (st = kiln_optimization_profile_create(builder, &profile)) != KILN_OK)
            return cli_kiln_fail(st, "creating an optimization profile");
        for (int w = 0; w < 3; w++)
            if ((st = kiln_optimization_profile_set_dims(profile, name, (kiln_profile_selector)w, &set[w])) !=
                KILN_OK) {
                kiln_optimization_profile_destroy(profile);
                return cli_kiln_fail(st, "profile dims of '%s'", name);
            }
    }
    *profile_out = profile;
    return CLI_OK;
}

int cli_build_engine(const cli_build_opts *o, kiln_engine **engine_out) {
    int rc = CLI_FAIL;
    kiln_status st;
    kiln_device_type device;
    int64_t workspace_mib = 0;
    cli_shapes specs[3] = {{0, NULL}, {0, NULL}, {0, NULL}};
    const char *spec_text[3] = {o->min_shapes, o->opt_shapes, o->max_shapes};
    static const char *spec_flag[3] = {"minShapes", "optShapes", "maxShapes"};
    kiln_builder *builder = NULL;
    kiln_network *net = NULL;
    kiln_builder_config *config = NULL;
    kiln_optimization_profile *profile = NULL;
    kiln_timing_cache *cache = NULL;
    kiln_engine *engine = NULL;
    void *cache_data = NULL;

    if (cli_parse_device(o->device, &device)) return CLI_USAGE;
    if (o->workspace && cli_parse_i64("workspace", o->workspace, 0, INT64_C(1) << 30, &workspace_mib))
        return CLI_USAGE;
    for (int w = 0; w < 3; w++)
        if (spec_text[w] && cli_parse_shapes(spec_flag[w], spec_text[w], &specs[w])) {
            rc = CLI_USAGE;
            goto done;
        }

    kiln_logger logger = cli_logger(o->verbose);
    kiln_builder_options bopts = {.struct_size = sizeof bopts};
    bopts.logger = &logger;
    if ((st = kiln_builder_create(&bopts, &builder)) != KILN_OK) {
        cli_kiln_fail(st, "creating the builder");
        goto done;
    }
    double t0 = now_ms();
    if ((st = kiln_onnx_parse_file(builder, o->onnx, &net)) != KILN_OK) {
        cli_kiln_fail(st, "cannot parse '%s'", o->onnx);
        goto done;
    }
    printf("Parsed %s: %d layers, %d inputs, %d outputs (%.1f ms)\n", o->onnx, kiln_network_num_layers(net),
           kiln_network_num_inputs(net), kiln_network_num_outputs(net), now_ms() - t0);

    if ((rc = make_profile(builder, net, specs, &profile)) != CLI_OK) goto done;
    rc = CLI_FAIL;
    uint32_t flags = (o->fp16 ? KILN_FLAG_FP16 : 0) | (o->bf16 ? KILN_FLAG_BF16 : 0) |
                     (o->tf32 ? KILN_FLAG_TF32 : 0) | (o->int8 ? KILN_FLAG_INT8 : 0);
    if ((st = kiln_builder_config_create(builder, &config)) != KILN_OK ||
        (st = kiln_builder_config_set_device(config, device)) != KILN_OK ||
        (st = kiln_builder_config_set_flags(config, flags)) != KILN_OK ||
        (st = kiln_builder_config_set_workspace_limit(config, (uint64_t)workspace_mib << 20)) != KILN_OK ||
        (profile && (st = kiln_builder_config_add_profile(config, profile)) != KILN_OK)) {
        cli_kiln_fail(st, "configuring the build");
        goto done;
    }

    if (o->timing_cache) {
        size_t size = 0;
        FILE *probe = fopen(o->timing_cache, "rb");
        if (probe) {
            fclose(probe);
            if (!(cache_data = read_whole(o->timing_cache, &size))) goto done;
        }
        if ((st = kiln_timing_cache_create(builder, cache_data, size, &cache)) != KILN_OK) {
            cli_kiln_fail(st, "timing cache '%s'", o->timing_cache);
            goto done;
        }
        printf("Timing cache %s: %lld entries\n", cache_data ? "loaded" : "created",
               (long long)kiln_timing_cache_num_entries(cache));
        if ((st = kiln_builder_config_set_timing_cache(config, cache)) != KILN_OK) {
            cli_kiln_fail(st, "setting the timing cache");
            goto done;
        }
    }

    t0 = now_ms();
    if ((st = kiln_builder_build_engine(builder, net, config, &engine)) != KILN_OK) {
        cli_kiln_fail(st, "building '%s' for %s", o->onnx, device == KILN_DEVICE_CUDA ? "cuda" : "cpu");
        goto done;
    }
    printf("Build time: %.1f ms (device %s)\n", now_ms() - t0, device == KILN_DEVICE_CUDA ? "cuda" : "cpu");

    if (cache) {
        kiln_blob *blob = NULL;
        if ((st = kiln_timing_cache_serialize(cache, &blob)) != KILN_OK) {
            cli_kiln_fail(st, "serializing the timing cache");
            goto done;
        }
        int wrc = write_whole(o->timing_cache, kiln_blob_data(blob), kiln_blob_size(blob));
        kiln_blob_destroy(blob);
        if (wrc) goto done;
        printf("Timing cache saved to %s (%lld entries)\n", o->timing_cache,
               (long long)kiln_timing_cache_num_entries(cache));
    }
    if (o->save_engine) {
        if ((st = kiln_engine_save(engine, o->save_engine)) != KILN_OK) {
            cli_kiln_fail(st, "saving the engine to '%s'", o->save_engine);
            goto done;
        }
        printf("Engine saved to %s\n", o->save_engine);
    }
    *engine_out = engine;
    engine = NULL;
    rc = CLI_OK;
done:
    kiln_engine_destroy(engine);
    kiln_timing_cache_destroy(cache);
    free(cache_data);
    kiln_optimization_profile_destroy(profile);
    kiln_builder_config_destroy(config);
    kiln_network_destroy(net);
    kiln_builder_destroy(builder);
    for (int w = 0; w < 3; w++) cli_shapes_free(&specs[w]);
    return rc;
}

static int make_runtime(int32_t nb_threads, kiln_runtime **runtime) {
    static kiln_logger logger;
    logger = cli_logger(0);
    kiln_runtime_options ropts = {.struct_size = sizeof ropts};
    ropts.logger = &logger;
    ropts.nb_threads = nb_threads;
    kiln_status st = kiln_runtime_create(&ropts, runtime);
    if (st != KILN_OK) return cli_kiln_fail(st, "creating the runtime");
    return CLI_OK;
}

int cli_load_engine(const char *path, int32_t nb_threads, kiln_runtime **runtime, kiln_engine **engine) {
    if (make_runtime(nb_threads, runtime)) return CLI_FAIL;
    kiln_status st = kiln_runtime_load_engine(*runtime, path, engine);
    if (st != KILN_OK) {
        kiln_runtime_destroy(*runtime);
        *runtime = NULL;
        return cli_kiln_fail(st, "cannot load engine '%s'", path);
    }
    return CLI_OK;
}

int cli_reload_engine(kiln_engine *built, int32_t nb_threads, kiln_runtime **runtime, kiln_engine **engine) {
    kiln_blob *blob = NULL;
    kiln_status st = kiln_engine_serialize(built, &blob);
    kiln_engine_destroy(built); /* one copy of the weights at a time: the plan, then the engine */
    if (st != KILN_OK) return cli_kiln_fail(st, "serializing the engine");
    if (make_runtime(nb_threads, runtime)) {
        kiln_blob_destroy(blob);
        return CLI_FAIL;
    }
    st = kiln_runtime_deserialize_engine(*runtime, kiln_blob_data(blob), kiln_blob_size(blob), engine);
    kiln_blob_destroy(blob);
    if (st != KILN_OK) {
        kiln_runtime_destroy(*runtime);
        *runtime = NULL;
        return cli_kiln_fail(st, "deserializing the engine");
    }
    return CLI_OK;
}

/* "[batch,3,224,224]": dynamic dims show their name, or '?' without one. */
static void format_io_dims(const kiln_engine *engine, const char *name, const kiln_dims *dims, char *buf,
                           size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < dims->nb_dims && n < size; i++) {
        const char *dim_name = kiln_engine_tensor_dim_name(engine, name, i);
        if (dims->d[i] >= 0)
            n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? "," : "", (long long)dims->d[i]);
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", dim_name ? dim_name : "?");
    }
    if (n < size) snprintf(buf + n, size - n, "]");
}

void cli_print_engine_summary(const kiln_engine *engine) {
    int32_t nb_io = kiln_engine_num_io_tensors(engine), nb_profiles = kiln_engine_num_profiles(engine);
    printf("Engine: device %s, %d IO tensors, %d layers, %d optimization profile%s\n",
           kiln_engine_device(engine) == KILN_DEVICE_CUDA ? "cuda" : "cpu", nb_io, kiln_engine_num_layers(engine),
           nb_profiles, nb_profiles == 1 ? "" : "s");
    for (int32_t i = 0; i < nb_io; i++) {
        const char *name = kiln_engine_io_tensor_name(engine, i);
        kiln_dims dims;
        char shape[512];
        if (kiln_engine_tensor_shape(engine, name, &dims) == KILN_OK)
            format_io_dims(engine, name, &dims, shape, sizeof shape);
        else
            snprintf(shape, sizeof shape, "(unknown: %s)", kiln_last_error());
        printf("  %-6s %-24s %-9s %s\n", kiln_engine_tensor_io_mode(engine, name) == KILN_IO_INPUT ? "input" : "output",
               name, kiln_dtype_name(kiln_engine_tensor_dtype(engine, name)), shape);
    }
    for (int32_t p = 0; p < nb_profiles; p++) {
        for (int32_t i = 0; i < nb_io; i++) {
            const char *name = kiln_engine_io_tensor_name(engine, i);
            if (kiln_engine_tensor_io_mode(engine, name) != KILN_IO_INPUT) continue;
            kiln_dims d[3];
            char text[3][160];
            int ok = 1;
            for (int w = 0; w < 3 && ok; w++) {
                ok = kiln_engine_profile_dims(engine, p, name, (kiln_profile_selector)w, &d[w]) == KILN_OK;
                if (ok) cli_format_dims(&d[w], text[w], sizeof text[w]);
            }
            if (ok) printf("  profile %d: %s min %s opt %s max %s\n", p, name, text[0], text[1], text[2]);
        }
    }
}
