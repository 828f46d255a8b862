"""The SVI loop: user programs and autoguides, exact resume, safe checkpoints, errors, data parallel."""

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal

from probrep.inference import svi
from probrep.models import VAE, FactorVAE
from probrep.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _conjugate_data(n=100):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, generator=g) + 1.5


def _conjugate_model(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=x)


def _posterior(x):
    precision = x.numel() + 1 / 100.0
    return x.sum().item() / precision, precision**-0.5


def test_autoguide_recovers_the_conjugate_posterior(device):
    x = _conjugate_data()
    guide = AutoNormal(_conjugate_model)
    # full batch: the only noise is the guide's reparameterised draw
    fit = svi.fit(
        _conjugate_model, x, guide=guide, steps=1500, batch_size=len(x), lr=0.02, device=device, progress=False
    )
    assert fit.device.type == device.type
    mean, sd = _posterior(x)
    loc, scale = guide.median()["mu"].item(), pyro.param("AutoNormal.scales.mu").item()
    # SVI's stationary jitter at lr 0.02 is a few hundredths of a posterior sd
    assert abs(loc - mean) < 0.25 * sd
    assert abs(scale / sd - 1) < 0.2
    assert fit.losses[-100:].mean() < fit.losses[:10].mean()


def test_hand_written_guide_with_constrained_param():
    x = _conjugate_data()

    def guide(x):
        loc = pyro.param("q_loc", torch.tensor(0.0))
        scale = pyro.param("q_scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("mu", dist.Normal(loc, scale))

    fit = svi.fit(
        _conjugate_model,
        x,
        guide=guide,
        steps=1500,
        batch_size=len(x),
        lr=0.02,
        device="cpu",
        progress=False,
        elbo="meanfield",
    )
    mean, sd = _posterior(x)
    assert set(fit.params) == {"q_loc", "q_scale"}
    assert abs(pyro.param("q_loc").item() - mean) < 0.25 * sd
    assert abs(pyro.param("q_scale").item() / sd - 1) < 0.2


def _images(n=48):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 16, 16, generator=g) > 0.7).float()


def _factor_vae():
    torch.manual_seed(0)
    return FactorVAE((1, 16, 16), latent_dim=3, arch="mlp", hidden=(32,), discriminator_hidden=(8,))


class _Crash(Exception):
    pass


def _crash_at(step):
    def callback(info):
        if info.step == step:
            raise _Crash

    return callback


@pytest.mark.parametrize("make", [_factor_vae, lambda: (torch.manual_seed(0), VAE((1, 16, 16), 3, arch="mlp"))[1]])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, make):
    data = _images()
    kw = dict(steps=14, batch_size=16, device="cpu", seed=3, progress=False, checkpoint_every=4)
    straight = make()
    svi.fit(straight, data, checkpoint_dir=tmp_path / "a", **kw)
    reference = {k: v.clone() for k, v in straight.state_dict().items()}

    crashed = make()
    with pytest.raises(_Crash):
        svi.fit(crashed, data, checkpoint_dir=tmp_path / "b", callbacks=[_crash_at(10)], **kw)
    assert checkpoint.latest(tmp_path / "b").name == "checkpoint-00000008.pt"
    resumed = make()
    result = svi.fit(resumed, data, checkpoint_dir=tmp_path / "b", resume=True, **kw)
    assert result.steps == 14 and len(result.losses) == 14
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_resume_refuses_a_different_run(tmp_path):
    data = _images()
    svi.fit(
        VAE((1, 16, 16), 3, arch="mlp"),
        data,
        steps=2,
        batch_size=16,
        device="cpu",
        progress=False,
        checkpoint_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="batch_size"):
        svi.fit(
            VAE((1, 16, 16), 3, arch="mlp"),
            data,
            steps=4,
            batch_size=8,
            device="cpu",
            progress=False,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_a_fresh_run_never_deletes_an_earlier_runs_checkpoints_unless_told_to(tmp_path, caplog):
    # an earlier, longer run leaves checkpoints at later steps than the new run will reach; were they kept,
    # rotation would delete the new run's checkpoints and resume would continue the earlier run; deleting them
    # silently would lose a run to a forgotten resume=True: so a fresh run is refused unless overwrite=True
    data = _images()
    kw = dict(batch_size=16, device="cpu", progress=False, checkpoint_dir=tmp_path, checkpoint_every=2)
    svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, steps=8, **kw)
    names = lambda: [p.name for p in checkpoint.list_checkpoints(tmp_path)]  # noqa: E731
    assert names() == ["checkpoint-00000006.pt", "checkpoint-00000008.pt"]
    with pytest.raises(FileExistsError, match="resume=True to continue it, or overwrite=True"):
        svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, steps=4, **kw)
    assert names() == ["checkpoint-00000006.pt", "checkpoint-00000008.pt"]
    with caplog.at_level(logging.WARNING, logger="probrep.training.loop"):
        fresh = svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, steps=4, overwrite=True, **kw)
    assert "removing 2 checkpoint(s)" in caplog.text
    assert names() == ["checkpoint-00000002.pt", "checkpoint-00000004.pt"]
    assert fresh.checkpoint == checkpoint.latest(tmp_path) and fresh.checkpoint.is_file()
    resumed = svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, steps=4, resume=True, **kw)
    assert resumed.steps == 4 and len(resumed.losses) == 4


def test_resume_without_checkpoints_warns_and_a_killed_writers_leftovers_are_cleaned(tmp_path, caplog):
    data = _images()
    kw = dict(batch_size=16, device="cpu", progress=False, checkpoint_dir=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".checkpoint-00000006.pt.abc123.tmp"  # what a kill -9 mid-write leaves
    leftover.write_bytes(b"\0" * 1000)
    (tmp_path / "checkpoint-00000009.pt").mkdir()  # a folder named like a checkpoint is not one
    with caplog.at_level(logging.WARNING, logger="probrep.training.loop"):
        fit = svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, steps=2, resume=True, **kw)
    assert "no checkpoint in" in caplog.text and "partial checkpoint file" in caplog.text
    assert not leftover.exists() and fit.steps == 2
    assert checkpoint.latest(tmp_path).name == "checkpoint-00000002.pt"


def test_checkpoints_are_atomic_pruned_and_never_run_code(tmp_path):
    data = _images()
    svi.fit(
        VAE((1, 16, 16), 3, arch="mlp"),
        data,
        steps=9,
        batch_size=16,
        device="cpu",
        progress=False,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        keep_checkpoints=2,
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-00000008.pt", "checkpoint-00000009.pt"]  # pruned, no temporary files left
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "checkpoint-00000099.pt"
    evil.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        checkpoint.load(evil)
    assert not marker.exists()


def test_training_errors_are_clear():
    data = _images()
    m = VAE((1, 16, 16), 3, arch="mlp")
    with pytest.raises(ValueError, match="exactly one of steps= or epochs="):
        svi.fit(m, data, device="cpu")
    with pytest.raises(ValueError, match=r"\[N, 1, 16, 16\]"):
        svi.fit(m, torch.zeros(8, 1, 8, 8), steps=1, device="cpu", progress=False)
    with pytest.raises(TypeError, match="model/guide"):
        svi.fit(object(), data, steps=1)
    with pytest.raises(ValueError, match="unknown elbo"):
        svi.fit(m, data, steps=1, elbo="fancy")
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        svi.fit(m, data, steps=1, device="cuda")
    bad = _images()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError):  # Pyro's validation on the setup step names the bad site
        svi.fit(m, bad, steps=1, batch_size=48, device="cpu", progress=False)


def test_pyro_optimisers_and_dict_data_get_errors_that_say_what_to_pass():
    import pyro.optim

    def model(x, y):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(w * x, 1.0), obs=y)

    x = torch.randn(20)
    guide = pyro.infer.autoguide.AutoNormal(model)
    for optimizer in (pyro.optim.Adam({"lr": 0.01}), pyro.optim.Adam):
        with pytest.raises(TypeError, match=r"optimizer=torch.optim.Adam \(or 'adam'\), lr=0.01"):
            svi.fit(model, (x, 2 * x), guide=guide, optimizer=optimizer, steps=2, batch_size=None, progress=False)
    with pytest.raises(TypeError, match=r"pass a tuple in the order they take them, e.g. data=\(x, y\)"):
        svi.fit(model, {"x": x, "y": 2 * x}, guide=guide, steps=2, batch_size=None, progress=False)


def test_epochs_and_dataset_input():
    data = torch.utils.data.TensorDataset(_images(40))
    fit = svi.fit(VAE((1, 16, 16), 3, arch="mlp"), data, epochs=3, batch_size=16, device="cpu", progress=False)
    assert fit.steps == 3 * (40 // 16)


def test_jit_elbo_trains():
    # the JIT forms draw their noise in another order, so only their training behaviour is comparable
    torch.manual_seed(0)
    fit = svi.fit(
        VAE((1, 16, 16), 3, arch="mlp"),
        _images(16),
        steps=40,
        batch_size=16,
        device="cpu",
        progress=False,
        elbo="jit_meanfield",
        lr=3e-3,
    )
    # 256 binary pixels at density 0.3 start near 256 log 2 = 177 nats; the marginal entropy is ~156
    assert fit.losses[0] / 16 > 170 and fit.losses[-5:].mean() / 16 < 165


def test_two_process_data_parallel_run_ends_with_identical_parameters(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests" / "ddp_worker.py"),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"])  # each rank saw its own shard
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
        assert not torch.equal(value, ranks[0]["after_first_step"][name]), f"{name} did not train"


def test_param_options_and_lr_schedule_set_learning_rates():
    # plain SGD on a quadratic: the first step moves each parameter by exactly lr * gradient
    def model():
        pyro.sample("obs", dist.Normal(pyro.param("a", torch.tensor(0.0)) + pyro.param("b", torch.tensor(0.0)), 1.0),
                    obs=torch.tensor(1.0))  # fmt: skip

    def guide():
        pass

    seen = []
    svi.fit(model, guide=guide, steps=2, lr=0.1, optimizer="sgd", device="cpu", progress=False,
            param_options=lambda name: {"lr": 0.5} if name == "b" else None, lr_schedule=lambda step: 1.0 / (step + 1),
            callbacks=[lambda info: seen.append((info.params["a"].item(), info.params["b"].item()))])  # fmt: skip
    # loss = (1 - a - b)^2 / 2 + const, gradient -(1 - a - b) = -1 at step 0
    assert seen[0] == pytest.approx((0.1, 0.5))
    # step 1: residual 1 - 0.6 = 0.4, schedule halves the rates: a += 0.05 * 0.4, b += 0.25 * 0.4
    assert seen[1] == pytest.approx((0.1 + 0.02, 0.5 + 0.1))


# ----------------------------------------------------------------------------------- minibatches and evidence
SIGMA_Y = 0.7


def _regression(n=442, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    noise = SIGMA_Y * torch.randn(n, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64) + noise
    precision = x.T @ x / SIGMA_Y**2 + torch.eye(3, dtype=torch.float64) / 100.0  # prior N(0, 10^2 I)
    mean = torch.linalg.solve(precision, x.T @ y / SIGMA_Y**2)
    # the mean-field (AutoNormal) optimum for a Gaussian posterior: the posterior mean, sd 1 / sqrt(precision_ii)
    return x, y, mean, precision.diag().rsqrt()


def _decay(steps):
    return lambda t: max(0.02, 1.0 - t / steps)


def _regression_model(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(3, dtype=x.dtype), 10.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w, SIGMA_Y), obs=y)


def _subsampled_regression_model(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(3, dtype=x.dtype), 10.0).to_event(1))
    with pyro.plate("data", 442, subsample=torch.arange(x.shape[0])):  # Pyro scales the likelihood by N/M
        pyro.sample("y", dist.Normal(x @ w, SIGMA_Y), obs=y)


def test_minibatches_that_would_underweight_the_evidence_are_refused_and_full_batches_are_exact():
    x, y, mean, sd = _regression()
    with pytest.raises(ValueError, match=r"outside its data plate \(w\).*64 of 442.*batch_size=None"):
        svi.fit(_regression_model, (x, y), guide=AutoNormal(_regression_model), steps=1, progress=False)
    guide = AutoNormal(_regression_model)
    # a decaying learning rate, so that SVI's stationary jitter (a fraction of a posterior sd) dies down
    svi.fit(_regression_model, (x, y), guide=guide, batch_size=None, steps=1500, lr=0.02, device="cpu",
            lr_schedule=_decay(1500), progress=False)  # fmt: skip
    loc, scale = guide.locs.w.detach(), guide.scales.w.detach()
    assert float(((loc - mean) / sd).abs().max()) < 0.25
    assert float((scale / sd - 1).abs().max()) < 0.2


def test_a_subsampled_data_plate_trains_on_minibatches_to_the_exact_posterior():
    x, y, mean, sd = _regression()
    guide = AutoNormal(_subsampled_regression_model)
    svi.fit(_subsampled_regression_model, (x, y), guide=guide, batch_size=64, steps=2000, lr=0.02, device="cpu",
            lr_schedule=_decay(2000), progress=False)  # fmt: skip
    loc, scale = guide.locs.w.detach(), guide.scales.w.detach()
    # minibatch noise on top of SVI's: looser than full batch, but an unscaled likelihood would be sqrt(442/64) =
    # 2.6 times too wide
    assert float(((loc - mean) / sd).abs().max()) < 0.5
    assert float((scale / sd - 1).abs().max()) < 0.3
