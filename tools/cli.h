/* Shared pieces of the kiln command-line tool. Functions returning int use the tool's exit
 * codes: 0 success, CLI_FAIL (1) for a failure, CLI_USAGE (2) for bad flags or arguments;
 * they print their own error message first. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

#include "kiln.h"

#include <stddef.h>
#include <stdint.h>

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

/* The command being run ("kiln build"), used as the prefix of messages. */
extern const char *cli_cmd;

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "<what>: <kiln_last_error()> (<status name>)" and returns CLI_FAIL. */
int cli_kiln_fail(kiln_status status, const char *what, ...) __attribute__((format(printf, 2, 3)));

/* ---- flags: every argument is --name=value or --name (a switch). */

typedef struct cli_opt {
    const char *name;    /* without the leading "--" */
    const char **value;  /* set for options taking a value */
    int *flag;           /* set to 1 for switches */
} cli_opt;

/* Parses argv[1..argc-1]. Returns CLI_OK, CLI_USAGE (message printed) or -1 when --help or
 * -h was given (the caller prints its help and exits 0). Later repeats of an option win. */
int cli_parse(int argc, char **argv, const cli_opt *opts, int nb_opts);

int cli_parse_i64(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out);
int cli_parse_f64(const char *flag, const char *text, double min, double max, double *out);

/* ---- shape specs: "name:1x3x224x224,other:1x128". Names may contain ':' (split at the
 * last one) and may be quoted with ' or " (then they may contain ',' too). */

typedef struct cli_shape {
    char name[KILN_MAX_NAME];
    kiln_dims dims;
} cli_shape;

typedef struct cli_shapes {
    int count;
    cli_shape *items;
} cli_shapes;

int cli_parse_shapes(const char *flag, const char *text, cli_shapes *out);
void cli_shapes_free(cli_shapes *shapes);
const cli_shape *cli_shapes_find(const cli_shapes *shapes, const char *name);

/* "1x3x224x224"; "scalar" for rank 0. */
void cli_format_dims(const kiln_dims *dims, char *buf, size_t size);
int64_t cli_volume(const kiln_dims *dims); /* -1 if any dim is negative */

/* ---- engines */

/* Logger writing "[kiln] W: message" to stderr. */
kiln_logger cli_logger(int verbose);

typedef struct cli_build_opts {
    const char *onnx, *save_engine, *device, *min_shapes, *opt_shapes, *max_shapes, *timing_cache, *workspace;
    int fp16, bf16, tf32, int8, verbose;
} cli_build_opts;

/* Option table entries for the build flags (the caller appends its own). */
int cli_build_opt_table(cli_build_opts *o, cli_opt *opts);
#define CLI_BUILD_NB_OPTS 13
/* Parses --device (NULL: CUDA when available, else CPU). */
int cli_parse_device(const char *text, kiln_device_type *device);
/* Parses the ONNX model, builds it as the flags say, prints the build time and, with
 * save_engine set, writes the plan. *engine belongs to the caller. */
int cli_build_engine(const cli_build_opts *o, kiln_engine **engine);
/* Loads a plan file through a runtime with nb_threads CPU threads. */
int cli_load_engine(const char *path, int32_t nb_threads, kiln_runtime **runtime, kiln_engine **engine);
/* Serializes and deserializes an engine through a runtime with nb_threads threads (the
 * builder's engines use default runtime options). Takes and destroys `built`. */
int cli_reload_engine(kiln_engine *built, int32_t nb_threads, kiln_runtime **runtime, kiln_engine **engine);
/* Device, IO tensors (mode, dtype, shape with dim names), profiles and layer count. */
void cli_print_engine_summary(const kiln_engine *engine);

/* ---- IO buffers of a context */

typedef struct cli_io {
    const char *name;
    kiln_io_mode mode;
    kiln_dtype dtype;
    kiln_dims dims;
    size_t nbytes;
    void *host;   /* inputs: the data; outputs: filled by cli_io_fetch */
    void *device; /* CUDA engines: the device buffer */
} cli_io;

typedef struct cli_ios {
    int count;
    cli_io *items;
    kiln_device_type device;
} cli_ios;

/* Element i as a double (NaN for dtypes without a numeric reading here). */
double cli_element(kiln_dtype dtype, const void *data, int64_t i);

/* Sets input shapes from --shapes, loaded arrays or the profile's opt dims, fills the inputs
 * (from `loads` "name:file.npy,..." or random from `seed`) and binds them; on CUDA engines
 * also binds device memory for every output. */
int cli_prepare_inputs(kiln_engine *engine, kiln_context *ctx, const char *shapes_spec, const char *loads,
                       uint64_t seed, cli_ios *ios);
/* After execution: copies every output into host memory (ios items with mode OUTPUT). */
int cli_fetch_outputs(kiln_context *ctx, cli_ios *ios);
void cli_ios_free(cli_ios *ios);
/* Runs the context once to completion: execute on the CPU; enqueue on `stream` and wait for
 * it with CUDA. */
int cli_execute(kiln_context *ctx, kiln_device_type device, void *stream);
/* Seconds on CLOCK_MONOTONIC. */
double cli_now(void);

/* CUDA engines: device memory through the CUDA runtime, loaded on first use. */
int cli_cuda_malloc(void **ptr, size_t size);
void cli_cuda_free(void *ptr);
int cli_cuda_copy(void *dst, const void *src, size_t size, int to_device);
int cli_cuda_stream_create(void **stream);
int cli_cuda_stream_sync(void *stream);
void cli_cuda_stream_destroy(void *stream);

/* ---- commands */

int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

#endif
