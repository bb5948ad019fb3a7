/* kiln: build, run, benchmark and inspect engines from the command line (like trtexec). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: kiln <command> [options]\n"
            "\n"
            "commands:\n"
            "  build    build an engine from an ONNX model and save it\n"
            "  run      run an engine once on random or given inputs, print and export the outputs\n"
            "  bench    measure an engine's (or an ONNX model's) latency and throughput\n"
            "  inspect  describe an engine's IO tensors, profiles and layers\n"
            "\n"
            "'kiln <command> --help' describes a command's options. 'kiln --version' prints the version.\n"
            "Exit status: 0 success, 1 failure, 2 bad usage.\n");
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"build", cmd_build}, {"run", cmd_run}, {"bench", cmd_bench}, {"inspect", cmd_inspect}};
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kiln %s\n", kiln_version_string());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        static char cmd_name[32];
        snprintf(cmd_name, sizeof cmd_name, "kiln %s", cmds[i].name);
        cli_cmd = cmd_name;
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "kiln: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
