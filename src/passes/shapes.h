/* Shape facts for the fusion passes: every tensor's dims at the input shapes that bound the
 * engine's optimization profiles, for conditions that build-time dims (-1 wherever a dim follows
 * a dynamic input dim, such as the batch) leave open. shapes.c says why fusing on them is sound. */
#ifndef KILN_PASSES_SHAPES_H
#define KILN_PASSES_SHAPES_H

#include "../network/ir.h"

struct kiln__profile;

/* Input shapes the engine accepts: each profile's min, opt and max, and the corners of its
 * min..max box; one row of net->nb_inputs dims per point. */
typedef struct kiln__shape_points {
    int32_t nb_points;
    int64_t nb_inputs;
    kiln_dims *inputs;
} kiln__shape_points;

/* The points of `profiles`, or with none the network's input dims when they are all known (no
 * points otherwise). Freed with kiln__shape_points_free. */
kiln_status kiln__shape_points_make(const kiln_network *net, const struct kiln__profile *profiles,
                                    int32_t nb_profiles, kiln__shape_points *pts);
void kiln__shape_points_free(const kiln_network *net, kiln__shape_points *pts);

/* Every tensor's dims at each point where the network's shapes infer (points where they do not
 * are shapes the engine rejects anyway). Tensors made after the evaluation have no facts. */
typedef struct kiln__shape_facts {
    int32_t nb_points;
    int64_t nb_tensors;
    kiln_dims *dims; /* nb_points rows of nb_tensors */
} kiln__shape_facts;

/* Evaluates the facts when pts has points and some tensor's build-time dims are not all known;
 * else leaves none (nb_points 0). Only running out of memory is an error. */
kiln_status kiln__shape_facts_eval(const kiln_network *net, const kiln__shape_points *pts, kiln__shape_facts *f);
void kiln__shape_facts_free(const kiln_network *net, kiln__shape_facts *f);

/* A condition on the dims of two tensors, with every dim of both known. */
typedef bool (*kiln__dims_pred)(const kiln_dims *a, const kiln_dims *b);

/* Whether pred holds for a and b at every shape the engine accepts, as far as the build can
 * tell: on their build-time dims when those are all known, else at every point of f (at least
 * one). */
bool kiln__shape_facts_all(const kiln__shape_facts *f, const kiln_tensor *a, const kiln_tensor *b,
                           kiln__dims_pred pred);

#endif
