"""Issue 19, section 2: files and training state under hostile or broken input.

Each test fails on the code before the fix (or pins a fix that was already there): resuming another model's
checkpoint, checkpoint rotation settings, stray files in a checkpoint folder, file modes, and the loaders of
rooms caches, posteriordb folders and run summaries, which must refuse bad input naming the file and field.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from probrep.data import posteriordb as pdb
from probrep.data.rooms import Rooms, load_rooms, save_rooms
from probrep.inference import svi
from probrep.io.files import atomic_open, current_umask, read_zip_member
from probrep.models import DIPVAE, VAE, AnnealedVAE, BetaTCVAE, FactorVAE
from probrep.training import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (1, 4, 4)
TINY = {"image_shape": SHAPE, "latent_dim": 2, "arch": "mlp", "hidden": (8,)}


def _images(n: int = 8) -> torch.Tensor:
    return (torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def _fit(model, directory: Path, steps: int = 2, **kw):
    options = dict(steps=steps, batch_size=4, device="cpu", progress=False, checkpoint_dir=directory)
    return svi.fit(model, _images(), **{**options, **kw})


# ----------------------------------------------------------------------------------------------- file modes
@pytest.fixture
def umask():
    """Set the process umask for one test and put the caller's back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask and current_umask() == mask  # reading it leaves it as it was
    with atomic_open(tmp_path / "out.json", "w") as handle:
        handle.write("{}")
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == mode
    path = ckpt.save({"step": 1}, tmp_path / "checkpoint-00000001.pt")
    assert path.stat().st_mode & 0o777 == mode
