"""Run by test_svi under torchrun: trains a small VAE data-parallel and saves each rank's parameters."""

import os
import sys
from pathlib import Path

import torch

from probrep.inference import svi
from probrep.models import VAE

if __name__ == "__main__":
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    # a different initialisation on each rank: the loop must broadcast rank 0's parameters
    torch.manual_seed(100 + rank)
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(64, 1, 16, 16, generator=g) > 0.7).float()
    model = VAE((1, 16, 16), latent_dim=3, arch="mlp", hidden=(32,))
    seen = []
    first = {}

    def record(info):
        if info.step == 1:
            first.update({k: v.detach().clone() for k, v in info.params.items()})

    def first_batch_spy(x):
        if not seen:
            seen.append(x.clone())
        model.model(x)

    fit = svi.fit(
        first_batch_spy,
        data,
        guide=model.guide,
        steps=6,
        batch_size=8,
        device="cpu",
        seed=1,
        progress=False,
        callbacks=[record],
    )
    torch.save(
        {
            "world_size": fit.world_size,
            "first_batch": seen[0],
            "after_first_step": first,
            "params": {k: v.detach().clone() for k, v in fit.params.items()},
        },
        out / f"rank{rank}.pt",
    )
    torch.distributed.destroy_process_group()
