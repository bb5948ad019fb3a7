/* Linear attention (ONNX LinearAttention): a recurrent state S[B, H_kv, d_k, d_v] updated once
 * per time step and read by the query heads. Per step t and kv head h:
 *   gated:  S *= exp(decay_t)                       (per key dim or per head)
 *   delta:  v_t = beta_t * (v_t - S^T k_t)
 *   always: S += k_t v_t^T;  o_t = scale * q_t^T S  (query head g reads kv head g / (H_q / H_kv))
 * Inputs: 0 query [B, T, H_q*d_k], 1 key [B, T, H_kv*d_k], 2 value [B, T, H_kv*d_v],
 * 3 past_state [B, H_kv, d_k, d_v] (optional, zeros when absent), 4 decay [B, T, H_kv*d_k] or
 * [B, T, H_kv] (gated rules only), 5 beta [B, T, H_kv] or [B, T, 1] (delta rules only).
 * Outputs: 0 output [B, T, H_q*d_v] (query's dtype), 1 present_state (past_state's dtype, else
 * query's). The state is kept in double while running. */
#ifndef KILN_LINEAR_ATTENTION_H
#define KILN_LINEAR_ATTENTION_H

#include "ir.h"

typedef struct kiln__linear_attention_params {
    int32_t q_num_heads, kv_num_heads;
    int32_t gated; /* decay the state each step (update rules gated, gated_delta) */
    int32_t delta; /* delta-rule correction (update rules delta, gated_delta) */
    float scale;   /* 0: 1 / sqrt(d_k) */
} kiln__linear_attention_params;

_Static_assert(sizeof(kiln__linear_attention_params) <= sizeof(kiln__params),
               "linear attention params must fit in kiln__params");

#endif
