/* ONNX backend conformance runner: for every case folder under <tests>/{node,simple,
 * pytorch-converted,pytorch-operator}, imports model.onnx, builds a CPU engine, runs it on
 * test_data_set_0/input_*.pb and compares with output_*.pb (rtol 1e-3, atol 1e-7 as ONNX's
 * runner; exact for integers and bools; NaN equals NaN; shapes must match exactly).
 * Sequence and optional values are flattened as the importer does (importer.h,
 * kiln__onnx_input_form): the test data gives each such input's form, element k of a
 * sequence "s" is the tensor "s[k]", an optional tensor "o" is "o", and an empty optional
 * output must be no engine output at all.
 *
 *   runner <onnx-tests dir> <results.tsv> [--write-results] [--skip <file>] [--filter <substr>]
 *          [--jobs N] [--no-fork] [--verbose]
 *
 * Each case runs in a child process so that a crash fails that case only. --write-results
 * writes results.tsv (case, pass|fail|unsupported, reason); otherwise the run is compared
 * with it: a case listed as pass that no longer passes fails the test. The last line is
 * "N passed, N failed, N skipped" (skipped: unsupported and skip-listed cases). */
#include "kiln.h"
#include "onnx/importer.h"
#include "onnx/model.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REASON_MAX 400
#define MAX_IO 64
#define MAX_LEAVES 1024 /* input tensors, sequence elements included */

static const char *const FOLDERS[] = {"node", "simple", "pytorch-converted", "pytorch-operator"};
#define NB_FOLDERS 4

typedef enum status { ST_PASS = 0, ST_FAIL = 1, ST_UNSUPPORTED = 2 } status;
static const char *const STATUS_NAMES[] = {"pass", "fail", "unsupported"};

typedef struct test_case {
    char *id; /* "node/test_abs" */
    int folder;
    status st;
    char reason[REASON_MAX];
    const char *skip_reason;
} test_case;

/* ---------------------------------------------------------------- running one case */

typedef struct case_run {
    const char *dir;
    status st;
    char reason[REASON_MAX];
    kiln__alloc alloc;
    kiln_builder *builder;
    kiln_network *net;
    kiln_builder_config *config;
    kiln_optimization_profile *profile;
    kiln_engine *engine;
    kiln_context *context;
    kiln__onnx_model *model;
    kiln__onnx_value_file *inputs[MAX_IO], *outputs[MAX_IO];
    /* Network inputs: one per tensor input and per element of a sequence or optional input. */
    const kiln__onnx_tensor *leaves[MAX_LEAVES];
    char leaf_names[MAX_LEAVES][KILN_MAX_NAME + 16];
    void *input_data[MAX_LEAVES];
    int nb_inputs, nb_outputs, nb_leaves;
    kiln__onnx_input_form forms[MAX_IO];
    kiln_dtype form_dtypes[MAX_LEAVES];
    kiln_dims form_dims[MAX_LEAVES];
} case_run;

static status set_result(case_run *r, status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static status set_result(case_run *r, status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    for (char *c = r->reason; *c; c++)
        if (*c == '\t' || *c == '\n' || *c == '\r') *c = ' ';
    /* Paths name the case's folder on this machine: keep results.tsv the same everywhere. */
    size_t n = strlen(r->dir);
    for (char *p; (p = strstr(r->reason, r->dir)) && p[n] == '/';) memmove(p, p + n + 1, strlen(p + n + 1) + 1);
    r->st = st;
    return st;
}

/* A failed kiln call: unsupported features are "unsupported", everything else "fail". */
static status kiln_failure(case_run *r, kiln_status s, const char *what) {
    return set_result(r, s == KILN_UNSUPPORTED ? ST_UNSUPPORTED : ST_FAIL, "%s: %s", what, kiln_last_error());
}

static bool file_exists(const char *path) { return access(path, R_OK) == 0; }

/* Element i as double for float dtypes. */
static double load_float(kiln_dtype t, const void *data, int64_t i) {
    switch (t) {
    case KILN_FLOAT32: {
        float f;
        memcpy(&f, (const char *)data + i * 4, 4);
        return f;
    }
    case KILN_FLOAT64: {
        double d;
        memcpy(&d, (const char *)data + i * 8, 8);
        return d;
    }
    case KILN_FLOAT16:
    case KILN_BFLOAT16: {
        uint16_t h;
        memcpy(&h, (const char *)data + i * 2, 2);
        return t == KILN_FLOAT16 ? kiln__half_to_float(h) : kiln__bf16_to_float(h);
    }
    default: return 0;
    }
}

/* Compares a kiln output with the expected tensor. */
static status compare(case_run *r, const char *name, kiln_dtype dtype, const kiln_dims *dims, const void *got,
                      const kiln__onnx_tensor *want) {
    if ((int32_t)dtype != want->data_type)
        return set_result(r, ST_FAIL, "output '%s': dtype %s, expected ONNX type %d", name, kiln_dtype_name(dtype),
                          (int)want->data_type);
    bool same = dims->nb_dims == want->nb_dims;
    for (int32_t i = 0; same && i < dims->nb_dims; i++) same = dims->d[i] == want->dims[i];
    if (!same) {
        char g[200], w[200];
        kiln__dims_format(dims, g, sizeof g);
        kiln__onnx_tensor_format(want, w, sizeof w);
        return set_result(r, ST_FAIL, "output '%s': shape %s, expected %s", name, g, w);
    }
    kiln__onnx_data data;
    kiln_status s = kiln__onnx_tensor_data(&r->alloc, want, &data);
    if (s != KILN_OK) return kiln_failure(r, s, "reading the expected output");
    status st = ST_PASS;
    if (dtype == KILN_FLOAT32 || dtype == KILN_FLOAT64 || dtype == KILN_FLOAT16 || dtype == KILN_BFLOAT16) {
        for (int64_t i = 0; i < want->count; i++) {
            double a = load_float(dtype, got, i), b = load_float(dtype, data.data, i);
            if (isnan(a) && isnan(b)) continue;
            if (a == b) continue; /* also equal infinities */
            if (!(fabs(a - b) <= 1e-7 + 1e-3 * fabs(b))) {
                st = set_result(r, ST_FAIL, "output '%s': element %lld is %.9g, expected %.9g", name, (long long)i, a,
                                b);
                break;
            }
        }
    } else if (data.size && memcmp(got, data.data, data.size) != 0) { /* NULL data when empty */
        size_t i = 0;
        while (((const uint8_t *)got)[i] == ((const uint8_t *)data.data)[i]) i++;
        uint32_t bits = kiln_dtype_bits(dtype);
        st = set_result(r, ST_FAIL, "output '%s' (%s): differs at element %lld", name, kiln_dtype_name(dtype),
                        (long long)(bits >= 8 ? i / (bits / 8) : i));
    }
    kiln__onnx_data_release(&r->alloc, &data);
    return st;
}

/* Graph inputs that are not initializers, in order. */
static int real_inputs(const kiln__onnx_graph *g, const kiln__onnx_value_info **out) {
    int n = 0;
    for (int32_t i = 0; i < g->nb_inputs && n < MAX_IO; i++) {
        bool init = false;
        for (int32_t k = 0; k < g->nb_initializers && !init; k++)
            init = strcmp(g->initializers[k].name, g->inputs[i].name) == 0;
        if (!init) out[n++] = &g->inputs[i];
    }
    return n;
}

/* Adds a network input for test tensor t named `name`; with `form`, also records its dtype
 * and dims as the next element of that form. */
static status add_leaf(case_run *r, const char *name, const kiln__onnx_tensor *t, kiln__onnx_input_form *form) {
    if (r->nb_leaves == MAX_LEAVES) return set_result(r, ST_UNSUPPORTED, "more than %d input tensors", MAX_LEAVES);
    if (t->nb_dims > KILN_MAX_DIMS) return set_result(r, ST_UNSUPPORTED, "input '%s' has rank > 8", name);
    int i = r->nb_leaves++;
    r->leaves[i] = t;
    snprintf(r->leaf_names[i], sizeof r->leaf_names[i], "%s", name);
    r->form_dtypes[i] = (kiln_dtype)t->data_type;
    r->form_dims[i].nb_dims = t->nb_dims;
    for (int32_t d = 0; d < t->nb_dims; d++) r->form_dims[i].d[d] = t->dims[d];
    if (form && form->count++ == 0) {
        form->dtypes = &r->form_dtypes[i];
        form->dims = &r->form_dims[i];
    }
    return ST_PASS;
}

/* The leaves of a sequence value (or of the sequence an optional holds) named `name`. */
static status add_seq_leaves(case_run *r, const char *name, const kiln__onnx_value *v, kiln__onnx_input_form *form) {
    for (int64_t k = 0; k < v->count; k++) {
        if (v->items[k].kind != KILN__ONNX_VALUE_TENSOR)
            return set_result(r, ST_UNSUPPORTED, "input '%s' is a sequence of non-tensors", name);
        char leaf[KILN_MAX_NAME + 16];
        snprintf(leaf, sizeof leaf, "%s[%lld]", name, (long long)k);
        if (add_leaf(r, leaf, v->items[k].tensor, form) != ST_PASS) return r->st;
    }
    return ST_PASS;
}

/* Test input value v for the graph input `name`: its leaves, and its form when it is not a tensor. */
static status add_input_value(case_run *r, const char *name, const kiln__onnx_value *v) {
    if (v->kind == KILN__ONNX_VALUE_TENSOR) return add_leaf(r, name, v->tensor, NULL);
    kiln__onnx_input_form *form = &r->forms[r->nb_inputs];
    memset(form, 0, sizeof *form);
    form->name = name;
    form->present = true;
    form->dtypes = r->form_dtypes;
    form->dims = r->form_dims;
    if (v->kind == KILN__ONNX_VALUE_SEQUENCE) return add_seq_leaves(r, name, v, form);
    if (!v->value) {
        form->present = false;
        return ST_PASS;
    }
    if (v->value->kind == KILN__ONNX_VALUE_SEQUENCE) return add_seq_leaves(r, name, v->value, form);
    if (v->value->kind != KILN__ONNX_VALUE_TENSOR)
        return set_result(r, ST_UNSUPPORTED, "input '%s' is an optional of a non-tensor", name);
    return add_leaf(r, name, v->value->tensor, form);
}

/* Compares the engine's outputs for graph output `name` with the expected value. */
static status compare_value(case_run *r, const char *name, const kiln__onnx_value *want) {
    char leaf[KILN_MAX_NAME + 16];
    const kiln__onnx_value *v = want;
    if (v->kind == KILN__ONNX_VALUE_OPTIONAL) {
        if (!v->value) {
            snprintf(leaf, sizeof leaf, "%s[0]", name);
            if (kiln_engine_tensor_io_mode(r->engine, name) != KILN_IO_NONE ||
                kiln_engine_tensor_io_mode(r->engine, leaf) != KILN_IO_NONE)
                return set_result(r, ST_FAIL, "output '%s': expected an empty optional, the engine has a value", name);
            return ST_PASS;
        }
        v = v->value;
    }
    int64_t n = v->kind == KILN__ONNX_VALUE_SEQUENCE ? v->count : 1;
    for (int64_t k = 0; k < n; k++) {
        const kiln__onnx_value *item = v->kind == KILN__ONNX_VALUE_SEQUENCE ? &v->items[k] : v;
        if (item->kind != KILN__ONNX_VALUE_TENSOR)
            return set_result(r, ST_UNSUPPORTED, "output '%s' holds values that are not tensors", name);
        if (v->kind == KILN__ONNX_VALUE_SEQUENCE) snprintf(leaf, sizeof leaf, "%s[%lld]", name, (long long)k);
        else snprintf(leaf, sizeof leaf, "%s", name);
        if (kiln_engine_tensor_io_mode(r->engine, leaf) != KILN_IO_OUTPUT)
            return set_result(r, ST_FAIL, "output '%s' is not an engine output", leaf);
        kiln_dims dims;
        void *addr;
        kiln_status s;
        if ((s = kiln_context_get_tensor_shape(r->context, leaf, &dims)) != KILN_OK)
            return kiln_failure(r, s, "output shape");
        if ((s = kiln_context_get_tensor_address(r->context, leaf, &addr)) != KILN_OK)
            return kiln_failure(r, s, "output address");
        if (compare(r, leaf, kiln_engine_tensor_dtype(r->engine, leaf), &dims, addr, item->tensor) != ST_PASS)
            return r->st;
    }
    if (v->kind == KILN__ONNX_VALUE_SEQUENCE) {
        snprintf(leaf, sizeof leaf, "%s[%lld]", name, (long long)n);
        if (kiln_engine_tensor_io_mode(r->engine, leaf) == KILN_IO_OUTPUT)
            return set_result(r, ST_FAIL, "output '%s': the engine's sequence has more than %lld elements", name,
                              (long long)n);
    }
    return ST_PASS;
}

static status run_case_inner(case_run *r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", r->dir);
    kiln_status s = kiln__onnx_model_load(&r->alloc, path, &r->model);
    if (s != KILN_OK) return kiln_failure(r, s, "loading the model");
    const kiln__onnx_graph *g = r->model->graph;
    const kiln__onnx_value_info *ins[MAX_IO];
    int nin = real_inputs(g, ins);
    if (g->nb_outputs > MAX_IO) return set_result(r, ST_UNSUPPORTED, "more than %d outputs", MAX_IO);

    /* Test inputs; a file's name (when set) picks the graph input, else its position does.
     * Sequence and optional inputs give their form to the importer. */
    for (r->nb_inputs = 0; r->nb_inputs < nin; r->nb_inputs++) {
        int i = r->nb_inputs;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", r->dir, i);
        if (!file_exists(path)) break;
        kiln__onnx_value_kind kind = kiln__onnx_value_kind_of(&ins[i]->type);
        if (!kind) return set_result(r, ST_UNSUPPORTED, "input '%s' has no type", ins[i]->name);
        s = kiln__onnx_value_load(&r->alloc, path, kind, &r->inputs[i]);
        if (s != KILN_OK) return kiln_failure(r, s, "loading a test input");
        const kiln__onnx_value *v = &r->inputs[i]->value;
        const char *name = v->name && v->name[0] ? v->name : ins[i]->name;
        if (add_input_value(r, name, v) != ST_PASS) return r->st;
    }
    /* The forms are packed first: they were filled at the input's own index. */
    kiln__onnx_input_form forms[MAX_IO];
    int nf = 0;
    for (int i = 0; i < r->nb_inputs; i++)
        if (r->inputs[i]->value.kind != KILN__ONNX_VALUE_TENSOR) forms[nf++] = r->forms[i];
    snprintf(path, sizeof path, "%s/model.onnx", r->dir);
    if ((s = kiln__onnx_import(r->builder, r->model, forms, nf, &r->net)) != KILN_OK)
        return kiln_failure(r, kiln__error_prefix(s, "%s", path), "import");

    if ((s = kiln_builder_config_create(r->builder, &r->config)) != KILN_OK) return kiln_failure(r, s, "config");
    bool dynamic = false;
    for (int i = 0; i < r->nb_leaves; i++) {
        kiln_tensor *nt = kiln_network_find_tensor(r->net, r->leaf_names[i]);
        if (!nt || !nt->is_input)
            return set_result(r, ST_FAIL, "test input '%s' is not a network input", r->leaf_names[i]);
        kiln_dims declared;
        kiln_tensor_shape(nt, &declared);
        for (int32_t d = 0; d < declared.nb_dims; d++) dynamic |= declared.d[d] < 0;
    }
    if (dynamic) {
        if ((s = kiln_optimization_profile_create(r->builder, &r->profile)) != KILN_OK)
            return kiln_failure(r, s, "profile");
        for (int i = 0; i < r->nb_leaves; i++)
            for (int k = 0; k < 3; k++)
                if ((s = kiln_optimization_profile_set_dims(r->profile, r->leaf_names[i], (kiln_profile_selector)k,
                                                            &r->form_dims[i])) != KILN_OK)
                    return kiln_failure(r, s, "profile dims");
        if ((s = kiln_builder_config_add_profile(r->config, r->profile)) != KILN_OK)
            return kiln_failure(r, s, "adding the profile");
    }
    if ((s = kiln_builder_build_engine(r->builder, r->net, r->config, &r->engine)) != KILN_OK)
        return kiln_failure(r, s, "build");
    if ((s = kiln_engine_create_context(r->engine, &r->context)) != KILN_OK) return kiln_failure(r, s, "context");
    for (int i = 0; i < r->nb_leaves; i++) {
        const kiln__onnx_tensor *t = r->leaves[i];
        const char *name = r->leaf_names[i];
        if ((int32_t)kiln_engine_tensor_dtype(r->engine, name) != t->data_type)
            return set_result(r, ST_FAIL, "test input '%s' has ONNX type %d, the engine wants %s", name,
                              (int)t->data_type, kiln_dtype_name(kiln_engine_tensor_dtype(r->engine, name)));
        if ((s = kiln_context_set_input_shape(r->context, name, &r->form_dims[i])) != KILN_OK)
            return kiln_failure(r, s, "input shape");
        kiln__onnx_data data;
        if ((s = kiln__onnx_tensor_data(&r->alloc, t, &data)) != KILN_OK) return kiln_failure(r, s, "input data");
        /* Copied: tensor data in the mapped file may be unaligned. */
        size_t size = data.size;
        r->input_data[i] = kiln__malloc_aligned(&r->alloc, size ? size : 1, 64);
        if (r->input_data[i] && size) memcpy(r->input_data[i], data.data, size);
        kiln__onnx_data_release(&r->alloc, &data);
        if (!r->input_data[i]) return set_result(r, ST_FAIL, "out of memory");
        if ((s = kiln_context_set_tensor_address(r->context, name, r->input_data[i], size)) != KILN_OK)
            return kiln_failure(r, s, "binding an input");
    }
    if ((s = kiln_context_execute(r->context)) != KILN_OK) return kiln_failure(r, s, "execute");

    for (r->nb_outputs = 0; r->nb_outputs < g->nb_outputs; r->nb_outputs++) {
        int i = r->nb_outputs;
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", r->dir, i);
        if (!file_exists(path)) return set_result(r, ST_FAIL, "test data has no output_%d.pb", i);
        kiln__onnx_value_kind kind = kiln__onnx_value_kind_of(&g->outputs[i].type);
        s = kiln__onnx_value_load(&r->alloc, path, kind ? kind : KILN__ONNX_VALUE_TENSOR, &r->outputs[i]);
        if (s != KILN_OK) return kiln_failure(r, s, "loading an expected output");
        if (compare_value(r, g->outputs[i].name, &r->outputs[i]->value) != ST_PASS) return r->st;
    }
    return set_result(r, ST_PASS, "%s", "");
}

static void run_case(const char *dir, status *st, char *reason) {
    case_run r = {.dir = dir};
    kiln__alloc_init(&r.alloc, NULL);
    kiln_builder_options opts = {.struct_size = sizeof opts};
    kiln_status s = kiln_builder_create(&opts, &r.builder);
    if (s != KILN_OK) kiln_failure(&r, s, "builder");
    else run_case_inner(&r);
    kiln_context_destroy(r.context);
    kiln_engine_destroy(r.engine);
    kiln_optimization_profile_destroy(r.profile);
    kiln_builder_config_destroy(r.config);
    kiln_network_destroy(r.net);
    for (int i = 0; i < MAX_IO; i++) {
        kiln__onnx_value_free(r.inputs[i]);
        kiln__onnx_value_free(r.outputs[i]);
    }
    for (int i = 0; i < MAX_LEAVES; i++) kiln__free(&r.alloc, r.input_data[i]);
    kiln__onnx_model_free(r.model);
    kiln_builder_destroy(r.builder);
    *st = r.st;
    memcpy(reason, r.reason, REASON_MAX);
}

/* ---------------------------------------------------------------- case lists and files */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_cases(const char *root, const char *filter, test_case **out) {
    int n = 0, cap = 0;
    test_case *cases = NULL;
    for (int f = 0; f < NB_FOLDERS; f++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, FOLDERS[f]);
        DIR *d = opendir(dir);
        if (!d) {
            fprintf(stderr, "cannot open %s: %s\n", dir, strerror(errno));
            continue;
        }
        char **names = NULL;
        int nn = 0, ncap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char model[8192];
            snprintf(model, sizeof model, "%s/%s/model.onnx", dir, e->d_name);
            if (!file_exists(model)) continue;
            if (nn == ncap) names = realloc(names, sizeof *names * (size_t)(ncap = ncap ? 2 * ncap : 256));
            names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int i = 0; i < nn; i++) {
            char id[4096];
            snprintf(id, sizeof id, "%s/%s", FOLDERS[f], names[i]);
            free(names[i]);
            if (filter && !strstr(id, filter)) continue;
            if (n == cap) cases = realloc(cases, sizeof *cases * (size_t)(cap = cap ? 2 * cap : 1024));
            memset(&cases[n], 0, sizeof cases[n]);
            cases[n].id = strdup(id);
            cases[n].folder = f;
            n++;
        }
        free(names);
    }
    *out = cases;
    return n;
}

/* A tab-separated file: first column a case id, second the status (results) or reason (skip). */
typedef struct tsv_row {
    char *id, *col2, *col3;
} tsv_row;

static int read_tsv(const char *path, tsv_row **out) {
    FILE *f = fopen(path, "r");
    *out = NULL;
    if (!f) return -1;
    int n = 0, cap = 0;
    tsv_row *rows = NULL;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *c2 = strchr(line, '\t'), *c3 = NULL;
        if (c2) {
            *c2++ = 0;
            if ((c3 = strchr(c2, '\t'))) *c3++ = 0;
        }
        if (n == cap) rows = realloc(rows, sizeof *rows * (size_t)(cap = cap ? 2 * cap : 1024));
        rows[n].id = strdup(line);
        rows[n].col2 = strdup(c2 ? c2 : "");
        rows[n].col3 = strdup(c3 ? c3 : "");
        n++;
    }
    fclose(f);
    *out = rows;
    return n;
}

static const tsv_row *find_row(const tsv_row *rows, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].id, id) == 0) return &rows[i];
    return NULL;
}

/* ---------------------------------------------------------------- scheduling */

typedef struct slot {
    pid_t pid;
    int fd;
    int index;
} slot;

/* The child's report: status byte then the reason. */
typedef struct report {
    int32_t st;
    char reason[REASON_MAX];
} report;

static void finish_child(test_case *c, const slot *s, int wstatus) {
    report rep;
    ssize_t got = 0, k;
    while (got < (ssize_t)sizeof rep && (k = read(s->fd, (char *)&rep + got, sizeof rep - (size_t)got)) > 0) got += k;
    close(s->fd);
    if (WIFSIGNALED(wstatus)) {
        c->st = ST_FAIL;
        snprintf(c->reason, sizeof c->reason, "crashed with signal %d", WTERMSIG(wstatus));
    } else if (got != (ssize_t)sizeof rep) {
        c->st = ST_FAIL;
        snprintf(c->reason, sizeof c->reason, "the case process exited with status %d without a result",
                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    } else if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) {
        c->st = ST_FAIL;
        snprintf(c->reason, sizeof c->reason, "exit status %d after '%s' (a sanitizer report?)",
                 WEXITSTATUS(wstatus), STATUS_NAMES[rep.st]);
    } else {
        c->st = (status)rep.st;
        memcpy(c->reason, rep.reason, REASON_MAX);
        c->reason[REASON_MAX - 1] = 0;
    }
}

static void run_all(const char *root, test_case *cases, int n, int jobs, bool fork_cases, bool verbose) {
    slot *slots = calloc((size_t)jobs, sizeof *slots);
    int running = 0, next = 0;
    while (next < n || running > 0) {
        while (next < n && running < jobs) {
            test_case *c = &cases[next];
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/%s", root, c->id);
            if (c->skip_reason) {
                c->st = ST_UNSUPPORTED;
                snprintf(c->reason, sizeof c->reason, "skipped: %s", c->skip_reason);
                next++;
                continue;
            }
            if (!fork_cases) {
                run_case(dir, &c->st, c->reason);
                if (verbose) printf("%s\t%s\t%s\n", c->id, STATUS_NAMES[c->st], c->reason);
                next++;
                continue;
            }
            int fds[2];
            if (pipe(fds) != 0) {
                perror("pipe");
                exit(2);
            }
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                exit(2);
            }
            if (pid == 0) {
                close(fds[0]);
                report rep;
                memset(&rep, 0, sizeof rep);
                status st;
                run_case(dir, &st, rep.reason);
                rep.st = (int32_t)st;
                ssize_t w = write(fds[1], &rep, sizeof rep);
                close(fds[1]);
                free(slots); /* the parent's, unreachable here: a leak report would fail the case */
                exit(w == (ssize_t)sizeof rep ? 0 : 3);
            }
            close(fds[1]);
            for (int k = 0; k < jobs; k++)
                if (!slots[k].pid) {
                    slots[k] = (slot){pid, fds[0], next};
                    break;
                }
            running++;
            next++;
        }
        if (!running) continue;
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        if (pid < 0) {
            perror("waitpid");
            exit(2);
        }
        for (int k = 0; k < jobs; k++)
            if (slots[k].pid == pid) {
                test_case *c = &cases[slots[k].index];
                finish_child(c, &slots[k], wstatus);
                if (verbose) printf("%s\t%s\t%s\n", c->id, STATUS_NAMES[c->st], c->reason);
                slots[k].pid = 0;
                running--;
            }
    }
    free(slots);
}

int main(int argc, char **argv) {
    const char *root = NULL, *results = NULL, *skip = NULL, *filter = NULL;
    bool write_results = false, fork_cases = true, verbose = false;
    long jobs = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--write-results") == 0) write_results = true;
        else if (strcmp(argv[i], "--no-fork") == 0) fork_cases = false;
        else if (strcmp(argv[i], "--verbose") == 0) verbose = true;
        else if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc) skip = argv[++i];
        else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) filter = argv[++i];
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) jobs = atol(argv[++i]);
        else if (!root) root = argv[i];
        else if (!results) results = argv[i];
        else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!root || !results) {
        fprintf(stderr, "usage: %s <onnx-tests dir> <results.tsv> [--write-results] [--skip file] [--filter substr] "
                        "[--jobs N] [--no-fork] [--verbose]\n", argv[0]);
        return 2;
    }
    if (jobs < 1) jobs = 1;
    test_case *cases;
    int n = list_cases(root, filter, &cases);
    if (n == 0) {
        fprintf(stderr, "no test cases found under %s\n", root);
        return 2;
    }
    tsv_row *skips = NULL;
    int nskip = skip ? read_tsv(skip, &skips) : 0;
    if (skip && nskip < 0) {
        fprintf(stderr, "cannot read the skip file %s\n", skip);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        const tsv_row *row = find_row(skips, nskip, cases[i].id);
        if (row) cases[i].skip_reason = row->col2;
    }
    run_all(root, cases, n, (int)jobs, fork_cases, verbose);

    int pass[NB_FOLDERS] = {0}, fail[NB_FOLDERS] = {0}, skipped[NB_FOLDERS] = {0};
    for (int i = 0; i < n; i++) {
        int f = cases[i].folder;
        if (cases[i].st == ST_PASS) pass[f]++;
        else if (cases[i].st == ST_FAIL) fail[f]++;
        else skipped[f]++;
    }
    int rc = 0;
    if (write_results) {
        FILE *out = fopen(results, "w");
        if (!out) {
            fprintf(stderr, "cannot write %s: %s\n", results, strerror(errno));
            return 2;
        }
        fprintf(out, "# case\tstatus\treason (written by the conformance runner with --write-results)\n");
        for (int i = 0; i < n; i++)
            fprintf(out, "%s\t%s\t%s\n", cases[i].id, STATUS_NAMES[cases[i].st], cases[i].reason);
        fclose(out);
    } else {
        tsv_row *committed = NULL;
        int nc = read_tsv(results, &committed);
        if (nc < 0) {
            fprintf(stderr, "cannot read %s (run with --write-results to create it)\n", results);
            return 2;
        }
        int regressions = 0, new_passes = 0;
        for (int i = 0; i < n; i++) {
            const tsv_row *row = find_row(committed, nc, cases[i].id);
            bool was_pass = row && strcmp(row->col2, "pass") == 0;
            if (was_pass && cases[i].st != ST_PASS) {
                printf("REGRESSION %s: %s\n", cases[i].id, cases[i].reason);
                regressions++;
            } else if (!was_pass && cases[i].st == ST_PASS) {
                printf("newly passing: %s\n", cases[i].id);
                new_passes++;
            }
        }
        if (new_passes) printf("%d newly passing cases: update results.tsv with --write-results\n", new_passes);
        if (regressions) {
            printf("%d cases that passed before fail now\n", regressions);
            rc = 1;
        }
        for (int i = 0; i < nc; i++) {
            free(committed[i].id);
            free(committed[i].col2);
            free(committed[i].col3);
        }
        free(committed);
    }
    int tp = 0, tf = 0, ts = 0;
    for (int f = 0; f < NB_FOLDERS; f++) {
        printf("%-18s %d passed, %d failed, %d skipped\n", FOLDERS[f], pass[f], fail[f], skipped[f]);
        tp += pass[f];
        tf += fail[f];
        ts += skipped[f];
    }
    printf("%d passed, %d failed, %d skipped\n", tp, tf, ts);
    for (int i = 0; i < nskip; i++) {
        free(skips[i].id);
        free(skips[i].col2);
        free(skips[i].col3);
    }
    free(skips);
    for (int i = 0; i < n; i++) free(cases[i].id);
    free(cases);
    return rc;
}
