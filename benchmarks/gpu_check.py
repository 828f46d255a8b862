"""The one-command GPU check (`make gpu-check`): the test suite with PROBREP_TEST_DEVICE=cuda (every test that
takes the `device` fixture computes on the GPU), the GQN's paper tier trained and scored end to end on cuda (a slow
test), then the quick side-by-side benchmarks on CUDA, and a short report in runs/gpu_check/report.md. Without a
CUDA device it says so and exits cleanly.

Budget: under 8 minutes expected on one H100, not yet measured there (each part has its own time limit, together
at most 14.5 minutes, so a hang cannot eat the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# (name, command after the interpreter, time limit in seconds)
BENCHMARKS = [
    ("vae_step", ["benchmarks/vae_step.py", "--device", "cuda", "--blocks", "6"], 90),
    ("mcmc_torch_langevin", ["benchmarks/mcmc_torch_langevin.py", "--device", "cuda", "--blocks", "5"], 120),
    ("mmd_blockwise", ["benchmarks/mmd_blockwise.py", "--device", "cuda", "--sizes", "10000", "100000"], 90),
    ("gqn_perf", ["benchmarks/gqn_perf.py", "--device", "cuda", "--repeats", "3"], 90),
]


def _run(command: list[str], limit: float, env: dict[str, str]) -> tuple[int, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"timed out after {limit:.0f} s\n{exc.stdout or ''}"
    return code, text, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "gpu_check"))
    parser.add_argument("--test-seconds", type=float, default=240)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    if not torch.cuda.is_available():
        message = "gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check."
        report.write_text(message + "\n")
        print(message)
        return 0

    env = {**os.environ, "PROBREP_TEST_DEVICE": "cuda"}
    lines = [f"# GPU check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", ""]
    code, text, seconds = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], args.test_seconds, env)
    tail = text.strip().splitlines()[-1] if text.strip() else "(no output)"
    lines += [f"## Test suite on cuda ({seconds:.0f} s, exit {code})", "", f"    {tail}", ""]
    (out / "pytest.log").write_text(text)
    failed = code != 0
    # the paper tier (64x64, 12 DRAW steps) end to end: a slow test on a CPU, the GPU user's configuration
    paper = "tests/test_gqn.py::test_paper_tier_trains_and_scores_end_to_end"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-m", "slow", paper]
    code, text, seconds = _run(command, 240, env)
    tail = text.strip().splitlines()[-1] if text.strip() else "(no output)"
    lines += [f"## GQN paper tier on cuda ({seconds:.0f} s, exit {code})", "", f"    {tail}", ""]
    (out / "gqn_paper_tier.log").write_text(text)
    failed = failed or code != 0 or "1 passed" not in tail  # a skip (no cuda for torch) is not a pass
    for name, command, limit in BENCHMARKS:
        result = out / f"{name}.json"
        code, text, seconds = _run([sys.executable, *command, "--out", str(result)], limit, env)
        (out / f"{name}.log").write_text(text)
        lines += [f"## {name} ({seconds:.0f} s, exit {code})", ""]
        if code == 0 and result.is_file():
            summary = json.loads(result.read_text())
            lines += ["```json", json.dumps(summary.get("summary", summary), indent=1)[:3000], "```", ""]
        else:
            failed = True
            lines += ["    " + line for line in text.strip().splitlines()[-15:]] + [""]
    report.write_text("\n".join(lines))
    print(report.read_text())
    print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
