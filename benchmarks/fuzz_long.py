"""The fuzzing suite's long run (issue 19, section 4): the properties of tests/test_fuzz.py with many more
examples than CI runs (about 10,000 there), drawn from a seed instead of derandomized, so that each run with a
new seed explores inputs CI never saw.

    python benchmarks/fuzz_long.py [--examples 200000] [--seed 0]

Every property gets the share of ``--examples`` that it has of the CI count (the per-example costs differ by
two orders of magnitude, from a random byte string to drawing a graph), so the run keeps CI's mix. It runs
in-process through pytest, so failures are shrunk and printed as in CI; the exit status is pytest's.

Writes benchmarks/results/fuzz_long.json: examples and accepted inputs per entry point, seconds per property,
the seed, whether everything passed (and what failed), the machine and its load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _machine import cpu_name  # noqa: E402  (benchmarks run as scripts from this folder)

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests" / "test_fuzz.py"


def ci_examples() -> int:
    """The examples CI runs: the sum of the file's ``@fuzz(N)`` counts (read as text, before the module reads
    the scale from the environment at import)."""
    return sum(int(n) for n in re.findall(r"^@fuzz\((\d+)", TESTS.read_text(), flags=re.MULTILINE))


class Timings:
    """A pytest plugin that keeps each property's outcome and call duration."""

    def __init__(self):
        self.rows: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            row = self.rows.setdefault(report.head_line or report.nodeid, {})
            row["outcome"] = report.outcome if report.when == "call" else f"{report.when} {report.outcome}"
            row["seconds"] = round(row.get("seconds", 0.0) + report.duration, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200_000, help="examples in all, shared as in CI")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (CI's examples are derandomized)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz_long.json"))
    args = parser.parse_args()
    base = ci_examples()
    scale = args.examples / base
    # read by tests/test_fuzz.py at import: set before pytest imports it
    os.environ["PROBREP_FUZZ_SCALE"], os.environ["PROBREP_FUZZ_SEED"] = str(scale), str(args.seed)
    import hypothesis
    import pytest

    load_before = os.getloadavg()
    timings, start = Timings(), time.perf_counter()
    status = pytest.main([str(TESTS), "-q", "-p", "no:randomly", f"--hypothesis-seed={args.seed}"], plugins=[timings])
    seconds = time.perf_counter() - start
    module = next(m for name, m in sys.modules.items() if name.endswith("test_fuzz") and hasattr(m, "COUNTS"))
    counts, accepted = dict(module.COUNTS), dict(module.ACCEPTED)
    result = {
        "examples": sum(counts.values()),
        "examples_requested": args.examples,
        "examples_in_ci": base,
        "scale": round(scale, 4),
        "seed": args.seed,
        "passed": status == 0,
        "failed": [name for name, row in timings.rows.items() if row["outcome"] != "passed"],
        "seconds": round(seconds, 1),
        "per_entry_point": {name: {"examples": n, "accepted": accepted.get(name, 0)} for name, n in counts.items()},
        "per_property": timings.rows,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "hypothesis": hypothesis.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "note": "accepted: inputs that loaded (the rest were refused with the documented error); seconds are wall "
        "time on a machine that may be busy (see the load average)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        f"{result['examples']} examples in {result['seconds']} s, {'passed' if status == 0 else 'FAILED'}: {args.out}"
    )
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
