"""GQN performance: renderer frames per second, and the SVI step time of the small tier and of the paper's
configuration, with and without activation checkpointing of the DRAW steps.

    nice -n 10 python benchmarks/gqn_perf.py [--device cpu|cuda] [--threads 1] [--paper-batch 2]

Renderer: frames (views) per second of ``Rooms.render`` for 32x32 and 64x64 rooms, with and without shadow rays,
median over repeats of 16 scenes x 10 views. Step time: one full ``svi.fit`` step (guide, model, mean-field
ELBO, backward, Adam) on a fixed batch with 5 context views, median after warm-up (the two paper models
alternate step by step, so that the load of a shared machine hits both alike). Activation memory: bytes of
the tensors autograd saves for the backward pass (counted with ``saved_tensors_hooks``, the same on any device),
which is what activation checkpointing trades for recomputation.

Writes benchmarks/results/gqn_perf.json (one file per device: gqn_perf_cuda.json on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import pyro
import torch
from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

from probrep.data.rooms.dataset import GQNDataset
from probrep.data.rooms.scene import Rooms
from probrep.device import resolve_device
from probrep.inference import svi
from probrep.models.gqn.model import GQN

RESULTS = Path(__file__).parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def renderer_fps(device: torch.device, repeats: int) -> dict[str, float]:
    out = {}
    for size in (32, 64):
        for shadows in (True, False):
            rooms = Rooms(image_size=size, num_views=10, shadows=shadows)
            factors, yaw, pitch = rooms.scenes(range(16))
            rooms.render(factors[:2], yaw[:2], pitch[:2], device=device)  # warm-up
            times = []
            for _ in range(repeats):
                sync(device)
                t0 = time.perf_counter()
                rooms.render(factors, yaw, pitch, device=device)
                sync(device)
                times.append(time.perf_counter() - t0)
            out[f"{size}x{size}_shadows_{'on' if shadows else 'off'}"] = round(160 / statistics.median(times), 1)
    return out


def activation_bytes(fn) -> int:
    """Bytes of distinct tensors saved for backward while ``fn()`` builds its graph (``fn`` returns the loss)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        if t.device.type != "meta":
            seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    del loss
    return sum(seen.values())


def _stepper(model: GQN, batch, device: torch.device):
    """One timed SVI step (guide, model, mean-field ELBO, backward, Adam) per call."""
    model.to(device)
    batch = tuple(t.to(device) for t in batch)
    elbo = svi.make_elbo(None, model)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step() -> float:
        sync(device)
        t0 = time.perf_counter()
        loss = elbo.differentiable_loss(model.model, model.guide, *batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - t0

    def memory() -> dict[str, float]:
        saved = activation_bytes(lambda: elbo.differentiable_loss(model.model, model.guide, *batch))
        out = {"saved_activations_MB": round(saved / 2**20, 1)}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            elbo.differentiable_loss(model.model, model.guide, *batch).backward()
            model.zero_grad(set_to_none=True)
            out["peak_cuda_memory_MB"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        return out

    return step, memory


def step_times(models: dict[str, GQN], batch, device: torch.device, rounds: int) -> dict[str, dict[str, float]]:
    """Median step time of each model over ``rounds`` rounds that alternate between the models (so that the
    load of a shared machine hits them alike), after one warm-up step each; and their activation memory."""
    steppers = {name: _stepper(model, batch, device) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for step, _ in steppers.values():
        step()
    for _ in range(rounds):
        for name, (step, _) in steppers.items():
            times[name].append(step())
    return {
        name: {"median_step_s": round(statistics.median(times[name]), 4), **memory()}
        for name, (_, memory) in steppers.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small-batch", type=int, default=16)
    parser.add_argument("--small-steps", type=int, default=20)
    parser.add_argument("--paper-batch", type=int, default=2, help="36 in the paper; small on a CPU")
    parser.add_argument("--paper-steps", type=int, default=4, help="alternating rounds")
    parser.add_argument("--out", default=None, help="default: results/gqn_perf.json (gqn_perf_cuda.json on a GPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pyro.set_rng_seed(0)
    result: dict = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "torch": torch.__version__,
    }
    result["renderer_frames_per_second"] = renderer_fps(device, args.repeats)
    print(json.dumps(result["renderer_frames_per_second"], indent=2))

    steps: dict[str, dict] = {}
    small_rooms = Rooms(image_size=32).generate(args.small_batch)
    batch = GQNDataset(small_rooms).batch(list(range(args.small_batch)), num_context=5)
    pyro.set_rng_seed(0)
    small = step_times({"small_tier": GQN.small()}, batch, device, args.small_steps)
    steps["small_tier"] = {"batch": args.small_batch, **small["small_tier"]}
    print("small tier", steps["small_tier"])
    paper_rooms = Rooms(image_size=64).generate(args.paper_batch)
    batch = GQNDataset(paper_rooms).batch(list(range(args.paper_batch)), num_context=5)
    pyro.set_rng_seed(0)
    # 64x64, tower, r 256, h 128, z 64, L 12, 5x5 kernels; the second with activation checkpointing per step
    models = {"paper_config": GQN(), "paper_config_checkpointed": GQN(checkpoint_steps=True)}
    for name, value in step_times(models, batch, device, args.paper_steps).items():
        steps[name] = {"batch": args.paper_batch, **value}
        print(name, steps[name])
    result["svi_step"] = steps
    result["context_views"] = 5
    name = "gqn_perf.json" if device.type == "cpu" else f"gqn_perf_{device.type}.json"
    out = Path(args.out) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
