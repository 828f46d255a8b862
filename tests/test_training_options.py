"""TrainOptions: one frozen value, validated once, whose errors name the offending field."""

import dataclasses
import inspect
from pathlib import Path

import pytest

from probrep.inference import svi
from probrep.models import VAE
from probrep.training import TrainOptions


@pytest.mark.parametrize(
    "changes, error, field",
    [
        ({"steps": -1}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"steps": True}, TypeError, "steps"),
        ({"steps": None, "epochs": -2}, ValueError, "epochs"),
        ({"epochs": 3}, ValueError, "exactly one of steps= or epochs="),
        ({"steps": None}, ValueError, "exactly one of steps= or epochs="),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"optimizer": "fancy"}, ValueError, "optimizer"),
        ({"optimizer": 3}, TypeError, "optimizer"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"optimizer_kwargs": [("betas", (0.5, 0.9))]}, TypeError, "optimizer_kwargs"),
        ({"param_options": {"a": 1}}, TypeError, "param_options"),
        ({"lr_schedule": 0.5}, TypeError, "lr_schedule"),
        ({"device": 0}, TypeError, "device"),
        ({"seed": -1}, ValueError, "seed"),
        ({"shuffle": "yes"}, TypeError, "shuffle"),
        ({"progress": 1}, TypeError, "progress"),
        ({"log_every": -1}, ValueError, "log_every"),
        ({"callbacks": print}, TypeError, "callbacks"),
        ({"callbacks": [print, 3]}, TypeError, r"callbacks\[1\]"),
        ({"checkpoint_dir": 3}, TypeError, "checkpoint_dir"),
        ({"checkpoint_dir": "runs", "checkpoint_every": 0}, ValueError, "checkpoint_every"),
        ({"keep_checkpoints": 0}, ValueError, "keep_checkpoints"),
        ({"resume": True}, ValueError, "resume=True needs checkpoint_dir"),
        ({"distributed": "maybe"}, ValueError, "distributed"),
        ({"description": None}, TypeError, "description"),
    ],
)
def test_a_bad_value_raises_an_error_naming_its_field(changes, error, field):
    with pytest.raises(error, match=field):
        TrainOptions(**{"steps": 10, **changes})


def test_options_are_frozen_and_normalised():
    options = TrainOptions(steps=5, callbacks=[print], checkpoint_dir="runs/a", optimizer_kwargs={"betas": (0.5, 0.9)})
    assert options.callbacks == (print,) and options.checkpoint_dir == Path("runs/a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.lr = 1.0
    with pytest.raises(TypeError):  # the optimiser options are read-only too
        options.optimizer_kwargs["betas"] = (0.9, 0.99)
    longer = dataclasses.replace(options, steps=50)
    assert longer.steps == 50 and longer.optimizer_kwargs == {"betas": (0.5, 0.9)} and options.steps == 5


def test_svi_fit_reports_bad_options_before_any_work():
    calls = []
    vae = VAE((1, 16, 16), 3, arch="mlp")
    vae.model = lambda *a: calls.append(a)  # would record a step if any ran
    with pytest.raises(ValueError, match="batch_size"):
        svi.fit(vae, None, steps=1, batch_size=0)
    with pytest.raises(ValueError, match="keep_checkpoints"):
        svi.fit(vae, None, steps=1, checkpoint_dir="unused", keep_checkpoints=0)
    assert calls == []


def test_svi_fit_offers_every_option_with_the_same_default():
    # fit passes its keywords to TrainOptions by name: a field fit lacked would silently keep its default
    parameters = inspect.signature(svi.fit).parameters
    for option in dataclasses.fields(TrainOptions):
        if option.name == "description":
            continue
        assert option.name in parameters, option.name
        default = option.default_factory() if option.default is dataclasses.MISSING else option.default
        given = parameters[option.name].default
        assert given == default or (given is None and default == {}), option.name
