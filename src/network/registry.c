/* Maps each layer type to its family's ops. Families live one per file in this folder. */
#include "families.h"
#include "ir.h"

#define KILN__COUNT(E, fam) +1
_Static_assert(0 KILN__LAYER_FAMILIES(KILN__COUNT) == KILN_LAYER_TYPE_COUNT, "families.h must list every layer type");

#define KILN__DECLARE(E, fam) extern const kiln__layer_ops kiln__##fam##_ops;
KILN__LAYER_FAMILIES(KILN__DECLARE)

const kiln__layer_ops *kiln__layer_ops_for(kiln_layer_type type) {
    switch (type) {
#define KILN__CASE(E, fam)                                                                                     \
    case KILN_LAYER_##E: return &kiln__##fam##_ops;
        KILN__LAYER_FAMILIES(KILN__CASE)
    case KILN_LAYER_TYPE_COUNT: break;
    }
    return NULL;
}

const char *kiln_layer_type_name(kiln_layer_type type) {
    const kiln__layer_ops *ops = kiln__layer_ops_for(type);
    return ops ? ops->name : "Unknown";
}
