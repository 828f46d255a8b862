"""The Generative Query Network: representation shapes, the ELBO against closed-form KLs computed by hand,
equivalence of the speed-ups, prediction and sampling, schedules, and the training run."""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

from probrep import cli
from probrep.data.rooms.dataset import GQNDataset
from probrep.data.rooms.scene import WALL_COLOURS, Rooms, RoomsBatch, SceneFactors
from probrep.experiments.gqn import (
    TIERS,
    build_gqn,
    hidden_object_scenes,
    live_representation,
    probe_curve_figure,
    train_gqn,
)
from probrep.inference import svi
from probrep.models.gqn.model import GQN, PyramidRepresentation, TowerRepresentation
from probrep.training import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"image_size": 16, "r_channels": 8, "h_channels": 8, "z_channels": 3, "canvas_channels": 4, "kernel_size": 3}


def _batch(b=2, k=3, size=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(b, k, 3, size, size, generator=g, dtype=dtype),
        torch.randn(b, k, 7, generator=g, dtype=dtype),
        torch.randn(b, 7, generator=g, dtype=dtype),
        torch.rand(b, 3, size, size, generator=g, dtype=dtype),
    )


# --------------------------------------------------------------------------------------- representations
@pytest.mark.parametrize("size", [32, 64])
def test_representation_output_shapes(size, device):
    x, v = torch.rand(5, 3, size, size, device=device), torch.randn(5, 7, device=device)
    assert TowerRepresentation(3, 7, 16).to(device)(x, v).shape == (5, 16, size // 4, size // 4)
    assert TowerRepresentation(3, 7, 16, pool=True).to(device)(x, v).shape == (5, 16, 1, 1)
    assert PyramidRepresentation(3, 7, 16, size).to(device)(x, v).shape == (5, 16, 1, 1)
    for kind, spatial in [("tower", size // 4), ("pool", 1), ("pyramid", 1)]:
        model = GQN(image_size=size, representation=kind, r_channels=16, h_channels=8, z_channels=2, steps=1)
        r = model.to(device).represent(x.view(1, 5, 3, size, size), v.view(1, 5, 7))
        assert r.shape == (1, 16, spatial, spatial) and r.device.type == device.type


def test_pool_is_the_spatial_mean_of_the_tower_and_views_are_summed():
    torch.manual_seed(0)
    tower, pool = TowerRepresentation(3, 7, 8), TowerRepresentation(3, 7, 8, pool=True)
    pool.load_state_dict(tower.state_dict())
    x, v = torch.rand(4, 3, 16, 16), torch.randn(4, 7)
    torch.testing.assert_close(pool(x, v), tower(x, v).mean(dim=(2, 3), keepdim=True))
    model = GQN(**TINY, steps=1).double()
    ctx, ctx_v, _, _ = _batch(b=1, k=3)
    summed = sum(model.representation(ctx[:, i], ctx_v[:, i]) for i in range(3))
    torch.testing.assert_close(model.represent(ctx, ctx_v), summed)


# ----------------------------------------------------------------------------------------------- the ELBO
def _closed_form_kl(mq, sq, mp, sp):
    """KL(N(mq, sq^2) || N(mp, sp^2)) summed over all but the batch dimension, written out."""
    kl = torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5
    return kl.flatten(1).sum(1)


@pytest.mark.parametrize("share_cores", [True, False])
def test_elbo_is_gaussian_nll_plus_closed_form_kl_of_every_step(share_cores):
    torch.manual_seed(0)
    model = GQN(**TINY, steps=3, share_cores=share_cores, sigma=0.7).double()
    batch = _batch()
    ctx, ctx_v, q_v, q = batch
    pyro.set_rng_seed(1)
    guide_trace = poutine.trace(model.guide).get_trace(*batch)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*batch)

    # by hand: run the generator on the guide's z's; each step's prior comes from the state before it
    gen = model.generator
    with torch.no_grad():
        condition = model._condition(ctx, ctx_v, q_v)
        state = gen.initial_state(2, condition)
        kl_total = torch.zeros(2, dtype=torch.float64)
        for step in range(3):
            site = f"z_{step + 1}"
            raw = gen.priors[0 if share_cores else step](state.h)
            mp, sp = raw[:, :3], F.softplus(raw[:, 3:]) + 1e-4
            q_fn = guide_trace.nodes[site]["fn"].base_dist
            kl = _closed_form_kl(q_fn.loc, q_fn.scale, mp, sp)
            p_fn = model_trace.nodes[site]["fn"].base_dist
            torch.testing.assert_close(p_fn.loc, mp)  # the model's prior is the one computed by hand
            torch.testing.assert_close(p_fn.scale, sp)
            # the per-step KL the mean-field ELBO uses equals the closed form
            pyro_kl = torch.distributions.kl_divergence(guide_trace.nodes[site]["fn"], model_trace.nodes[site]["fn"])
            torch.testing.assert_close(pyro_kl, kl)
            assert (kl > 0).all()
            kl_total += kl
            state = gen.generate(step, guide_trace.nodes[site]["value"], condition, state)
        mean = torch.sigmoid(gen.observation(state.u))
        nll = ((q - mean) ** 2 / (2 * 0.7**2) + math.log(0.7) + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    pyro.set_rng_seed(1)
    loss = TraceMeanField_ELBO().differentiable_loss(model.model, model.guide, *batch)
    assert loss.item() == pytest.approx((nll + kl_total).sum().item(), rel=1e-10)


def _loss_and_grads(model, batch, seed=3):
    model.zero_grad()
    pyro.set_rng_seed(seed)
    loss = TraceMeanField_ELBO().differentiable_loss(model.model, model.guide, *batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("option", ["reuse_guide_states", "checkpoint_steps"])
def test_speed_options_change_no_number(option):
    torch.manual_seed(0)
    model = GQN(**TINY, steps=3, reuse_guide_states=False).double()
    batch = _batch()
    reference = _loss_and_grads(model, batch)
    setattr(model, option, True)
    other = _loss_and_grads(model, batch)
    torch.testing.assert_close(other[0], reference[0])
    assert reference[1].keys() == other[1].keys() and len(reference[1]) == len(list(model.parameters()))
    for name in reference[1]:
        torch.testing.assert_close(other[1][name], reference[1][name], msg=name)


def test_model_replayed_on_other_z_does_not_reuse_states():
    torch.manual_seed(0)
    model = GQN(**TINY, steps=2).double()
    batch = _batch()
    pyro.set_rng_seed(0)
    guide_trace = poutine.trace(model.guide).get_trace(*batch)
    shifted = guide_trace.copy()
    shifted.nodes["z_2"] = dict(shifted.nodes["z_2"], value=guide_trace.nodes["z_2"]["value"] + 1.0)
    mean = poutine.replay(model.model, trace=shifted)(*batch)
    model.reuse_guide_states = False
    expected = poutine.replay(model.model, trace=shifted)(*batch)
    torch.testing.assert_close(mean, expected)


# -------------------------------------------------------------------------------------- predict and sample
def test_predict_and_sample(device):
    torch.manual_seed(0)
    model = GQN(**TINY, steps=2).to(device)
    ctx, ctx_v, q_v, _ = (t.to(device) for t in _batch(dtype=torch.float32))
    pred = model.predict(ctx, ctx_v, q_v)
    assert pred.shape == (2, 3, 16, 16) and (pred > 0).all() and (pred < 1).all()
    torch.testing.assert_close(model.predict(ctx, ctx_v, q_v), pred)  # deterministic: z at the prior means
    samples = model.sample(ctx, ctx_v, q_v, num_samples=4)
    assert samples.shape == (4, 2, 3, 16, 16)
    assert (samples[0] - samples[1]).abs().max() > 1e-4
    # the model program without a query image draws one
    trace = poutine.trace(model.model).get_trace(ctx, ctx_v, q_v)
    site = trace.nodes["query_image"]
    assert not site["is_observed"] and site["value"].shape == (2, 3, 16, 16)


def test_bad_inputs_are_named():
    model = GQN(**TINY, steps=1)
    ctx, ctx_v, q_v, q = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match="context_images"):
        model.predict(ctx[:, :, :, :8], ctx_v, q_v)
    with pytest.raises(ValueError, match="context_viewpoints"):
        model.predict(ctx, ctx_v[:, :2], q_v)
    with pytest.raises(ValueError, match="query_viewpoint"):
        model.predict(ctx, ctx_v, q_v[:, :5])
    with pytest.raises(ValueError, match="query_image"):
        model.model(ctx, ctx_v, q_v, q[:1])
    with pytest.raises(TypeError, match="context_images"):
        model.predict(ctx.numpy(), ctx_v, q_v)
    with pytest.raises(ValueError, match="representation"):
        GQN(representation="mean")
    with pytest.raises(ValueError, match="image_size"):
        GQN(image_size=30)
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(ctx, ctx_v, q_v, num_samples=0)


# ----------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny_rooms() -> GQNDataset:
    return GQNDataset(Rooms(image_size=16, num_views=4, seed=0).generate(64), seed=0)


def test_svi_fit_learns_to_render_rooms(tiny_rooms):
    torch.manual_seed(0)
    model = GQN(**TINY, steps=2, sigma=0.2)
    probe = tiny_rooms.batch(list(range(32)), num_context=2)

    def mse() -> float:
        return float(((model.predict(*probe[:3]) - probe[3]) ** 2).mean())

    before = mse()
    fit = svi.fit(model, tiny_rooms, steps=40, batch_size=8, lr=3e-3, seed=0, progress=False)
    assert fit.losses[-5:].mean() < fit.losses[:5].mean()
    assert mse() < 0.65 * before  # from the untrained 0.042 to 0.023 in 40 steps


def test_train_gqn_writes_its_outputs_and_resumes_exactly(tmp_path):
    common = {"steps": 4, "train_scenes": 16, "test_scenes": 8, "anneal_steps": 4, "device": "cpu", "progress": False}
    common.update(batch_size=4, eval_every=1)
    whole = train_gqn(tmp_path / "whole", checkpoint_every=2, **common)
    for name in ("loss_curve", "probe_curve", "predictions", "samples", "summary", "checkpoint"):
        assert whole.files[name].is_file()
    summary = json.loads(whole.files["summary"].read_text())
    assert summary["steps"] == 4 and summary["image_size"] == 32
    assert set(summary["test"]) == {"negative_elbo_per_image", "bits_per_dim", "mse", "baseline_mse", "mse_ratio"}
    nelbo = summary["test"]["negative_elbo_per_image"]
    assert summary["test"]["bits_per_dim"] == pytest.approx(nelbo / (3 * 32 * 32 * math.log(2)))
    assert whole.model.sigma == pytest.approx(0.25)  # the small tier anneals sigma 2.0 -> 0.25 geometrically

    assert [point["step"] for point in summary["test_mse_curve"]] == [1, 2, 3, 4]

    train_gqn(tmp_path / "split", checkpoint_every=2, **{**common, "steps": 2})
    # as if the first run had been killed while probing at its step-2 checkpoint (no point for step 2), or had gone
    # on one more step and been stopped before its next checkpoint (a point for step 3 the checkpoint lacks): the
    # resumed run takes the missing point from the checkpoint and recomputes the later one, so its curve is the
    # uninterrupted run's
    history = tmp_path / "split" / "probe_mse.json"
    points = json.loads(history.read_text())["history"]
    assert [point["step"] for point in points] == [1, 2]
    history.write_text(json.dumps({"history": [points[0], {**points[-1], "step": 3, "mse": -1.0}]}))
    resumed = train_gqn(tmp_path / "split", checkpoint_every=2, resume=True, **common)
    assert resumed.summary["test_mse_curve"] == summary["test_mse_curve"]
    a = ckpt.load(whole.files["checkpoint"])["module"]
    b = ckpt.load(resumed.files["checkpoint"])["module"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_linear_representation_output_keeps_the_last_layer_alive():
    torch.manual_seed(0)
    x, v = torch.rand(6, 3, 32, 32), torch.randn(6, 7)
    for kind in ("tower", "pyramid"):
        relu, linear = (
            build_gqn("one_object", representation=kind, representation_output=o) for o in ("relu", "linear")
        )
        linear.load_state_dict(relu.state_dict())  # the same weights: only what follows the last convolution differs
        for model in (relu, linear):
            last = model.representation.conv6 if kind == "tower" else model.representation.convs[6]
            with torch.no_grad():
                last.bias.fill_(-100.0)  # every unit's input negative for any scene
        r_relu, r_linear = relu.representation(x, v), linear.representation(x, v)
        assert torch.equal(r_relu, torch.zeros_like(r_relu)), kind  # dead: r is 0 for every scene
        assert (r_linear.std(dim=0) > 0).all(), kind  # the same weights without the ReLU still tell scenes apart
        r_linear.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in linear.representation.parameters()), kind
    with pytest.raises(ValueError, match="representation_output"):
        build_gqn("one_object", representation_output="tanh")


def test_a_resume_with_another_representation_is_refused(tmp_path):
    # a ReLU and a linear representation have the same weights: only the checkpoint's run_config tells them apart
    common = {"steps": 1, "train_scenes": 4, "test_scenes": 4, "batch_size": 2, "draw_steps": 1, "device": "cpu"}
    train_gqn(tmp_path / "run", checkpoint_every=1, progress=False, **common)
    with pytest.raises(ValueError, match="representation_output: checkpoint 'relu' vs now 'linear'"):
        train_gqn(tmp_path / "run", resume=True, progress=False, model_options={"representation_output": "linear"},
                  **{**common, "steps": 2})  # fmt: skip


def test_a_dead_representation_is_measured_and_warned_about(tmp_path, caplog):
    model = build_gqn("one_object")
    rooms = Rooms(**TIERS["one_object"]["rooms"], num_views=4, seed=0)
    ctx, ctx_v, _, _ = GQNDataset(rooms.generate(4), seed=0).batch([0, 1, 2, 3], num_context=2)
    assert live_representation(model, ctx, ctx_v) > 0.5  # a fresh tower: most units differ between scenes
    with pytest.raises(ValueError, match="two scenes"):
        live_representation(model, ctx[:1], ctx_v[:1])

    def kill(info):  # after step 1: every unit of the tower's last ReLU below zero for any scene, as in a stuck run
        if info.step == 1:
            with torch.no_grad():
                next(v for k, v in info.params.items() if k.endswith("representation.conv6.bias")).fill_(-1e4)

    common = {"train_scenes": 8, "test_scenes": 4, "batch_size": 2, "draw_steps": 1, "device": "cpu"}
    with caplog.at_level("WARNING", logger="probrep.experiments.gqn"):
        run = train_gqn(tmp_path / "run", tier="one_object", steps=2, eval_every=1, callbacks=[kill], progress=False,
                        **common)  # fmt: skip
    live = [point["live_representation"] for point in run.summary["test_mse_curve"]]
    assert live[0] > 0.5 and live[1] == 0.0
    assert "step 2: the representation network gives every probe scene the same r" in caplog.text
    assert "step 1:" not in caplog.text


def test_probe_curve_figure_needs_a_curve(tmp_path):
    with pytest.raises(ValueError, match="eval_every"):
        probe_curve_figure([], tmp_path / "probe.png")
    assert not (tmp_path / "probe.png").exists()


def test_unknown_sigma_schedule_is_named_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="sigma_schedule"):
        train_gqn(tmp_path / "run", steps=1, sigma_schedule="cosine", progress=False)
    assert not (tmp_path / "run").exists()


def test_coordinates_are_two_grid_channels_after_viewpoint_and_representation():
    model = GQN(**TINY, steps=1, representation="pool", coordinates=True).double()
    ctx, ctx_v, q_v, q = _batch(b=2, k=2)
    condition = model._condition(ctx, ctx_v, q_v)
    g = model.generator.grid
    assert condition.shape == (2, 7 + 8 + 2, g, g)
    torch.testing.assert_close(condition[:, :7], q_v[:, :, None, None].expand(-1, -1, g, g))
    torch.testing.assert_close(condition[:, 7:15], model.represent(ctx, ctx_v).expand(-1, -1, g, g))
    rows, cols = condition[0, -2], condition[0, -1]
    assert rows[0, 0] == -1 and rows[-1, 0] == 1 and cols[0, 0] == -1 and cols[0, -1] == 1
    assert torch.all(rows[:, 1:] == rows[:, :1]) and torch.all(cols[1:] == cols[:1])
    torch.testing.assert_close(condition[1, -2:], condition[0, -2:])
    assert math.isfinite(float(svi.make_elbo(None, model).loss(model.model, model.guide, ctx, ctx_v, q_v, q)))


def test_one_object_tier_trains_on_rooms_with_one_object_and_fixed_walls(tmp_path):
    args = ["train", "gqn", "--tier", "one_object", "--steps", "2", "--batch-size", "4", "--train-scenes", "8",
            "--test-scenes", "4", "--device", "cpu", "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["tier"] == "one_object" and summary["image_size"] == 32
    rooms = Rooms.from_config(summary["rooms"])
    assert (rooms.min_objects, rooms.max_objects) == (1, 1)
    assert rooms.wall_colours == ("sand",) and rooms.floor_colours == ("grey",)
    f, _, _ = rooms.scenes(range(50))
    assert (f.num_objects == 1).all() and len(set(f.wall_colour.tolist())) == len(set(f.floor_colour.tolist())) == 1
    assert 0.0 <= summary["test_scenes_scores"]["foreground_iou"] <= 1.0


def test_the_cli_passes_the_representation_output_and_sigma_of_the_readme_s_headline_runs(tmp_path):
    # the README's headline GQN runs use a linear end to the representation network and sigma ending at 0.35
    args = ["train", "gqn", "--tier", "two_colour_walls", "--representation-output", "linear", "--sigma-end", "0.35",
            "--steps", "2", "--batch-size", "4", "--train-scenes", "8", "--test-scenes", "4", "--device", "cpu",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["model_options"] == {"representation_output": "linear"}
    assert summary["tier"] == "two_colour_walls" and summary["sigma"] == [2.0, 0.35]
    state = ckpt.load(ckpt.latest(tmp_path / "run" / "checkpoints"))
    assert state["config"]["representation_output"] == "linear"  # and a resume with another output is refused


def test_paper_tier_keeps_eslami_et_al_s_sizes_rates_and_sigmas():
    # Eslami et al. 2018: 64x64 images, the tower representation, L = 12 DRAW steps, batch 36, Adam's rate annealed
    # 5e-4 -> 5e-5 and the pixel sigma 2.0 -> 0.7. Their two horizons differ (1.6 million steps for the rate, 200,000
    # for sigma); here both anneal over one anneal_steps
    model = build_gqn("paper")
    assert tuple(model.image_shape) == (3, 64, 64) and model.steps == 12 and model.representation_kind == "tower"
    tier = TIERS["paper"]
    assert (tier["lr"], tier["lr_end"], tier["batch_size"]) == (5e-4, 5e-5, 36)
    assert (tier["sigma"], tier["sigma_schedule"]) == ((2.0, 0.7), "linear")


@pytest.mark.slow  # about 2 minutes on one CPU core (12 DRAW steps at 64x64); `make gpu-check` runs it on cuda
def test_paper_tier_trains_and_scores_end_to_end(tmp_path, device):
    out = train_gqn(tmp_path / "run", tier="paper", steps=2, batch_size=2, train_scenes=4, test_scenes=4, num_views=4,
                    device=str(device), progress=False)  # fmt: skip
    s = out.summary
    assert s["tier"] == "paper" and s["image_size"] == 64 and s["draw_steps"] == 12 and s["steps"] == 2
    assert math.isfinite(s["test"]["negative_elbo_per_image"]) and s["test_scenes_scores"]["kl_per_image"] > 0
    assert {"predictions", "samples", "summary"} <= set(out.files)


def test_four_walls_tier_paints_each_wall_apart_around_one_object():
    rooms = Rooms(**TIERS["four_walls"]["rooms"], num_views=10, seed=0)
    f, _, _ = rooms.scenes(range(50))
    assert (f.num_objects == 1).all() and f.wall_colour.shape == (50, 4)
    assert (f.wall_colour != f.wall_colour[:, :1]).any(axis=1).mean() > 0.9  # 1 - 5 / 5**4 of rooms by chance
    assert build_gqn("four_walls").steps == GQN.small().steps  # the small tier's model


def test_two_colour_walls_tier_flips_a_coin_per_wall():
    rooms = Rooms(**TIERS["two_colour_walls"]["rooms"], num_views=10, seed=0)
    f, _, _ = rooms.scenes(range(400))
    assert (f.num_objects == 1).all() and f.wall_colour.shape == (400, 4)
    steel = f.wall_colour == list(WALL_COLOURS).index("steel")
    assert (steel | (f.wall_colour == list(WALL_COLOURS).index("sand"))).all()
    # each wall steel with probability 1/2, independently: 1600 coin flips, sd 0.0125 around 0.5
    assert abs(steel.mean() - 0.5) < 4 * 0.0125
    # all 16 rooms turn up (each with probability 1/16 in 400 scenes)
    assert len({tuple(row) for row in steel.tolist()}) == 16
    assert build_gqn("two_colour_walls").steps == GQN.small().steps


def test_the_cli_offers_every_tier_and_documents_each():
    # the CLI spells its --tier choices out (so that --help does not import torch); they must stay TIERS' keys
    gqn_parser = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    gqn_parser = gqn_parser._subparsers._group_actions[0].choices["gqn"]
    (tier,) = (a for a in gqn_parser._actions if a.dest == "tier")
    assert list(tier.choices) == list(TIERS)
    assert all(f"{name}:" in tier.help for name in TIERS)


def test_hidden_object_tier_hides_the_object_from_about_four_views_in_ten():
    rooms = Rooms(**TIERS["hidden_object"]["rooms"], num_views=10, seed=0)
    f, yaw, pitch = rooms.scenes(range(100))
    assert (f.num_objects == 1).all() and rooms.fov == pytest.approx(math.radians(30.0))
    _, ids = rooms.render(f, yaw, pitch, return_ids=True)
    missed = ~(ids == 0).flatten(-2).any(-1)  # [scene, view]: the object (slot 0) in no pixel
    # 0.38 over 1,000 scenes; over 100 scenes the share's standard error is 0.03: +-4 of them
    assert 0.26 <= float(missed.float().mean()) <= 0.50
    assert build_gqn("hidden_object").steps == GQN.small().steps


def test_hidden_object_scenes_are_those_whose_query_shows_an_object_the_context_view_misses():
    rooms = Rooms(**TIERS["hidden_object"]["rooms"], num_views=2, seed=0)
    one = SceneFactors.make(["sphere"], ["red"], [0.4], [(2.5, 0.0)], max_objects=1)
    factors = SceneFactors.concatenate([one, one])
    # the camera at yaw 0 stands at (-3.4, 1.6, 0) facing +x: the sphere is ahead. At yaw pi/2 it faces +z from
    # (0, 1.6, -3.4): the sphere is 36 degrees off its axis, outside the 15 degree half field of view
    yaw = np.array([[math.pi / 2, 0.0], [0.0, math.pi / 2]], np.float32)
    pitch = np.full_like(yaw, rooms.base_pitch)
    batch = RoomsBatch(rooms.render(factors, yaw, pitch), rooms.viewpoints(yaw, pitch), factors, yaw, pitch)
    _, ids = rooms.render(factors, yaw, pitch, return_ids=True)
    assert (ids[0, 1] == 0).any() and not (ids[0, 0] == 0).any()  # the geometry the comment claims
    assert hidden_object_scenes(rooms, batch).tolist() == [True, False]


def test_max_context_caps_the_training_context_and_is_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="max_context must be in 1..9"):
        train_gqn(tmp_path / "bad", tier="hidden_object", steps=1, max_context=10, progress=False)
    assert not (tmp_path / "bad").exists()
    args = ["train", "gqn", "--tier", "hidden_object", "--steps", "2", "--batch-size", "4", "--train-scenes", "8",
            "--test-scenes", "4", "--max-context", "2", "--device", "cpu", "--out", str(tmp_path / "run")]  # fmt: skip
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["max_context"] == 2 and summary["tier"] == "hidden_object"
    assert set(summary["test_by_context_views"]) == {"1", "5", "9"}  # held-out scores keep 1..9 context views
