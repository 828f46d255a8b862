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
With ``guide_input="image"`` (the original AIR guide) every step reads the whole image (the README says what
that gives on probrep's scenes; :mod:`probrep.models.air.diagnostics` measures it).

``z_pres`` is not reparameterisable: ``TraceGraph_ELBO`` estimates its gradient by the score function with
data-dependent neural baselines (a second LSTM over what the guide reads and the detached latents), which Pyro
trains through its baseline loss ``sum (downstream cost - baseline)^2``; give them their own learning rate:

    air = AIR(image_size=50, num_steps=3, z_pres_prior=0.01)
    fit = svi.fit(air, images, steps=..., lr=1e-4, elbo=TraceGraphELBO(),
                  param_options=air.baseline_param_options(1e-2))
    air.infer(images).counts, air.boxes(air.infer(images).z_where)

(``TraceGraphELBO`` lives in :mod:`probrep.inference.svi`; it is what ``elbo="tracegraph"`` selects.)

The model decodes and writes all N windows in one batched call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from probrep._checks import integer, one_of, real
from probrep.models.air.networks import Baseline, ImageLSTMCell
from probrep.models.air.priors import COUNT_PRIORS, count_prior_step_probs
from probrep.models.air.spatial import image_to_window, window_to_image, z_where_to_boxes
from probrep.models.layers import mlp

__all__ = ["AIR", "AIRInference", "GUIDE_INPUTS"]

GUIDE_INPUTS = ("image", "residual")


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
            annealing (``AnnealAttribute(air, "z_pres_prior", schedule)`` of :mod:`probrep.training.schedules`).
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
            try:
                integer(value, key, minimum=0 if key in ("predict_hidden", "baseline_hidden") else 1)
            except TypeError as exc:  # a float or a bool where a size belongs: a bad value like any other
                raise ValueError(str(exc)) from exc
        if len(tuple(scale_prior)) != 2 or not (scale_prior[0] > 0 and scale_prior[1] > 0):
            raise ValueError(f"scale_prior must be (mean > 0, sd > 0), got {scale_prior!r}")
        real(position_prior_sd, "position_prior_sd", positive=True)
        real(likelihood_scale, "likelihood_scale", positive=True)
        one_of(count_prior, "count_prior", COUNT_PRIORS)
        one_of(guide_input, "guide_input", GUIDE_INPUTS)
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
        self.baseline = Baseline(pixels, latents, rnn_hidden, baseline_hidden) if self.use_baselines else None

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
