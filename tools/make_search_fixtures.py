#!/usr/bin/env python3
"""Fixtures for tests/test_search.c: the Evol-Q reference's infoNCE loss and EA trace.

Run where PyTorch is (the GPU machine), from the repository root:

    python3 tools/make_search_fixtures.py --out tests/fixtures/search

infonce: random quantized/FP output pairs in groups of 100 and the reference's
contrastive_loss (F.normalize, q @ k.T / T, cross_entropy, times 2T), in
float32 on the CPU as the reference computes it, per group and averaged.

ea_trace: the reference's evolutionary step (spec evolq-search.md section 6)
transcribed line by line, with its random streams (Python random seeded by
random.seed(seed), NumPy's legacy global generator by np.random.seed(seed)),
on a synthetic loss. Recorded per cycle: the 10 tournament indices, the
parent's population index, the child's float64 values and its loss, and the
population's losses after the cycle; and the returned vector. The C test
replays the losses (oracle replay, spec section 9.2) and must reproduce every
recorded value bit for bit.
"""
import argparse
import json
import os
import random

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def contrastive_loss(q, k, temp):
    # utils.py contrastive_loss: normalize, logits = q k^T / T, CE with labels = arange, * 2T
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    logits = torch.mm(q, k.t()) / temp
    labels = torch.arange(q.shape[0])
    return F.cross_entropy(logits, labels) * (2 * temp)


def make_infonce(g):
    tensors, cases = {}, []
    # inputs are rounded to float16 first (stored as F16, exact in float32) to keep the file small
    for name, d, scale, groups in [("d10", 10, 1.0, 10), ("d1000", 1000, 3.0, 2), ("d1000_close", 1000, 0.05, 2)]:
        k = (torch.randn(groups, 100, d, generator=g) * scale).half().float()
        q = (k + torch.randn(groups, 100, d, generator=g) * scale * (0.3 if "close" not in name else 0.01)).half().float()
        losses = [float(contrastive_loss(q[i], k[i], 3.0)) for i in range(groups)]
        tensors[f"{name}.q"] = q.reshape(groups * 100, d).half().contiguous()
        tensors[f"{name}.k"] = k.reshape(groups * 100, d).half().contiguous()
        tensors[f"{name}.group_losses"] = torch.tensor(losses, dtype=torch.float64)
        cases.append(dict(name=name, dim=d, groups=groups, group=100, temp=3.0, loss=sum(losses) / groups))
    return tensors, cases


def synthetic_loss(v32, target):
    # any deterministic function of the float32 vector; the C test does not recompute it (oracle replay)
    return float(np.sum((v32.astype(np.float64) - target) ** 2))


def reference_evolve(s0, loss_fn, eps, cycles, trace):
    """joint_evol_opt.py evolutionary_algorithm, with the spec's tie rule (lowest population index)."""
    s0 = s0.astype(np.float32)
    l0 = loss_fn(s0)
    pop = [(l0, s0)] * 15
    for _ in range(cycles):
        idx = [int(random.random() * 15.0) for _ in range(10)]  # random.choices(pop, k=10)
        best = min(idx, key=lambda i: (pop[i][0], i))
        parent = pop[best][1]
        u = np.random.uniform(-eps, eps, size=parent.shape[0])
        child = np.abs(parent + u)  # float64 when u is float64
        lc = loss_fn(child.astype(np.float32))
        pop = sorted(pop + [(lc, child)], key=lambda e: e[0])[:15]  # stable: an equal child goes last
        trace.append(dict(indices=idx, parent=best, loss=lc, pop_losses=[e[0] for e in pop], child=child.tolist()))
    bi = min(range(15), key=lambda i: (pop[i][0], i))
    return pop[bi]


def make_ea_trace():
    tensors, runs = {}, []
    for seed, n, eps, steps in [(0, 12, 1e-3, 4), (1, 40, 1e-4, 3), (2, 7, 1e-3, 5)]:
        random.seed(seed)
        np.random.seed(seed)
        rng = np.random.default_rng(100 + seed)  # only for the synthetic problem, not the EA streams
        target = rng.uniform(0.001, 0.01, size=n)
        s = (target * rng.uniform(0.5, 1.5, size=n)).astype(np.float32)
        tensors[f"seed{seed}.start"] = torch.from_numpy(s.copy())
        tensors[f"seed{seed}.target"] = torch.from_numpy(target)
        steps_out = []
        for st in range(steps):  # consecutive block steps share the two streams
            trace = []
            loss, best = reference_evolve(s, lambda v: synthetic_loss(v, target), eps, 3, trace)
            s = np.asarray(best).astype(np.float32)
            steps_out.append(dict(trace=trace, best_loss=loss, best=np.asarray(best, dtype=np.float64).tolist()))
        runs.append(dict(seed=seed, n=n, eps=eps, steps=steps_out))
    return tensors, runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/search")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(5)
    t1, c1 = make_infonce(g)
    t2, runs = make_ea_trace()
    path = os.path.join(args.out, "search.safetensors")
    save_file({**t1, **t2}, path, metadata={"infonce": json.dumps(c1), "ea_runs": json.dumps(runs),
                                            "torch": torch.__version__, "numpy": np.__version__})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
