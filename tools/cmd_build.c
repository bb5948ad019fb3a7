/* kiln build: ONNX model -> engine plan file. */
#include "cli.h"

#include <stdio.h>

static const char help[] =
    "usage: kiln build --onnx=FILE --saveEngine=FILE [options]\n"
    "\n"
    "Builds an engine from an ONNX model and writes the plan file.\n"
    "\n"
    "  --onnx=FILE             the ONNX model\n"
    "  --saveEngine=FILE       where to write the engine plan\n"
    "  --device=cpu|cuda       target device (default: cuda when a GPU is usable, else cpu)\n"
    "  --fp16 --bf16 --tf32 --int8\n"
    "                          allow these precisions where the backend has kernels for them\n"
    "  --minShapes=SPEC --optShapes=SPEC --maxShapes=SPEC\n"
    "                          one optimization profile for the dynamic inputs; SPEC is\n"
    "                          name:1x3x224x224[,name2:1x128]; names may hold ':' (the last one\n"
    "                          splits) or be quoted ('a,b':1x2). A missing one of the three takes\n"
    "                          the given ones as trtexec does; dynamic inputs named in none get 1\n"
    "                          for their dynamic dims.\n"
    "  --timingCacheFile=FILE  timing cache: read if the file exists, written after the build\n"
    "  --workspace=MiB         scratch memory limit per layer (0: no limit)\n"
    "  --verbose               log everything the builder says\n";

int cmd_build(int argc, char **argv) {
    cli_build_opts o = {0};
    cli_opt opts[CLI_BUILD_NB_OPTS];
    int n = cli_build_opt_table(&o, opts);
    int rc = cli_parse(argc, argv, opts, n);
    if (rc < 0) {
        fputs(help, stdout);
        return CLI_OK;
    }
    if (rc) return rc;
    if (!o.onnx || !o.save_engine) {
        cli_error("--onnx=FILE and --saveEngine=FILE are required (see kiln build --help)");
        return CLI_USAGE;
    }
    kiln_engine *engine = NULL;
    if ((rc = cli_build_engine(&o, &engine)) != CLI_OK) return rc;
    cli_print_engine_summary(engine);
    kiln_engine_destroy(engine);
    return CLI_OK;
}
