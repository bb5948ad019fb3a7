#!/usr/bin/env python3
"""Deterministic pseudo-random LeNet weights for examples/mnist_api.c, in TensorRT's .wts
text format (see the comment at the top of mnist_api.c).

    python3 make_weights.py OUT.wts [--seed=N]

The file is about 4 MB, so it is generated where needed (the CLI tests write it into their
temporary directory) rather than committed. Importable: make_weights(seed) returns the arrays
and write_wts / read_wts convert to and from the file.
"""
import sys

import numpy as np

# name -> shape, in the order sampleMNISTAPI's .wts file lists them
SHAPES = {
    "conv1filter": (20, 1, 5, 5),
    "conv1bias": (20,),
    "conv2filter": (50, 20, 5, 5),
    "conv2bias": (50,),
    "ip1filter": (500, 800),
    "ip1bias": (500,),
    "ip2filter": (10, 500),
    "ip2bias": (10,),
    "mean": (1,),
}

MNIST_MEAN = 33.318421449829934  # mean pixel value of the MNIST training set


def make_weights(seed=1):
    """He-scaled normal weights (so activations neither vanish nor blow up) and small biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in SHAPES.items():
        if name == "mean":
            out[name] = np.array([MNIST_MEAN], dtype=np.float32)
        elif name.endswith("filter"):
            fan_in = int(np.prod(shape[1:]))
            out[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return out


def write_wts(path, weights):
    with open(path, "w") as f:
        f.write(f"{len(weights)}\n")
        for name, arr in weights.items():
            bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4").ravel()
            f.write(f"{name} 0 {bits.size} ")
            f.write(" ".join(format(int(b), "x") for b in bits))
            f.write("\n")


def read_wts(path):
    out = {}
    with open(path) as f:
        tokens = f.read().split()
    count, pos = int(tokens[0]), 1
    for _ in range(count):
        name, typ, n = tokens[pos], int(tokens[pos + 1]), int(tokens[pos + 2])
        assert typ == 0, f"{name}: type {typ}, only 0 (float32) is written here"
        bits = np.array([int(t, 16) for t in tokens[pos + 3:pos + 3 + n]], dtype="<u4")
        out[name] = bits.view("<f4").reshape(SHAPES.get(name, (n,)))
        pos += 3 + n
    return out


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--seed=")]
    seeds = [int(a.split("=", 1)[1]) for a in argv[1:] if a.startswith("--seed=")]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 2
    write_wts(args[0], make_weights(seeds[-1] if seeds else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
