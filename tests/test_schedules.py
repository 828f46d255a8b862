"""Schedules by hand, and the callback that anneals a model attribute (AIR's count prior, GQN's pixel sigma),
including the value a resumed run starts from."""

import pytest

from probrep.training.schedules import AnnealAttribute, exponential_anneal, linear_anneal, relative_to


class _Info:
    def __init__(self, step):
        self.step = step


def test_linear_anneal_and_the_learning_rate_factor_by_hand():
    sigma = linear_anneal(2.0, 0.7, 100)
    assert [sigma(0), sigma(50), sigma(100), sigma(500)] == pytest.approx([2.0, 1.35, 0.7, 0.7])
    rising = linear_anneal(0.5, 1.0, 10)
    assert [rising(0), rising(5), rising(99)] == pytest.approx([0.5, 0.75, 1.0])
    factor = relative_to(linear_anneal(5e-4, 5e-5, 1000), 5e-4)
    assert [5e-4 * factor(t) for t in (0, 500, 1000, 5000)] == pytest.approx([5e-4, 2.75e-4, 5e-5, 5e-5])
    with pytest.raises(ValueError, match="steps"):
        linear_anneal(1.0, 0.5, 0)


def test_exponential_anneal_by_hand():
    schedule = exponential_anneal(0.9, 1e-4, begin=100, duration=1000)
    assert schedule(0) == schedule(100) == pytest.approx(0.9)
    assert schedule(600) == pytest.approx(0.9 * (1e-4 / 0.9) ** 0.5)
    assert schedule(5000) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="exponential_anneal.*final"):
        exponential_anneal(0.9, 0.0, 0, 10)


def test_anneal_attribute_sets_the_value_for_the_coming_step_and_on_resume():
    class Model:
        sigma = 5.0

    model = Model()
    callback = AnnealAttribute(model, "sigma", linear_anneal(2.0, 0.7, 10))
    assert model.sigma == pytest.approx(2.0)  # step 1 trains with schedule(0)
    callback(_Info(5))
    assert model.sigma == pytest.approx(1.35)
    callback.on_start(10)  # a run resumed after 10 steps
    assert model.sigma == pytest.approx(0.7)
    with pytest.raises(AttributeError, match="no attribute 'tau'"):
        AnnealAttribute(model, "tau", linear_anneal(1.0, 0.5, 2))


def test_the_loop_tells_a_resumed_run_where_it_starts(tmp_path):
    """A schedule callback trains every step with the value an uninterrupted run uses, across a resume."""
    import torch

    from probrep.training import FunctionObjective, TrainOptions, train

    seen = []
    weight = torch.nn.Parameter(torch.zeros(()))

    class Scaled:
        scale = 0.0

    target = Scaled()

    def loss():
        seen.append(target.scale)
        return (weight - target.scale) ** 2

    objective = FunctionObjective(loss, setup_fn=lambda: {"w": weight})
    schedule = linear_anneal(0.0, 1.0, 10)

    def run(steps, resume):
        callback = AnnealAttribute(target, "scale", schedule)
        options = TrainOptions(
            steps=steps, checkpoint_dir=tmp_path, resume=resume, progress=False, device="cpu", callbacks=(callback,)
        )
        return train(objective, None, options)

    run(4, False)
    target.scale = 123.0  # whatever the attribute holds before the resumed run
    run(8, True)
    assert seen == pytest.approx([schedule(k) for k in range(8)])
