/* Maps each layer type to its CPU kernel. Kernels live one family per file in this folder. */
#include "../network/families.h"
#include "cpu.h"

#define KILN__DECLARE(E, fam)                                                                                  \
    kiln_status kiln__cpu_##fam(const kiln_layer *, const kiln__value *, kiln__value *, kiln__cpu_ctx *);
KILN__LAYER_FAMILIES(KILN__DECLARE)

kiln__cpu_kernel_fn kiln__cpu_kernel_for(kiln_layer_type type) {
    switch (type) {
#define KILN__CASE(E, fam)                                                                                     \
    case KILN_LAYER_##E: return kiln__cpu_##fam;
        KILN__LAYER_FAMILIES(KILN__CASE)
    case KILN_LAYER_TYPE_COUNT: break;
    }
    return NULL;
}
