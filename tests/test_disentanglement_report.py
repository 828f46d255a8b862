"""The disentanglement study's report in a checkout that lacks the run folders (they are not committed): it keeps
what the last report recorded instead of overwriting the study with the few runs trained here."""

from __future__ import annotations

import json
import re
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


def test_report_finds_runs_of_any_seed_that_exist_only_as_folders(study):
    study, scoring = study
    for name, seed in (("beta_tcvae", 6), ("beta_tcvae_long", 7)):
        study.run_dir(name, seed).mkdir(parents=True)
        steps = (3000,) if name == "beta_tcvae" else (3000, 4000)
        scores = {str(s): _entry(s, s / 1e5, final=s == 3000 and name == "beta_tcvae") for s in steps}
        (study.run_dir(name, seed) / "scores.json").write_text(json.dumps(scores))
    study.run_dir("beta_tcvae_long", 8).with_name("beta_tcvae_long-seed8.copying").mkdir()  # not a run
    assert set(scoring.collect(None, {})) == {"beta_tcvae-seed6"}
    assert set(scoring.long_runs({})) == {"beta_tcvae_long-seed7"}


def test_long_run_table_compares_every_seed_at_the_last_step_all_reached(study):
    _, scoring = study

    def run(model, seed, curve):
        return {"model": model, "seed": seed, "curve": {step: {"mig": mig, "factor_vae": score}
                                                        for step, (mig, score) in curve.items()}}  # fmt: skip

    longs = {
        "vae_locatello_long-seed0": run("vae_locatello", 0, {5000: (0.1, 0.6), 10000: (0.1, 0.6), 20000: (0.2, 0.9)}),
        "vae_locatello_long-seed1": run("vae_locatello", 1, {5000: (0.1, 0.6), 10000: (0.3, 0.8)}),
        "beta_tcvae_locatello_long-seed0": run("beta_tcvae_locatello", 0, {5000: (0.2, 0.5), 10000: (0.4, 0.7)}),
        "beta_tcvae_locatello_long-seed1": run("beta_tcvae_locatello", 1, {5000: (0.3, 0.5), 10000: (0.6, 0.5),
                                                                           30000: (0.9, 0.9)}),
        "beta_tcvae_locatello_long-seed2": run("beta_tcvae_locatello", 2, {5000: (0.3, 0.5), 10000: (0.5, 0.6)}),
        # one seed, and no FactorVAE score at 10,000: no spread, no lead, and "-" where a value is missing
        "factor_vae_locatello_long-seed0": run("factor_vae_locatello", 0, {5000: (0.1, 0.5), 10000: (0.3, None)}),
    }  # fmt: skip
    table = scoring.long_run_table(longs)["locatello"]
    assert table["step"] == 10000  # the last step all reached: not 5,000, nor 20,000 or 30,000 that one seed reached
    assert list(table["models"]) == ["vae_locatello", "beta_tcvae_locatello", "factor_vae_locatello"]  # the VAE first
    one = table["models"]["factor_vae_locatello"]
    assert one["mig"] == {"mean": 0.3, "sd": None, "values": [0.3]} and "factor_vae" not in one
    assert one["lead_over_vae_in_standard_errors"] == {"mig": None}
    vae, tc = table["models"]["vae_locatello"], table["models"]["beta_tcvae_locatello"]
    assert vae["seeds"] == [0, 1] and tc["seeds"] == [0, 1, 2]
    assert vae["mig"]["mean"] == pytest.approx(0.2) and vae["mig"]["sd"] == pytest.approx(0.02**0.5)
    assert tc["mig"]["values"] == [0.4, 0.6, 0.5] and tc["mig"]["sd"] == pytest.approx(0.1)
    # by hand: (0.5 - 0.2) / sqrt(0.1^2 / 3 + 0.02 / 2) = 0.3 / sqrt(0.04 / 3) = 2.598...
    lead = tc["lead_over_vae_in_standard_errors"]
    assert lead["mig"] == pytest.approx(0.3 / (0.04 / 3) ** 0.5)
    assert lead["factor_vae"] == pytest.approx((0.6 - 0.7) / (0.01 / 3 + 0.02 / 2) ** 0.5)
    assert "lead_over_vae_in_standard_errors" not in vae
    markdown = scoring.long_run_markdown(scoring.long_run_table(longs))
    assert "at 10,000 steps" in markdown
    # no BetaVAE score in these runs: "-"; then the FactorVAE score and MIG
    assert "| beta_tcvae_locatello | 3 (0, 1, 2) | - | 0.600 ± 0.100 | 0.500 ± 0.100 |" in markdown
    assert "+2.6 | -0.9 |" in markdown
    assert "| factor_vae_locatello | 1 (0) | - | - | 0.300 | - | - | - | - | - | - | - |" in markdown


def test_report_without_a_record_names_this_machine(study):
    _, scoring = study
    assert scoring.collect(None, {}) == {}
    assert scoring.machine_note({}, {}).endswith("2 cores, 1 torch thread per run")


def test_ship_exports_chosen_snapshots_that_load_back(study, tmp_path, monkeypatch):
    """``ship --snapshots``: a long run's scored snapshot becomes a shipped model under its configuration's name, with
    its own scores as a one-seed row, and pretrained.load gives back the same encoder (float16 weights)."""
    import argparse

    import torch

    from probrep.experiments import pretrained
    from probrep.experiments.vae_dsprites import build_model

    study, scoring = study
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "weights" / "manifest.json")
    name, seed, step = "beta_tcvae_locatello_long", 0, 20000
    torch.manual_seed(0)
    model = build_model("betatcvae", 10, tc_weight=6.0, arch="conv", dataset_size=737_280)
    study.snapshot_path(name, seed, step).parent.mkdir(parents=True)
    torch.save({"module": model.state_dict(), "step": step}, study.snapshot_path(name, seed, step))
    (study.run_dir(name, seed) / "scores.json").write_text(json.dumps({str(step): _entry(step, 0.26)}))

    with pytest.raises(SystemExit, match="not scored; run 'evaluate --only beta_tcvae_locatello_long:0 --steps 30000'"):
        scoring.command_ship(argparse.Namespace(snapshots=[f"{name}:{seed}:30000"], steps=None))
    with pytest.raises(SystemExit, match="expected NAME:SEED:STEP"):
        scoring.command_ship(argparse.Namespace(snapshots=[f"{name}:{seed}"], steps=None))
    scoring.command_ship(argparse.Namespace(snapshots=[f"{name}:{seed}:{step}"], steps=None))

    shipped, info = pretrained.load("beta_tcvae_locatello")
    assert (info["steps"], info["seed"], info["model"]) == (step, seed, "betatcvae")
    assert info["settings"] == {"tc_weight": 6.0}
    assert info["recipe"]["lr"] == 1e-4 and "long_steps" not in info["recipe"]
    assert info["scores_of_this_run"]["mig"] == 0.26
    assert info["scores_over_seeds"]["mig"] == {"mean": 0.26, "sd": None, "values": [0.26]}
    assert f"train --only {name}:{seed}" in info["made_by"] and info["recipe"]["name"] == "locatello"
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # the commit that added the configuration
        assert re.search(r"configuration added at commit [0-9a-f]{7,}\)", info["made_by"]), info["made_by"]
    assert info["scores_over_seeds"]["seeds"] == 1 and "steps" not in info["recipe"]
    x = torch.rand(4, 1, 64, 64).round()
    with torch.no_grad():
        torch.testing.assert_close(shipped.encode(x), model.eval().encode(x), atol=2e-2, rtol=2e-2)  # float16 weights


def test_ship_checks_every_snapshot_before_writing_and_removes_what_it_no_longer_ships(study, tmp_path, monkeypatch):
    import argparse

    import torch

    from probrep.experiments import pretrained
    from probrep.experiments.vae_dsprites import build_model

    study, scoring = study
    weights = tmp_path / "weights"
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    monkeypatch.setattr(pretrained, "MANIFEST", weights / "manifest.json")
    weights.mkdir()
    (weights / "old_model.pt").write_bytes(b"weights a previous ship listed")
    for seed in (0, 1):
        model = build_model("vae", 10, beta=1.0, arch="conv")
        path = study.snapshot_path("vae_locatello_long", seed, 10000)
        path.parent.mkdir(parents=True)
        torch.save({"module": model.state_dict(), "step": 10000}, path)
        scores = json.dumps({"10000": _entry(10000, 0.05)})
        (study.run_dir("vae_locatello_long", seed) / "scores.json").write_text(scores)

    def ship(*specs):
        scoring.command_ship(argparse.Namespace(snapshots=list(specs), steps=None))

    with pytest.raises(SystemExit, match="two snapshots would ship under one name"):
        ship("vae_locatello_long:0:10000", "vae_locatello_long:1:10000")
    with pytest.raises(SystemExit, match=r"keeps snapshots at steps \[500, 1000"):
        ship("vae_locatello_long:0:12345")
    with pytest.raises(SystemExit, match="no configuration 'nope'"):
        ship("nope_long:0:10000")
    assert sorted(p.name for p in weights.iterdir()) == ["old_model.pt"]  # nothing written by the refusals
    ship("vae_locatello_long:1:10000")
    assert sorted(p.name for p in weights.iterdir()) == ["manifest.json", "vae_locatello.pt"]
    assert pretrained.available() == ["vae_locatello"] and pretrained.load("vae_locatello")[1]["seed"] == 1


def test_confirm_rescores_a_snapshot_as_the_study_scores_it_and_keeps_each_entry(study, monkeypatch):
    """``confirm``: the same MIG and, at the study's votes, the same FactorVAE score as the study's own scoring of
    that snapshot (so it reads the right weights with the right seed); each snapshot is kept under its own key."""
    import argparse

    import torch

    from probrep.experiments.vae_dsprites import build_model

    study, scoring = study
    import functools

    monkeypatch.setattr(scoring, "LONG_METRICS", ("mig", "factor_vae"))  # the study's scoring without DCI's minute
    monkeypatch.setattr(scoring, "evaluate", functools.partial(scoring.evaluate, num_points=600))  # both use it
    name, seed = "beta_tcvae_locatello_long", 1
    for step, init in ((3000, 0), (5000, 1)):
        torch.manual_seed(init)
        model = build_model("betatcvae", 10, tc_weight=6.0, arch="conv", dataset_size=737_280)
        study.snapshot_path(name, seed, step).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"module": model.state_dict(), "step": step}, study.snapshot_path(name, seed, step))
    votes = (40, 20)
    studied = scoring.score_snapshot(name, seed, 5000, final=False, votes=votes, threads=1)

    with pytest.raises(SystemExit, match="no snapshot of beta_tcvae_locatello_long seed 1 at step 10000"):
        scoring.command_confirm(argparse.Namespace(snapshots=[f"{name}:1:10000"], threads=1))
    with pytest.raises(SystemExit, match="keeps snapshots at steps"):
        scoring.command_confirm(argparse.Namespace(snapshots=[f"{name}:1:4000"], threads=1))
    monkeypatch.setattr(scoring, "FULL_PROTOCOL_VOTES", votes)
    scoring.command_confirm(argparse.Namespace(snapshots=[f"{name}:1:3000", f"{name}:1:5000"], threads=1))
    kept = json.loads((scoring.RESULTS / "full_protocol.json").read_text())
    assert set(kept) == {f"{name}-seed1-step-3000", f"{name}-seed1-step-5000"}
    confirmed = kept[f"{name}-seed1-step-5000"]
    assert confirmed["mig"] == studied["mig"] and confirmed["factor_vae"] == studied["factor_vae"]
    assert confirmed["factor_vae_per_factor"] == studied["factor_vae_per_factor"]
    assert confirmed["votes"] == list(votes) and kept[f"{name}-seed1-step-3000"]["mig"] != studied["mig"]
    s = confirmed["factor_vae"]
    assert confirmed["factor_vae_standard_error"] == pytest.approx((s * (1 - s) / 20) ** 0.5)
    assert (confirmed["name"], confirmed["seed"], confirmed["step"]) == (name, 1, 5000)

    # the report draws the confirmed snapshots' traversals, but not one it drew already, nor a stale entry's
    kept["stale"] = {**confirmed, "step": 4000}
    (scoring.RESULTS / "full_protocol.json").write_text(json.dumps(kept))
    scoring.confirmed_traversals({(name, 1, 5000)})
    drawn = sorted(p.name for p in scoring.RESULTS.glob("traversals_*.png"))
    assert drawn == [f"traversals_{name}-seed1-step-3000.png"]


def test_complete_scores_a_long_run_snapshot_with_every_metric_and_keeps_its_scores(study, monkeypatch):
    """``complete``: a long run's snapshot gets the last step's metrics; MIG and the FactorVAE score come out as the
    study's own scoring gave them, and the report's long-run table then has the new columns."""
    import argparse
    import functools

    import torch

    from probrep.experiments.vae_dsprites import build_model

    study, scoring = study
    cheap = ("mig", "factor_vae", "beta_vae", "sap", "irs")  # the last step's metrics without DCI's minute
    monkeypatch.setattr(scoring, "LONG_METRICS", ("mig", "factor_vae"))
    monkeypatch.setattr(scoring, "FINAL_METRICS", cheap)
    monkeypatch.setattr(scoring, "evaluate", functools.partial(scoring.evaluate, num_points=600))
    name, votes = "vae_locatello_long", (40, 20)
    torch.manual_seed(0)
    model = build_model("vae", 10, beta=1.0, arch="conv", dataset_size=737_280)
    study.snapshot_path(name, 0, 10000).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": model.state_dict(), "step": 10000}, study.snapshot_path(name, 0, 10000))
    studied = scoring.score_snapshot(name, 0, 10000, final=False, votes=votes, threads=1)
    (study.run_dir(name, 0) / "scores.json").write_text(json.dumps({"10000": studied}))

    with pytest.raises(SystemExit, match="not a long run"):
        scoring.command_complete(argparse.Namespace(snapshots=["vae_locatello:0:3000"], votes=votes, threads=1))
    score = scoring.score_snapshot

    def meanwhile(*args, **kwargs):  # another process (a training run's scoring) writes the file while this scores
        path = study.run_dir(name, 0) / "scores.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "5000": studied}))
        return score(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_snapshot", meanwhile)
    scoring.command_complete(argparse.Namespace(snapshots=[f"{name}:0:10000"], votes=votes, threads=1))
    assert set(json.loads((study.run_dir(name, 0) / "scores.json").read_text())) == {"5000", "10000"}
    kept = json.loads((study.run_dir(name, 0) / "scores.json").read_text())["10000"]
    assert kept["final"] and kept["mig"] == studied["mig"] and kept["factor_vae"] == studied["factor_vae"]
    assert {"beta_vae", "sap", "irs", "irs_matrix"} <= set(kept) and 0 <= kept["beta_vae"] <= 1
    table = scoring.long_run_table(scoring.long_runs({}))["locatello"]
    assert table["step"] == 10000 and table["models"]["vae_locatello"]["beta_vae"]["values"] == [kept["beta_vae"]]
    assert f"| {kept['beta_vae']:.3f} | {kept['factor_vae']:.3f} | {kept['mig']:.3f} |" in scoring.long_run_markdown(
        {"locatello": table}
    )


def test_a_run_continued_in_a_later_session_ends_with_the_weights_of_one_trained_at_once(study, monkeypatch, tmp_path):
    """``train --only NAME:SEED --steps N`` in one session and ``--steps M`` in the next (a long run that spans
    sessions) keeps every snapshot and ends where one call to M steps ends, bit for bit."""
    import torch

    study, _ = study
    monkeypatch.setitem(study.RECIPES, "locatello", {**study.RECIPES["locatello"], "eval_steps": (2,),
                                                     "long_steps": (4,)})  # fmt: skip
    name = "vae_locatello_long"
    study.train_one(name, 0, steps=2)  # the first session
    assert [p.name for p in sorted((study.run_dir(name, 0) / "snapshots").glob("*.pt"))] == ["step-000002.pt"]
    study.train_one(name, 0, steps=4)  # the next one
    split = {step: torch.load(study.snapshot_path(name, 0, step), weights_only=True)["module"] for step in (2, 4)}

    # one call straight to 4 steps, with the settings train_one passes, and no stop at the step-2 snapshot
    from probrep.experiments.vae_dsprites import train_vae_on_dsprites

    recipe = study.recipe_of(name)
    at_once = train_vae_on_dsprites(tmp_path / "at_once", **study.config_of(name), arch=recipe["arch"], steps=4,
                                    batch_size=recipe["batch_size"], lr=recipe["lr"], seed=0, checkpoint_every=250,
                                    progress=False).model.state_dict()  # fmt: skip
    assert at_once.keys() == split[4].keys()
    assert all(torch.equal(at_once[k], split[4][k]) for k in at_once)
    assert not all(torch.equal(split[2][k], split[4][k]) for k in split[2])  # it trained in between


def test_train_scores_what_it_trained_also_for_one_run(study, monkeypatch):
    """``train --only NAME:SEED --steps N`` scores the run as far as N when it ends, as the worker path does."""
    import argparse

    study, _ = study
    trained, commands = [], []
    monkeypatch.setattr(study, "train_one", lambda name, seed, steps: trained.append((name, seed, steps)))
    monkeypatch.setattr(study, "start_long_run", lambda name, seed: None)
    monkeypatch.setattr(
        study.subprocess, "run", lambda cmd, check: commands.append(cmd) or argparse.Namespace(returncode=0)
    )
    args = argparse.Namespace(only="beta_tcvae_locatello_long:1", steps=10000, threads=1, votes=(1000, 500))
    study.command_train(args)
    assert trained == [("beta_tcvae_locatello_long", 1, 10000)]
    (cmd,) = commands
    assert cmd[2:] == ["evaluate", "--only", "beta_tcvae_locatello_long:1", "--threads", "1", "--votes", "1000", "500",
                       "--steps", "10000"]  # fmt: skip
