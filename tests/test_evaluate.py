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


def test_demo_at_toy_size_writes_its_report(tmp_path, capsys):
    report = demo(tmp_path, steps=3, device="cpu", num_points=300, vote_sizes=(20, 10), progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["models"]) == {"vae", "beta_vae"}
    assert saved["models"]["beta_vae"]["beta"] == 4.0
    for name in ("irs", "irs_interventional", "mig", "dci_disentanglement", "factor_vae"):
        assert name in report["models"]["vae"]["headline"]
    assert (tmp_path / "irs_matrices.png").stat().st_size > 1000
    print_report(report)  # what `probrep demo` prints
    assert "IRS heat maps" in capsys.readouterr().out
    model, summary = load_run(tmp_path / "vae")
    assert summary["beta"] == 1.0 and model.latent_dim == 10
    with pytest.raises(FileNotFoundError, match="summary.json"):
        load_run(tmp_path / "nowhere")


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
