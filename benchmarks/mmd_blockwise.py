"""MMD^2 (RBF) between n points in 16 dimensions: probrep's blockwise U-statistic against a direct full-matrix
computation with ``torch.cdist`` (what one writes by hand), and against geomloss's kernel loss where installed.

Each measurement runs in a fresh subprocess, so that its peak resident memory (``ru_maxrss``, CPU) or peak CUDA
allocation is its own; the figure reported is the peak above the process's footprint just before the call
(data included in neither). Full-matrix methods are skipped, with the reason recorded, when their n x n
matrices would not fit in the memory available. Bandwidth 4.0 for all (no median heuristic, so every method
computes the same number); x ~ N(0, I), y ~ N(0.1, I), float32.

    python benchmarks/mmd_blockwise.py [--sizes 10000 100000] [--repeats 3] [--device cpu]

Writes benchmarks/results/mmd_blockwise.json and prints the ratios. geomloss is optional
(``pip install geomloss``); without it its rows say so. POT has no MMD; it is not compared here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

DIM, BANDWIDTH, SEED = 16, 4.0, 0
METHODS = ("probrep_blockwise", "torch_cdist_full", "geomloss_tensorized")


def available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def full_matrix_bytes(n: int) -> int:
    """Three n x n float32 matrices alive at once at the peak of the direct computation (distance, kernel, and
    a temporary), for each of the three blocks x-x, y-y, x-y computed in turn."""
    return 3 * n * n * 4


# ------------------------------------------------------------------------------------------------- worker
def worker(method: str, n: int, device_name: str, block_size: int | None) -> dict:
    import torch

    from probrep.device import resolve_device
    from probrep.divergences import mmd2

    device = resolve_device(device_name)
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, DIM, generator=g).to(device)
    y = (0.1 + torch.randn(n, DIM, generator=g)).to(device)
    if method == "probrep_blockwise":

        def run():
            return float(mmd2(x, y, "rbf", BANDWIDTH, unbiased=True, block_size=block_size))

    elif method == "torch_cdist_full":

        def run():
            def k(a, b):
                return torch.exp(-(torch.cdist(a, b) ** 2) / (2 * BANDWIDTH**2))

            kxx = k(x, x)
            sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
            del kxx
            kyy = k(y, y)
            syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
            del kyy
            return float(sxx + syy - 2 * k(x, y).mean())

    elif method == "geomloss_tensorized":
        from geomloss import SamplesLoss

        loss = SamplesLoss("gaussian", blur=BANDWIDTH, backend="tensorized")

        def run():  # geomloss returns half the biased (V-statistic) MMD^2
            return 2.0 * float(loss(x, y))

    else:
        raise ValueError(method)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    value = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": seconds, "peak_mb": peak / 2**20, "value": value, "threads": torch.get_num_threads()}


def measure(method: str, n: int, device: str, block_size: int | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(n), device, str(block_size or 0)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"skipped": f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per method for n <= 20,000 (medians); 1 above")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--block-size", type=int, default=0, help="0: probrep's default for the device")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "mmd_blockwise.json"))
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, n, device, block = args.worker
        print(json.dumps(worker(method, int(n), device, int(block) or None)))
        return

    import torch

    try:
        import geomloss  # noqa: F401

        have_geomloss = True
    except ImportError:
        have_geomloss = False
        print("geomloss is not installed (pip install geomloss): its rows are skipped")
    results: dict[str, dict] = {}
    for n in args.sizes:
        fits = full_matrix_bytes(n) < 0.8 * available_bytes(args.device)
        plan, rows = [], {}
        for method in METHODS:
            if method == "geomloss_tensorized" and not have_geomloss:
                rows[method] = {"skipped": "geomloss not installed"}
            elif method != "probrep_blockwise" and not fits:
                need = full_matrix_bytes(n) / 2**30
                note = " (geomloss's 'online' backend needs pykeops)" if method.startswith("geomloss") else ""
                rows[method] = {"skipped": f"needs ~{need:.0f} GiB for n x n matrices; not run{note}"}
            else:
                plan.append(method)
        # interleave the methods repeat by repeat, so that drift in machine load hits them alike
        repeats = args.repeats if n <= 20_000 else 1  # one run of a 100k x 100k sum is minutes on a laptop CPU
        runs: dict[str, list[dict]] = {m: [] for m in plan}
        for _ in range(repeats):
            for method in plan:
                runs[method].append(measure(method, n, args.device, args.block_size or None))
        for method in plan:
            done = [r for r in runs[method] if "skipped" not in r]
            if not done:
                rows[method] = runs[method][0]
                continue
            rows[method] = {
                "seconds_median": statistics.median(r["seconds"] for r in done),
                "seconds_all": [round(r["seconds"], 3) for r in done],
                "peak_mb_median": statistics.median(r["peak_mb"] for r in done),
                "value": done[0]["value"],
                "threads": done[0]["threads"],
            }
        results[str(n)] = {m: rows[m] for m in METHODS}
        for method, row in results[str(n)].items():
            if "seconds_median" in row:
                print(
                    f"n={n} {method}: {row['seconds_median']:.2f} s, peak +{row['peak_mb_median']:.0f} MB, "
                    f"MMD^2 {row['value']:.6g}"
                )
            else:
                print(f"n={n} {method}: {row['skipped']}")
    ratios = {}
    for n, rows in results.items():
        ours = rows["probrep_blockwise"]
        for other in ("torch_cdist_full", "geomloss_tensorized"):
            if "seconds_median" in rows.get(other, {}):
                ratios[f"n={n} time probrep / {other}"] = round(
                    ours["seconds_median"] / rows[other]["seconds_median"], 3
                )
                ratios[f"n={n} peak memory probrep / {other}"] = round(
                    ours["peak_mb_median"] / max(rows[other]["peak_mb_median"], 1e-9), 4
                )
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "device": args.device,
        "torch": torch.__version__,
        "dim": DIM,
        "bandwidth": BANDWIDTH,
        "note": "x ~ N(0, I), y ~ N(0.1, I), float32; probrep and cdist compute the U-statistic, geomloss the "
        "V-statistic (values differ by O(1/n)); peak memory is above the footprint before the call",
        "results": results,
        "ratios": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
