"""The data-generating process of dSprites as a structural causal model over its factor classes.

Nodes ``shape``, ``scale``, ``orientation``, ``posX``, ``posY`` hold factor classes (0-based integers; colour
has one value and is left out). By default they are independent and uniform, as in dSprites. With
``confounding = c > 0`` the scale follows the shape with probability c (square -> classes 0-1, ellipse -> 2-3,
heart -> 4-5), the confounded training setting of Suter et al. 2019. Interventional test sets come from the
causal module's ``do``, e.g. ``scm.do({"shape": 2})`` (all hearts) or ``scm.do({"posX": "min(posX + 8, 31)"})``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probrep._checks import probability
from probrep.causal import SCM

FACTOR_NODES = ("shape", "scale", "orientation", "posX", "posY")


def _uniform(k: int) -> str:
    return f"Categorical([{', '.join(['1/' + str(k)] * k)}])"


def dsprites_scm(factor_sizes=(1, 3, 6, 40, 32, 32), confounding: float = 0.0) -> SCM:
    """The factor SCM; ``confounding`` in [0, 1] ties scale to shape with that probability."""
    confounding = probability(confounding, "confounding", open_interval=False)
    sizes = dict(zip(FACTOR_NODES, factor_sizes[1:]))
    equations = {name: _uniform(size) for name, size in sizes.items()}
    if confounding > 0:
        if sizes["scale"] != 2 * sizes["shape"]:
            raise ValueError("confounding needs twice as many scales as shapes")
        equations["scale"] = (
            f"where(Uniform(0, 1) < {float(confounding)!r}, 2*shape + Bernoulli(0.5), {_uniform(sizes['scale'])})"
        )
    return SCM.from_equations(equations)


def classes_from_samples(samples: dict[str, Any], factor_sizes=(1, 3, 6, 40, 32, 32)) -> np.ndarray:
    """SCM samples ``{node: [n]}`` -> dSprites factor classes int64 [n, 6] (colour 0), range-checked."""
    missing = [name for name in FACTOR_NODES if name not in samples]
    if missing:
        raise ValueError(f"samples lack the factor nodes {missing}")
    columns = [np.asarray(samples[name], dtype=np.float64).reshape(-1) for name in FACTOR_NODES]
    out = np.zeros((len(columns[0]), 6), dtype=np.int64)
    for j, (name, col) in enumerate(zip(FACTOR_NODES, columns), start=1):
        rounded = np.rint(col)
        if not np.allclose(col, rounded) or rounded.min() < 0 or rounded.max() >= factor_sizes[j]:
            raise ValueError(
                f"factor {name!r} must hold integer classes in [0, {factor_sizes[j]}), got values in "
                f"[{col.min()}, {col.max()}]; clip interventions, e.g. min(posX + 8, 31)"
            )
        out[:, j] = rounded.astype(np.int64)
    return out
