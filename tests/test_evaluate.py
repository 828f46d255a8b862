"""Evaluation on procedural dSprites and the flagship demo at toy size."""

import json

import numpy as np
import pytest
import torch

from probrep.cli.demo import print_report
from probrep.experiments.demo import demo
from probrep.experiments.evaluate import evaluate
from probrep.experiments.vae_dsprites import load_run


def centre_of_mass_encoder(images) -> np.ndarray:
    """Codes that a perfect position-and-size encoder would give: column and row centre of mass, area."""
    x = np.asarray(images)[:, 0]
    mass = x.sum((1, 2))
    cols = (x.sum(1) * np.arange(64)).sum(1) / mass
    rows = (x.sum(2) * np.arange(64)).sum(1) / mass
    return np.stack([cols, rows, mass], 1)


def test_evaluate_finds_the_factor_each_code_tracks():
    result = evaluate(centre_of_mass_encoder, ["irs", "irs_interventional", "mig", "sap"], num_points=1500,
                      seed=0, progress=False)  # fmt: skip
    # factors are (shape, scale, orientation, posX, posY): column mass tracks posX (3), row mass posY (4)
    assert result.irs_matrix.shape == (3, 5)
    assert list(result.irs_matrix[:2].argmax(1)) == [3, 4]
    assert result.scores["irs"]["num_active_dims"] == 3
    # positions are read exactly: MIG well above the ~0 of an uninformative code
    assert result.scores["mig"]["score"] > 0.3
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate(centre_of_mass_encoder, ["irs", "accuracy"], num_points=100)


def _ship_toy_weights(tmp_path, monkeypatch):
    """A shipped-weights folder of our own (a randomly initialised VAE), so that the demo's shipped path runs
    whether or not the project ships weights yet."""
    from probrep.experiments import pretrained
    from probrep.experiments.vae_dsprites import build_model
    from probrep.io.json_file import write_json

    folder = tmp_path / "weights"
    monkeypatch.setattr(pretrained, "WEIGHTS", folder)
    monkeypatch.setattr(pretrained, "MANIFEST", folder / "manifest.json")
    torch.manual_seed(0)
    entry = pretrained.export(build_model("factorvae", 10), folder / "toy.pt")
    scores = {"mig": {"mean": 0.1, "sd": 0.01, "values": [0.09, 0.11]}}
    write_json({"format": 1, "models": {"toy": {
        "model": "factorvae", "settings": {"gamma": 30.0}, "latent_dim": 10, "arch": "conv", "seed": 0, "steps": 3,
        "made_by": "a test", "scores_over_seeds": scores, **entry}}}, folder / "manifest.json")  # fmt: skip
    return folder


def test_demo_at_toy_size_writes_its_report(tmp_path, monkeypatch, capsys):
    _ship_toy_weights(tmp_path, monkeypatch)
    out = tmp_path / "demo"
    report = demo(out, steps=3, device="cpu", num_points=300, progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert list(saved["shipped"]) == ["toy"] and saved["fresh"]["beta"] == 4.0
    for name in ("irs", "irs_interventional", "mig", "dci_disentanglement"):
        assert name in report["shipped"]["toy"]["measured_now"] and name in report["fresh"]["measured_now"]
    assert (out / "irs_matrices.png").stat().st_size > 1000
    assert (out / "shipped" / "toy_traversals.png").stat().st_size > 1000
    # downstream utility of the shipped model: 200 training rows, so 10 and 100 labels ran (1,000 and 10,000 not)
    down = saved["shipped"]["toy"]["downstream"]
    assert (
        down["sizes"] == [10, 100]
        and down["skipped"] == [1000, 10000]
        and list(down["gbt"]["accuracy"]) == ["10", "100"]
    )
    assert all(0 <= a <= 1 for a in down["gbt"]["accuracy"].values())
    assert report["shipped"]["toy"]["measured_now"]["downstream_gbt_accuracy_100"] == down["gbt"]["accuracy"]["100"]
    assert (out / "downstream.png").stat().st_size > 1000 and saved["files"]["downstream"] == str(
        out / "downstream.png"
    )
    print_report(report)  # what `probrep demo` prints
    printed = capsys.readouterr().out
    assert "toy (shipped)" in printed and "beta-VAE fresh, 3 steps" in printed and "0.10±0.01" in printed
    assert (
        "Downstream utility" in printed
        and "100 labels" in printed
        and str((out / "downstream.png").resolve()) in printed
    )
    model, summary = load_run(out / "fresh_beta_vae")
    assert summary["beta"] == 4.0 and model.latent_dim == 10
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run(tmp_path / "nowhere")


def test_shipped_weights_load_only_when_intact(tmp_path, monkeypatch):
    from probrep.experiments import pretrained

    folder = _ship_toy_weights(tmp_path, monkeypatch)
    model, info = pretrained.load("toy")
    assert info["parameters"] == sum(p.numel() for n, p in model.state_dict().items() if "discriminator" not in n)
    assert not model.training
    with pytest.raises(ValueError, match="no shipped model 'nope'"):
        pretrained.load("nope")
    data = bytearray((folder / "toy.pt").read_bytes())
    data[-10] ^= 1
    (folder / "toy.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        pretrained.load("toy")


def test_every_shipped_model_loads_and_encodes():
    from probrep.experiments import pretrained

    names = pretrained.available()
    if not names:
        pytest.skip("no weights shipped yet")
    x = torch.zeros(2, 1, 64, 64)
    for name in names:
        model, info = pretrained.load(name)
        assert model.encode(x).shape == (2, info["latent_dim"])


def _shipped_names() -> list[str]:
    from probrep.experiments import pretrained

    return pretrained.available()


@pytest.mark.parametrize("name", _shipped_names())
def test_probrep_evaluate_scores_every_shipped_checkpoint(name, tmp_path, capsys):
    from probrep import cli
    from probrep.experiments import pretrained

    _, info = pretrained.load(name)
    out = tmp_path / "scores"
    argv = ["evaluate", "--checkpoint", f"pretrained:{name}", "--out", str(out), "--metrics", "mig",
            "--num-points", "300", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["run"]["model"] == info["model"] and set(saved["scores"]) == {"mig"}
    assert 0.0 <= saved["scores"]["mig"]["score"] <= 1.0
    assert "mig" in capsys.readouterr().out


def test_irs_heat_map_labels_each_latent_with_its_share_of_the_score_by_hand(tmp_path):
    from probrep.experiments.evaluate import irs_heatmap, irs_row_labels, irs_weight_shares
    from probrep.metrics import irs

    g = np.stack(np.meshgrid(np.arange(5), np.arange(2), indexing="ij"), -1).reshape(-1, 2).repeat(3, 0)
    # z0 = g0 (largest deviation 2), z1 = 10 g1 (5), z2 = g0 / 1000 (0.002: barely moves), z3 constant
    codes = np.stack([g[:, 0], 10.0 * g[:, 1], g[:, 0] / 1000, np.full(len(g), 3.0)], 1).astype(float)
    result = irs(g, codes)
    shares = irs_weight_shares(result.max_deviations, result.active)
    np.testing.assert_allclose(shares, [2 / 7.002, 5 / 7.002, 0.002 / 7.002, 0.0])
    # the score is the shares' average of the latents' IRS
    assert result.score == pytest.approx(float(np.nansum(shares * np.nan_to_num(result.per_latent))))
    assert irs_row_labels(shares, result.active) == ["z0 (29%)", "z1 (71%)", "z2 (0.0%, faint)", "z3 (inactive)"]
    path = irs_heatmap({"toy": result.matrix}, ["a", "b"], tmp_path / "irs.png", {"toy": shares},
                       {"toy": result.active})  # fmt: skip
    assert path.stat().st_size > 1000
    # the same code scaled near the float64 limit, and near its bottom: the same shares
    for scale in (1.5e307, 1e-300):
        scaled = irs(g, codes * scale)
        np.testing.assert_allclose(irs_weight_shares(scaled.max_deviations, scaled.active), shares, rtol=1e-12)
    # three deviations whose sum overflows float64 (7.5e307 each) and a small one: thirds, and the small one faint
    big = irs(g, np.stack([g[:, 0] * 3.75e307] * 3 + [g[:, 0] * 1e-3], 1).astype(float))
    big_shares = irs_weight_shares(big.max_deviations, big.active)
    np.testing.assert_allclose(big_shares[:3], 1 / 3)
    assert 0 < big_shares[3] < 1e-300
    assert irs_row_labels(big_shares, big.active)[3] == "z3 (0.0%, faint)"
    # an active latent whose share underflows next to a huge one is faint, not inactive
    tiny = irs(g, np.stack([g[:, 0] * 1e300, g[:, 0] * 1e-300], 1).astype(float))
    tiny_shares = irs_weight_shares(tiny.max_deviations, tiny.active)
    assert tiny_shares[0] == 1.0 and irs_row_labels(tiny_shares, tiny.active)[1] == "z1 (0.0%, faint)"


def test_reported_negative_elbo_is_the_unweighted_one_not_the_beta_weighted_objective():
    from probrep.experiments.vae_dsprites import negative_elbo
    from probrep.inference import svi
    from probrep.models import VAE

    torch.manual_seed(0)
    vae = VAE(image_shape=(1, 64, 64), latent_dim=4, beta=4.0, arch="mlp", hidden=(32,)).double()
    x = torch.bernoulli(torch.full((3, 1, 64, 64), 0.3, dtype=torch.float64))
    loc, _ = vae.posterior(x)
    vae.posterior = lambda images: (loc, torch.full_like(loc, 1e-6))  # z = loc: one draw is exact
    ours = negative_elbo(vae, x)
    weighted = float(svi.make_elbo(None, vae).loss(vae.model, vae.guide, x))
    vae.beta = 1.0
    unweighted = float(svi.make_elbo(None, vae).loss(vae.model, vae.guide, x))
    assert float(ours.sum()) == pytest.approx(unweighted, rel=1e-6)
    kl = float((0.5 * (loc**2 + 1e-12 - 1.0) - torch.log(torch.tensor(1e-6, dtype=torch.float64))).sum())
    assert weighted - unweighted == pytest.approx(3.0 * kl, rel=1e-6)  # beta - 1 = 3 extra KLs


def test_probrep_evaluate_takes_a_shipped_model_and_draws_the_downstream_plot(tmp_path, monkeypatch, capsys):
    from probrep import cli

    _ship_toy_weights(tmp_path, monkeypatch)
    out = tmp_path / "scores"
    argv = ["evaluate", "--checkpoint", "pretrained:toy", "--out", str(out), "--metrics", "mig,downstream",
            "--num-points", "300", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["scores"]) == {"mig", "downstream"} and saved["run"]["model"] == "factorvae"
    assert (out / "downstream.png").stat().st_size > 1000
    assert "downstream.png" in capsys.readouterr().out


def test_probrep_evaluate_reports_the_new_measures_by_default(tmp_path, monkeypatch, capsys):
    """A shipped model scored with the default --metrics (FactorVAE votes cut down): its JSON holds downstream,
    fairness and symmetry beside the disentanglement scores, each a number in its range."""
    from probrep import cli

    _ship_toy_weights(tmp_path, monkeypatch)
    out = tmp_path / "scores"
    argv = ["evaluate", "--checkpoint", "pretrained:toy", "--out", str(out), "--num-points", "300",
            "--votes", "20", "10", "--dci-estimator", "lightgbm", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    scores = json.loads((out / "metrics.json").read_text())["scores"]
    assert set(scores) == {
        "irs",
        "irs_interventional",
        "mig",
        "dci",
        "factor_vae",
        "downstream",
        "fairness",
        "symmetry",
    }
    assert set(scores["downstream"]) >= {"logistic", "gbt", "sizes"} and scores["downstream"]["sizes"] == [10, 100]
    assert 0 <= scores["fairness"]["score"] <= scores["fairness"]["score_max"] <= 1
    assert set(scores["symmetry"]["equivariance"]) == {"orientation", "posX", "posY"}
    assert -1 <= scores["symmetry"]["score"] <= 1 and (out / "downstream.png").stat().st_size > 1000
    # which factors the FactorVAE score finds: none for this untrained model, whose codes barely vary (no dimension
    # passes the pruning, the score is 0, no vote is cast); test_metrics_sampled_fast checks the numbers
    assert scores["factor_vae"] == {"score": 0.0, "per_factor": {}}
    printed = capsys.readouterr().out
    assert "downstream_gbt_accuracy_100" in printed and "symmetry" in printed and "fairness" in printed


def test_factor_vae_per_factor_names_the_factors_a_code_holds():
    """A code of the sprite's centre of mass (column, row) holds posX and posY and nothing else: the FactorVAE score's
    per-factor accuracies find both positions, give shape, scale and orientation 0 (every dimension is a position's),
    and weighted by each factor's share of the votes they average to the score."""
    import numpy as np

    from probrep.data import DSprites
    from probrep.experiments.evaluate import evaluate

    def centre(images):
        x = np.asarray(images)[:, 0]
        mass = x.sum((1, 2))
        return np.stack([(x.sum(1) * np.arange(64)).sum(1) / mass, (x.sum(2) * np.arange(64)).sum(1) / mass], 1)

    res = evaluate(centre, metrics=("factor_vae",), vote_sizes=(300, 200), dataset=DSprites(), progress=False)
    per_factor = res.scores["factor_vae"]["per_factor"]
    assert set(per_factor) == {"shape", "scale", "orientation", "posX", "posY"}
    assert per_factor["posX"] > 0.9 and per_factor["posY"] > 0.9
    assert per_factor["shape"] == per_factor["scale"] == per_factor["orientation"] == 0.0
    # the score is the share of the 200 eval votes that fix posX or posY: binomial(200, 2/5) / 200, sd 0.035
    assert abs(res.scores["factor_vae"]["score"] - 0.4) < 4 * np.sqrt(0.4 * 0.6 / 200)
