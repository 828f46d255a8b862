"""Attend-Infer-Repeat: the log joint against a hand computation, masking, the spatial transformer, baselines,
the TraceGraph loss and shapes. Small networks in float64 so that hand computations match to 1e-9."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from probrep.inference.svi import TraceGraphELBO
from probrep.models.air import diagnostics
from probrep.models.air.diagnostics import count_confusion
from probrep.models.air.model import AIR
from probrep.models.air.networks import ImageLSTMCell
from probrep.models.air.priors import count_prior, count_prior_step_probs
from probrep.models.air.spatial import image_to_window, read_theta, window_to_image, write_theta, z_where_to_boxes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = dict(
    window_size=10,
    z_what_dim=3,
    rnn_hidden=8,
    encoder_hidden=6,
    decoder_hidden=6,
    predict_hidden=5,
    baseline_hidden=4,
)


def small_air(num_steps=3, **kwargs):
    torch.manual_seed(0)
    return AIR(20, num_steps=num_steps, **{**SMALL, **kwargs}).double()


def _normal_logpdf(z, loc, scale):
    z, loc, scale = (np.asarray(v, dtype=np.float64) for v in (z, loc, scale))
    return float(np.sum(-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)))


# ------------------------------------------------------------------------------------------------ count prior
def test_geometric_count_prior_by_hand():
    # P(n) ∝ 0.5^n over n = 0..3: (8, 4, 2, 1) / 15; p_t = P(n > t) / P(n >= t)
    probs = count_prior_step_probs(0.5, 3)
    np.testing.assert_allclose(probs, [7 / 15, 3 / 7, 1 / 3], rtol=1e-12)
    np.testing.assert_allclose(count_prior(0.5, 3), np.array([8, 4, 2, 1]) / 15, rtol=1e-12)
    np.testing.assert_allclose(count_prior(0.2, 2, "constant"), [0.8, 0.16, 0.04], rtol=1e-12)
    with pytest.raises(ValueError, match="z_pres_prior"):
        count_prior_step_probs(0.0, 3)
    with pytest.raises(ValueError, match="z_pres_prior"):
        count_prior_step_probs(1.5, 3, "constant")
    with pytest.raises(ValueError, match="unknown count prior"):
        count_prior_step_probs(0.5, 3, "poisson")


def test_model_samples_counts_from_the_count_prior():
    air = small_air(z_pres_prior=0.5)
    x = torch.zeros(4000, 1, 20, 20, dtype=torch.float64)
    pyro.set_rng_seed(1)
    trace = poutine.trace(air.model).get_trace(x)
    counts = sum(trace.nodes[f"z_pres_{t}"]["value"] for t in range(3)).long().numpy()
    freq = np.bincount(counts, minlength=4) / len(counts)
    # 4000 draws: standard error of each frequency <= 0.008
    np.testing.assert_allclose(freq, count_prior(0.5, 3), atol=0.03)


# ------------------------------------------------------------------------------------------ spatial transformer
def test_write_then_read_round_trip_is_exact_on_the_pixel_grid():
    # s = 2 puts a 10 px window on 10 canvas pixels; x = (c0 - 5) / 10 starts it at column c0
    rng = torch.Generator().manual_seed(0)
    windows = torch.rand(3, 10, 10, generator=rng, dtype=torch.float64)
    corners = [(0, 0), (7, 3), (10, 10)]
    z_where = torch.tensor([[2.0, (c - 5) / 10, (r - 5) / 10] for c, r in corners], dtype=torch.float64)
    canvas = window_to_image(windows, z_where, 20)
    for i, (c, r) in enumerate(corners):
        expected = torch.zeros(20, 20, dtype=torch.float64)
        expected[r : r + 10, c : c + 10] = windows[i]
        torch.testing.assert_close(canvas[i], expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(image_to_window(canvas, z_where, 10), windows, atol=1e-12, rtol=0)
    boxes = z_where_to_boxes(z_where, 20)
    torch.testing.assert_close(boxes[1], torch.tensor([7.0, 3.0, 17.0, 13.0], dtype=torch.float64))


def test_round_trip_of_a_smooth_window_at_any_scale_and_place():
    u = torch.linspace(-1, 1, 28, dtype=torch.float64)
    blob = torch.exp(-((u[:, None] / 0.5) ** 2 + (u[None, :] / 0.4) ** 2))  # smooth, zero-ish at the edge
    windows = blob.expand(4, 28, 28)
    z_where = torch.tensor([[1.3, 0.1, -0.2], [1.9, -0.4, 0.3], [2.5, 0.5, 0.5], [1.6, 0.0, 0.0]], dtype=torch.float64)
    back = image_to_window(window_to_image(windows, z_where, 50), z_where, 28)
    # bilinear resampling twice (down to 50 / s px and back) blurs a little; reading 2 px off blurs far more
    assert (back - windows).abs().max() < 0.04
    shifted = z_where + torch.tensor([0.0, 0.08, 0.0], dtype=torch.float64)
    assert (image_to_window(window_to_image(windows, z_where, 50), shifted, 28) - windows).abs().amax(
        (1, 2)
    ).min() > 0.2
    # the written window's mass sits where z_where says: centre of mass at ((x + 1) H / 2, (y + 1) H / 2)
    canvas = window_to_image(windows, z_where, 50)
    grid = torch.arange(50, dtype=torch.float64) + 0.5
    mass = canvas.sum((1, 2))
    cx = (canvas.sum(1) * grid).sum(1) / mass
    cy = (canvas.sum(2) * grid).sum(1) / mass
    torch.testing.assert_close(cx, (z_where[:, 1] + 1) * 25, atol=0.05, rtol=0)
    torch.testing.assert_close(cy, (z_where[:, 2] + 1) * 25, atol=0.05, rtol=0)


def test_read_theta_inverts_write_theta():
    z_where = torch.tensor([[1.7, 0.3, -0.6], [3.0, -0.2, 0.1]], dtype=torch.float64)
    square = lambda theta: torch.cat([theta, torch.tensor([[[0.0, 0.0, 1.0]]]).double().expand(2, 1, 3)], 1)  # noqa
    product = square(write_theta(z_where)) @ square(read_theta(z_where))
    torch.testing.assert_close(product, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    with pytest.raises(ValueError, match="z_where must have shape"):
        window_to_image(torch.zeros(2, 5, 5), torch.zeros(2, 2), 10)


# ------------------------------------------------------------------------------------------------ log joint
def _fixed_latents():
    g = torch.Generator().manual_seed(2)
    pres = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    where = torch.tensor(
        [
            [[2.0, -0.5, -0.5], [2.0, 0.3, 0.2], [5.0, 3.0, -2.0]],  # object at (0, 0), object at (8, 7), absent
            [[2.0, 0.0, 0.5], [0.7, -4.0, 9.0], [1.0, 1.0, 1.0]],  # object at column 5, row 10, then absent
        ],
        dtype=torch.float64,
    )
    what = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    x = torch.rand(2, 1, 20, 20, generator=g, dtype=torch.float64)
    return pres, where, what, x


def _condition(pres, where, what):
    data = {}
    for t in range(3):
        data[f"z_pres_{t}"], data[f"z_where_{t}"], data[f"z_what_{t}"] = pres[:, t], where[:, t], what[:, t]
    return data


def test_model_log_joint_equals_a_hand_computation():
    air = small_air(z_pres_prior=0.3)
    pres, where, what, x = _fixed_latents()
    trace = poutine.trace(poutine.condition(air.model, data=_condition(pres, where, what))).get_trace(x)
    got = trace.log_prob_sum().item()

    k = 0.3  # P(n) ∝ k^n, n = 0..3
    z = 1 + k + k**2 + k**3
    p0, p1, p2 = (k + k**2 + k**3) / z, (k**2 + k**3) / (k + k**2 + k**3), k**3 / (k**2 + k**3)
    prior_loc, prior_sd = [2.3, 0.0, 0.0], [0.2, 1.0, 1.0]
    expected = math.log(p0) + math.log(p1) + math.log(1 - p2)  # example 0: two objects
    expected += math.log(p0) + math.log(1 - p1)  # example 1: one object
    for b, t in ((0, 0), (0, 1), (1, 0)):
        expected += _normal_logpdf(where[b, t], prior_loc, prior_sd) + _normal_logpdf(what[b, t], 0.0, 1.0)
    with torch.no_grad():
        windows = torch.sigmoid(air.decoder(what) - 2.0).view(2, 3, 10, 10).numpy()
    canvas = np.zeros((2, 20, 20))
    canvas[0, 0:10, 0:10] += windows[0, 0]
    canvas[0, 7:17, 8:18] += windows[0, 1]
    canvas[1, 10:20, 5:15] += windows[1, 0]
    expected += _normal_logpdf(x[:, 0].numpy(), canvas, 0.3)
    assert got == pytest.approx(expected, abs=1e-9)


def test_sites_after_the_first_absent_object_contribute_nothing():
    air = small_air()
    pres, where, what, x = _fixed_latents()
    base = poutine.trace(poutine.condition(air.model, data=_condition(pres, where, what))).get_trace(x)
    base.compute_log_prob()
    wild_where, wild_what = where.clone(), what.clone()
    wild_where[0, 2] = torch.tensor([9.0, -7.0, 8.0])  # example 0, step 2 (after its first z_pres = 0)
    wild_where[1, 1:] = torch.tensor([0.01, 5.0, -5.0])  # example 1, steps 1 and 2
    wild_what[0, 2] = 100.0
    wild_what[1, 1:] = -50.0
    wild = poutine.trace(poutine.condition(air.model, data=_condition(pres, wild_where, wild_what))).get_trace(x)
    wild.compute_log_prob()
    assert wild.log_prob_sum().item() == base.log_prob_sum().item()
    for t in range(3):
        for site in (f"z_where_{t}", f"z_what_{t}"):
            lp = wild.nodes[site]["log_prob"]
            assert (lp[pres[:, t] == 0] == 0).all()
    assert wild.nodes["z_pres_2"]["log_prob"][1].item() == 0.0  # after z_pres_1 = 0: masked

    # the guide's log density of later steps vanishes too once z_pres = 0 has been sampled
    stop = {"z_pres_0": torch.tensor([0.0, 1.0], dtype=torch.float64)}
    guide_trace = poutine.trace(poutine.condition(air.guide, data=stop)).get_trace(x)
    guide_trace.compute_log_prob()
    for t in range(3):
        for site in (f"z_where_{t}", f"z_what_{t}"):
            assert guide_trace.nodes[site]["log_prob"][0].item() == 0.0
    assert guide_trace.nodes["z_pres_1"]["value"][0].item() == 0.0
    assert guide_trace.nodes["z_pres_1"]["log_prob"][0].item() == 0.0


# ------------------------------------------------------------------------------------------- loss and baselines
def test_tracegraph_loss_value_is_the_negative_elbo_and_its_gradient_pyros():
    air = small_air()
    _, _, _, x = _fixed_latents()
    params = [p for n, p in air.named_parameters()]
    pyro.set_rng_seed(5)
    guide_trace = poutine.trace(air.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(air.model, trace=guide_trace)).get_trace(x)
    negative_elbo = (guide_trace.log_prob_sum() - model_trace.log_prob_sum()).item()

    pyro.set_rng_seed(5)
    loss = TraceGraphELBO().differentiable_loss(air.model, air.guide, x)
    assert loss.item() == pytest.approx(negative_elbo, abs=1e-8)
    ours = torch.autograd.grad(loss, params, allow_unused=True)

    pyro.set_rng_seed(5)
    pyro.infer.TraceGraph_ELBO().loss_and_grads(air.model, air.guide, x)
    for p, g in zip(params, ours):
        reference = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(g if g is not None else torch.zeros_like(p), reference, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("guide_input", ["image", "residual"])
def test_baseline_parameters_learn_only_from_the_baseline_loss(guide_input):
    air = small_air(guide_input=guide_input)
    _, _, _, x = _fixed_latents()
    baseline = [p for n, p in air.named_parameters() if n.startswith("baseline.")]
    others = [p for n, p in air.named_parameters() if not n.startswith("baseline.")]
    assert baseline and others

    # Hand baseline loss: sum_t sum_b (c_t - b_t)^2, where the downstream cost of z_pres_t is every term of
    # steps >= t (model minus guide, both masked) plus the likelihood of x.
    pyro.set_rng_seed(11)
    guide_trace = poutine.trace(air.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(air.model, trace=guide_trace)).get_trace(x)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()

    def step_terms(t):
        names = (f"z_pres_{t}", f"z_where_{t}", f"z_what_{t}")
        return sum(model_trace.nodes[n]["log_prob"] - guide_trace.nodes[n]["log_prob"] for n in names)

    hand = 0.0
    for t in range(3):
        cost = model_trace.nodes["x"]["log_prob"] + sum(step_terms(u) for u in range(t, 3))
        value = guide_trace.nodes[f"z_pres_{t}"]["infer"]["baseline"]["baseline_value"]
        hand = hand + ((cost.detach() - value) ** 2).sum()
    # the baseline loss reaches no guide or model parameter (its inputs are detached) ...
    leaked = torch.autograd.grad(hand, others, allow_unused=True, retain_graph=True)
    assert all(g is None or (g == 0).all() for g in leaked)
    hand_grads = torch.autograd.grad(hand, baseline)

    # ... and the full TraceGraph loss reaches the baseline parameters only through it
    pyro.set_rng_seed(11)
    loss = TraceGraphELBO().differentiable_loss(air.model, air.guide, x)
    full_grads = torch.autograd.grad(loss, baseline)
    assert any(g.abs().max() > 1e-3 for g in hand_grads)
    for a, b in zip(full_grads, hand_grads):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-8)


def test_baseline_param_options_select_exactly_the_baseline_parameters():
    air = small_air()
    options = air.baseline_param_options(1e-3)
    assert options("air.baseline$$$rnn.weight_image") == {"lr": 1e-3}
    assert options("air.rnn$$$weight_image") is None and options("air.decoder$$$0.weight") is None


# ------------------------------------------------------------------------------------------------- networks
def test_image_lstm_cell_is_an_lstm_cell_on_the_concatenated_input():
    torch.manual_seed(0)
    ours = ImageLSTMCell(12, 5, 7).double()
    ref = torch.nn.LSTMCell(17, 7).double()
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([ours.weight_image, ours.weight_rec[:, :5]], 1))
        ref.weight_hh.copy_(ours.weight_rec[:, 5:])
        ref.bias_ih.copy_(ours.bias)
        ref.bias_hh.zero_()
    image, latents = torch.randn(4, 12).double(), torch.randn(4, 5).double()
    state = (torch.randn(4, 7).double(), torch.randn(4, 7).double())
    h, c = ours(ours.image_gates(image), latents, state)
    h_ref, c_ref = ref(torch.cat([image, latents], 1), state)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


@pytest.mark.parametrize("guide_input", ["image", "residual"])
@pytest.mark.parametrize("num_steps", [1, 2, 3, 4])
def test_shapes_for_each_number_of_steps(num_steps, guide_input, device):
    air = small_air(num_steps=num_steps, guide_input=guide_input).to(device)
    x = torch.rand(5, 1, 20, 20, dtype=torch.float64, device=device)
    guide_trace = poutine.trace(air.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(air.model, trace=guide_trace)).get_trace(x)
    for t in range(num_steps):
        assert guide_trace.nodes[f"z_pres_{t}"]["value"].shape == (5,)
        assert guide_trace.nodes[f"z_where_{t}"]["value"].shape == (5, 3)
        assert model_trace.nodes[f"z_what_{t}"]["value"].shape == (5, 3)
    assert f"z_pres_{num_steps}" not in guide_trace.nodes
    assert model_trace.nodes["x"]["value"].shape == (5, 400)
    assert torch.isfinite(TraceGraphELBO().differentiable_loss(air.model, air.guide, x))
    out = air.infer(x[:, 0])  # [B, H, W] images are accepted too
    assert out.counts.shape == (5,) and out.z_pres.shape == (5, num_steps)
    assert out.z_where.shape == (5, num_steps, 3) and out.z_what.shape == (5, num_steps, 3)
    # the count is the number of leading ones
    assert torch.equal(out.counts, out.z_pres.sum(1).long()) and (out.z_pres[:, 1:] <= out.z_pres[:, :-1]).all()
    assert air.reconstruct(x).shape == (5, 1, 20, 20)
    assert air.boxes(out.z_where).shape == (5, num_steps, 4)


def test_count_confusion_and_accuracy_by_hand():
    confusion = count_confusion([0, 1, 1, 2, 2], [0, 1, 2, 2, 3], max_true=2, max_inferred=3)
    np.testing.assert_array_equal(confusion, [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    air = small_air()
    with torch.no_grad():  # a guide that never attends: every image gets count 0
        air.predict[-1].weight.zero_()
        air.predict[-1].bias.zero_()
        air.predict[-1].bias[0] = -20.0
    counts = torch.tensor([0, 0, 1, 2])
    accuracy, matrix = diagnostics.count_accuracy(air, torch.rand(4, 1, 20, 20, dtype=torch.float64), counts)
    assert accuracy == 0.5
    np.testing.assert_array_equal(matrix, [[2, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])


def test_count_elbo_at_count_zero_is_the_empty_canvas_in_closed_form_and_otherwise_log_p_minus_log_q():
    air = small_air(z_pres_prior=0.3)
    _, _, _, x = _fixed_latents()
    k = 0.3
    p0 = (k + k**2 + k**3) / (1 + k + k**2 + k**3)
    empty = [math.log(1 - p0) + _normal_logpdf(x[b, 0].numpy(), 0.0, 0.3) for b in range(2)]
    np.testing.assert_allclose(diagnostics.count_elbo(air, x, 0, num_samples=3).numpy(), empty, rtol=0, atol=1e-9)

    # count 2, one draw: the hand-checked log joint of the drawn latents minus the guide's log density of them
    pyro.set_rng_seed(3)
    got = diagnostics.count_elbo(air, x, 2, num_samples=1)
    pyro.set_rng_seed(3)
    forced = {f"z_pres_{t}": torch.tensor([1.0, 1.0] if t < 2 else [0.0, 0.0], dtype=torch.float64) for t in range(3)}
    with torch.no_grad():
        drawn = poutine.trace(poutine.condition(air.guide, data=forced)).get_trace(x)
    latents = {name: site["value"] for name, site in drawn.nodes.items() if site["type"] == "sample"}
    joint = poutine.trace(poutine.condition(air.model, data=latents)).get_trace(x)
    joint.compute_log_prob()
    drawn.compute_log_prob()
    log_q = sum(drawn.nodes[f"z_{kind}_{t}"]["log_prob"] for kind in ("where", "what") for t in range(3))
    expected = sum(site["log_prob"] for site in joint.nodes.values() if site["type"] == "sample") - log_q
    torch.testing.assert_close(got, expected.detach(), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="count must be an integer in \\[0, 3\\]"):
        diagnostics.count_elbo(air, x, 4)
    table = diagnostics.count_elbo_table(air, x, torch.tensor([1, 2]), num_samples=1)
    assert set(table) == {1, 2} and all(len(row) == 4 for row in table.values())


def test_ghost_windows_tell_present_windows_that_draw_nothing():
    air = small_air()
    _, _, _, x = _fixed_latents()
    with torch.no_grad():  # a guide that attends every step, windows at the prior's centre
        air.predict[-1].weight.zero_()
        air.predict[-1].bias.zero_()
        air.predict[-1].bias[0] = 20.0
    counts = torch.tensor([3, 0])
    air.decoder_bias = -60.0  # windows write ~0: every present window is a ghost, the visible count is 0
    assert diagnostics.window_peaks(air, air.infer(x)).max() < 1e-20
    report = diagnostics.ghost_windows(air, x, counts)
    assert report["ghost_fraction"] == 1.0 and report["visible_count_accuracy"] == 0.5
    air.decoder_bias = 60.0  # windows write ~1 inside their square: nothing is a ghost, the visible count is 3
    torch.testing.assert_close(diagnostics.window_peaks(air, air.infer(x)), torch.ones(2, 3, dtype=torch.float64))
    report = diagnostics.ghost_windows(air, x, counts, threshold=0.5)
    assert report["ghost_fraction"] == 0.0 and report["visible_count_accuracy"] == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        diagnostics.ghost_windows(air, x, torch.tensor([1]))


def test_bad_inputs_are_named():
    air = small_air()
    with pytest.raises(ValueError, match=r"shape \[B, 1, 20, 20\]"):
        air.model(torch.zeros(2, 1, 21, 20, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        air.guide(np.zeros((2, 1, 20, 20)))
    with pytest.raises(TypeError, match="floating-point"):
        air.infer(torch.zeros(2, 1, 20, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="num_steps"):
        AIR(num_steps=0)
    with pytest.raises(ValueError, match="scale_prior"):
        AIR(scale_prior=(2.0, -1.0))
    with pytest.raises(ValueError, match="likelihood_scale"):
        AIR(likelihood_scale=0.0)
    with pytest.raises(ValueError, match="count_prior"):
        AIR(count_prior="poisson")
    with pytest.raises(ValueError, match="z_pres_prior"):
        air.z_pres_prior = -1.0
    with pytest.raises(ValueError, match="differ in length"):
        diagnostics.count_accuracy(air, torch.zeros(3, 1, 20, 20, dtype=torch.float64), torch.zeros(2))


@pytest.mark.parametrize("greedy", [False, True])
def test_residual_guide_reads_the_image_minus_what_earlier_steps_drew(greedy):
    air = small_air(num_steps=3, guide_input="residual")
    with torch.no_grad():  # bright windows, so that the residual differs visibly from the image
        air.decoder[-1].bias.fill_(3.0)
        air.predict[-1].bias[0] = 2.0  # most steps present
    read = []
    image_gates = air.rnn.image_gates
    air.rnn.image_gates = lambda flat: read.append(flat.clone()) or image_gates(flat)
    x = torch.rand(6, 1, 20, 20, dtype=torch.float64)
    pyro.set_rng_seed(3)
    if greedy:
        out = air.infer(x)
        z_pres, z_where, z_what = out.z_pres, out.z_where, out.z_what
    else:
        trace = poutine.trace(air.guide).get_trace(x)
        names = ("z_pres", "z_where", "z_what")
        z_pres, z_where, z_what = (torch.stack([trace.nodes[f"{k}_{t}"]["value"] for t in range(3)], 1) for k in names)
    assert len(read) == 3 and z_pres.sum() > 0 and (greedy or z_pres.sum() < z_pres.numel())
    for t in range(3):
        drawn = air.render(z_pres[:, :t], z_where[:, :t], z_what[:, :t]).reshape(6, -1) if t else 0.0
        torch.testing.assert_close(read[t], x.reshape(6, -1) - drawn, atol=1e-12, rtol=0)
    assert (read[1] - read[0]).abs().max() > 0.5


@pytest.mark.parametrize("guide_input", ["image", "residual"])
def test_residual_guide_differentiates_through_what_earlier_steps_drew(guide_input):
    # the residual guide's density of later steps depends on the decoder through what they read (the ELBO's
    # gradient follows that path, and the one through step 0's latents); the image guide's does not
    air = small_air(guide_input=guide_input)
    x = torch.rand(4, 1, 20, 20, dtype=torch.float64)
    pyro.set_rng_seed(1)
    trace = poutine.trace(poutine.condition(air.guide, data={"z_pres_0": torch.ones(4, dtype=torch.float64)}))
    trace = trace.get_trace(x)
    trace.compute_log_prob()
    later = sum(trace.nodes[f"{k}_{t}"]["log_prob"].sum() for t in (1, 2) for k in ("z_pres", "z_where", "z_what"))
    decoder = torch.autograd.grad(later, list(air.decoder.parameters()), allow_unused=True)
    if guide_input == "residual":
        assert all(g is not None and g.abs().max() > 0 for g in decoder)
    else:
        assert all(g is None for g in decoder)


def test_unknown_guide_input_is_refused():
    with pytest.raises(ValueError, match="guide_input"):
        small_air(guide_input="difference")
