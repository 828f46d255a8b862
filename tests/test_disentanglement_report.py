"""The disentanglement study's report in a checkout that lacks the run folders (they are not committed): it keeps
what the last report recorded instead of overwriting the study with the few runs trained here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import disentanglement_scoring as scoring
    import disentanglement_study as study

    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(scoring, "RESULTS", tmp_path / "results")
    yield study, scoring
    for name in ("disentanglement_scoring", "disentanglement_study"):
        sys.modules.pop(name, None)


def _entry(step, mig, final=False):
    return {"step": step, "final": final, "mig": mig, "dci_disentanglement": 0.1, "reconstruction_nats": 60.0,
            "factor_vae": 0.5, "machine": "the test box"}  # fmt: skip


def test_report_keeps_recorded_runs_and_adds_the_runs_on_disk(study):
    study, scoring = study
    recorded = {
        "machine": "the recorded box, 2 cores",
        "runs": {
            "vae-seed0": {"model": "vae", "seed": 0, "recipe": "conv", "batch_size": 64,
                          "final": _entry(3000, 0.05, final=True),
                          "curve": {"500": {"mig": 0.01}, "3000": {"mig": 0.05}}, "train_seconds": 900.0},
            # scored at the recipe's 3,000 steps: not a final entry of a report asked for step 2,000
            "vae-seed2": {"model": "vae", "seed": 2, "recipe": "conv", "batch_size": 64,
                          "final": _entry(3000, 0.07, final=True), "curve": {"3000": {"mig": 0.07}},
                          "train_seconds": 900.0},
        },
        "long_runs": {"beta_tcvae_long-seed0": {"model": "beta_tcvae", "seed": 0,
                                                "curve": {"3000": {"mig": 0.16}, "20000": {"mig": 0.15}}}},
    }  # fmt: skip
    # one run trained and scored in this checkout, and one retrained here that has not reached its last step
    (study.run_dir("vae", 1)).mkdir(parents=True)
    scores = {"500": _entry(500, 0.02), "3000": _entry(3000, 0.04, final=True)}
    (study.run_dir("vae", 1) / "scores.json").write_text(json.dumps(scores))
    study.run_dir("vae", 2).mkdir(parents=True)
    (study.run_dir("vae", 2) / "scores.json").write_text(json.dumps({"500": _entry(500, 0.03)}))

    runs = scoring.collect(None, recorded)
    assert set(runs) == {"vae-seed0", "vae-seed1", "vae-seed2"}
    assert runs["vae-seed0"]["recorded"] and not runs["vae-seed1"].get("recorded")
    assert sorted(runs["vae-seed0"]["curve"]) == [500, 3000]  # keyed by step again, as a fresh run's curve is
    assert runs["vae-seed1"]["machine"] == "the test box"
    row = scoring.table(runs)["vae"]
    assert row["seeds"] == 3 and row["mig"]["values"] == [0.05, 0.04, 0.07]
    assert runs["vae-seed2"]["recorded"]  # the unfinished retraining does not replace it
    note = scoring.machine_note(recorded, runs)
    assert note.startswith("the recorded box, 2 cores; ")
    assert scoring.machine_note({**recorded, "machine": note}, runs) == note  # a second report adds nothing
    scoring.refuse_to_drop(recorded, runs)

    # no recorded run is scored at 2,000: a report at that step would lose them all, so it stops first
    assert set(scoring.collect(2000, recorded)) == {"vae-seed1", "vae-seed2"}  # the folders, with no final
    with pytest.raises(SystemExit, match=r"would drop 1 recorded run\(s\) \(vae-seed0"):
        scoring.refuse_to_drop(recorded, scoring.collect(2000, recorded))

    longs = scoring.long_runs(recorded)
    assert max(longs["beta_tcvae_long-seed0"]["curve"]) == 20000  # not "3000", the larger string
    # a long run retrained here keeps the record until it has come as far
    study.run_dir("beta_tcvae_long", 0).mkdir(parents=True)
    (study.run_dir("beta_tcvae_long", 0) / "scores.json").write_text(json.dumps({"4000": _entry(4000, 0.1)}))
    assert scoring.long_runs(recorded)["beta_tcvae_long-seed0"]["recorded"]


def test_report_without_a_record_names_this_machine(study):
    _, scoring = study
    assert scoring.collect(None, {}) == {}
    assert scoring.machine_note({}, {}).endswith("2 cores, 1 torch thread per run")
