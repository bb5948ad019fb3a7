/* kiln inspect: describe an engine plan. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "usage: kiln inspect --loadEngine=FILE [--json]\n"
    "\n"
    "Prints the engine's device, IO tensors, optimization profiles and a table of its layers\n"
    "(name, type, parameters, tactic, inputs, outputs).\n"
    "\n"
    "  --loadEngine=FILE  the engine plan\n"
    "  --json             print the layers as one JSON document instead\n";

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    cli_opt opts[] = {{"loadEngine", &path, NULL}, {"json", NULL, &json}};
    int rc = cli_parse(argc, argv, opts, 2);
    if (rc < 0) {
        fputs(help, stdout);
        return CLI_OK;
    }
    if (rc) return rc;
    if (!path) {
        cli_error("--loadEngine=FILE is required (see kiln inspect --help)");
        return CLI_USAGE;
    }
    kiln_runtime *runtime = NULL;
    kiln_engine *engine = NULL;
    if (cli_load_engine(path, 1, &runtime, &engine)) return CLI_FAIL;

    rc = CLI_OK;
    if (json) {
        kiln_blob *blob = NULL;
        kiln_status st = kiln_engine_inspect_json(engine, &blob);
        if (st != KILN_OK) {
            rc = cli_kiln_fail(st, "describing the engine as JSON");
        } else {
            fwrite(kiln_blob_data(blob), 1, kiln_blob_size(blob), stdout);
            putchar('\n');
        }
        kiln_blob_destroy(blob);
    } else {
        cli_print_engine_summary(engine);
        int32_t nb_layers = kiln_engine_num_layers(engine);
        printf("Layers:\n");
        size_t cap = 256;
        char *buf = malloc(cap);
        for (int32_t i = 0; buf && i < nb_layers; i++) {
            int64_t need = kiln_engine_layer_info(engine, i, buf, cap);
            if (need < 0) {
                cli_error("layer %d: %s", i, kiln_last_error());
                rc = CLI_FAIL;
                break;
            }
            if ((size_t)need >= cap) {
                free(buf);
                cap = (size_t)need + 1;
                if (!(buf = malloc(cap))) break;
                kiln_engine_layer_info(engine, i, buf, cap);
            }
            printf("  [%3d] %s\n", i, buf);
        }
        if (!buf) {
            cli_error("out of memory");
            rc = CLI_FAIL;
        }
        free(buf);
    }
    kiln_engine_destroy(engine);
    kiln_runtime_destroy(runtime);
    return rc;
}
