/* Graph-level checks: unique value names, no dangling inputs (subgraphs may use names of
 * enclosing graphs), no cycles; nodes are put in topological order when they are not. */
#include "onnx/decode.h"

#include <stdio.h>
#include <string.h>

enum { FROM_INPUT = -1, FROM_INITIALIZER = -2 };

/* Open-addressing map from a name to where it comes from (node index or FROM_*). */
typedef struct name_map {
    const char **keys;
    int32_t *vals;
    size_t cap; /* power of two, at least twice the number of keys */
    size_t len;
} name_map;

static kiln_status map_init(const kiln__alloc *alloc, name_map *m, size_t n) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * n + 1) {
        if (cap > SIZE_MAX / 4) return kiln__error(KILN_OUT_OF_MEMORY, "graph has too many names");
        cap *= 2;
    }
    m->keys = kiln__calloc(alloc, cap, sizeof *m->keys);
    m->vals = kiln__calloc(alloc, cap, sizeof *m->vals);
    if (!m->keys || !m->vals) {
        kiln__free(alloc, m->keys);
        kiln__free(alloc, m->vals);
        m->keys = NULL;
        m->vals = NULL;
        return KILN_OUT_OF_MEMORY;
    }
    m->cap = cap;
    return KILN_OK;
}

static void map_free(const kiln__alloc *alloc, name_map *m) {
    kiln__free(alloc, m->keys);
    kiln__free(alloc, m->vals);
}

static size_t map_slot(const name_map *m, const char *key) {
    size_t i = (size_t)kiln__hash64(key, strlen(key), 0) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key)) i = (i + 1) & (m->cap - 1);
    return i;
}

static const int32_t *map_get(const name_map *m, const char *key) {
    size_t i = map_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

/* Inserts or replaces, doubling the table when it gets half full. */
static kiln_status map_put(const kiln__alloc *alloc, name_map *m, const char *key, int32_t val) {
    if (2 * (m->len + 1) > m->cap) {
        name_map bigger;
        KILN__TRY(map_init(alloc, &bigger, m->len + 1));
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = map_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.vals[j] = m->vals[i];
                bigger.len++;
            }
        map_free(alloc, m);
        *m = bigger;
    }
    size_t i = map_slot(m, key);
    if (!m->keys[i]) m->len++;
    m->keys[i] = key;
    m->vals[i] = val;
    return KILN_OK;
}

typedef struct scope {
    const name_map *names;
    const struct scope *parent;
} scope;

static bool scope_has(const scope *s, const char *name) {
    for (; s; s = s->parent)
        if (map_get(s->names, name)) return true;
    return false;
}

/* Names a graph takes from enclosing scopes, deduplicated. */
typedef struct free_list {
    name_map seen;
    const char **names;
    int64_t len, cap;
} free_list;

static kiln_status free_add(const kiln__alloc *alloc, free_list *f, const char *name) {
    if (map_get(&f->seen, name)) return KILN_OK;
    KILN__TRY(kiln__reserve(alloc, (void **)&f->names, &f->cap, f->len + 1, sizeof *f->names));
    f->names[f->len++] = name;
    return map_put(alloc, &f->seen, name, 0);
}

static void free_list_free(const kiln__alloc *alloc, free_list *f) {
    map_free(alloc, &f->seen);
    kiln__free(alloc, f->names);
}

static const char *producer_name(const kiln__onnx_graph *g, int32_t who, char *buf, size_t size) {
    if (who == FROM_INPUT) return "a graph input";
    if (who == FROM_INITIALIZER) return "an initializer";
    kiln__onnx_node_label(&g->nodes[who], who, buf, size);
    return buf;
}

/* Orders nodes so that every node comes after the nodes it depends on (deps in CSR form:
 * node i depends on dep[start[i] .. start[i+1])); keeps the given order when it is valid. */
static kiln_status topo_sort(const kiln__alloc *alloc, kiln__onnx_graph *g, const int32_t *start, const int32_t *dep) {
    int32_t n = g->nb_nodes;
    uint8_t *state = kiln__calloc(alloc, (size_t)n, 1); /* 0 new, 1 on the path, 2 placed */
    int32_t *order = kiln__calloc(alloc, (size_t)n, sizeof *order);
    int32_t *stack = kiln__calloc(alloc, (size_t)n, sizeof *stack);
    int32_t *next = kiln__calloc(alloc, (size_t)n, sizeof *next); /* next dep to visit per node */
    kiln__onnx_node *sorted = NULL;
    kiln_status st = KILN_OK;
    if (!state || !order || !stack || !next) {
        st = KILN_OUT_OF_MEMORY;
        goto done;
    }
    int32_t placed = 0;
    for (int32_t root = 0; root < n && st == KILN_OK; root++) {
        if (state[root]) continue;
        int32_t top = 0;
        stack[top++] = root;
        state[root] = 1;
        next[root] = start[root];
        while (top > 0) {
            int32_t v = stack[top - 1];
            if (next[v] < start[v + 1]) {
                int32_t d = dep[next[v]++];
                if (state[d] == 1) {
                    char label[256];
                    kiln__onnx_node_label(&g->nodes[d], d, label, sizeof label);
                    st = kiln__error(KILN_INVALID_ARGUMENT, "the graph has a cycle through %s", label);
                    break;
                }
                if (state[d] == 0) {
                    state[d] = 1;
                    next[d] = start[d];
                    stack[top++] = d;
                }
            } else {
                state[v] = 2;
                order[placed++] = v;
                top--;
            }
        }
    }
    if (st != KILN_OK) goto done;
    bool in_order = true;
    for (int32_t i = 0; i < n; i++) in_order &= order[i] == i;
    if (!in_order) {
        sorted = kiln__calloc(alloc, (size_t)n, sizeof *sorted);
        if (!sorted) {
            st = KILN_OUT_OF_MEMORY;
            goto done;
        }
        for (int32_t i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
        memcpy((kiln__onnx_node *)g->nodes, sorted, (size_t)n * sizeof *sorted);
    }
done:
    kiln__free(alloc, state);
    kiln__free(alloc, order);
    kiln__free(alloc, stack);
    kiln__free(alloc, next);
    kiln__free(alloc, sorted);
    return st;
}

typedef struct edges {
    int32_t *from, *to;
    int64_t len, cap_from, cap_to;
} edges;

static kiln_status edge_add(const kiln__alloc *alloc, edges *e, int32_t from, int32_t to) {
    KILN__TRY(kiln__reserve(alloc, (void **)&e->from, &e->cap_from, e->len + 1, sizeof *e->from));
    KILN__TRY(kiln__reserve(alloc, (void **)&e->to, &e->cap_to, e->len + 1, sizeof *e->to));
    e->from[e->len] = from;
    e->to[e->len] = to;
    e->len++;
    return KILN_OK;
}

/* A use of `name` by node `user` (-1: a graph output): an edge when a local node produces
 * it, a free name when an enclosing graph does, an error otherwise. */
static kiln_status use_name(const kiln__alloc *alloc, const name_map *local, const scope *outer, free_list *frees,
                            edges *e, int32_t user, const char *name) {
    const int32_t *who = map_get(local, name);
    if (who) return *who >= 0 ? edge_add(alloc, e, *who, user) : KILN_OK;
    if (scope_has(outer, name)) return free_add(alloc, frees, name);
    return kiln__error(KILN_INVALID_ARGUMENT, "'%s' is not produced by any node, initializer or graph input%s", name,
                       outer ? " (here or in an enclosing graph)" : "");
}

static kiln_status check_graph(const kiln__alloc *alloc, kiln__onnx_graph *g, const scope *outer, free_list *frees);

static kiln_status check_nodes(const kiln__alloc *alloc, kiln__onnx_graph *g, const name_map *local, const scope *outer,
                               free_list *frees, edges *e) {
    scope here = {local, outer};
    char label[256];
    for (int32_t i = 0; i < g->nb_nodes; i++) {
        const kiln__onnx_node *n = &g->nodes[i];
        kiln__onnx_node_label(n, i, label, sizeof label);
        for (int32_t k = 0; k < n->nb_inputs; k++) {
            if (!n->inputs[k][0]) continue;
            kiln_status st = use_name(alloc, local, outer, frees, e, i, n->inputs[k]);
            if (st != KILN_OK) return kiln__error_prefix(st, "%s: input %d", label, k);
        }
        for (int32_t k = 0; k < n->nb_attrs; k++) {
            const kiln__onnx_attr *a = &n->attrs[k];
            int64_t count = a->type == KILN__ONNX_ATTR_GRAPH    ? (a->g != NULL)
                            : a->type == KILN__ONNX_ATTR_GRAPHS ? a->count
                                                                : 0;
            for (int64_t j = 0; j < count; j++) {
                kiln__onnx_graph *sub = (kiln__onnx_graph *)(a->type == KILN__ONNX_ATTR_GRAPH ? a->g : &a->graphs[j]);
                free_list sub_frees = {0};
                kiln_status st = map_init(alloc, &sub_frees.seen, 0);
                if (st == KILN_OK) st = check_graph(alloc, sub, &here, &sub_frees);
                /* The subgraph's outer names are implicit inputs of this node. */
                for (int64_t f = 0; st == KILN_OK && f < sub_frees.len; f++)
                    st = use_name(alloc, local, outer, frees, e, i, sub_frees.names[f]);
                free_list_free(alloc, &sub_frees);
                if (st != KILN_OK) return kiln__error_prefix(st, "%s: attribute '%s'", label, a->name);
            }
        }
    }
    return KILN_OK;
}

static kiln_status check_graph(const kiln__alloc *alloc, kiln__onnx_graph *g, const scope *outer, free_list *frees) {
    int64_t total = (int64_t)g->nb_inputs + g->nb_initializers;
    for (int32_t i = 0; i < g->nb_nodes; i++) total += g->nodes[i].nb_outputs;
    name_map local;
    edges e = {0};
    int32_t *start = NULL, *dep = NULL;
    char label[256], other[256];
    kiln_status st = map_init(alloc, &local, (size_t)total);
    if (st != KILN_OK) return kiln__error_prefix(st, "graph '%s'", g->name);
    for (int32_t i = 0; i < g->nb_inputs && st == KILN_OK; i++) {
        const char *name = g->inputs[i].name;
        if (!name[0])
            st = kiln__error(KILN_INVALID_ARGUMENT, "input %d has no name", i);
        else if (map_get(&local, name))
            st = kiln__error(KILN_INVALID_ARGUMENT, "input '%s' appears twice", name);
        else
            st = map_put(alloc, &local, name, FROM_INPUT);
    }
    for (int32_t i = 0; i < g->nb_initializers && st == KILN_OK; i++) {
        const char *name = g->initializers[i].name;
        const int32_t *who = map_get(&local, name);
        if (!name[0])
            st = kiln__error(KILN_INVALID_ARGUMENT, "initializer %d has no name", i);
        else if (who && *who == FROM_INITIALIZER)
            st = kiln__error(KILN_INVALID_ARGUMENT, "initializer '%s' appears twice", name);
        else if (!who)
            st = map_put(alloc, &local, name, FROM_INITIALIZER); /* also listed as an input: allowed (IR < 4) */
    }
    for (int32_t i = 0; i < g->nb_nodes && st == KILN_OK; i++) {
        const kiln__onnx_node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->nb_outputs && st == KILN_OK; k++) {
            const char *name = n->outputs[k];
            if (!name[0]) continue;
            const int32_t *who = map_get(&local, name);
            if (who) {
                kiln__onnx_node_label(n, i, label, sizeof label);
                st = kiln__error(KILN_INVALID_ARGUMENT, "value '%s' is produced twice: by %s and by %s", name,
                                 producer_name(g, *who, other, sizeof other), label);
            } else {
                st = map_put(alloc, &local, name, i);
            }
        }
    }
    if (st == KILN_OK) st = check_nodes(alloc, g, &local, outer, frees, &e);
    for (int32_t i = 0; i < g->nb_outputs && st == KILN_OK; i++) {
        const char *name = g->outputs[i].name;
        if (!name[0])
            st = kiln__error(KILN_INVALID_ARGUMENT, "output %d has no name", i);
        else if (!map_get(&local, name) && !scope_has(outer, name))
            st = kiln__error(KILN_INVALID_ARGUMENT,
                             "output '%s' is not produced by any node, initializer or graph input", name);
        else if (!map_get(&local, name))
            st = free_add(alloc, frees, name);
    }
    if (st == KILN_OK) {
        start = kiln__calloc(alloc, (size_t)g->nb_nodes + 1, sizeof *start);
        dep = kiln__calloc(alloc, (size_t)e.len + 1, sizeof *dep);
        if (!start || !dep) st = KILN_OUT_OF_MEMORY;
    }
    if (st == KILN_OK) {
        /* CSR of dependencies: dep[start[i] .. start[i+1]) are the producers node i uses. */
        for (int64_t k = 0; k < e.len; k++) start[e.to[k] + 1]++;
        for (int32_t i = 0; i < g->nb_nodes; i++) start[i + 1] += start[i];
        int32_t *fill = kiln__calloc(alloc, (size_t)g->nb_nodes + 1, sizeof *fill);
        if (!fill) {
            st = KILN_OUT_OF_MEMORY;
        } else {
            memcpy(fill, start, ((size_t)g->nb_nodes + 1) * sizeof *fill);
            for (int64_t k = 0; k < e.len; k++) dep[fill[e.to[k]]++] = e.from[k];
            kiln__free(alloc, fill);
            st = topo_sort(alloc, g, start, dep);
        }
    }
    map_free(alloc, &local);
    kiln__free(alloc, e.from);
    kiln__free(alloc, e.to);
    kiln__free(alloc, start);
    kiln__free(alloc, dep);
    if (st != KILN_OK) return kiln__error_prefix(st, "graph '%s'", g->name);
    return KILN_OK;
}

kiln_status kiln__onnx_check_graph(const kiln__alloc *alloc, kiln__onnx_graph *g) {
    free_list frees = {0};
    kiln_status st = map_init(alloc, &frees.seen, 0);
    if (st == KILN_OK) st = check_graph(alloc, g, NULL, &frees);
    free_list_free(alloc, &frees);
    return st;
}
