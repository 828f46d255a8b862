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


# ------------------------------------------------------------------------------------- resume and model config
def test_resuming_a_bernoulli_beta1_checkpoint_into_a_gaussian_beta4_vae_is_refused_naming_the_keys(tmp_path):
    _fit(VAE(**TINY, beta=1.0, likelihood="bernoulli"), tmp_path)
    with pytest.raises(ValueError, match="differ") as refused:
        _fit(VAE(**TINY, beta=4.0, likelihood="gaussian"), tmp_path, steps=4, resume=True)
    assert "likelihood" in str(refused.value) and "beta" in str(refused.value)
    assert ckpt.latest(tmp_path).name == "checkpoint-00000002.pt"  # nothing was written by the refused run
    # the same configuration still resumes
    assert _fit(VAE(**TINY, beta=1.0, likelihood="bernoulli"), tmp_path, steps=3, resume=True).steps == 3


@pytest.mark.parametrize(
    ("cls", "a", "b", "key"),
    [
        (VAE, {"beta": 1.0}, {"beta": 4.0}, "beta"),
        (VAE, {"likelihood": "gaussian", "obs_scale": 0.1}, {"likelihood": "gaussian", "obs_scale": 0.3}, "obs_scale"),
        (VAE, {}, {"latent_dim": 3}, "latent_dim"),
        (VAE, {}, {"arch": "conv", "image_shape": (1, 16, 16), "hidden": None}, "arch"),
        (VAE, {}, {"hidden": (16,)}, "hidden"),
        (VAE, {}, {"image_shape": (1, 4, 8)}, "image_shape"),
        (BetaTCVAE, {"tc_weight": 6.0}, {"tc_weight": 2.0}, "tc_weight"),
        (BetaTCVAE, {"dataset_size": 100}, {"dataset_size": 200}, "dataset_size"),
        (BetaTCVAE, {"estimator": "mws"}, {"estimator": "mss"}, "estimator"),
        (FactorVAE, {"gamma": 10.0}, {"gamma": 40.0}, "gamma"),
        (FactorVAE, {"discriminator_hidden": (4,)}, {"discriminator_hidden": (8,)}, "discriminator_hidden"),
        (FactorVAE, {"discriminator_lr": 1e-4}, {"discriminator_lr": 1e-3}, "discriminator_lr"),
        (DIPVAE, {"lambda_od": 10.0}, {"lambda_od": 5.0}, "lambda_od"),
        (DIPVAE, {"dip_type": "i"}, {"dip_type": "ii"}, "dip_type"),
        (DIPVAE, {"lambda_d": 1.0}, {"lambda_d": 2.0}, "lambda_d"),
        (AnnealedVAE, {"c_max": 25.0}, {"c_max": 5.0}, "c_max"),
        (AnnealedVAE, {"capacity_weight": 1000.0}, {"capacity_weight": 10.0}, "capacity_weight"),
    ],
)
def test_every_setting_that_defines_a_vae_family_model_is_in_its_run_config(cls, a, b, key):
    small = {"discriminator_hidden": (4,)} if cls is FactorVAE else {}
    first, second = cls(**{**TINY, **small, **a}), cls(**{**TINY, **small, **b})
    stored = {"format": ckpt.FORMAT, "config": first.run_config}
    ckpt.check_config(stored, dict(first.run_config), Path("same.pt"))  # itself: accepted
    with pytest.raises(ValueError, match=rf"{key}: checkpoint"):
        ckpt.check_config(stored, dict(second.run_config), Path("other.pt"))


def test_another_member_of_the_family_is_refused_and_the_annealed_capacity_is_not_part_of_the_config():
    stored = {"format": ckpt.FORMAT, "config": VAE(**TINY).run_config}
    with pytest.raises(ValueError, match="model: checkpoint 'VAE' vs now 'DIPVAE'"):
        ckpt.check_config(stored, DIPVAE(**TINY).run_config, Path("x.pt"))
    annealed = AnnealedVAE(**TINY)
    before = annealed.run_config
    annealed.capacity = 7.0  # a schedule moves it during the run; a resumed run starts from the original value
    assert annealed.run_config == before and "capacity" not in before
    # plain values only: the checkpoint is read back with torch.load(weights_only=True)
    assert all(isinstance(v, str | int | float | list | type(None)) for v in FactorVAE(**TINY).run_config.values())


def test_a_checkpoint_written_before_the_config_was_recorded_still_resumes_with_a_warning(tmp_path, caplog):
    # what runs/disentanglement_study holds: checkpoints whose config has only the loop's settings and the ELBO
    fit = _fit(VAE(**TINY, beta=4.0), tmp_path)
    state = ckpt.load(fit.checkpoint)
    legacy = {k: state["config"][k] for k in ("seed", "batch_size", "world_size", "lr", "optimizer", "elbo")}
    ckpt.save({**state, "config": legacy}, fit.checkpoint)
    with caplog.at_level(logging.WARNING, logger="probrep.training.checkpoint"):
        resumed = _fit(VAE(**TINY, beta=4.0), tmp_path, steps=3, resume=True)
    assert resumed.steps == 3
    warned = " ".join(r.getMessage() for r in caplog.records if r.name == "probrep.training.checkpoint")
    assert "does not record" in warned and "likelihood" in warned and "beta" in warned
    # a recorded different value is still refused, beside the unrecorded ones
    legacy["lr"] = 0.5
    ckpt.save({**ckpt.load(resumed.checkpoint), "config": legacy}, resumed.checkpoint)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.5"):
        _fit(VAE(**TINY, beta=4.0), tmp_path, steps=4, resume=True)


# ------------------------------------------------------------------------------------------ checkpoint folder
@pytest.mark.parametrize("keep", [0, -1])
def test_keep_checkpoints_below_one_is_refused_before_any_work(tmp_path, keep):
    # already fixed on main (TrainOptions checks keep_checkpoints >= 1); pinned here
    with pytest.raises(ValueError, match="keep_checkpoints must be an integer >= 1"):
        _fit(VAE(**TINY), tmp_path, keep_checkpoints=keep)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    result = _fit(VAE(**TINY), tmp_path / "one", steps=3, checkpoint_every=1, keep_checkpoints=1)
    assert result.checkpoint.is_file() and ckpt.list_checkpoints(tmp_path / "one") == [result.checkpoint]


def test_a_folder_named_like_a_checkpoint_does_not_block_resume_and_stale_temporaries_are_removed(tmp_path):
    # both already fixed on main (list_checkpoints matches files only; the loop removes temporaries at start)
    _fit(VAE(**TINY), tmp_path, steps=2)
    (tmp_path / "checkpoint-00000099.pt").mkdir()
    stale = tmp_path / ".checkpoint-00000003.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)  # what kill -9 mid-write leaves
    assert ckpt.latest(tmp_path).name == "checkpoint-00000002.pt"
    result = _fit(VAE(**TINY), tmp_path, steps=3, resume=True)
    assert result.steps == 3 and result.checkpoint.name == "checkpoint-00000003.pt"
    assert not stale.exists() and (tmp_path / "checkpoint-00000099.pt").is_dir()


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


# ----------------------------------------------------------------------------------------------- rooms caches
@pytest.fixture(scope="module")
def rooms_cache(tmp_path_factory) -> dict[str, np.ndarray]:
    path = save_rooms(Rooms(image_size=8, num_views=2, seed=1), tmp_path_factory.mktemp("rooms") / "r.npz", 3,
                      progress=False)  # fmt: skip
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _broken_cache(tmp_path: Path, arrays: dict, **changes) -> Path:
    arrays = {**arrays, **changes}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda a: {"factor_yaw": None}, "factor_yaw"),
        (lambda a: {"config": np.array("{not json")}, "config"),
        (lambda a: {"config": np.array("[1, 2]")}, "config"),
        (lambda a: {"meta": np.array([], np.int64)}, "meta"),
        (lambda a: {"images": np.full(a["images"].shape[:2], "pixels")}, "images"),
        (lambda a: {"images": np.where(a["images"] > 0, np.nan, 0.5).astype(np.float32)}, "images"),
        (lambda a: {"viewpoints": a["viewpoints"][:-1]}, "viewpoints"),
        (lambda a: {"viewpoints": np.full_like(a["viewpoints"], np.nan)}, "viewpoints"),
        (lambda a: {"camera_yaw": a["camera_yaw"][:, :1]}, "camera_yaw"),
        (lambda a: {"factor_shape": a["factor_shape"][:1]}, "factor_shape"),
        (lambda a: {"factor_position": np.full_like(a["factor_position"], np.inf)}, "factor_position"),
    ],
)
def test_a_broken_rooms_cache_is_refused_naming_the_file_and_field(tmp_path, rooms_cache, change, field):
    path = _broken_cache(tmp_path, rooms_cache, **change(rooms_cache))
    with pytest.raises(ValueError, match=re.escape(str(path))) as refused:
        load_rooms(path)
    assert field in str(refused.value)


def test_an_intact_rooms_cache_still_loads(tmp_path, rooms_cache):
    cached = load_rooms(_broken_cache(tmp_path, rooms_cache))
    assert len(cached) == 3 and cached.images.dtype == torch.uint8 and cached.config["image_size"] == 8


# ---------------------------------------------------------------------------------------------- posteriordb
NAME = "eight_schools-eight_schools_noncentered"
PARAMETERS = ["mu", "tau", *(f"theta[{i}]" for i in range(1, 9))]
GOOD_DATA = {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12], "sigma": [15, 10, 16, 11, 9, 11, 10, 18]}


def _archive(chains: object, member: str = f"{NAME}.json") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, json.dumps(chains))
    return buffer.getvalue()


def _posteriordb(root: Path, data=None, info=None, archive: bytes | None = None) -> Path:
    folder = root / NAME
    folder.mkdir(parents=True, exist_ok=True)
    data = GOOD_DATA if data is None else data
    info = {"name": NAME, "dimensions": {"mu": 1, "tau": 1, "theta": 8}} if info is None else info
    draws = np.random.default_rng(0).normal(size=(2, len(PARAMETERS), 5)).round(3)
    chains = [{p: chain[i].tolist() for i, p in enumerate(PARAMETERS)} for chain in draws]
    for name, value in (("data.json", data), ("posterior.json", info)):
        (folder / name).write_text(value if isinstance(value, str) else json.dumps(value))
    (folder / "reference_draws.json.zip").write_bytes(_archive(chains) if archive is None else archive)
    return root


def test_a_well_formed_posteriordb_folder_loads(tmp_path):
    post = pdb.load(NAME, _posteriordb(tmp_path))
    assert post.model_kwargs["sigma"].tolist()[:2] == [15.0, 10.0]
    assert list(post.reference_draws) == PARAMETERS and post.reference_draws["mu"].shape == (2, 5)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ('{"J": 8, "y": [1, 2', "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ({k: v for k, v in GOOD_DATA.items() if k != "sigma"}, "'sigma'"),
        ({**GOOD_DATA, "sigma": [15, -10, 16, 11, 9, 11, 10, 18]}, "'sigma'"),
        ({**GOOD_DATA, "sigma": [15, 0, 16, 11, 9, 11, 10, 18]}, "'sigma'"),
        ('{"J": 8, "y": [28, NaN, -3, 7, -1, 1, 18, 12], "sigma": [15, 10, 16, 11, 9, 11, 10, 18]}', "'y'"),
        ({**GOOD_DATA, "y": GOOD_DATA["y"][:7]}, "length"),
        ({**GOOD_DATA, "J": 9}, "length"),
        ({**GOOD_DATA, "y": ["28", "8", "-3", "7", "-1", "1", "18", "12"]}, "'y'"),
        ({**GOOD_DATA, "y": [[1, 2], [3]]}, "'y'"),
        ({**GOOD_DATA, "y": []}, "'y'"),
    ],
)
def test_bad_posteriordb_data_is_refused_at_load_naming_the_file_and_field(tmp_path, data, field):
    root = _posteriordb(tmp_path, data=data)
    with pytest.raises(ValueError, match=re.escape(str(root / NAME / "data.json"))) as refused:
        pdb.load(NAME, root)
    assert field in str(refused.value)


@pytest.mark.parametrize("info", ["{", "[]", {"dimensions": {"mu": 1}}, {"name": "other", "dimensions": {}},
                                  {"name": NAME}])  # fmt: skip
def test_a_malformed_or_incomplete_posterior_json_is_refused(tmp_path, info):
    root = _posteriordb(tmp_path, info=info)
    with pytest.raises(ValueError, match=re.escape(str(root / NAME / "posterior.json"))):
        pdb.load(NAME, root)


def _chains(drop: str | None = None, **change) -> list[dict]:
    """Two chains of three draws; the second with ``change`` and without ``drop``."""
    chains = [{p: [0.1, 0.2, 0.3] for p in PARAMETERS} for _ in range(2)]
    chains[1].update(change)
    chains[1].pop(drop, None)
    return chains


@pytest.mark.parametrize(
    ("archive", "problem"),
    [
        pytest.param(b"not a zip at all", "zip", id="not-a-zip"),
        pytest.param(_archive(_chains(), member="draws.txt"), "one .json", id="no-json-member"),
        pytest.param(_archive({"mu": [1.0]}), "per-chain", id="not-a-list"),
        pytest.param(_archive(_chains(drop="tau")), "parameters", id="chain-lacks-a-parameter"),
        pytest.param(_archive(_chains(mu=[0.1, float("nan"), 0.3])), "'mu'", id="nan-draw"),
        pytest.param(_archive(_chains(mu=["a", "b", "c"])), "'mu'", id="string-draws"),
        pytest.param(_archive(_chains(mu=[0.1])), "'mu'", id="chains-of-other-lengths"),
        pytest.param(_archive(_chains())[:40], "zip", id="truncated"),
    ],
)
def test_a_malformed_reference_archive_is_refused_naming_it(tmp_path, archive, problem):
    post = pdb.load(NAME, _posteriordb(tmp_path, archive=archive))
    with pytest.raises(ValueError, match=re.escape(str(post.folder / "reference_draws.json.zip"))) as refused:
        post.reference_draws  # noqa: B018
    assert problem in str(refused.value)


def test_a_reference_archive_that_inflates_beyond_the_bound_is_not_read(tmp_path):
    # 160 MiB of JSON whitespace deflates to ~160 kB: the declared size is refused before anything is inflated
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{NAME}.json", "w", force_zip64=True) as member:
            member.write(b"[")
            for _ in range(160):
                member.write(b" " * 2**20)
            member.write(b"]")
    assert len(buffer.getvalue()) < 2**20
    post = pdb.load(NAME, _posteriordb(tmp_path, archive=buffer.getvalue()))
    with pytest.raises(ValueError, match="inflates to 167772162 bytes"):
        post.reference_draws  # noqa: B018


def test_zip_reads_are_bounded_by_the_declared_size(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(_archive(_chains()))
    assert json.loads(read_zip_member(path, ".json", 10**6))[0]["mu"] == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="more than the 100"):
        read_zip_member(path, ".json", 100)


# --------------------------------------------------------------------------------------- evaluate a run folder
def _run_folder(root: Path, summary: object) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    ckpt.save({"format": ckpt.FORMAT, "module": None}, root / "checkpoints" / "checkpoint-00000001.pt")
    (root / "summary.json").write_text(summary if isinstance(summary, str) else json.dumps(summary))
    return root


@pytest.mark.parametrize(
    ("summary", "named"),
    [
        ({"model": "vae", "arch": "mlp"}, "latent_dim"),
        ({"latent_dim": 2, "arch": "mlp"}, "model"),
        ({"model": "vae", "latent_dim": 2}, "arch"),
        ({"model": "nope", "latent_dim": 2, "arch": "mlp"}, "model"),
        ({"model": "vae", "latent_dim": "two", "arch": "mlp"}, "latent_dim"),
        ('{"model": "vae", ', "not valid JSON"),
        ("[]", "JSON object"),
    ],
)
def test_evaluate_on_a_summary_that_lacks_keys_names_the_file_and_key(tmp_path, capsys, summary, named):
    from probrep import cli

    run = _run_folder(tmp_path / "run", summary)
    assert cli.main(["evaluate", "--checkpoint", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(run / "summary.json") in err and named in err
