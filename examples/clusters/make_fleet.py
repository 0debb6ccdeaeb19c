#!/usr/bin/env python3
"""Writes fleet-1000x8.json: 1,000 workers with 8 GPUs each and realistic existing allocations.

Python standard library only; deterministic (fixed seed). Run from anywhere:

    python3 examples/clusters/make_fleet.py

Larger fleets of the same mix, for memory and time measurements at scale (issue 18: a
100,000-worker fleet is a 152 MB file), go elsewhere than the repository:

    python3 examples/clusters/make_fleet.py --workers 100000 --out /tmp/fleet-100000x8.json

The fleet: 70% of the nodes hold 8 x H100 80GB HBM3, 20% 8 x A100-SXM4-80GB, 10% 8 x L40S
(memory totals as nvidia-smi reports them, in MiB). About 10% of the nodes are idle; the others
run a mix of instances as a busy inference platform does:

* vLLM instances on 1, 2, 4 or 8 GPUs claiming `total x 0.9` per GPU (gpu-memory-utilization
  0.9), which vLLM allocates up front, so measured use is 98-100% of the claim plus ~500 MiB of
  CUDA context;
* llama-box instances on one GPU claiming 5-40 GiB, of which 50-100% is in use (llama.cpp
  allocates the KV cache lazily);
* on 5% of the GPUs a process the platform does not know about (1-8 GiB: notebooks, monitors).

Host RAM: 2 TiB (H100/A100 nodes) or 1 TiB (L40S), 3-10% used by the system plus 2-16 GiB per
instance.
"""

import argparse
import json
import random
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
SEED = 20251125
GPUS = [
    # (share, name, total MiB, compute capability, host RAM GiB)
    (0.7, "NVIDIA H100 80GB HBM3", 81559, "9.0", 2048),
    (0.2, "NVIDIA A100-SXM4-80GB", 81920, "8.0", 2048),
    (0.1, "NVIDIA L40S", 46068, "8.9", 1024),
]


def gpu_kind(rng):
    pick = rng.random()
    for share, name, total, cc, ram in GPUS:
        if pick < share:
            return name, total * MIB, cc, ram
        pick -= share
    name, total, cc, ram = GPUS[-1][1:]
    return name, total * MIB, cc, ram


def worker(rng, n):
    name, total, cc, ram_gib = gpu_kind(rng)
    claims = [0] * 8
    used = [rng.randint(1, 6) * MIB for _ in range(8)]
    allocations = []
    ram_used = int(ram_gib * GIB * rng.uniform(0.03, 0.10))
    free = list(range(8))
    busy = rng.random() >= 0.10
    # A busy node runs at least one instance, then more while GPUs are free (85% each time).
    while busy and free and (not allocations or rng.random() < 0.85):
        if rng.random() < 0.55:
            size = rng.choice([s for s in (1, 2, 4, 8) if s <= len(free)])
            gpus, free = free[:size], free[size:]
            claim = int(total * 0.9)
            for g in gpus:
                claims[g] += claim
                used[g] += int(claim * rng.uniform(0.98, 1.0)) + 500 * MIB
            kind = "vllm"
        else:
            g = free.pop(0)
            claim = rng.randint(5, 40) * GIB
            if claim > total - 2 * GIB:
                claim = total - 2 * GIB
            claims[g] += claim
            used[g] += int(claim * rng.uniform(0.5, 1.0))
            gpus = [g]
            kind = "llama-box"
        ram = rng.randint(2, 16) * GIB
        ram_used += ram
        allocations.append({
            "name": f"{kind}-{n:04d}-{len(allocations)}",
            "devices": {str(g): claims[g] for g in gpus},
            "ram": ram,
        })
    for g in range(8):
        if rng.random() < 0.05:
            used[g] += rng.randint(1, 8) * GIB
        used[g] = min(used[g], total)
    return {
        "name": f"node-{n:04d}",
        "os": "linux",
        "arch": "amd64",
        "labels": {"rack": f"r{n // 40:02d}"},
        "cpu_cores": 192,
        "ram": {"total": ram_gib * GIB, "used": ram_used},
        "devices": [
            {"index": g, "vendor": "nvidia", "name": name,
             "memory": {"total": total, "used": used[g]}, "compute_capability": cc}
            for g in range(8)
        ],
        "allocations": allocations,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000, help="workers (default 1000)")
    parser.add_argument("--out", type=Path, help="output file (default: fleet-1000x8.json here)")
    args = parser.parse_args()
    out = args.out or Path(__file__).resolve().parent / "fleet-1000x8.json"
    rng = random.Random(SEED)
    with out.open("w") as f:
        f.write('{"workers": [\n')
        for n in range(1, args.workers + 1):
            f.write(("" if n == 1 else ",\n") + json.dumps(worker(rng, n), separators=(",", ":")))
        f.write("\n]}\n")


if __name__ == "__main__":
    main()
