"""benchmarks/gqn_small_tier.py --probe-figure (the probe curve of a finished run, drawn from its results JSON) and
the run history it comes from (RunFolder.resumed_history)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def small_tier(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gqn_small_tier

    monkeypatch.setattr(gqn_small_tier, "RESULTS", tmp_path)
    yield gqn_small_tier
    sys.modules.pop("gqn_small_tier", None)


def test_probe_figure_is_drawn_from_the_results_json(small_tier, tmp_path):
    curve = [{"step": 250 * k, "mse": 0.02 / k, "baseline_mse": 0.02, "sigma": 2.0 * 0.9**k} for k in range(1, 5)]
    (tmp_path / "run.json").write_text(json.dumps({"test_mse_curve": curve}))
    (tmp_path / "run").mkdir()
    small_tier.probe_figure("run")
    assert (tmp_path / "run" / "probe_mse.png").stat().st_size > 1000


def test_probe_figure_names_a_run_without_a_curve(small_tier, tmp_path):
    (tmp_path / "resumed.json").write_text(json.dumps({"test_mse_curve": []}))
    with pytest.raises(SystemExit, match="results/resumed.json records no probe curve"):
        small_tier.probe_figure("resumed")
    with pytest.raises(SystemExit, match="no results/missing.json"):
        small_tier.probe_figure("missing")


def test_resumed_history_is_this_runs_own(tmp_path):
    from probrep.experiments.run_folder import RunFolder

    history = tmp_path / "history.json"
    records = {"history": [{"step": 1}, {"step": 2}, {"step": 3}]}
    history.write_text(json.dumps(records))
    # a folder with a checkpoint at step 2: a resume keeps what it will not redo
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "checkpoint-00000002.pt").write_bytes(b"")
    assert RunFolder(tmp_path, resume=True).resumed_history(history) == [{"step": 1}, {"step": 2}]
    # a fresh run there is refused before it writes anything, so the earlier history stays
    with pytest.raises(FileExistsError, match="holds 1 checkpoint"):
        RunFolder(tmp_path)
    assert history.is_file()
    # an overwriting run starts from step 0: the earlier run's history goes
    assert RunFolder(tmp_path, overwrite=True).resumed_history(history) == [] and not history.exists()
    history.write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a run history"):
        RunFolder(tmp_path, resume=True).resumed_history(history)
