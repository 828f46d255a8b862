"""Attend-Infer-Repeat (Eslami et al. 2016) as a Pyro model/guide pair: count, locate and describe objects.

Model, for steps t = 0..N-1 (every site after the first ``z_pres = 0`` is masked out of the log joint):

    z_pres_t  ~ Bernoulli(p_t * z_pres_{t-1})                 p_t from a geometric-like prior on the count
    z_where_t ~ Normal(scale_prior, I * (s_sd, pos_sd, pos_sd))   (s, x, y): see probrep.models.air.spatial
    z_what_t  ~ Normal(0, I)                                    [z_what_dim]
    canvas    = sum_t z_pres_t * write(sigmoid(decoder(z_what_t) + decoder_bias), z_where_t)
    x         ~ Normal(canvas, likelihood_scale)                pixel-wise

Guide: an LSTM reads the image and the previous step's latents and predicts ``z_pres_t`` (Bernoulli) and
``z_where_t`` (Normal); an encoder predicts ``z_what_t`` from the window read out of the image at ``z_where_t``
with the inverse transform. By default (``guide_input="residual"``, the paper's Difference AIR) "the image" at
step t is the image minus the windows steps 0..t-1 drew with the model's decoder: a step that finds nothing
left to explain sees what the first step of an empty scene sees, and learns to stop the same way.
With ``guide_input="image"`` (the original AIR guide) every step reads the whole image; trained with Adam 1e-4
on probrep's scenes it counts every non-empty scene as N: early on, faint windows stacked on one object all
raise the ELBO, the ``z_pres`` logits of every step saturate, and once the windows have specialised the extra
ones stay on as empty "ghosts" whose ``z_pres = 0`` is never sampled, so the score function cannot turn them off
(:meth:`AIR.ghost_windows`, :meth:`AIR.count_elbo`).

``z_pres`` is not reparameterisable: ``TraceGraph_ELBO`` estimates its gradient by the score function with
data-dependent neural baselines (a second LSTM over what the guide reads and the detached latents), which Pyro
trains through its baseline loss ``sum (downstream cost - baseline)^2``; give them their own learning rate:

    air = AIR(image_size=50, num_steps=3, z_pres_prior=0.01)
    fit = svi.fit(air, images, steps=..., lr=1e-4, elbo=TraceGraphELBO(),
                  param_options=air.baseline_param_options(1e-2))
    air.infer(images).counts, air.boxes(air.infer(images).z_where)

(``TraceGraphELBO`` lives in :mod:`probrep.inference.svi`; it is what ``elbo="tracegraph"`` selects.)

Speed. The LSTM input is ``[image, z_where, z_what, z_pres]``; its input projection ``W_image @ x`` is the bulk
of the LSTM's work (2500 of 2554 input features at 50x50), so it is a separate product: with the image guide it
is computed once per batch rather than once per step, for the guide and the baseline alike (the residual guide
needs it at every step). This is the same function as an ``nn.LSTMCell`` on the concatenated input. The model
decodes and writes all N windows in one batched call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from probrep.models.air.spatial import image_to_window, window_to_image, z_where_to_boxes
from probrep.models.layers import mlp

__all__ = [
    "AIR",
    "AIRInference",
    "ImageLSTMCell",
    "count_prior",
    "count_prior_step_probs",
    "exponential_anneal",
    "count_confusion",
]

COUNT_PRIORS = ("geometric", "constant")
GUIDE_INPUTS = ("image", "residual")


# ------------------------------------------------------------------------------------------- count prior
def count_prior_step_probs(k: float, num_steps: int, kind: str = "geometric") -> list[float]:
    """Success probabilities ``p_t = P(count > t | count >= t)`` of the ``z_pres`` chain.

    ``"geometric"``: the truncated geometric ``P(count = n) ∝ k^n`` for n = 0..N (k > 0), so
    ``p_t = sum_{n>t} k^n / sum_{n>=t} k^n``; every extra object costs ``log k`` nats. ``"constant"``:
    ``p_t = k`` (0 < k <= 1) at every step.
    """
    if kind not in COUNT_PRIORS:
        raise ValueError(f"unknown count prior {kind!r}: expected one of {COUNT_PRIORS}")
    if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0) or (kind == "constant" and k > 1):
        bound = "in (0, 1]" if kind == "constant" else "> 0"
        raise ValueError(f"z_pres_prior must be a finite number {bound} for the {kind} prior, got {k!r}")
    if kind == "constant":
        return [float(k)] * num_steps
    powers = [float(k) ** n for n in range(num_steps + 1)]
    return [sum(powers[t + 1 :]) / sum(powers[t:]) for t in range(num_steps)]


def count_prior(k: float, num_steps: int, kind: str = "geometric") -> np.ndarray:
    """The prior ``P(count = n)`` for n = 0..N implied by :func:`count_prior_step_probs`."""
    probs = count_prior_step_probs(k, num_steps, kind)
    out, alive = np.zeros(num_steps + 1), 1.0
    for t, p in enumerate(probs):
        out[t] = alive * (1.0 - p)
        alive *= p
    out[num_steps] = alive
    return out


def exponential_anneal(initial: float, final: float, begin: int, duration: int) -> Callable[[int], float]:
    """``step -> value``: ``initial`` until ``begin``, then ``initial * (final/initial)^((step-begin)/duration)``
    until it reaches ``final`` (the z_pres prior annealing of Eslami et al.)."""
    if not (initial > 0 and final > 0 and duration > 0 and begin >= 0):
        raise ValueError(
            f"exponential_anneal needs initial > 0, final > 0, duration > 0, begin >= 0; got {initial}, {final}, "
            f"{duration}, {begin}"
        )
    rate = math.log(final / initial) / duration

    def schedule(step: int) -> float:
        value = initial * math.exp(rate * max(0, step - begin))
        return max(value, final) if final < initial else min(value, final)

    return schedule


def count_confusion(true_counts, inferred_counts, max_true: int, max_inferred: int) -> np.ndarray:
    """Confusion matrix ``[max_true + 1, max_inferred + 1]``: row = true count, column = inferred count."""
    t = np.asarray(true_counts, dtype=np.int64).reshape(-1)
    i = np.asarray(inferred_counts, dtype=np.int64).reshape(-1)
    if t.shape != i.shape:
        raise ValueError(f"true_counts and inferred_counts differ in length: {t.shape} vs {i.shape}")
    if t.size and (t.min() < 0 or t.max() > max_true or i.min() < 0 or i.max() > max_inferred):
        raise ValueError(f"counts must lie in [0, {max_true}] (true) and [0, {max_inferred}] (inferred)")
    out = np.zeros((max_true + 1, max_inferred + 1), dtype=np.int64)
    np.add.at(out, (t, i), 1)
    return out


# --------------------------------------------------------------------------------------------------- ELBO
# ------------------------------------------------------------------------------------------------ networks
class ImageLSTMCell(nn.Module):
    """An LSTM cell on the input ``[image, latents]`` whose image projection is computed once per sequence.

    ``gates = W_image @ image + W_rec @ [latents, h] + b``, split into input, forget, cell and output gates
    (the order of ``nn.LSTMCell``); ``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(c')``.
    """

    def __init__(self, image_features: int, latent_features: int, hidden: int):
        super().__init__()
        self.hidden = int(hidden)
        bound = 1.0 / math.sqrt(hidden)  # nn.LSTMCell's initialisation
        self.weight_image = nn.Parameter(torch.empty(4 * hidden, image_features).uniform_(-bound, bound))
        self.weight_rec = nn.Parameter(torch.empty(4 * hidden, latent_features + hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * hidden).uniform_(-bound, bound))

    def image_gates(self, image: torch.Tensor) -> torch.Tensor:
        """``W_image @ image + b`` for a batch ``[B, image_features]`` -> ``[B, 4 hidden]``."""
        return F.linear(image, self.weight_image, self.bias)

    def forward(
        self, image_gates: torch.Tensor, latents: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = image_gates + F.linear(torch.cat([latents, h], dim=-1), self.weight_rec)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class _Baseline(nn.Module):
    """The data-dependent baseline of ``z_pres``: its own LSTM over what the guide reads and the detached latents."""

    def __init__(self, image_features: int, latent_features: int, hidden: int, head_hidden: int):
        super().__init__()
        self.rnn = ImageLSTMCell(image_features, latent_features, hidden)
        self.head = mlp((hidden, head_hidden, 1) if head_hidden else (hidden, 1))


@dataclass
class AIRInference:
    """What the guide inferred for a batch (greedy: z_pres = [p > 0.5], z_where and z_what at their means)."""

    counts: torch.Tensor  # int64 [B]
    z_pres: torch.Tensor  # [B, N] in {0, 1}
    z_where: torch.Tensor  # [B, N, 3]
    z_what: torch.Tensor  # [B, N, z_what_dim]
    z_pres_probs: torch.Tensor  # [B, N]: guide probability of each step (0 after the first z_pres = 0)


# -------------------------------------------------------------------------------------------------- the model
class AIR(nn.Module):
    """Attend-Infer-Repeat on square single-channel images (see the module docstring).

    Args:
        image_size: side H of the images ``[B, 1, H, H]`` (or ``[B, H, H]``).
        window_size: side w of the object windows the decoder writes and the encoder reads.
        num_steps: N, the most objects the model explains.
        z_what_dim, rnn_hidden, encoder_hidden, decoder_hidden, predict_hidden, baseline_hidden: network sizes
            (Pyro's example: 50, 256, 200, 200; the tutorial's recipe adds 200-unit predict/baseline heads).
        z_pres_prior: k of the count prior (see :func:`count_prior_step_probs`); settable during training for
            annealing (:meth:`anneal`).
        count_prior: ``"geometric"`` (``P(n) ∝ k^n``) or ``"constant"`` (success probability k at each step).
        scale_prior: ``(mean, sd)`` of the window scale s; ``position_prior_sd``: sd of x and y (mean 0).
        likelihood_scale: pixel standard deviation (0.3 in the paper).
        decoder_bias: added to the decoder output before the sigmoid; negative starts with faint windows so
            the guide learns to use steps early (the tutorial's -2).
        use_baselines: neural baselines for ``z_pres`` (else plain score-function gradients).
        guide_input: what the guide reads at step t. ``"residual"`` (default): the image minus what steps
            0..t-1 drew (the paper's Difference AIR), so a step sees what is left to explain and "nothing left"
            is the same decision as "empty image". ``"image"``: the whole image at every step (the original
            AIR guide), which at Adam 1e-4 keeps empty "ghost" windows on (see the module docstring).
        name: prefix of the Pyro parameter names.
    """

    default_elbo = "tracegraph"

    def __init__(
        self,
        image_size: int = 50,
        window_size: int = 28,
        num_steps: int = 3,
        *,
        z_what_dim: int = 50,
        rnn_hidden: int = 256,
        encoder_hidden: int = 200,
        decoder_hidden: int = 200,
        predict_hidden: int = 200,
        baseline_hidden: int = 200,
        z_pres_prior: float = 0.01,
        count_prior: str = "geometric",
        scale_prior: Sequence[float] = (2.3, 0.2),
        position_prior_sd: float = 1.0,
        likelihood_scale: float = 0.3,
        decoder_bias: float = -2.0,
        use_baselines: bool = True,
        guide_input: str = "residual",
        name: str = "air",
    ):
        super().__init__()
        sizes = {
            "image_size": image_size,
            "window_size": window_size,
            "num_steps": num_steps,
            "z_what_dim": z_what_dim,
            "rnn_hidden": rnn_hidden,
            "encoder_hidden": encoder_hidden,
            "decoder_hidden": decoder_hidden,
        }
        for key, value in {**sizes, "predict_hidden": predict_hidden, "baseline_hidden": baseline_hidden}.items():
            minimum = 0 if key in ("predict_hidden", "baseline_hidden") else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
        if len(tuple(scale_prior)) != 2 or not (scale_prior[0] > 0 and scale_prior[1] > 0):
            raise ValueError(f"scale_prior must be (mean > 0, sd > 0), got {scale_prior!r}")
        for key, value in (("position_prior_sd", position_prior_sd), ("likelihood_scale", likelihood_scale)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a finite number > 0, got {value!r}")
        if count_prior not in COUNT_PRIORS:
            raise ValueError(f"unknown count_prior {count_prior!r}: expected one of {COUNT_PRIORS}")
        if guide_input not in GUIDE_INPUTS:
            raise ValueError(f"unknown guide_input {guide_input!r}: expected one of {GUIDE_INPUTS}")
        self.guide_input = guide_input
        self.image_size, self.window_size, self.num_steps = int(image_size), int(window_size), int(num_steps)
        self.z_what_dim = int(z_what_dim)
        self.count_prior = count_prior
        self.z_pres_prior = z_pres_prior  # validated by the setter
        self.likelihood_scale = float(likelihood_scale)
        self.decoder_bias = float(decoder_bias)
        self.use_baselines = bool(use_baselines)
        self.name = name
        # kept as Python floats and made into tensors of the data's dtype and device where used, so that a
        # float64 model has exactly these values
        self.where_prior_loc = (float(scale_prior[0]), 0.0, 0.0)
        self.where_prior_scale = (float(scale_prior[1]), float(position_prior_sd), float(position_prior_sd))

        pixels, window = self.image_size**2, self.window_size**2
        latents = 3 + self.z_what_dim + 1
        self.rnn = ImageLSTMCell(pixels, latents, rnn_hidden)
        self.predict = mlp((rnn_hidden, predict_hidden, 7) if predict_hidden else (rnn_hidden, 7))
        self.encoder = mlp((window, encoder_hidden, 2 * self.z_what_dim))
        self.decoder = mlp((self.z_what_dim, decoder_hidden, window))
        self.baseline = _Baseline(pixels, latents, rnn_hidden, baseline_hidden) if self.use_baselines else None

    # ---------------------------------------------------------------------------------------------- settings
    @property
    def z_pres_prior(self) -> float:
        return self._z_pres_prior

    @z_pres_prior.setter
    def z_pres_prior(self, value: float) -> None:
        count_prior_step_probs(value, 1, self.count_prior)  # validates
        self._z_pres_prior = float(value)

    @property
    def run_config(self) -> dict[str, str]:
        """Settings ``svi.fit`` stores in checkpoints and checks on resume: the two guides have parameters of
        the same shapes, so only this tells a residual-guide checkpoint from an image-guide one."""
        return {"guide_input": self.guide_input}

    def prior_step_probs(self) -> list[float]:
        """``p_t`` of the model's ``z_pres`` chain under the current ``z_pres_prior``."""
        return count_prior_step_probs(self._z_pres_prior, self.num_steps, self.count_prior)

    def anneal(self, schedule: Callable[[int], float]) -> Callable:
        """Set ``z_pres_prior = schedule(0)`` now and return an ``svi.fit`` callback that sets it to
        ``schedule(step)`` after each step (so step ``k + 1`` trains with ``schedule(k)``)."""
        self.z_pres_prior = schedule(0)

        def callback(info) -> None:
            self.z_pres_prior = schedule(info.step)

        return callback

    def baseline_param_options(self, baseline_lr: float) -> Callable[[str], dict | None]:
        """``param_options`` for ``svi.fit`` giving the baseline networks their own learning rate."""
        prefix = f"{self.name}.baseline"
        return lambda name: {"lr": float(baseline_lr)} if name.startswith(prefix) else None

    # -------------------------------------------------------------------------------------------- helpers
    def _images(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``[B, 1, H, H]`` or ``[B, H, H]`` images and return ``[B, H, H]``."""
        if not torch.is_tensor(x):
            raise TypeError(f"AIR expects a torch.Tensor of images, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"AIR expects floating-point images, got dtype {x.dtype}")
        h = self.image_size
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 3 or tuple(x.shape[1:]) != (h, h):
            raise ValueError(f"AIR expects images of shape [B, 1, {h}, {h}] or [B, {h}, {h}], got {tuple(x.shape)}")
        return x

    def decode(self, z_what: torch.Tensor) -> torch.Tensor:
        """Windows ``[..., w, w]`` in (0, 1) from codes ``[..., z_what_dim]``."""
        out = torch.sigmoid(self.decoder(z_what) + self.decoder_bias)
        return out.view(*z_what.shape[:-1], self.window_size, self.window_size)

    def _placed(self, z_where: torch.Tensor, z_what: torch.Tensor) -> torch.Tensor:
        """Every step's window written on its own canvas, ``[B, N, H * H]``, all steps in one batched call."""
        b, n = z_where.shape[:2]
        windows = self.decode(z_what.reshape(b * n, z_what.shape[-1]))
        return window_to_image(windows, z_where.reshape(b * n, 3), self.image_size).view(b, n, -1)

    def render(self, z_pres: torch.Tensor, z_where: torch.Tensor, z_what: torch.Tensor) -> torch.Tensor:
        """The canvas ``[B, H, H] = sum_t z_pres_t * write(decode(z_what_t), z_where_t)``, all steps at once."""
        canvas = (self._placed(z_where, z_what) * z_pres.unsqueeze(-1)).sum(1)
        return canvas.view(z_pres.shape[0], self.image_size, self.image_size)

    def _where_dist(self, out: torch.Tensor) -> dist.Normal:
        """Guide's Normal over z_where from the predict head: standardised offsets from the prior."""
        prior_loc, prior_scale = out.new_tensor(self.where_prior_loc), out.new_tensor(self.where_prior_scale)
        loc = prior_loc + prior_scale * out[:, 1:4]
        scale = prior_scale * (F.softplus(out[:, 4:7]) + 1e-4)
        return dist.Normal(loc, scale)

    def _what_dist(self, window: torch.Tensor) -> dist.Normal:
        out = self.encoder(window.reshape(window.shape[0], -1))
        return dist.Normal(out[:, : self.z_what_dim], F.softplus(out[:, self.z_what_dim :]) + 1e-4)

    # ------------------------------------------------------------------------------------------ Pyro programs
    def model(self, x: torch.Tensor) -> None:
        """p(z_pres, z_where, z_what) p(x | canvas), with x observed; sites after the first z_pres = 0 masked."""
        pyro.module(f"{self.name}.decoder", self.decoder)
        images = self._images(x)
        b = images.shape[0]
        probs = self.prior_step_probs()
        prior_loc, prior_scale = images.new_tensor(self.where_prior_loc), images.new_tensor(self.where_prior_scale)
        where_prior = dist.Normal(prior_loc, prior_scale).expand([b, 3]).to_event(1)
        what_prior = dist.Normal(images.new_zeros(()), 1.0).expand([b, self.z_what_dim]).to_event(1)
        with pyro.plate("data", b):
            prev = images.new_ones(b)
            pres, where, what = [], [], []
            for t in range(self.num_steps):
                z_pres = pyro.sample(f"z_pres_{t}", dist.Bernoulli(probs[t] * prev).mask(prev > 0))
                on = z_pres > 0
                where.append(pyro.sample(f"z_where_{t}", where_prior.mask(on)))
                what.append(pyro.sample(f"z_what_{t}", what_prior.mask(on)))
                pres.append(z_pres)
                prev = z_pres
            canvas = self.render(torch.stack(pres, 1), torch.stack(where, 1), torch.stack(what, 1))
            pyro.sample(
                "x", dist.Normal(canvas.view(b, -1), self.likelihood_scale).to_event(1), obs=images.reshape(b, -1)
            )

    def guide(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """q(z | x): the LSTM attends step by step; returns the sampled ``z_pres [B, N]``, ``z_where [B, N, 3]``,
        ``z_what [B, N, D]``."""
        pyro.module(f"{self.name}.rnn", self.rnn)
        pyro.module(f"{self.name}.predict", self.predict)
        pyro.module(f"{self.name}.encoder", self.encoder)
        if self.baseline is not None:
            pyro.module(f"{self.name}.baseline", self.baseline)
        images = self._images(x)
        with pyro.plate("data", images.shape[0]):
            return self._attend(images, greedy=False)

    def _attend(self, images: torch.Tensor, greedy: bool) -> dict[str, torch.Tensor]:
        """The guide's recurrence; ``greedy`` takes modes/means instead of calling ``pyro.sample``."""
        b = images.shape[0]
        flat = images.reshape(b, -1)
        residual = self.guide_input == "residual"
        use_baseline = self.baseline is not None and not greedy
        gates = self.rnn.image_gates(flat)
        state = (flat.new_zeros(b, self.rnn.hidden), flat.new_zeros(b, self.rnn.hidden))
        if use_baseline:
            bl_gates = self.baseline.rnn.image_gates(flat)
            bl_state = state
        seen = images  # what this step reads (``flat`` flattened): the image, or what earlier steps left unexplained
        z_where = flat.new_zeros(b, 3)
        z_what = flat.new_zeros(b, self.z_what_dim)
        prev = flat.new_ones(b)
        out: dict[str, list[torch.Tensor]] = {"z_pres": [], "z_where": [], "z_what": [], "z_pres_probs": []}
        for t in range(self.num_steps):
            if residual and t > 0:
                # what the previous step drew, differentiably: the ELBO's gradient follows every path by which a
                # step's latents (and the decoder) change what later steps read. (Cutting these paths, as a
                # stop-gradient on the canvas would, converged faster in a 6,000-step probe but follows a biased
                # gradient.) The baseline reads the same residual, detached like its other inputs.
                flat = flat - prev.unsqueeze(-1) * self._placed(z_where.unsqueeze(1), z_what.unsqueeze(1)).view(b, -1)
                seen = flat.view_as(images)
                gates = self.rnn.image_gates(flat)
                if use_baseline:
                    bl_gates = self.baseline.rnn.image_gates(flat.detach())
            latents = torch.cat([z_where, z_what, prev.unsqueeze(-1)], dim=-1)
            state = self.rnn(gates, latents, state)
            head = self.predict(state[0])
            p = torch.sigmoid(head[:, 0]) * prev
            where_q = self._where_dist(head)
            if greedy:
                z_pres = (p > 0.5).to(p.dtype)
                z_where = where_q.mean
                z_what = self._what_dist(image_to_window(seen, z_where, self.window_size)).mean
            else:
                infer = {}
                if use_baseline:
                    bl_state = self.baseline.rnn(bl_gates, latents.detach(), bl_state)
                    value = self.baseline.head(bl_state[0]).squeeze(-1) * prev
                    infer = {"baseline": {"baseline_value": value}}
                z_pres = pyro.sample(f"z_pres_{t}", dist.Bernoulli(p).mask(prev > 0), infer=infer)
                on = z_pres > 0
                z_where = pyro.sample(f"z_where_{t}", where_q.to_event(1).mask(on))
                what_q = self._what_dist(image_to_window(seen, z_where, self.window_size))
                z_what = pyro.sample(f"z_what_{t}", what_q.to_event(1).mask(on))
            for key, value in (("z_pres", z_pres), ("z_where", z_where), ("z_what", z_what), ("z_pres_probs", p)):
                out[key].append(value)
            prev = z_pres
        return {key: torch.stack(values, 1) for key, values in out.items()}

    # -------------------------------------------------------------------------------------------- utilities
    @torch.no_grad()
    def infer(self, x: torch.Tensor, sample: bool = False) -> AIRInference:
        """Run the guide on a batch: greedy (``z_pres = [p > 0.5]``, means) or one ``sample`` of it."""
        images = self._images(x)
        if sample:
            with pyro.plate("data", images.shape[0]):
                out = self._attend(images, greedy=False)
        else:
            out = self._attend(images, greedy=True)
        counts = out["z_pres"].sum(1).round().long()
        return AIRInference(counts, out["z_pres"], out["z_where"], out["z_what"], out["z_pres_probs"])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, inference: AIRInference | None = None) -> torch.Tensor:
        """The model's canvas for the greedy latents of ``x`` (or the given inference): ``[B, 1, H, H]``."""
        inference = self.infer(x) if inference is None else inference
        return self.render(inference.z_pres, inference.z_where, inference.z_what).unsqueeze(1)

    def boxes(self, z_where: torch.Tensor) -> torch.Tensor:
        """Pixel boxes ``(x0, y0, x1, y1)`` of the windows at ``z_where [..., 3]``."""
        return z_where_to_boxes(z_where, self.image_size)

    @torch.no_grad()
    def count_accuracy(
        self, images: torch.Tensor, counts: torch.Tensor, batch_size: int = 500, max_count: int | None = None
    ) -> tuple[float, np.ndarray]:
        """Fraction of images whose greedy inferred count equals the true count, and the confusion matrix
        ``[max_count + 1, N + 1]`` (rows: true count, columns: inferred)."""
        if len(images) != len(counts):
            raise ValueError(f"images and counts differ in length: {len(images)} vs {len(counts)}")
        if len(images) == 0:
            raise ValueError("count_accuracy needs at least one image")
        true = torch.as_tensor(counts).reshape(-1).cpu().numpy()
        inferred = np.concatenate(
            [self.infer(images[i : i + batch_size]).counts.cpu().numpy() for i in range(0, len(images), batch_size)]
        )
        top = int(true.max()) if max_count is None else int(max_count)
        return float((true == inferred).mean()), count_confusion(true, inferred, top, self.num_steps)

    @torch.no_grad()
    def window_peaks(self, inference: AIRInference) -> torch.Tensor:
        """The brightest pixel each step's window writes on the canvas ``[B, N]``, present or not."""
        return self._placed(inference.z_where, inference.z_what).amax(-1)

    @torch.no_grad()
    def ghost_windows(self, images: torch.Tensor, counts, threshold: float = 0.1, batch_size: int = 500) -> dict:
        """How far ``z_pres`` counts differ from what the model draws. A *ghost* is a present window whose
        brightest pixel is below ``threshold`` (it adds nothing visible); the *visible count* counts present
        windows that are not ghosts. Returns the fraction of present windows that are ghosts and the accuracy of
        the visible count against ``counts``: a model whose visible count is right but whose ``z_pres`` count is
        not has learned the scenes' decomposition and pays the count prior for empty windows instead of switching
        them off."""
        true = torch.as_tensor(counts).reshape(-1).cpu()
        if len(images) != len(true):
            raise ValueError(f"images and counts differ in length: {len(images)} vs {len(true)}")
        present = ghosts = correct = 0
        for i in range(0, len(images), batch_size):
            inference = self.infer(images[i : i + batch_size])
            on = inference.z_pres > 0
            ghost = on & (self.window_peaks(inference) < threshold)
            present += int(on.sum())
            ghosts += int(ghost.sum())
            correct += int(((on & ~ghost).sum(1).cpu() == true[i : i + batch_size]).sum())
        return {
            "threshold": float(threshold),
            "ghost_fraction": ghosts / present if present else 0.0,
            "visible_count_accuracy": correct / len(true),
        }

    @torch.no_grad()
    def count_elbo(self, x: torch.Tensor, count: int, num_samples: int = 8) -> torch.Tensor:
        """The ELBO of each image ``[B]`` with the count forced to ``count``: ``z_pres = (1,..,1,0,..)`` in both
        model and guide, ``E_q[log p(x, z) - log q(z_where, z_what | x, z_pres)]`` over ``num_samples`` draws of
        the guide. Comparing counts shows which explanation the objective itself prefers, apart from the
        guide's ``z_pres`` (a model that over-counts because extra windows raise the ELBO needs a stronger
        count prior; one whose single windows explain an object badly sits in a local optimum)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= self.num_steps:
            raise ValueError(f"count must be an integer in [0, {self.num_steps}], got {count!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        images = self._images(x)
        b = images.shape[0]
        forced = {f"z_pres_{t}": images.new_full((b,), float(t < count)) for t in range(self.num_steps)}
        total = images.new_zeros(b)
        for _ in range(num_samples):
            guide = poutine.trace(poutine.condition(self.guide, data=forced)).get_trace(images)
            model = poutine.trace(poutine.replay(poutine.condition(self.model, data=forced), trace=guide))
            joint = model.get_trace(images)
            joint.compute_log_prob()
            guide.compute_log_prob()
            log_p = sum(site["log_prob"] for site in joint.nodes.values() if site["type"] == "sample")
            log_q = sum(
                site["log_prob"]
                for name, site in guide.nodes.items()
                if site["type"] == "sample" and not name.startswith("z_pres")
            )
            total += log_p - log_q
        return total / num_samples

    @torch.no_grad()
    def count_elbo_table(self, images: torch.Tensor, counts, per_count: int = 100, num_samples: int = 8) -> dict:
        """Mean :meth:`count_elbo` per true count (rows) and forced count 0..N (columns), over at most
        ``per_count`` images of each true count: ``{true count: [ELBO at forced count 0, 1, ..]}``."""
        true = torch.as_tensor(counts).reshape(-1).to(images.device)
        table = {}
        for c in sorted(set(true.tolist())):
            chosen = images[true == c][:per_count]
            table[int(c)] = [
                round(float(self.count_elbo(chosen, n, num_samples).mean()), 1) for n in range(self.num_steps + 1)
            ]
        return table
