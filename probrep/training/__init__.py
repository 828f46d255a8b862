"""The training loop every gradient-fitted objective shares (SVI, score matching, critics), built from parts:

- ``options``: :class:`TrainOptions`, the run's settings as one frozen value, validated once;
- ``objective``: the :class:`Objective` protocol (``setup``, ``loss``, ``run_config``; optional ``module`` and
  ``auxiliary``), :class:`Auxiliary`, and :class:`FunctionObjective` for plain functions;
- ``loop``: :func:`train`, in phases (start, build, resume, step, checkpoint, finish);
- ``batches`` (data order), ``optim`` (optimisers), ``distributed`` (torchrun), ``rng`` (the run's forked
  generators), ``checkpoint`` (atomic files, resume checks), ``results`` (:class:`StepInfo`, :class:`FitResult`).

It knows no probability: it minimises a loss over parameters. It sits below ``models``, ``divergences`` and
``inference`` so that all of them may use it."""

from probrep.training.loop import train
from probrep.training.objective import Auxiliary, FunctionObjective, Objective
from probrep.training.options import TrainOptions
from probrep.training.results import Callback, FitResult, StepInfo

__all__ = ["train", "TrainOptions", "Objective", "FunctionObjective", "Auxiliary", "FitResult", "StepInfo", "Callback"]
