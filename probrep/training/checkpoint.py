"""Checkpoints that are written atomically and loaded without running code, and the checks that a checkpoint
belongs to the run that resumes from it.

``save`` writes to a temporary file in the target folder, flushes it to disk and renames it over the final
name, so a crash mid-write never leaves a truncated checkpoint behind. ``load`` uses
``torch.load(weights_only=True)``: only tensors and plain Python containers come back, never pickled code.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from probrep.io.files import atomic_open

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")
_TEMPORARY = re.compile(r"^\.checkpoint-\d{8}\.pt\..*\.tmp$")
FORMAT = 1  # the layout of the state dict the training loop writes


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """The file name of the checkpoint taken after ``step`` optimisation steps."""
    return Path(directory) / f"checkpoint-{step:08d}.pt"


def save(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + rename)."""
    with atomic_open(path) as handle:
        torch.save(state, handle)
    return Path(path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save`; refuses anything that would need to run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    flagged = _directory_entries(path)
    if flagged:  # torch's zip reader gives such an entry no bytes and unpickles whatever memory held instead
        raise ValueError(f"cannot load checkpoint {path} safely: entries {flagged} are marked as folders")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a corrupt or code-carrying file: say which file and why
        raise ValueError(f"cannot load checkpoint {path} safely: {exc}") from exc


def _directory_entries(path: Path) -> list[str]:
    """Members of a zip file flagged as folders (MS-DOS attribute 0x10) under a file's name; [] for a file that
    is not a zip or that Python's zipfile cannot read (torch then says what is wrong with it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [m.filename for m in archive.infolist() if m.external_attr & 0x10 and not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError):
        return []  # NotImplementedError: a zip version or method zipfile lacks


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoints in ``directory``, oldest first (by step)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a writer killed mid-checkpoint left (``.checkpoint-*.pt.*.tmp``, from
    :func:`~probrep.io.files.atomic_open`); returns what it removed. Call it before a run writes its own."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if _TEMPORARY.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def step_of(path: str | os.PathLike) -> int:
    """The step a checkpoint was taken after, read from its name (``checkpoint-00000250.pt`` -> 250)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not named like a checkpoint (checkpoint-NNNNNNNN.pt)")
    return int(match.group(1))


def latest(directory: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def refuse_earlier_run(directory: str | os.PathLike, resume: bool, overwrite: bool) -> list[Path]:
    """Refuse a fresh run (neither ``resume`` nor ``overwrite``) in a folder that holds an earlier run's checkpoints,
    so that no one loses a run by forgetting ``resume=True``; returns the earlier checkpoints (empty on resume).
    Called by the training loop, and by an experiment before it writes anything, so the refusal comes first."""
    if resume:
        return []
    earlier = list_checkpoints(directory)
    if earlier and not overwrite:
        raise FileExistsError(
            f"{directory} holds {len(earlier)} checkpoint(s) of an earlier run (up to {earlier[-1].name}): "
            "pass resume=True to continue it, or overwrite=True (--overwrite) to start again and delete them"
        )
    return earlier


def prune(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints."""
    found = list_checkpoints(directory)
    for old in found[: max(0, len(found) - keep)]:
        old.unlink(missing_ok=True)


def check_config(state: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """Refuse to resume from ``state`` (loaded from ``path``) unless its format and run settings match ``config``.

    Only a recorded *different* value is refused. A setting the checkpoint does not record (it was written before
    that setting was stored, e.g. a VAE's likelihood and weights) cannot be checked: the run resumes with a
    warning naming it, so that long runs checkpointed by an earlier version can still be continued.
    """
    if state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {state.get('format')}, expected {FORMAT}")
    saved = state.get("config")
    saved = saved if isinstance(saved, dict) else {}
    unrecorded = [k for k in config if k not in saved]
    differ = {k: (saved[k], v) for k, v in config.items() if k in saved and saved[k] != v}
    if differ:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in differ.items())
        raise ValueError(f"cannot resume from {path}: the run's settings differ ({detail})")
    if unrecorded:
        logger.warning(
            "checkpoint %s does not record %s (written by an earlier version): resuming without checking them",
            path,
            ", ".join(unrecorded),
        )


def copy_params(saved: dict[str, torch.Tensor], named: dict[str, torch.Tensor], device: torch.device) -> None:
    """Copy the saved parameters into ``named`` in place, refusing missing names and other shapes."""
    missing = sorted(set(named) - set(saved))
    if missing:
        raise ValueError(f"checkpoint lacks parameters {missing}; was it written by another model?")
    with torch.no_grad():
        for name, value in named.items():
            if saved[name].shape != value.shape:
                raise ValueError(
                    f"parameter {name!r}: checkpoint shape {tuple(saved[name].shape)} != {tuple(value.shape)}"
                )
            value.copy_(saved[name].to(device))
