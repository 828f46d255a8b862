"""AIR through svi.fit and the `train air` run: per-parameter learning rates, the count-accuracy callback,
the files a run leaves, and resume."""

import json

import numpy as np
import pytest
import torch

from probrep.data.objects import MultiObjects
from probrep.experiments.air import CountAccuracyLogger, train_air
from probrep.inference import svi
from probrep.inference.svi import TraceGraphELBO
from probrep.models.air.model import AIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(
    window_size=12,
    z_what_dim=4,
    rnn_hidden=16,
    encoder_hidden=16,
    decoder_hidden=16,
    predict_hidden=8,
    baseline_hidden=8,
)


def test_first_adam_step_moves_baselines_by_their_own_learning_rate():
    # Adam's first step is lr * g / (|g| + eps): every parameter entry with a gradient moves by (almost) its lr.
    scenes = MultiObjects.tier("small").sample(64, seed=0)
    torch.manual_seed(0)
    air = AIR(24, **TINY)
    before = {n: p.detach().clone() for n, p in air.named_parameters()}
    svi.fit(
        air,
        scenes.images,
        steps=1,
        batch_size=32,
        lr=1e-3,
        param_options=air.baseline_param_options(1e-2),
        elbo=TraceGraphELBO(),
        device="cpu",
        progress=False,
    )
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in air.named_parameters()}
    baseline = [v for n, v in moved.items() if n.startswith("baseline.")]
    others = [v for n, v in moved.items() if not n.startswith("baseline.")]
    assert max(baseline) == pytest.approx(1e-2, rel=1e-4)
    assert max(others) == pytest.approx(1e-3, rel=1e-4)


def test_count_accuracy_logger_records_every_k_steps(tmp_path):
    scenes = MultiObjects.tier("small").sample(40, seed=1)
    torch.manual_seed(0)
    air = AIR(24, **TINY)
    images, counts = scenes.tensors()
    tracker = CountAccuracyLogger(air, images, counts, every=3, path=tmp_path / "acc.json")
    for step in range(1, 8):
        tracker(type("Info", (), {"step": step})())
    assert [r["step"] for r in tracker.history] == [3, 6]
    confusion = np.array(tracker.history[-1]["confusion"])
    np.testing.assert_array_equal(confusion.sum(1), np.bincount(scenes.counts, minlength=3))
    assert tracker.history[-1]["accuracy"] == pytest.approx(np.trace(confusion[:, :3]) / 40)
    assert json.loads((tmp_path / "acc.json").read_text())["history"] == tracker.history
    with pytest.raises(ValueError, match="every"):
        CountAccuracyLogger(air, images, counts, every=0)


def test_train_air_leaves_its_files_and_resumes(tmp_path):
    common = dict(
        tier="small",
        n_train=96,
        n_test=24,
        batch_size=16,
        eval_every=2,
        model_kwargs=TINY,
        device="cpu",
        progress=False,
        checkpoint_every=2,
        baseline_lr=1e-2,
    )
    run = train_air(tmp_path, steps=4, **common)
    for name in ("loss_curve", "count_accuracy_curve", "count_accuracy_history", "reconstructions", "summary"):
        assert run.files[name].is_file() and run.files[name].stat().st_size > 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["steps"] == 4 and s["image_size"] == 24 and s["n_test"] == 24
    assert [step for step, _ in s["count_accuracy_history"]] == [0, 2, 4]
    assert np.array(s["count_confusion"]).sum() == 24 and 0.0 <= s["count_accuracy"] <= 1.0
    assert np.isfinite(s["loss_last_50_steps_per_image"])
    table = s["count_elbo_rows_true_columns_forced"]  # true count -> ELBO at forced counts 0..N
    assert sorted(table) == [str(c) for c, row in enumerate(s["count_confusion"]) if sum(row) > 0]
    assert all(len(row) == 4 and np.isfinite(row).all() for row in table.values())
    assert (
        0.0 <= s["ghost_windows"]["ghost_fraction"] <= 1.0
        and 0.0 <= s["ghost_windows"]["visible_count_accuracy"] <= 1.0
    )

    # a forgotten resume=True is refused before anything is written: the run's curve survives
    curve = (tmp_path / "count_accuracy.json").read_bytes()
    with pytest.raises(FileExistsError, match="pass resume=True to continue it"):
        train_air(tmp_path, steps=6, **common)
    assert (tmp_path / "count_accuracy.json").read_bytes() == curve

    resumed = train_air(tmp_path, steps=6, resume=True, **common)
    assert [step for step, _ in resumed.summary["count_accuracy_history"]] == [0, 2, 4, 6]
    assert resumed.summary["steps"] == 6
    # the parameters of both guides have the same shapes: only the recorded setting can refuse the other one
    with pytest.raises(ValueError, match="guide_input: checkpoint 'residual' vs now 'image'"):
        train_air(tmp_path, steps=8, resume=True, guide_input="image", **common)
    with pytest.raises(ValueError, match="z_pres_prior_final"):
        train_air(tmp_path / "bad", steps=1, z_pres_prior_final=1e-3, **common)
