"""The Objective protocol: an objective this project did not write (least squares, with a closed-form answer),
plain functions through FunctionObjective, an auxiliary objective with its own optimiser, exact resume."""

import pytest
import torch

from probrep.training import Auxiliary, FunctionObjective, Objective, TrainOptions, checkpoint, train


def _regression(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([2.0, -1.0, 0.5]) + 0.3 + 0.1 * torch.randn(n, generator=g)
    return x, y


class LeastSquares:
    """A user's objective: mean squared residual of ``y ~ x w + b``; it knows nothing of probrep's classes."""

    def __init__(self, features: int, noise: float = 0.0):
        self.w = torch.zeros(features, requires_grad=True)
        self.b = torch.zeros((), requires_grad=True)
        self.noise = noise

    def setup(self, x, y):
        return {"w": self.w, "b": self.b}

    def loss(self, x, y):
        residual = y - x @ self.w - self.b
        if self.noise:  # a stochastic objective: draws from torch's global generator, as Pyro programs do
            residual = residual + self.noise * torch.randn_like(residual)
        return residual.pow(2).mean()

    def run_config(self):
        return {"noise": self.noise}


def test_a_users_objective_reaches_the_closed_form_least_squares_answer():
    x, y = _regression()
    objective = LeastSquares(3)
    assert isinstance(objective, Objective)
    # full-batch gradient descent on a well-conditioned quadratic (Hessian ~ 2I) converges geometrically
    fit = train(objective, (x, y), TrainOptions(steps=300, batch_size=len(x), optimizer="sgd", lr=0.3,
                                                device="cpu", progress=False))  # fmt: skip
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    exact = torch.linalg.lstsq(design, y[:, None]).solution.squeeze(1)
    assert torch.allclose(objective.w.detach(), exact[:3], atol=1e-5)
    assert abs(objective.b.item() - exact[3].item()) < 1e-5
    assert fit.steps == 300 and set(fit.params) == {"w", "b"} and fit.params["w"] is objective.w
    # the training loss ends at the residual variance of the exact fit
    assert fit.losses[-1] == pytest.approx((y - design @ exact).pow(2).mean().item(), rel=1e-4)


class _Crash(Exception):
    pass


def _crash_at(step):
    def callback(info):
        if info.step == step:
            raise _Crash

    return callback


def test_a_stochastic_users_objective_resumes_bit_for_bit(tmp_path):
    x, y = _regression()
    kw = dict(steps=12, batch_size=32, lr=0.05, device="cpu", seed=4, progress=False, checkpoint_every=5)
    straight = LeastSquares(3, noise=0.5)
    reference = train(straight, (x, y), TrainOptions(checkpoint_dir=tmp_path / "a", **kw))
    with pytest.raises(_Crash):
        train(LeastSquares(3, noise=0.5), (x, y), TrainOptions(checkpoint_dir=tmp_path / "b", callbacks=[_crash_at(8)],
                                                               **kw))  # fmt: skip
    resumed = LeastSquares(3, noise=0.5)
    result = train(resumed, (x, y), TrainOptions(checkpoint_dir=tmp_path / "b", resume=True, **kw))
    assert torch.equal(resumed.w, straight.w) and torch.equal(resumed.b, straight.b)
    assert result.losses.tolist() == reference.losses.tolist()
    # the objective's run_config is part of the run: resuming with another one is refused
    with pytest.raises(ValueError, match="noise"):
        train(LeastSquares(3, noise=0.1), (x, y), TrainOptions(checkpoint_dir=tmp_path / "b", resume=True, **kw))
    assert checkpoint.latest(tmp_path / "b").name == "checkpoint-00000012.pt"


def test_plain_functions_and_an_auxiliary_with_its_own_learning_rate():
    # plain SGD, one step: a minimises (a - 1)^2 with lr 0.1; then c minimises (c - a)^2 with lr 0.5, seeing the
    # updated a (0.2): c = 0 - 0.5 * 2 * (0 - 0.2)
    a, c = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    seen = []
    objective = FunctionObjective(
        lambda: (a - 1) ** 2,
        lambda: {"a": a},
        auxiliary=Auxiliary(lambda: (c - a.detach()) ** 2, [c], lr=0.5),
    )
    options = TrainOptions(steps=2, optimizer="sgd", lr=0.1, device="cpu", progress=False,
                           callbacks=[lambda info: seen.append((a.item(), c.item()))])  # fmt: skip
    train(objective, None, options)
    assert seen[0] == pytest.approx((0.2, 0.2))
    # step 2: a = 0.2 + 0.1 * 2 * 0.8 = 0.36; c = 0.2 + 0.5 * 2 * (0.36 - 0.2) = 0.36
    assert seen[1] == pytest.approx((0.36, 0.36))


def test_a_module_objective_and_errors_that_name_the_problem():
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    x = torch.randn(64, 2)
    fit = train(FunctionObjective(lambda x: net(x).pow(2).mean(), module=net), x,
                TrainOptions(steps=50, lr=0.05, device="cpu", progress=False))  # fmt: skip
    assert set(fit.params) == {"weight", "bias"} and fit.losses[-1] < 0.1 * fit.losses[0]
    with pytest.raises(ValueError, match="setup_fn or module"):
        FunctionObjective(lambda x: x)
    with pytest.raises(TypeError, match="lacks setup, run_config"):
        train(type("Half", (), {"loss": lambda self, x: x})(), x, TrainOptions(steps=1))
    with pytest.raises(TypeError, match="options must be a TrainOptions"):
        train(FunctionObjective(lambda x: x, module=net), x, {"steps": 1})
    with pytest.raises(ValueError, match="nothing to optimise"):
        train(FunctionObjective(lambda x: x, lambda x: {}), x, TrainOptions(steps=1, device="cpu", progress=False))
    with pytest.raises(TypeError, match="auxiliary params"):
        Auxiliary(lambda: 0, [])
