"""The chores every end-to-end run shares: its folder, its checkpoint settings, where a resumed run starts, the
loss curve and the JSON summary. (Seeded draws that leave the caller's generators alone come from
:func:`probrep.training.rng.forked`.)"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probrep.io.figures import loss_curve
from probrep.io.json_file import write_json
from probrep.training import checkpoint as ckpt


@dataclass
class RunOutputs:
    """Where a run put its results, and its headline numbers."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # the trained model, in eval mode


class RunFolder:
    """One run's output folder: ``checkpoints/`` plus the figures and ``summary.json`` a run leaves. Opening a folder
    that holds an earlier run's checkpoints for a fresh run (neither ``resume`` nor ``overwrite``) raises
    ``FileExistsError`` before anything is written."""

    def __init__(self, out: str | os.PathLike, resume: bool = False, overwrite: bool = False):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.resume, self.overwrite = bool(resume), bool(overwrite)
        # the loop would refuse a fresh run over an earlier one's checkpoints too, but only after the run had
        # written its step-0 files over the earlier run's: refuse here, before anything is written
        ckpt.refuse_earlier_run(self.checkpoints, self.resume, self.overwrite)
        self.started = time.perf_counter()
        self.files: dict[str, Path] = {}

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def checkpointing(self, every: int | None) -> dict[str, Any]:
        """The checkpoint keywords of ``svi.fit`` for this folder: where, how often, resume or overwrite."""
        return {"checkpoint_dir": self.checkpoints, "checkpoint_every": every, "resume": self.resume,
                "overwrite": self.overwrite}  # fmt: skip

    def resumed_step(self) -> int:
        """The step a resumed run continues after (0 for a fresh run or when there is no checkpoint yet), read
        from the latest checkpoint's name (the loop loads the checkpoint itself)."""
        if not self.resume or (found := ckpt.latest(self.checkpoints)) is None:
            return 0
        return ckpt.step_of(found)

    def resumed_history(self, path: str | os.PathLike) -> list[dict[str, Any]]:
        """The records of a history the run keeps in ``path`` (``{"history": [{"step": ..., ...}, ...]}``, rewritten
        as it grows) up to the step a resumed run continues after: the records past its checkpoint are recomputed
        by the resumed steps. Empty for a run from step 0 (a fresh run, an overwriting one, or a resume with no
        checkpoint yet), whose folder then loses an earlier run's file: the constructor refused the other cases."""
        path = Path(path)
        first = self.resumed_step()
        if first == 0:
            path.unlink(missing_ok=True)  # an earlier run's history is not this one's
            return []
        if not path.is_file():
            return []
        try:
            history = json.loads(path.read_text())["history"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a run history ({{'history': [...]}}): {exc}") from exc
        return [record for record in history if record["step"] <= first]

    def training_summary(
        self, fit: Any, examples_per_step: int, objective: str = "negative ELBO per image (nats)"
    ) -> dict[str, Any]:
        """Record the last checkpoint and the loss curve (per example, labelled with what the loss is: the
        training objective, which is the negative ELBO only for unweighted objectives) and return the summary
        fields every run reports: steps, device, first and last losses, seconds."""
        if fit.checkpoint:
            self.files["checkpoint"] = fit.checkpoint
        per_example = np.asarray(fit.losses) / max(1, int(examples_per_step))
        self.files["loss_curve"] = loss_curve(per_example, self.out / "loss.png", ylabel=objective)
        trained = len(per_example) > 0
        head = float(per_example[:50].mean()) if trained else None
        tail = float(per_example[-50:].mean()) if trained else None
        return {
            "steps": fit.steps,
            "device": str(fit.device),
            "loss_first_50_steps_per_image": head,
            "loss_last_50_steps_per_image": tail,
            "train_seconds": round(fit.seconds, 1),
        }

    def finish(self, summary: dict[str, Any], model: Any = None) -> RunOutputs:
        """Write ``summary.json`` (with the run's total seconds) and return what the run produced."""
        summary = {**summary, "total_seconds": round(time.perf_counter() - self.started, 1)}
        self.files["summary"] = write_json(summary, self.out / "summary.json")
        return RunOutputs(out=self.out, files=self.files, summary=summary, model=model)
