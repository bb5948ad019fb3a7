/* Pattern passes: exported GELU (erf, tanh), SiLU and HardSwish arithmetic becomes one
 * activation, a matmul's constant bias add becomes its c input (and the activation then joins
 * the matmul's epilogue), and layers of constants fold. Each network is built through the public
 * API the way exporters decompose these ops; the engine must have the expected compute layers
 * and give the results of the unfused network run by the evaluator. Negative cases (a second
 * reader, a non-constant operand, a broadcast that grows a shape, a wrong constant) keep their
 * layers. */
#include "kiln.h"
#include "pass_harness.h"

static const kiln_dims XD = {3, {2, 5, 16}};

/* torch.onnx GELU: Div(x, 1.4142) -> Erf -> Add 1 -> Mul x -> Mul 0.5. */
static kiln_tensor *gelu_erf_torch(kiln_tensor *x) {
    kiln_tensor *e = un(ew(x, KILN_EW_DIV, cst(1.41421356f)), KILN_UNARY_ERF);
    return ew(ew(x, KILN_EW_MUL, ew(e, KILN_EW_ADD, cst(1))), KILN_EW_MUL, cst(0.5f));
}

/* HF BERT's gelu: (x * 0.5) * (1 + erf(x * 0.7071)). */
static kiln_tensor *gelu_erf_hf(kiln_tensor *x) {
    kiln_tensor *e = un(ew(cst(0.70710678f), KILN_EW_MUL, x), KILN_UNARY_ERF);
    return ew(ew(x, KILN_EW_MUL, cst(0.5f)), KILN_EW_MUL, ew(cst(1), KILN_EW_ADD, e));
}

/* GPT-2's gelu: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3)))). */
static kiln_tensor *gelu_tanh_pow(kiln_tensor *x) {
    kiln_tensor *cube = ew(x, KILN_EW_POW, cst(3));
    kiln_tensor *inner = ew(cst(0.7978845608f), KILN_EW_MUL, ew(x, KILN_EW_ADD, ew(cst(0.044715f), KILN_EW_MUL, cube)));
    kiln_tensor *t = act(inner, KILN_ACT_TANH, 0, 0);
    return ew(ew(cst(0.5f), KILN_EW_MUL, x), KILN_EW_MUL, ew(cst(1), KILN_EW_ADD, t));
}

/* torch's tanh gelu: x * x * x as Muls, 0.5 last, as a Div by 2. */
static kiln_tensor *gelu_tanh_mul(kiln_tensor *x) {
    kiln_tensor *cube = ew(x, KILN_EW_MUL, ew(x, KILN_EW_MUL, x));
    kiln_tensor *inner = ew(ew(x, KILN_EW_ADD, ew(cube, KILN_EW_MUL, cst(0.044715f))), KILN_EW_MUL, cst(0.7978845608f));
    kiln_tensor *t = act(inner, KILN_ACT_TANH, 0, 0);
    return ew(ew(x, KILN_EW_MUL, ew(t, KILN_EW_ADD, cst(1))), KILN_EW_DIV, cst(2));
}

/* A Linear layer as exported for 3-D inputs: MatMul then Add of the bias. */
static kiln_tensor *linear(kiln_tensor *x, int64_t k, int64_t n, bool bias_first) {
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){2, {k, n}}, -0.3f, 0.3f));
    kiln_tensor *b = cst_dims(&(kiln_dims){1, {n}}, -0.5f, 0.5f);
    return bias_first ? ew(b, KILN_EW_ADD, y) : ew(y, KILN_EW_ADD, b);
}

static void positive_cases(kiln_dtype dt) {
    const char *tag = dt == KILN_FLOAT16 ? " fp16" : "";
    char name[128];
    kiln_tensor *(*gelus[])(kiln_tensor *) = {gelu_erf_torch, gelu_erf_hf, gelu_tanh_pow, gelu_tanh_mul};
    const char *kinds[] = {"kind=gelu_erf", "kind=gelu_erf", "kind=gelu_tanh", "kind=gelu_tanh"};
    for (int g = 0; g < 4; g++) {
        begin(dt);
        snprintf(name, sizeof name, "gelu form %d%s", g, tag);
        finish(name, gelus[g](input("x", &XD)), 1, kinds[g]);
    }
    /* Linear + GELU: one matmul with the bias as c and GELU in its epilogue (act 9 is gelu_erf);
     * fp16 matmuls keep the activation apart (the epilogue pass is float32 only). */
    begin(dt);
    snprintf(name, sizeof name, "linear gelu%s", tag);
    finish(name, gelu_erf_torch(linear(input("x", &XD), 16, 8, false)), dt == KILN_FLOAT16 ? 2 : 1,
           dt == KILN_FLOAT16 ? "c=1" : "c=1 act=9(");
    begin(dt);
    snprintf(name, sizeof name, "linear bias first%s", tag);
    finish(name, linear(input("x", &XD), 16, 8, true), 1, "c=1");

    /* Attention scores / sqrt(d) then a bias: alpha and c of one matmul. */
    begin(dt);
    snprintf(name, sizeof name, "matmul scale bias%s", tag);
    kiln_tensor *s = ew(matmul(input("x", &XD), cst_dims(&(kiln_dims){2, {16, 8}}, -1, 1)), KILN_EW_DIV, cst(4));
    finish(name, ew(s, KILN_EW_ADD, cst_dims(&(kiln_dims){3, {1, 1, 8}}, -1, 1)), 1, "alpha=0.25 beta=1 c=1");
    begin(dt);
    snprintf(name, sizeof name, "matmul times scalar%s", tag);
    finish(name, ew(cst(0.125f), KILN_EW_MUL, matmul(input("x", &XD), cst_dims(&(kiln_dims){2, {16, 8}}, -1, 1))), 1,
           "alpha=0.125");

    /* transformers' attention export: q and k^T each scaled before the matmul (a Div on one side
     * here); both scalings and the one after it become alpha. */
    begin(dt);
    snprintf(name, sizeof name, "matmul scaled inputs%s", tag);
    kiln_tensor *q = ew(input("q", &XD), KILN_EW_MUL, cst(0.5f));
    kiln_tensor *kt = ew(input("k", &(kiln_dims){3, {2, 16, 8}}), KILN_EW_DIV, cst(4));
    finish(name, ew(matmul(q, kt), KILN_EW_MUL, cst(3)), 1, "alpha=0.375");
    begin(dt);
    snprintf(name, sizeof name, "linear scaled input%s", tag);
    finish(name, linear(ew(cst(0.25f), KILN_EW_MUL, input("x", &XD)), 16, 8, false), 1, "alpha=0.25 beta=1 c=1");

    begin(dt);
    kiln_tensor *x = input("x", &XD);
    snprintf(name, sizeof name, "silu%s", tag);
    finish(name, ew(act(x, KILN_ACT_SIGMOID, 0, 0), KILN_EW_MUL, x), 1, "kind=silu");
    begin(dt);
    x = input("x", &XD);
    snprintf(name, sizeof name, "hardswish%s", tag);
    finish(name, ew(x, KILN_EW_MUL, act(x, KILN_ACT_HARD_SIGMOID, 1.0f / 6, 0.5f)), 1, "kind=hard_swish");
    begin(dt);
    x = input("x", &XD);
    snprintf(name, sizeof name, "hardswish clip%s", tag);
    kiln_tensor *clip = act(ew(x, KILN_EW_ADD, cst(3)), KILN_ACT_CLIP, 0, 6);
    finish(name, ew(ew(x, KILN_EW_MUL, clip), KILN_EW_DIV, cst(6)), 1, "kind=hard_swish");
}

/* Conv -> Sigmoid, Mul (EfficientNet's Swish): SiLU, then into the conv's epilogue. */
static void conv_swish(void) {
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &(kiln_dims){4, {1, 4, 6, 6}});
    kiln_convolution_desc cd = {sizeof cd, .nb_output_maps = 4, .kernel = {3, 3}, .padding_begin = {1, 1},
                                .padding_end = {1, 1}};
    float w[4 * 4 * 9], b[4];
    kt_fill(w, 4 * 4 * 9, -0.3f, 0.3f);
    kt_fill(b, 4, -0.2f, 0.2f);
    kiln_layer *conv = NULL;
    KT_OK(kiln_network_add_convolution(g_net, x, &cd, (kiln_weights){KILN_FLOAT32, w, 4 * 4 * 9},
                                       (kiln_weights){KILN_FLOAT32, b, 4}, &conv));
    kiln_tensor *c = out0(conv);
    finish("conv swish", ew(c, KILN_EW_MUL, act(c, KILN_ACT_SIGMOID, 0, 0)), 1, "[Convolution]");
}

static void negative_cases(void) {
    /* The erf output is also a network output: the chain must stay (5 layers). */
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &XD);
    kiln_tensor *e = un(ew(x, KILN_EW_DIV, cst(1.41421356f)), KILN_UNARY_ERF);
    KT_OK(kiln_network_mark_output(g_net, e));
    finish("gelu second reader", ew(ew(x, KILN_EW_MUL, ew(e, KILN_EW_ADD, cst(1))), KILN_EW_MUL, cst(0.5f)), 5, NULL);
    /* A wrong constant (0.6 for 0.5) is another function. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    e = un(ew(x, KILN_EW_DIV, cst(1.41421356f)), KILN_UNARY_ERF);
    finish("gelu wrong constant", ew(ew(x, KILN_EW_MUL, ew(e, KILN_EW_ADD, cst(1))), KILN_EW_MUL, cst(0.6f)), 5, NULL);
    /* A 0.5 of rank 4 broadcasts x [2,5,16] to [1,2,5,16]: the activation would lose a dim. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    e = un(ew(x, KILN_EW_DIV, cst(1.41421356f)), KILN_UNARY_ERF);
    kiln_tensor *half4 = cst_dims(&(kiln_dims){4, {1, 1, 1, 1}}, 0.5f, 0.5f);
    finish("gelu rank-growing constant", ew(ew(x, KILN_EW_MUL, ew(e, KILN_EW_ADD, cst(1))), KILN_EW_MUL, half4), 5,
           NULL);
    /* Sigmoid of another tensor times x is a gate, not SiLU. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    kiln_tensor *g = input("g", &XD);
    finish("gate not silu", ew(x, KILN_EW_MUL, act(g, KILN_ACT_SIGMOID, 0, 0)), 2, NULL);
    /* ONNX's default HardSigmoid (alpha 0.2) times x is not HardSwish. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    finish("hardsigmoid 0.2", ew(x, KILN_EW_MUL, act(x, KILN_ACT_HARD_SIGMOID, 0.2f, 0.5f)), 2, NULL);
    /* The bias is a network input: not a constant bias, but a row added by the matmul's
     * epilogue (kiln__pass_fuse_matmul_add; its own cases are in test_passes_matmul_add.c). */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    kiln_tensor *bias = input("bias", &(kiln_dims){1, {8}});
    finish("bias not constant", ew(matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f)), KILN_EW_ADD, bias), 1,
           "c=1");
    /* A bias of rank 4 makes the sum [1,2,5,8]: the matmul's c cannot grow its result. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    kiln_tensor *y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f));
    finish("bias rank 4", ew(y, KILN_EW_ADD, cst_dims(&(kiln_dims){4, {1, 1, 1, 8}}, -0.5f, 0.5f)), 2, NULL);
    /* A bias along the rows ([5, 1]) is not a bias along the last dim. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f));
    finish("bias along rows", ew(y, KILN_EW_ADD, cst_dims(&(kiln_dims){2, {5, 1}}, -0.5f, 0.5f)), 2, NULL);
    /* A scalar divided by the matmul's result is no scaling of it. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, 0.5f, 1));
    finish("scalar over matmul", ew(cst(4), KILN_EW_DIV, y), 2, NULL);
    /* The scaled input is also a network output, or is the scalar over it: the scaling stays. */
    begin(KILN_FLOAT32);
    kiln_tensor *q = ew(input("q", &XD), KILN_EW_MUL, cst(0.5f));
    KT_OK(kiln_network_mark_output(g_net, q));
    finish("scaled input second reader", matmul(q, input("k", &(kiln_dims){3, {2, 16, 8}})), 2, NULL);
    begin(KILN_FLOAT32);
    q = ew(cst(2), KILN_EW_DIV, input("q", &XD));
    finish("scalar over input", matmul(q, input("k", &(kiln_dims){3, {2, 16, 8}})), 2, NULL);
    /* The matmul's result is read twice: the Add stays. */
    begin(KILN_FLOAT32);
    x = input("x", &XD);
    y = matmul(x, cst_dims(&(kiln_dims){2, {16, 8}}, -0.3f, 0.3f));
    kiln_tensor *sum = ew(y, KILN_EW_ADD, cst_dims(&(kiln_dims){1, {8}}, -0.5f, 0.5f));
    finish("matmul second reader", ew(sum, KILN_EW_MUL, y), 3, NULL);
}

/* Constant folding: a transposed weight (Shuffle of a constant) and a sum of two constants
 * become constants; an output made only of constants leaves no compute layer at all. */
static void folding(void) {
    begin(KILN_FLOAT32);
    kiln_tensor *x = input("x", &XD);
    kiln_shuffle_desc sd = {sizeof sd, .first_transpose = {1, 0}, .has_first_transpose = 1};
    kiln_layer *tr = NULL;
    KT_OK(kiln_network_add_shuffle(g_net, cst_dims(&(kiln_dims){2, {8, 16}}, -0.3f, 0.3f), &sd, NULL, &tr));
    kiln_tensor *w = ew(out0(tr), KILN_EW_MUL, cst_dims(&(kiln_dims){2, {16, 8}}, 0.5f, 1.5f));
    kiln_tensor *b = ew(cst_dims(&(kiln_dims){1, {8}}, -1, 1), KILN_EW_SUB, cst_dims(&(kiln_dims){1, {8}}, -1, 1));
    /* Folding first lets the bias (a Sub of constants) join the matmul too. */
    finish("fold weights", ew(matmul(x, w), KILN_EW_ADD, b), 1, "c=1");

    begin(KILN_FLOAT32);
    (void)input("x", &XD);
    kiln_tensor *c = ew(cst_dims(&(kiln_dims){2, {3, 4}}, -1, 1), KILN_EW_ADD, cst_dims(&(kiln_dims){1, {4}}, -1, 1));
    finish("fold to output", un(c, KILN_UNARY_EXP), 0, NULL);

    /* An outer product of two 2048-vectors (16 KiB) is 16 MiB: left to run time. */
    begin(KILN_FLOAT32);
    (void)input("x", &XD);
    kiln_tensor *big = ew(cst_dims(&(kiln_dims){2, {2048, 1}}, -1, 1), KILN_EW_MUL,
                          cst_dims(&(kiln_dims){2, {1, 2048}}, -1, 1));
    finish("fold bounded", big, 1, NULL);
}

int main(void) {
    kt_seed();
    positive_cases(KILN_FLOAT32);
    positive_cases(KILN_FLOAT16);
    conv_swish();
    negative_cases();
    folding();
    return kt_summary("test_passes_patterns");
}
