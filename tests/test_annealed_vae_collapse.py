"""benchmarks/annealed_vae_collapse.py's measurement on an encoder killed by hand: a dead last conv layer, so one
posterior for every image, whose KL is computed by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_a_dead_last_conv_layer_gives_kl_that_encodes_nothing(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from annealed_vae_collapse import where_the_capacity_goes

    from probrep.experiments.vae_dsprites import build_model

    torch.manual_seed(0)
    model = build_model("annealedvae", 10, arch="conv", dataset_size=737_280).eval()
    last_conv = model.encoder.convs[6]
    with torch.no_grad():
        last_conv.weight.zero_()
        last_conv.bias.fill_(-1.0)  # every unit below zero for every image: the ReLU after it never fires
        out = model.encoder.head[-1]
        out.bias.copy_(torch.cat([torch.full((10,), 1.5), torch.zeros(10)]))  # loc 1.5, scale softplus(0) + 1e-5
        out.weight.zero_()
    found = where_the_capacity_goes(model, n=16, seed=0)
    sys.modules.pop("annealed_vae_collapse", None)

    assert found["encoder_relu_units_that_fire"]["convs.7"] == "0 / 1024"
    scale = math.log(2.0) + 1e-5
    kl = 0.5 * (1.5**2 + scale**2 - 1.0 - 2.0 * math.log(scale))
    assert found["kl_per_latent_nats"] == pytest.approx([kl] * 10, abs=1e-4)
    assert found["posterior_mean_variance_per_latent"] == [0.0] * 10
    assert (found["latents_active_kl_above_0.1"], found["latents_informative_mean_variance_above_0.01"]) == (10, 0)
