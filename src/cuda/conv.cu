/* Convolution (cuDNN forward) and deconvolution (cuDNN backward data), NCHW, with the bias /
 * residual / activation epilogue as one small kernel after. cuDNN takes one pad per dim: other
 * pads go through a zero-padded copy of the input (conv) or a full-size result cropped into the
 * output (deconv). 1-D convolutions run as 2-D ones of height 1. The algorithm is the tactic
 * chosen at build time (cudnnFind, tactic = algorithm + 1), else cuDNN's heuristic. */
#include "cu_dev.cuh"

#include <string.h>

typedef struct conv_geo {
    int32_t nd;                 /* cuDNN spatial dims: 2 or 3 */
    int x[5], w[5], y[5];       /* cuDNN dims of x (padded when `padded`), kernel, y (full when deconv `cropped`) */
    int pad[3], stride[3], dil[3];
    bool padded;                /* conv: x is first copied into a zero-padded buffer */
    bool cropped;               /* deconv: the full result is cropped into y */
    int64_t shift[3];           /* window copy shift per spatial dim of the original tensors */
    kiln_dims buf_dims;         /* the padded input (conv) or full output (deconv) */
} conv_geo;

static int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* The CPU backend's pads (src/cpu/conv.c, deconv.c) and how cuDNN reaches the same result. */
static kiln_status conv_geometry(const kiln_layer *l, const kiln__value *in, const kiln__value *out, conv_geo *g) {
    const kiln__conv_params *p = &l->p.conv;
    bool deconv = l->type == KILN_LAYER_DECONVOLUTION;
    int32_t ns = p->nb_spatial, off = ns == 1 ? 1 : 0;
    memset(g, 0, sizeof *g);
    g->nd = ns == 1 ? 2 : ns;
    const kiln_dims *xd = &in[0].dims, *wd = &in[1].dims, *yd = &out[0].dims;
    for (int32_t k = 0; k < 2; k++) {
        g->x[k] = (int)xd->d[k];
        g->w[k] = (int)wd->d[k];
        g->y[k] = (int)yd->d[k];
    }
    if (off) {
        g->x[2] = g->w[2] = g->y[2] = 1;
        g->pad[0] = 0;
        g->stride[0] = g->dil[0] = 1;
    }
    bool direct = true;
    int64_t pb[3];
    for (int32_t i = 0; i < ns; i++) {
        int64_t n = xd->d[2 + i], k = wd->d[2 + i], o = yd->d[2 + i], s = p->stride[i], d = p->dilation[i];
        int64_t span = d * (k - 1) + 1;
        if (!deconv) {
            if (p->auto_pad == KILN__PAD_SAME_UPPER || p->auto_pad == KILN__PAD_SAME_LOWER) {
                int64_t total = KILN__MAX((o - 1) * s + span - n, 0);
                pb[i] = p->auto_pad == KILN__PAD_SAME_UPPER ? total / 2 : total - total / 2;
            } else {
                pb[i] = p->auto_pad == KILN__PAD_VALID ? 0 : p->pad_begin[i];
            }
            direct = direct && (n + 2 * pb[i] - span) / s + 1 == o && n + 2 * pb[i] >= span;
        } else {
            int64_t total = s * (n - 1) + p->output_padding[i] + span - o;
            if (p->auto_pad == KILN__PAD_SAME_UPPER) pb[i] = floor_half(total);
            else if (p->auto_pad == KILN__PAD_SAME_LOWER || p->has_output_shape) pb[i] = total - floor_half(total);
            else pb[i] = p->auto_pad == KILN__PAD_VALID ? 0 : p->pad_begin[i];
            direct = direct && pb[i] >= 0 && o + 2 * pb[i] >= span && (o + 2 * pb[i] - span) / s + 1 == n;
        }
        if (s > INT32_MAX || d > INT32_MAX || n > INT32_MAX || k > INT32_MAX || o > INT32_MAX)
            return kiln__layer_error(l, KILN_UNSUPPORTED, "spatial sizes beyond 2^31 are not supported on CUDA");
    }
    g->buf_dims = deconv ? *yd : *xd;
    for (int32_t i = 0; i < ns; i++) {
        int64_t n = xd->d[2 + i], k = wd->d[2 + i], o = yd->d[2 + i], s = p->stride[i], d = p->dilation[i];
        int64_t span = d * (k - 1) + 1;
        int j = off + i;
        g->w[2 + j] = (int)k;
        g->stride[j] = (int)s;
        g->dil[j] = (int)d;
        if (direct) {
            g->pad[j] = (int)pb[i];
            g->x[2 + j] = (int)n;
            g->y[2 + j] = (int)o;
        } else if (!deconv) { /* x zero-padded to exactly what the outputs read */
            int64_t full = (o - 1) * s + span;
            g->buf_dims.d[2 + i] = full;
            g->shift[i] = pb[i];
            g->x[2 + j] = (int)full;
            g->y[2 + j] = (int)o;
        } else { /* the unpadded transposed convolution, cropped by pb */
            int64_t full = s * (n - 1) + span;
            g->buf_dims.d[2 + i] = full;
            g->shift[i] = -pb[i];
            g->x[2 + j] = (int)n;
            g->y[2 + j] = (int)full;
        }
    }
    g->padded = !direct && !deconv;
    g->cropped = !direct && deconv;
    return KILN_OK;
}

static cudnnDataType_t cudnn_type(kiln_dtype t) {
    return t == KILN_FLOAT16 ? CUDNN_DATA_HALF : t == KILN_BFLOAT16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static kiln_status make_descriptors(const kiln_layer *l, kiln_dtype dt, uint32_t flags, const conv_geo *g,
                                    cu_layer_state *ls) {
    cudnnDataType_t t = cudnn_type(dt);
    int n = g->nd + 2;
    int xs[5], ys[5];
    xs[n - 1] = ys[n - 1] = 1;
    for (int k = n - 2; k >= 0; k--) {
        xs[k] = xs[k + 1] * g->x[k + 1];
        ys[k] = ys[k + 1] * g->y[k + 1];
    }
    CUDNN_CHECK(cu_cudnn.cudnnCreateTensorDescriptor(&ls->xd));
    CUDNN_CHECK(cu_cudnn.cudnnCreateTensorDescriptor(&ls->yd));
    CUDNN_CHECK(cu_cudnn.cudnnCreateFilterDescriptor(&ls->wd));
    CUDNN_CHECK(cu_cudnn.cudnnCreateConvolutionDescriptor(&ls->cd));
    CUDNN_CHECK(cu_cudnn.cudnnSetTensorNdDescriptor(ls->xd, t, n, g->x, xs));
    CUDNN_CHECK(cu_cudnn.cudnnSetTensorNdDescriptor(ls->yd, t, n, g->y, ys));
    CUDNN_CHECK(cu_cudnn.cudnnSetFilterNdDescriptor(ls->wd, t, CUDNN_TENSOR_NCHW, n, g->w));
    CUDNN_CHECK(cu_cudnn.cudnnSetConvolutionNdDescriptor(ls->cd, g->nd, g->pad, g->stride, g->dil,
                                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cu_cudnn.cudnnSetConvolutionGroupCount(ls->cd, l->p.conv.groups));
    cudnnMathType_t math = dt != KILN_FLOAT32 ? CUDNN_TENSOR_OP_MATH
                           : (flags & KILN_FLAG_TF32) ? CUDNN_DEFAULT_MATH
                                                       : CUDNN_FMA_MATH;
    CUDNN_CHECK(cu_cudnn.cudnnSetConvolutionMathType(ls->cd, math));
    return KILN_OK;
}

void cu_layer_state_clear(cu_layer_state *ls) {
    if (ls->xd) cu_cudnn.cudnnDestroyTensorDescriptor(ls->xd);
    if (ls->yd) cu_cudnn.cudnnDestroyTensorDescriptor(ls->yd);
    if (ls->wd) cu_cudnn.cudnnDestroyFilterDescriptor(ls->wd);
    if (ls->cd) cu_cudnn.cudnnDestroyConvolutionDescriptor(ls->cd);
    if (ls->mm) cu_cublaslt.cublasLtMatmulDescDestroy(ls->mm);
    if (ls->la) cu_cublaslt.cublasLtMatrixLayoutDestroy(ls->la);
    if (ls->lb) cu_cublaslt.cublasLtMatrixLayoutDestroy(ls->lb);
    if (ls->lc) cu_cublaslt.cublasLtMatrixLayoutDestroy(ls->lc);
    memset(ls, 0, sizeof *ls);
}

/* The build-time tactic if it runs on these shapes, else the first heuristic choice within the
 * workspace limit. */
static kiln_status choose_algo(cudnnHandle_t h, const kiln_layer *l, uint64_t limit, cu_layer_state *ls) {
    bool deconv = l->type == KILN_LAYER_DECONVOLUTION;
    if (l->tactic > 0) {
        size_t ws = 0;
        cudnnStatus_t st =
            deconv ? cu_cudnn.cudnnGetConvolutionBackwardDataWorkspaceSize(
                         h, ls->wd, ls->xd, ls->cd, ls->yd, (cudnnConvolutionBwdDataAlgo_t)(l->tactic - 1), &ws)
                   : cu_cudnn.cudnnGetConvolutionForwardWorkspaceSize(h, ls->xd, ls->wd, ls->cd, ls->yd,
                                                                      (cudnnConvolutionFwdAlgo_t)(l->tactic - 1), &ws);
        if (st == CUDNN_STATUS_SUCCESS && (!limit || ws <= limit)) {
            ls->algo = l->tactic - 1;
            ls->ws = ws;
            return KILN_OK;
        }
    }
    int count = 0;
    if (deconv) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        CUDNN_CHECK(cu_cudnn.cudnnGetConvolutionBackwardDataAlgorithm_v7(
            h, ls->wd, ls->xd, ls->cd, ls->yd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
        for (int i = 0; i < count; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && (!limit || perf[i].memory <= limit)) {
                ls->algo = perf[i].algo;
                ls->ws = perf[i].memory;
                return KILN_OK;
            }
    } else {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        CUDNN_CHECK(cu_cudnn.cudnnGetConvolutionForwardAlgorithm_v7(h, ls->xd, ls->wd, ls->cd, ls->yd,
                                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
        for (int i = 0; i < count; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && (!limit || perf[i].memory <= limit)) {
                ls->algo = perf[i].algo;
                ls->ws = perf[i].memory;
                return KILN_OK;
            }
    }
    return kiln__layer_error(l, KILN_UNSUPPORTED, "cuDNN has no algorithm for this %s within the workspace limit",
                             deconv ? "deconvolution" : "convolution");
}

kiln_status cu_conv_find(cudnnHandle_t h, const kiln_engine *e, const kiln_layer *l, const kiln__value *in,
                         const kiln__value *out, int32_t *tactic, float *ms) {
    conv_geo g;
    KILN__TRY(conv_geometry(l, in, out, &g));
    cu_layer_state ls;
    memset(&ls, 0, sizeof ls);
    kiln_status st = make_descriptors(l, in[0].dtype, e->flags, &g, &ls);
    int count = 0;
    *tactic = 0;
    if (st == KILN_OK && l->type == KILN_LAYER_DECONVOLUTION) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        cudnnStatus_t cs = cu_cudnn.cudnnFindConvolutionBackwardDataAlgorithm(
            h, ls.wd, ls.xd, ls.cd, ls.yd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf);
        if (cs != CUDNN_STATUS_SUCCESS)
            st = kiln__layer_error(l, KILN_DEVICE_ERROR, "cudnnFindConvolutionBackwardDataAlgorithm failed: %s",
                                   cu_cudnn.cudnnGetErrorString(cs));
        for (int i = 0; st == KILN_OK && i < count; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && (!e->workspace_limit || perf[i].memory <= e->workspace_limit)) {
                *tactic = (int32_t)perf[i].algo + 1;
                *ms = perf[i].time;
                break;
            }
    } else if (st == KILN_OK) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        cudnnStatus_t cs = cu_cudnn.cudnnFindConvolutionForwardAlgorithm(
            h, ls.xd, ls.wd, ls.cd, ls.yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf);
        if (cs != CUDNN_STATUS_SUCCESS)
            st = kiln__layer_error(l, KILN_DEVICE_ERROR, "cudnnFindConvolutionForwardAlgorithm failed: %s",
                                   cu_cudnn.cudnnGetErrorString(cs));
        for (int i = 0; st == KILN_OK && i < count; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && (!e->workspace_limit || perf[i].memory <= e->workspace_limit)) {
                *tactic = (int32_t)perf[i].algo + 1;
                *ms = perf[i].time;
                break;
            }
    }
    cu_layer_state_clear(&ls);
    return st;
}

/* Shared by conv and deconv: plan (descriptors, algorithm, scratch) or run. */
static kiln_status conv_common(cu_exec *x) {
    const kiln_layer *l = x->layer;
    cu_layer_state *ls = x->ls;
    kiln_dtype dt = x->in[0].dtype;
    bool deconv = l->type == KILN_LAYER_DECONVOLUTION;
    conv_geo g;
    KILN__TRY(conv_geometry(l, x->in, x->out, &g));
    size_t es = kiln_dtype_bits(dt) / 8, buf_bytes = 0;
    if (g.padded || g.cropped) buf_bytes = cu_align((size_t)kiln__dims_volume(&g.buf_dims) * es);
    bool empty = kiln__dims_volume(&x->in[0].dims) == 0 || kiln__dims_volume(&x->out[0].dims) == 0;
    if (x->mode == CU_PLAN) {
        if (empty) return KILN_OK; /* cuDNN refuses empty tensors; the run writes bias alone */
        KILN__TRY(make_descriptors(l, dt, x->flags, &g, ls));
        KILN__TRY(choose_algo(x->s->cudnn, l, x->s->engine->workspace_limit, ls));
        ls->scratch = buf_bytes + ls->ws;
        return KILN_OK;
    }
    if (kiln__dims_volume(&x->out[0].dims) == 0) return KILN_OK;
    char *scratch = (char *)x->scratch;
    void *ws = ls->ws ? scratch + buf_bytes : NULL;
    const void *xin = x->din[0];
    void *yout = x->dout[0];
    float one = 1.0f, zero = 0.0f;
    if (empty) {
        CU_CHECK(cudaMemsetAsync(yout, 0, (size_t)kiln__dims_volume(&x->out[0].dims) * es, x->stream));
        g.cropped = false;
    } else if (g.padded) {
        KILN__TRY(cu_window_copy(x->stream, x->din[0], &x->in[0].dims, scratch, &g.buf_dims, g.shift, es));
        xin = scratch;
    }
    if (g.cropped) yout = scratch;
    if (!empty && deconv) {
        CUDNN_CHECK(cu_cudnn.cudnnConvolutionBackwardData(x->s->cudnn, &one, ls->wd, x->din[1], ls->xd, xin, ls->cd,
                                                          (cudnnConvolutionBwdDataAlgo_t)ls->algo, ws, ls->ws, &zero,
                                                          ls->yd, yout));
    } else if (!empty) {
        CUDNN_CHECK(cu_cudnn.cudnnConvolutionForward(x->s->cudnn, &one, ls->xd, xin, ls->wd, x->din[1], ls->cd,
                                                     (cudnnConvolutionFwdAlgo_t)ls->algo, ws, ls->ws, &zero, ls->yd,
                                                     yout));
    }
    if (g.cropped)
        KILN__TRY(cu_window_copy(x->stream, scratch, &g.buf_dims, x->dout[0], &x->out[0].dims, g.shift, es));
    const void *bias = kiln__has_input(l, x->in, 2) ? x->din[2] : NULL;
    const void *res = kiln__has_input(l, x->in, 3) ? x->din[3] : NULL;
    const kiln_dims *yd = &x->out[0].dims;
    int64_t plane = 1;
    for (int32_t i = 2; i < yd->nb_dims; i++) plane *= yd->d[i];
    return cu_epilogue(x->stream, x->dout[0], dt, bias, res, kiln__dims_volume(yd), plane, yd->d[1],
                       &l->p.conv.act);
}

kiln_status cu_conv(cu_exec *x) { return conv_common(x); }
kiln_status cu_deconv(cu_exec *x) { return conv_common(x); }
