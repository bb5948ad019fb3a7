#!/usr/bin/env python3
"""Exports real model architectures to ONNX with random weights and writes reference outputs.

Each model goes to OUT/<name>/: model.onnx, meta.json (input and output names, shapes and
dtypes, how it was made), and, with onnxruntime, inputs/<input>.npy and ref/<output>.npy (the
reference outputs of onnxruntime's CPU execution provider for those inputs).

Two steps, which may run under different Python interpreters (torch and onnxruntime are not
always installed for the same one; on Debian, python3-torch serves /usr/bin/python3 only):

    python3 models/export_models.py --out DIR --models resnet18,bert_small       # export (+ refs)
    python3 models/export_models.py --out DIR --models resnet18 --reference-only  # refs only

Where torchvision and transformers are installed (the GPU machine) the torchvision models and
transformers' BERT are exported as they come. Everywhere else the architectures below, written
from the papers in plain torch.nn, are used: ResNet-18/50 (He et al. 2015, with the stride in the
3x3 convolution of the bottleneck as torchvision's "v1.5"), MobileNetV2 (Sandler et al. 2018),
SqueezeNet 1.1 (Iandola et al. 2016) and a small BERT encoder (Devlin et al. 2018). meta.json's
"impl" says which. Weights are random but scaled like trained ones: batch-norm statistics are
those of a random calibration batch, so activations stay near unit scale through deep nets.
"""
import argparse
import inspect
import json
import math
import os
import sys

import numpy as np

# name -> (input spec, output names, whether torchvision/transformers is needed)
# An input spec is (name, shape without the batch dim, dtype, value range for integer inputs).
IMAGE = lambda hw: [("image", (3, hw, hw), "float32", None)]  # noqa: E731
MODELS = {
    "resnet18": (IMAGE(224), ["logits"]),
    "resnet50": (IMAGE(224), ["logits"]),
    "mobilenet_v2": (IMAGE(224), ["logits"]),
    # the seed project's classifier: MobileNetV2 on 128x128 images with a 3-class head
    "mobilenet_v2_128_3": (IMAGE(128), ["logits"]),
    "squeezenet": (IMAGE(224), ["logits"]),
    "efficientnet_b0": (IMAGE(224), ["logits"]),
    "vit_b_16": (IMAGE(224), ["logits"]),
    "bert_small": ([("input_ids", (128,), "int64", 30522), ("attention_mask", (128,), "int64", 2)],
                   ["last_hidden_state", "pooler_output"]),
    "bert_base": ([("input_ids", (128,), "int64", 30522), ("attention_mask", (128,), "int64", 2)],
                  ["last_hidden_state", "pooler_output"]),
}
ONLY_TORCHVISION = {"efficientnet_b0", "vit_b_16"}
DEFAULT_MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_128_3", "squeezenet", "efficientnet_b0",
                  "vit_b_16", "bert_small", "bert_base"]


# ------------------------------------------------------------------ architectures (torch.nn)


def define_architectures(torch):
    nn = torch.nn

    def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride):
            super().__init__()
            self.a = conv_bn(cin, width, 3, stride, act=nn.ReLU)
            self.b = conv_bn(width, width, 3)
            self.down = conv_bn(cin, width, 1, stride) if stride != 1 or cin != width else None

        def forward(self, x):
            skip = x if self.down is None else self.down(x)
            return torch.relu(self.b(self.a(x)) + skip)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.a = conv_bn(cin, width, 1, act=nn.ReLU)
            self.b = conv_bn(width, width, 3, stride, act=nn.ReLU)
            self.c = conv_bn(width, cout, 1)
            self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

        def forward(self, x):
            skip = x if self.down is None else self.down(x)
            return torch.relu(self.c(self.b(self.a(x))) + skip)

    class ResNet(nn.Module):
        def __init__(self, block, counts, num_classes=1000):
            super().__init__()
            self.stem = nn.Sequential(conv_bn(3, 64, 7, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
            stages, cin = [], 64
            for i, (width, n) in enumerate(zip([64, 128, 256, 512], counts)):
                for j in range(n):
                    stages.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                    cin = width * block.expansion
            self.stages = nn.Sequential(*stages)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, cout, 1)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNetV2(nn.Module):
        # (expansion t, channels c, repeats n, first stride s), as in table 2 of the paper
        SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                    (6, 320, 1, 1)]

        def __init__(self, num_classes=1000):
            super().__init__()
            layers, cin = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers.append(conv_bn(cin, 1280, 1, act=nn.ReLU6))
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    class Fire(nn.Module):
        def __init__(self, cin, squeeze, e1, e3):
            super().__init__()
            self.squeeze = nn.Conv2d(cin, squeeze, 1)
            self.e1 = nn.Conv2d(squeeze, e1, 1)
            self.e3 = nn.Conv2d(squeeze, e3, 3, padding=1)

        def forward(self, x):
            s = torch.relu(self.squeeze(x))
            return torch.cat([torch.relu(self.e1(s)), torch.relu(self.e3(s))], 1)

    class SqueezeNet11(nn.Module):
        def __init__(self, num_classes=1000):
            super().__init__()
            pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
            self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                            nn.AdaptiveAvgPool2d(1))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)

    class EncoderLayer(nn.Module):
        """Post-LN transformer encoder layer of BERT; attention spelled out as matmul + softmax."""

        def __init__(self, hidden, heads, inner):
            super().__init__()
            self.heads, self.dh = heads, hidden // heads
            self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.attn_out = nn.Linear(hidden, hidden)
            self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
            self.inner, self.outer = nn.Linear(hidden, inner), nn.Linear(inner, hidden)
            self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

        def split(self, x):  # [b, s, hidden] -> [b, heads, s, dh]
            return x.reshape(x.shape[0], x.shape[1], self.heads, self.dh).transpose(1, 2)

        def forward(self, x, bias):
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh) + bias
            ctx = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2)
            ctx = ctx.reshape(x.shape[0], x.shape[1], self.heads * self.dh)
            x = self.ln1(x + self.attn_out(ctx))
            return self.ln2(x + self.outer(nn.functional.gelu(self.inner(x))))

    class BertEncoder(nn.Module):
        def __init__(self, vocab=30522, hidden=128, layers=2, heads=2, inner=512, max_pos=512):
            super().__init__()
            self.word = nn.Embedding(vocab, hidden)
            self.pos = nn.Embedding(max_pos, hidden)
            self.token_type = nn.Embedding(2, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList([EncoderLayer(hidden, heads, inner) for _ in range(layers)])
            self.pooler = nn.Linear(hidden, hidden)

        def forward(self, input_ids, attention_mask):
            seq = input_ids.shape[1]
            pos = torch.arange(seq, device=input_ids.device).unsqueeze(0)
            x = self.ln(self.word(input_ids) + self.pos(pos) + self.token_type(torch.zeros_like(input_ids)))
            # masked keys get a large negative score before the softmax, as BERT does
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            return x, torch.tanh(self.pooler(x[:, 0]))

    return {
        "resnet18": lambda: ResNet(BasicBlock, [2, 2, 2, 2]),
        "resnet50": lambda: ResNet(Bottleneck, [3, 4, 6, 3]),
        "mobilenet_v2": lambda: MobileNetV2(),
        "mobilenet_v2_128_3": lambda: MobileNetV2(num_classes=3),
        "squeezenet": lambda: SqueezeNet11(),
        "bert_small": lambda: BertEncoder(),
        # BERT-base's shapes (12 layers, hidden 768, 12 heads, inner 3072) where transformers is missing
        "bert_base": lambda: BertEncoder(hidden=768, layers=12, heads=12, inner=3072),
    }


def library_model(torch, name):
    """The model from torchvision / transformers, or None where that library is missing."""
    try:
        if name == "bert_base":
            import transformers
            cfg = transformers.BertConfig()  # bert-base-uncased: 12 layers, hidden 768, 12 heads
            model = transformers.BertModel(cfg, add_pooling_layer=True)

            class Wrap(torch.nn.Module):  # plain tensors out, in the order of MODELS
                def __init__(self):
                    super().__init__()
                    self.m = model

                def forward(self, input_ids, attention_mask):
                    out = self.m(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)
                    return out[0], out[1]

            return Wrap(), "transformers " + transformers.__version__
        import torchvision
        ctor = {"resnet18": lambda: torchvision.models.resnet18(),
                "resnet50": lambda: torchvision.models.resnet50(),
                "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(),
                "mobilenet_v2_128_3": lambda: torchvision.models.mobilenet_v2(num_classes=3),
                "squeezenet": lambda: torchvision.models.squeezenet1_1(),
                "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(),
                "vit_b_16": lambda: torchvision.models.vit_b_16()}.get(name)
        return (ctor(), "torchvision " + torchvision.__version__) if ctor else None
    except ImportError:
        return None


def calibrate(torch, model, example):
    """Random affine batch-norm parameters, statistics from one random batch (see the docstring)."""
    g = torch.Generator().manual_seed(1234)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and not bns:  # no batch norm to rescale: keep ReLU nets at unit scale
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, 0, 0.01)
        if isinstance(m, (torch.nn.Embedding, torch.nn.Linear)) and "bert" in type(model).__name__.lower():
            torch.nn.init.normal_(m.weight, 0, 0.02)  # BERT's initializer range
    with torch.no_grad():
        for m in model.modules():  # zero-initialized heads (torchvision's ViT) would make outputs all 0
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and not m.weight.any():
                torch.nn.init.normal_(m.weight, 0, 0.02)
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            m.momentum = 1.0
    if bns:
        model.train()
        with torch.no_grad():
            model(*example)
    model.eval()


def example_inputs(torch, name, batch, seed):
    """Inputs for tracing and calibration, made by torch alone (Debian's torch may not share an ABI
    with the numpy that pip installed)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, shape, dtype, hi in MODELS[name][0]:
        if n == "attention_mask":
            m = torch.ones((batch,) + shape, dtype=torch.int64)
            m[1::2, shape[0] * 3 // 4:] = 0
            out.append(m)
        elif dtype == "int64":
            out.append(torch.randint(0, hi, (batch,) + shape, generator=g, dtype=torch.int64))
        else:
            out.append(torch.randn((batch,) + shape, generator=g))
    return tuple(out)


def make_inputs(name, batch, seed):
    """Deterministic inputs: N(0,1) images; token ids; a mask hiding the tail of every other row."""
    rng = np.random.default_rng(seed)
    out = {}
    for n, shape, dtype, hi in MODELS[name][0]:
        if n == "attention_mask":
            m = np.ones((batch,) + shape, np.int64)
            m[1::2, shape[0] * 3 // 4:] = 0
            out[n] = m
        elif dtype == "int64":
            out[n] = rng.integers(0, hi, (batch,) + shape, dtype=np.int64)
        else:
            out[n] = rng.standard_normal((batch,) + shape).astype(dtype)
    return out


def export(name, out_dir, opset, prefer_library, seed):
    import torch
    torch.manual_seed(seed)
    made = library_model(torch, name) if prefer_library else None
    if made is None:
        if name in ONLY_TORCHVISION:
            return "skipped: needs torchvision"
        model, impl = define_architectures(torch)[name](), "kiln models/export_models.py (torch.nn)"
    else:
        model, impl = made
    specs, outputs = MODELS[name]
    calibrate(torch, model, example_inputs(torch, name, 8 if specs[0][2] == "float32" else 2, seed + 1))
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    kwargs = {}
    if hasattr(torch.backends, "mha"):  # nn.MultiheadAttention's fused fast path has no ONNX export
        torch.backends.mha.set_fastpath_enabled(False)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: opset 13-17 and dynamic_axes
    names = [s[0] for s in specs]
    with torch.no_grad():
        torch.onnx.export(model, example_inputs(torch, name, 2, seed + 2), path, input_names=names,
                          output_names=outputs, opset_version=opset, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in names + outputs}, **kwargs)
    meta = {"name": name, "impl": impl, "torch": torch.__version__, "opset": opset,
            "inputs": [{"name": n, "shape": ["batch", *s], "dtype": t} for n, s, t, _ in specs],
            "outputs": outputs}
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return f"exported ({impl}, opset {opset}, {os.path.getsize(path) / 2**20:.1f} MiB)"


def reference(name, out_dir, batch, seed):
    import onnxruntime as ort
    d = os.path.join(out_dir, name)
    feeds = make_inputs(name, batch, seed)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    for sub in ("inputs", "ref"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for n, a in feeds.items():
        np.save(os.path.join(d, "inputs", n + ".npy"), a)
    for o, a in zip(sess.get_outputs(), outs):
        np.save(os.path.join(d, "ref", o.name + ".npy"), a)
    return f"reference batch {batch} ({', '.join(f'{o.name} {list(a.shape)}' for o, a in zip(sess.get_outputs(), outs))})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated; default: all")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--batch", type=int, default=2, help="batch of the reference inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--own", action="store_true", help="use the torch.nn definitions here even where "
                    "torchvision / transformers are installed")
    ap.add_argument("--reference-only", action="store_true", help="only write inputs and reference outputs")
    ap.add_argument("--no-reference", action="store_true", help="only export")
    a = ap.parse_args(argv)
    names = [n for n in a.models.split(",") if n]
    bad = [n for n in names if n not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {', '.join(bad)}; known: {', '.join(MODELS)}")
    have_ort = True
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        have_ort = False
        if a.reference_only:
            sys.exit("error: --reference-only needs onnxruntime for this interpreter (" + sys.executable + ")")
    failed = False
    for n in names:
        try:
            msg = "" if a.reference_only else export(n, a.out, a.opset, not a.own, a.seed)
            if not msg.startswith("skipped") and not a.no_reference and have_ort:
                msg = (msg + "; " if msg else "") + reference(n, a.out, a.batch, a.seed)
            elif not msg.startswith("skipped") and not a.no_reference:
                msg += "; no onnxruntime here: run again with --reference-only under a Python that has it"
        except Exception as e:  # report every model, then fail
            msg, failed = f"FAILED: {type(e).__name__}: {e}", True
        print(f"{n}: {msg}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
