#!/usr/bin/env python3
"""Checks that the compiler keeps the float32 GEMM micro-kernels' accumulators in registers.

Compiles src/cpu/gemm.c to assembly with GCC and the library's release flags. In every kernel named
by --functions it finds the blocks between two labels that hold 16 or more FMAs (its FMA loop,
unrolled) and counts the instructions there that move a vector register to or from the stack. A
kernel's FMA loop must have none: one spilled accumulator costs a store and a reload on every
step. GCC 13 spilled all 28 of the channel-vector kernel's when the loop called _mm_prefetch (the
kernel ran at half speed), and nothing else showed it.

    python3 scripts/codegen_check.py [--cc gcc-13]

Exit status 0: no spills; 1: spills (listed); 2: the compiler failed, is not GCC or not for x86-64.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["-O3", "-DNDEBUG", "-fPIC", "-D_GNU_SOURCE", "-fvisibility=hidden", "-std=c11"]
VECTOR_STACK = re.compile(r"%[xyz]mm\d+.*\((%rsp|%rbp)\)|\((%rsp|%rbp)\).*%[xyz]mm\d+")
LABEL = re.compile(r"^(\.L\w+|[A-Za-z_][\w.]*):")


def functions(asm):
    """{name: [blocks]}, each block the instruction lines from one label to the next."""
    out, name, blocks, cur = {}, None, [], []
    for line in asm.splitlines():
        m = LABEL.match(line)
        if m and not m.group(1).startswith(".L"):
            if name:
                out[name] = blocks + [cur]
            name, blocks, cur = m.group(1), [], []
        elif m:
            blocks.append(cur)
            cur = []
        elif name and line.startswith("\t") and not line.startswith("\t."):
            cur.append(line)
    if name:
        out[name] = blocks + [cur]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--source", default=os.path.join(ROOT, "src", "cpu", "gemm.c"))
    ap.add_argument("--functions", default=r"^(cv_kernel_\w+|kernel_(6|12)x32\w*)$")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asm_path = os.path.join(tmp, "out.s")
        cmd = [a.cc, *FLAGS, "-I", os.path.join(ROOT, "include"), "-I", os.path.join(ROOT, "src"), "-S", "-o",
               asm_path, a.source]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{' '.join(cmd)} failed:\n{p.stderr}", file=sys.stderr)
            return 2
        with open(asm_path) as f:
            asm = f.read()
    if "%rsp" not in asm:
        print("not x86-64 assembly: nothing to check", file=sys.stderr)
        return 2
    version = subprocess.run([a.cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    if version and "clang" in version[0]:
        # Clang inlines the vmath activations into the kernels' epilogues, whose polynomial FMA
        # blocks this count cannot tell from the FMA loop.
        print("clang's assembly is not checked: only GCC's", file=sys.stderr)
        return 2
    wanted = re.compile(a.functions)
    checked, spilled = 0, []
    for name, blocks in sorted(functions(asm).items()):
        if not wanted.match(name):
            continue
        loops = [b for b in blocks if sum("vfmadd" in line for line in b) >= 16]
        if not loops:
            continue
        checked += 1
        n = sum(1 for b in loops for line in b if VECTOR_STACK.search(line))
        if n:
            spilled.append((name, n))
    print(f"{version[0] if version else a.cc}: {checked} kernels checked in {os.path.relpath(a.source, ROOT)}")
    if checked == 0:
        print("no kernel matched --functions", file=sys.stderr)
        return 2
    for name, n in spilled:
        print(f"  {name}: {n} vector register moves to or from the stack in its FMA loop")
    return 1 if spilled else 0


if __name__ == "__main__":
    sys.exit(main())
