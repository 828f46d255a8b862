"""Input checks shared by the evaluation measures: numpy or torch in, validated 2-D float arrays out."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_2d_array(values: Any, name: str) -> np.ndarray:
    """``values`` (numpy, torch, nested lists) as a 2-D numpy array ``[N, columns]``; a 1-D input is one column."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have shape [N, columns] with N, columns > 0, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def check_same_rows(factors: np.ndarray, codes: np.ndarray) -> None:
    if factors.shape[0] != codes.shape[0]:
        raise ValueError(
            f"factors and codes must have the same number of rows, got {factors.shape[0]} and {codes.shape[0]}"
        )
