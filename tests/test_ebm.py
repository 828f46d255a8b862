"""Energy models: training by score matching, and annealed versus plain Langevin on a two-mode mixture."""

import math

import pytest
import torch

from probrep.inference import score_matching as sm
from probrep.inference.score_matching import annealed_langevin, fit_score_model
from probrep.models.ebm import MLPEnergy, NoiseConditionalScore

WEIGHTS = torch.tensor([0.8, 0.2])
MEANS = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])


def mixture_score(x, sigma):
    """Exact score of 0.8 N(5*1, I) + 0.2 N(-5*1, I) convolved with N(0, sigma^2 I)."""
    var = 1.0 + torch.as_tensor(sigma, dtype=x.dtype) ** 2
    var = var.reshape(-1, 1) if var.dim() else var
    diffs = x[:, None, :] - MEANS[None]  # [N, 2, D]
    log_r = WEIGHTS.log()[None] - 0.5 * (diffs**2).sum(-1) / var.reshape(-1, 1)
    r = torch.softmax(log_r, dim=1)
    return -(r[..., None] * diffs).sum(1) / var


def test_annealed_langevin_recovers_mode_weights_and_plain_langevin_does_not():
    chains = 2000
    x0 = torch.rand(chains, 2, generator=torch.Generator().manual_seed(0)) * 16 - 8  # uniform on [-8, 8]^2
    sigmas = sm.geometric_sigmas(20.0, 0.5, 10)
    annealed = annealed_langevin(mixture_score, x0, sigmas, steps_per_level=100, epsilon=0.05, progress=False)
    plain = annealed_langevin(lambda x: mixture_score(x, sigmas[-1]), x0, sigmas[-1:], steps_per_level=1000,
                              epsilon=0.05, progress=False, conditional=False)  # fmt: skip
    w_annealed = (annealed.sum(1) > 0).double().mean().item()
    w_plain = (plain.sum(1) > 0).double().mean().item()
    se = math.sqrt(0.8 * 0.2 / chains)
    assert abs(w_annealed - 0.8) < 0.05 and abs(w_annealed - 0.8) < 5 * se
    # plain Langevin cannot cross between modes: each chain stays on the side where it started (about half)
    assert abs(w_plain - (x0.sum(1) > 0).double().mean().item()) < 0.02 and abs(w_plain - 0.5) < 0.1


def test_exact_score_matching_trains_an_mlp_energy_towards_the_data_score():
    g = torch.Generator().manual_seed(1)
    mean, sd = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])
    data = torch.randn(2048, 2, generator=g) * sd + mean
    held = torch.randn(1024, 2, generator=g) * sd + mean
    torch.manual_seed(0)
    model = MLPEnergy(2, hidden=(32, 32))

    def fisher() -> float:
        return (model.score(held) - (-(held - mean) / sd**2)).pow(2).sum(1).mean().item()

    before = fisher()
    fit = fit_score_model(model, data, objective="exact", steps=400, batch_size=256, lr=3e-3, device="cpu",
                          progress=False)  # fmt: skip
    after = fisher()
    assert after < 0.1 * before, (before, after)
    assert fit.losses[-20:].mean() < fit.losses[:20].mean()


def test_denoising_and_sliced_objectives_train_through_the_same_loop():
    data = torch.randn(512, 2, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    ncsn = NoiseConditionalScore(2, hidden=(32, 32))
    fit = fit_score_model(ncsn, data, objective="denoising", sigma=[1.0, 0.5, 0.25], steps=150, batch_size=128,
                          device="cpu", progress=False)  # fmt: skip
    assert fit.losses[-20:].mean() < fit.losses[:20].mean()
    energy = MLPEnergy(2, hidden=(16,))
    fit = fit_score_model(energy, data, objective="sliced_vr", steps=100, batch_size=128, device="cpu",
                          progress=False)  # fmt: skip
    assert fit.losses[-20:].mean() < fit.losses[:20].mean()
    with pytest.raises(ValueError, match="needs sigma"):
        fit_score_model(ncsn, data, objective="denoising", steps=1)
    with pytest.raises(ValueError, match="unknown objective"):
        fit_score_model(energy, data, objective="ratio", steps=1)
