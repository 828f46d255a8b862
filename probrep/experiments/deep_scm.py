"""A deep structural causal model of dSprites: the data SCM's factors as parents of an image node whose mechanism
is a conditional VAE (Pawlowski, Castro and Glocker 2020, "Deep Structural Causal Modelling").

    shape, scale, orientation, posX, posY ~ the dSprites data SCM (probrep.data.sprites_scm)
    image = f(factors, z),   z ~ N(0, I),   f the decoder of a :class:`~probrep.models.ConditionalVAE`

    deep = DeepSCM(cvae)                      # or load_deep_scm("runs/deep_scm") after training
    deep.sample(8)                            # {"shape": [8], ..., "image": [8, 1, 64, 64], "z": [8, D]}
    deep.do({"shape": "heart"}).sample(8)     # every factor but shape as before, then images
    deep.counterfactual({"image": x, "shape": s, "scale": ..., ...}, do={"shape": "heart"})

A counterfactual follows Pearl's three steps with an amortised, approximate abduction: the image's noise is the
posterior mean of q(z | x, factors) (the encoder), the intervened factors replace the observed ones, and the
decoder gives the counterfactual image (the mean image: pixel probabilities). The factors are roots of the data
SCM without confounding, so a factor that is not intervened on keeps its observed value; a confounded factor SCM
would need its own abduction and is refused. Factors are dSprites classes (0-based integers); ``shape`` also takes
its name ("square", "ellipse", "heart"). Text interventions (``"min(posX + 8, 31)"``) go to the data SCM's ``do``
in :meth:`DeepSCM.do`; counterfactuals take values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from probrep.data.sprites import FACTOR_SIZES, SHAPE_NAMES, DSprites
from probrep.data.sprites_scm import FACTOR_NODES, classes_from_samples, dsprites_scm
from probrep.models.conditional_vae import ConditionalVAE
from probrep.training.rng import forked

#: the parents of the image node and their numbers of classes
FACTOR_CLASSES: dict[str, int] = dict(zip(FACTOR_NODES, FACTOR_SIZES[1:]))
#: orientation enters as cos/sin of k * angle for these k (360, 180 and 90 degree periods: the heart's, the
#: ellipse's and the square's symmetries), beside its one-hot class
ORIENTATION_HARMONICS = (1, 2, 4)
#: length of the condition vector: a one-hot per factor and the orientation harmonics
CONDITION_DIM = sum(FACTOR_CLASSES.values()) + 2 * len(ORIENTATION_HARMONICS)
IMAGE_NODE = "image"


def factor_features(classes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Factor classes ``[N, 5]`` (shape, scale, orientation, posX, posY) -> the condition ``[N, CONDITION_DIM]``.

    One-hot codes of every factor (so the decoder can learn each value as it is) and ``cos, sin`` of
    ``k * angle`` for ``k`` in :data:`ORIENTATION_HARMONICS` (so that orientations a shape cannot tell apart are
    close inputs). The classes are checked (:func:`check_classes`).
    """
    cls = torch.as_tensor(check_classes(classes))
    parts = [torch.nn.functional.one_hot(cls[:, j], k).float() for j, k in enumerate(FACTOR_CLASSES.values())]
    angle = cls[:, 2].double() * (2.0 * np.pi / (FACTOR_CLASSES["orientation"] - 1))
    for k in ORIENTATION_HARMONICS:
        parts += [torch.cos(k * angle).float()[:, None], torch.sin(k * angle).float()[:, None]]
    return torch.cat(parts, dim=1)


def check_classes(classes: Any) -> np.ndarray:
    """Factor classes as int64 ``[N, 5]``, each in range; a ``ValueError`` names the factor otherwise."""
    cls = np.asarray(classes.cpu() if torch.is_tensor(classes) else classes)
    if cls.ndim != 2 or cls.shape[1] != len(FACTOR_NODES):
        raise ValueError(f"factor classes must have shape [N, {len(FACTOR_NODES)}] ({FACTOR_NODES}), got {cls.shape}")
    return np.stack([_class_column(name, cls[:, j]) for j, name in enumerate(FACTOR_NODES)], axis=1)


def _class_column(name: str, values: Any) -> np.ndarray:
    """One factor's values -> int64 classes: integers (or integer-valued floats) in range, shape names for
    ``shape``. A ``ValueError`` names the factor and the value."""
    arr = np.asarray(values)
    if arr.dtype.kind in "US" or arr.dtype == object:
        if name != "shape":
            raise ValueError(f"factor {name!r} takes class numbers, got {arr.reshape(-1)[0]!r}")
        out = np.empty(arr.shape, dtype=np.int64)
        for i, v in np.ndenumerate(arr):
            if isinstance(v, str):
                if v not in SHAPE_NAMES:
                    raise ValueError(f"factor 'shape': unknown shape {v!r}, expected one of {SHAPE_NAMES}")
                out[i] = SHAPE_NAMES.index(v)
            else:
                out[i] = _class_column(name, np.asarray(v))
        return out
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ValueError(f"factor {name!r} takes integer classes, got dtype {arr.dtype}")
    size = FACTOR_CLASSES[name]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.rint(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.rint(np.nan_to_num(arr))))].reshape(-1)[0]
            raise ValueError(f"factor {name!r} takes integer classes in [0, {size}), got {bad}")
    bad = (arr < 0) | (arr >= size)
    if np.any(bad):
        raise ValueError(f"factor {name!r} takes classes in [0, {size}), got {arr[bad].reshape(-1)[0]}")
    return np.rint(arr).astype(np.int64)


class PlacedSpriteDecoder(nn.Module):
    """A decoder that knows what position does: ``[z, c] -> logits [N, 1, 64, 64]``.

    The sprite is drawn in a ``WINDOW`` x ``WINDOW`` window from z and the condition without its position codes
    (dense to a 4x4x64 grid, then three 4x4 stride-2 transposed convolutions, 64-64-32-1), and the window is
    pasted into a canvas of one learned background logit with its top-left corner at (posY, posX), read from
    the position one-hots. Translation is thereby exact and free to learn: every example trains the same
    window pixels, which is what lets shape, scale and orientation be learned in a few thousand CPU steps.
    """

    WINDOW = 32

    def __init__(self, latent_dim: int, hidden: int = 256):
        super().__init__()
        self.latent_dim = latent_dim
        appearance = latent_dim + CONDITION_DIM - FACTOR_CLASSES["posX"] - FACTOR_CLASSES["posY"]
        self.head = nn.Sequential(
            nn.Linear(appearance, hidden), nn.ReLU(), nn.Linear(hidden, 64 * 4 * 4), nn.ReLU()
        )  # fmt: skip
        chans = (64, 64, 32, 1)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1))
            if i < len(chans) - 2:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)
        self.background = nn.Parameter(torch.tensor(-6.0))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        z, c = inputs[:, : self.latent_dim], inputs[:, self.latent_dim :]
        x0 = sum(list(FACTOR_CLASSES.values())[:3])  # where posX's one-hot starts
        y0, y1 = x0 + FACTOR_CLASSES["posX"], x0 + FACTOR_CLASSES["posX"] + FACTOR_CLASSES["posY"]
        pos_x, pos_y = c[:, x0:y0].argmax(1), c[:, y0:y1].argmax(1)
        window = self.deconvs(self.head(torch.cat([z, c[:, :x0], c[:, y1:]], 1)).view(-1, 64, 4, 4))
        n, size = inputs.shape[0], DSprites.image_shape[-1]
        canvas = self.background.expand(n, 1, size, size).clone()
        span = torch.arange(self.WINDOW, device=inputs.device)
        rows = (pos_y[:, None] + span)[:, :, None]
        cols = (pos_x[:, None] + span)[:, None, :]
        canvas[torch.arange(n, device=inputs.device)[:, None, None], 0, rows, cols] = window[:, 0]
        return canvas


class DeepSCM:
    """The dSprites factors (the data SCM, interventions applied) and an image node under them.

    Args:
        cvae: the image mechanism; a :class:`ConditionalVAE` with ``condition_dim == CONDITION_DIM``
            (default: an untrained one with 4 latent dimensions and the :class:`PlacedSpriteDecoder`).
        interventions: the factor interventions in force (see :meth:`do`).
        device: where the mechanism computes (default: where its parameters are).
    """

    nodes = (*FACTOR_NODES, IMAGE_NODE)

    def __init__(self, cvae: ConditionalVAE | None = None, interventions: Mapping[str, Any] | None = None):
        if cvae is None:
            cvae = ConditionalVAE((1, 64, 64), CONDITION_DIM, latent_dim=4, decoder=PlacedSpriteDecoder(4))
        if not isinstance(cvae, ConditionalVAE):
            raise TypeError(f"cvae must be a ConditionalVAE, got {type(cvae).__name__}")
        if cvae.condition_dim != CONDITION_DIM or cvae.image_shape != DSprites.image_shape:
            raise ValueError(
                f"cvae must take conditions of length {CONDITION_DIM} and images {DSprites.image_shape}, got "
                f"{cvae.condition_dim} and {cvae.image_shape}"
            )
        self.cvae = cvae
        self.interventions: dict[str, Any] = dict(interventions or {})
        self.factor_scm = dsprites_scm(FACTOR_SIZES)
        if self.interventions:
            self.factor_scm = self.factor_scm.do(self.interventions)

    def __repr__(self) -> str:
        return f"DeepSCM(latent_dim={self.cvae.latent_dim}, interventions={self.interventions})"

    @property
    def device(self) -> torch.device:
        return next(self.cvae.parameters()).device

    # ----------------------------------------------------------------------------------------- interventions
    def do(self, interventions: Mapping[str, Any]) -> DeepSCM:
        """A new deep SCM (sharing the mechanism) with factor mechanisms replaced: a class number, a shape name,
        or equation text for the data SCM (``"min(posX + 8, 31)"``). The image node cannot be intervened on."""
        if not isinstance(interventions, Mapping) or not interventions:
            raise ValueError("do() takes a non-empty mapping {factor: value}")
        given = {}
        for name, value in interventions.items():
            self._check_factor_name(name, "intervene on")
            if isinstance(value, str) and not (name == "shape" and value in SHAPE_NAMES):
                if name == "shape" and value.isidentifier():
                    raise ValueError(f"factor 'shape': unknown shape {value!r}, expected one of {SHAPE_NAMES}")
                given[name] = value  # equation text: the data SCM's parser checks it
            else:
                if np.ndim(value) != 0:
                    raise ValueError(f"do({name}=...): one value for the whole population, got shape {np.shape(value)}")
                given[name] = int(_class_column(name, np.asarray(value)))
        return DeepSCM(self.cvae, {**self.interventions, **given})

    @staticmethod
    def _check_factor_name(name: Any, verb: str) -> None:
        if name == IMAGE_NODE:
            raise ValueError(f"cannot {verb} the image node {IMAGE_NODE!r}: only its parents {FACTOR_NODES}")
        if name not in FACTOR_CLASSES:
            raise ValueError(f"unknown factor {name!r}: the nodes are {DeepSCM.nodes}")

    # -------------------------------------------------------------------------------------------- sampling
    def sample(self, n: int, seed: int = 0) -> dict[str, Any]:
        """Ancestral sampling: factors from the (intervened) data SCM, noise ``z ~ N(0, I)``, the image decoded.

        Returns ``{factor: int64 [n]}`` with ``"image"`` (mean images ``[n, 1, 64, 64]``, torch, on the
        mechanism's device) and ``"z"`` ``[n, latent_dim]``. Same seed, same draws; the caller's generators are
        left alone.
        """
        samples = self.factor_scm.sample(int(n), seed=seed, backend="numpy")
        classes = classes_from_samples(samples, FACTOR_SIZES)[:, 1:]
        with forked(int(seed), self.device):
            z = torch.randn(classes.shape[0], self.cvae.latent_dim, device=self.device)
        out: dict[str, Any] = {name: classes[:, j] for j, name in enumerate(FACTOR_NODES)}
        out[IMAGE_NODE] = self.render(classes, z)
        out["z"] = z
        return out

    def render(self, classes: Any, z: torch.Tensor) -> torch.Tensor:
        """The image mechanism: mean images of p(x | factors, z), ``[N, 1, 64, 64]``."""
        c = factor_features(classes).to(self.device)
        was_training = self.cvae.training
        self.cvae.eval()
        try:
            return self.cvae.decode(z.to(self.device), c)
        finally:
            self.cvae.train(was_training)

    # ---------------------------------------------------------------------------------------- counterfactuals
    def evidence_classes(self, evidence: Mapping[str, Any], n: int) -> np.ndarray:
        """The observed factors of ``evidence`` as classes ``[n, 5]`` (scalars broadcast to all rows)."""
        unknown = [k for k in evidence if k != IMAGE_NODE and k not in FACTOR_CLASSES]
        if unknown:
            raise ValueError(f"unknown node(s) {unknown} in the evidence: the nodes are {self.nodes}")
        missing = [k for k in FACTOR_NODES if k not in evidence]
        if missing:
            raise ValueError(f"the evidence lacks the factor(s) {missing}: the image's mechanism needs all its parents")
        cols = []
        for name in FACTOR_NODES:
            col = _class_column(name, np.asarray(evidence[name]).reshape(-1))
            if col.shape[0] not in (1, n):
                raise ValueError(f"evidence {name!r} has {col.shape[0]} values for {n} images")
            cols.append(np.broadcast_to(col, (n,)))
        return np.stack(cols, axis=1).astype(np.int64)

    def _images(self, image: Any) -> torch.Tensor:
        x = torch.as_tensor(image)
        shape = DSprites.image_shape
        if tuple(x.shape) == shape:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"evidence 'image' must have shape [N, {', '.join(map(str, shape))}] or {shape}, got "
                f"{tuple(torch.as_tensor(image).shape)}"
            )
        if not x.is_floating_point():
            x = x.float()
        if not bool(torch.isfinite(x).all()):
            raise ValueError("evidence 'image' holds NaN or inf")
        return x.to(self.device, next(self.cvae.parameters()).dtype)

    def abduct(self, image: Any, classes: Any) -> torch.Tensor:
        """The image's noise: the posterior mean of q(z | x, factors), ``[N, latent_dim]``."""
        x = self._images(image)
        c = factor_features(classes).to(x.device, x.dtype)
        was_training = self.cvae.training
        self.cvae.eval()
        try:
            return self.cvae.encode(x, c)
        finally:
            self.cvae.train(was_training)

    def counterfactual(self, evidence: Mapping[str, Any], do: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """What the observed images would have looked like had the factors in ``do`` been different.

        ``evidence``: ``"image"`` (``[N, 1, 64, 64]`` or one ``[1, 64, 64]``) and every factor (a scalar or
        ``[N]`` values). ``do``: factor -> a class (or a shape name), or ``[N]`` classes, one per image.
        Returns ``{"factual": {...}, "counterfactual": {...}, "noise": {"z": [N, latent_dim]}}``; each world holds
        the factors (int64 ``[N]``) and ``"image"``: the factual world's is the reconstruction from the abducted
        noise, the counterfactual world's the decoding of the same noise under the intervened factors.
        """
        if not isinstance(evidence, Mapping) or IMAGE_NODE not in evidence:
            raise ValueError(f"the evidence must be a mapping holding the {IMAGE_NODE!r} node and its parents")
        if not isinstance(do, Mapping) or not do:
            raise ValueError("counterfactual() takes a non-empty do={factor: value}")
        if self.interventions:
            raise ValueError(
                f"counterfactual() on an intervened SCM ({self.interventions}): ask the unintervened one, the "
                "evidence comes from the world as it was"
            )
        x = self._images(evidence[IMAGE_NODE])
        n = x.shape[0]
        observed = self.evidence_classes(evidence, n)
        intervened = observed.copy()
        for name, value in do.items():
            self._check_factor_name(name, "intervene on")
            col = _class_column(name, np.asarray(value).reshape(-1))
            if col.shape[0] not in (1, n):
                raise ValueError(f"do({name}=...) has {col.shape[0]} values for {n} images")
            intervened[:, FACTOR_NODES.index(name)] = col
        z = self.abduct(x, observed)
        worlds = {}
        for world, classes in (("factual", observed), ("counterfactual", intervened)):
            worlds[world] = {name: classes[:, j] for j, name in enumerate(FACTOR_NODES)}
            worlds[world][IMAGE_NODE] = self.render(classes, z)
        return {**worlds, "noise": {"z": z}}
