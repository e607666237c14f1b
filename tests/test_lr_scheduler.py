"""tp.optim.lr_scheduler beside torch.optim.lr_scheduler: each scheduler runs on an optimizer over the same two
parameter groups as PyTorch's (lr 0.1 and 0.03) for 30 steps, and every get_last_lr() is PyTorch's to the last bit;
two schedulers on one optimizer chain as PyTorch's do; a state_dict round trip in the middle continues the same
sequence; bad arguments get PyTorch's errors."""
import copy
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import tinygrad_proust as tp
from tinygrad_proust.optim.lr_scheduler import StepLR

ROOT = Path(__file__).resolve().parent.parent
STEPS = 30

# each case builds a scheduler with the module it is given: ours or PyTorch's
CASES = {
    "LambdaLR": lambda m, opt: m.LambdaLR(opt, [lambda t: 0.95 ** t, lambda t: 1 / (t + 1)]),
    "LambdaLR-warmup": lambda m, opt: m.LambdaLR(opt, lambda t: min(1.0, (t + 1) / 10)),
    "StepLR": lambda m, opt: m.StepLR(opt, step_size=7),
    "StepLR-gamma": lambda m, opt: m.StepLR(opt, step_size=3, gamma=0.7),
    "MultiStepLR": lambda m, opt: m.MultiStepLR(opt, milestones=[8, 3, 20, 8], gamma=0.3),  # 8 twice: gamma²
    "ExponentialLR": lambda m, opt: m.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR": lambda m, opt: m.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),  # past T_max: back up
    "CosineAnnealingLR-to-0": lambda m, opt: m.CosineAnnealingLR(opt, T_max=30),
    "LinearLR": lambda m, opt: m.LinearLR(opt, start_factor=0.1, total_iters=10),
    "LinearLR-defaults": lambda m, opt: m.LinearLR(opt),
    "LinearLR-decay": lambda m, opt: m.LinearLR(opt, start_factor=1.0, end_factor=0.05, total_iters=17),
    "SequentialLR-warmup-cosine": lambda m, opt: m.SequentialLR(
        opt, [m.LinearLR(opt, start_factor=0.01, total_iters=5), m.CosineAnnealingLR(opt, T_max=20, eta_min=1e-4)],
        milestones=[5]),
    "SequentialLR-three": lambda m, opt: m.SequentialLR(
        opt, [m.ExponentialLR(opt, gamma=0.5), m.LambdaLR(opt, lambda t: 1 / (t + 2)), m.StepLR(opt, 4, 0.2)],
        milestones=[4, 11]),
}


def optimizers(torch, kind="SGD"):
    """Ours and PyTorch's, each over two parameter groups of its own with lr 0.1 and 0.03."""
    def make(optim, parameter, zeros):
        groups = [{"params": [parameter(zeros(2))], "lr": 0.1}, {"params": [parameter(zeros(3))], "lr": 0.03}]
        return getattr(optim, kind)(groups, lr=1.0)
    return make(tp.optim, tp.nn.Parameter, tp.zeros), make(torch.optim, torch.nn.Parameter, torch.zeros)


def both(torch, case, kind="SGD"):
    ours_opt, their_opt = optimizers(torch, kind)
    return ours_opt, their_opt, CASES[case](tp.optim.lr_scheduler, ours_opt), CASES[case](torch.optim.lr_scheduler,
                                                                                         their_opt)


def step(*pairs):
    for optimizer, scheduler in pairs:
        optimizer.step()  # before scheduler.step(), as PyTorch asks
        scheduler.step()


@pytest.mark.parametrize("case", list(CASES))
def test_each_scheduler_gives_pytorchs_learning_rates_exactly(torch, case):
    ours_opt, their_opt, ours, theirs = both(torch, case)
    assert [g["initial_lr"] for g in ours_opt.param_groups] == [0.1, 0.03]   # recorded when it is made
    seen = {tuple(ours.get_last_lr())}
    assert ours.get_last_lr() == theirs.get_last_lr() == [g["lr"] for g in their_opt.param_groups]
    for t in range(1, STEPS + 1):
        step((ours_opt, ours), (their_opt, theirs))
        assert ours.get_last_lr() == theirs.get_last_lr(), t                # bit for bit
        assert [g["lr"] for g in ours_opt.param_groups] == ours.get_last_lr()
        seen.add(tuple(ours.get_last_lr()))
    assert ours.last_epoch == theirs.last_epoch == STEPS
    assert len(seen) > 3                                                    # the schedule did move


def test_two_schedulers_on_one_optimizer_chain_as_pytorchs(torch):
    """PyTorch's schedulers compute each step from the group's current lr, so two of them on one optimizer multiply
    their factors (torch.optim's documented chaining); ours do the same."""
    ours_opt, their_opt = optimizers(torch, "Adam")
    made = [(m.ExponentialLR(opt, gamma=0.9), m.MultiStepLR(opt, milestones=[5, 12], gamma=0.1))
            for m, opt in ((tp.optim.lr_scheduler, ours_opt), (torch.optim.lr_scheduler, their_opt))]
    (ours_exp, ours_multi), (their_exp, their_multi) = made
    for _ in range(STEPS):
        step((ours_opt, ours_exp), (their_opt, their_exp))
        ours_multi.step(), their_multi.step()
        assert ours_multi.get_last_lr() == their_multi.get_last_lr() == [g["lr"] for g in their_opt.param_groups]
    assert ours_multi.get_last_lr()[0] == pytest.approx(0.1 * 0.9 ** STEPS * 0.1 ** 2, rel=1e-12)


@pytest.mark.parametrize("case", ["LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "LinearLR", "SequentialLR-warmup-cosine", "SequentialLR-three"])
def test_a_state_dict_round_trip_continues_the_same_sequence(torch, case):
    """Saved at step 12 (the optimizer's state too: it holds each group's lr; the scheduler's as JSON, as a checkpoint's
    metadata holds it), loaded into a new optimizer and a new scheduler made the same way (the scheduler first, as
    PyTorch asks, then the two states), the run goes on with PyTorch's uninterrupted one."""
    ours_opt, their_opt, ours, theirs = both(torch, case, "AdamW")
    for _ in range(12):
        step((ours_opt, ours), (their_opt, theirs))
    saved = {"optimizer": copy.deepcopy(ours_opt.state_dict()), "scheduler": json.loads(json.dumps(ours.state_dict()))}
    assert saved["scheduler"]["last_epoch"] == 12 and "optimizer" not in saved["scheduler"]
    ours_opt, _ = optimizers(torch, "AdamW")
    ours = CASES[case](tp.optim.lr_scheduler, ours_opt)
    assert ours.last_epoch == 0
    ours_opt.load_state_dict(saved["optimizer"])
    ours.load_state_dict(saved["scheduler"])
    assert ours.get_last_lr() == theirs.get_last_lr()
    for t in range(13, STEPS + 1):
        step((ours_opt, ours), (their_opt, theirs))
        assert ours.get_last_lr() == theirs.get_last_lr(), t


def test_lambdalr_saves_a_callable_objects_state_as_pytorchs(torch):
    """A plain function cannot be saved (None in its place, the new scheduler's function is kept); a callable
    object's attributes are, so a warm-up length changed during the run comes back."""
    class Warmup:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, t):
            return min(1.0, (t + 1) / self.steps)

    for m, opt in ((tp.optim.lr_scheduler, optimizers(torch)[0]), (torch.optim.lr_scheduler, optimizers(torch)[1])):
        scheduler = m.LambdaLR(opt, [Warmup(4), lambda t: 1.0])
        scheduler.lr_lambdas[0].steps = 8
        state = scheduler.state_dict()
        assert state["lr_lambdas"] == [{"steps": 8}, None]
        resumed = m.LambdaLR(opt, [Warmup(4), lambda t: 1.0])
        resumed.load_state_dict(state)
        assert resumed.lr_lambdas[0].steps == 8 and state["lr_lambdas"] == [{"steps": 8}, None]


def test_step_with_an_epoch_jumps_to_the_closed_form_with_pytorchs_warning(torch):
    ours_opt, their_opt, ours, theirs = both(torch, "CosineAnnealingLR")
    for optimizer, scheduler in ((ours_opt, ours), (their_opt, theirs)):
        optimizer.step()
        with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)` was not necessary"):
            scheduler.step(7)
    assert ours.last_epoch == 7 and ours.get_last_lr() == theirs.get_last_lr()


def test_the_schedulers_are_where_pytorch_code_looks_for_them():
    reach = "import tinygrad_proust as tp; print(tp.optim.lr_scheduler.CosineAnnealingLR.__name__)"  # no other import
    result = subprocess.run([sys.executable, "-c", reach], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.stdout == "CosineAnnealingLR\n", result.stderr
    optimizer = tp.optim.SGD([tp.nn.Parameter(tp.zeros(2))], lr=0.5)
    assert tp.optim.lr_scheduler.StepLR is StepLR
    assert isinstance(StepLR(optimizer, 2), tp.optim.lr_scheduler.LRScheduler)
    assert tp.optim.lr_scheduler._LRScheduler is tp.optim.lr_scheduler.LRScheduler  # what older code subclasses


def test_bad_arguments_get_pytorchs_errors(torch):
    def check(make, error, match):
        """make(module, optimizer, another optimizer) raises the error, with ours and with PyTorch's."""
        ours, theirs = zip(optimizers(torch), optimizers(torch))
        for m, (opt, other) in ((tp.optim.lr_scheduler, ours), (torch.optim.lr_scheduler, theirs)):
            with pytest.raises(error, match=match):
                make(m, opt, other)

    check(lambda m, opt, other: m.StepLR(opt.param_groups[0]["params"], 3), TypeError, "list is not an Optimizer")
    check(lambda m, opt, other: m.LambdaLR(opt, [lambda t: 1.0]), ValueError, "Expected 2 lr_lambdas, but got 1")
    check(lambda m, opt, other: m.LinearLR(opt, start_factor=0), ValueError,
          "Starting multiplicative factor expected to be greater than 0 and less or equal to 1")
    check(lambda m, opt, other: m.LinearLR(opt, end_factor=1.5), ValueError,
          "Ending multiplicative factor expected to be between 0 and 1")
    check(lambda m, opt, other: m.ExponentialLR(opt, 0.9, last_epoch=5), KeyError,
          r"param 'initial_lr' is not specified in param_groups\[0\] when resuming")
    check(lambda m, opt, other: m.SequentialLR(opt, [], milestones=[]), ValueError, "expects at least one scheduler")
    check(lambda m, opt, other: m.SequentialLR(opt, [m.StepLR(opt, 2), m.StepLR(opt, 3)], milestones=[]), ValueError,
          "expects number of schedulers provided to be one more than the number of milestone points")
    check(lambda m, opt, other: m.SequentialLR(opt, [m.StepLR(opt, 2), m.StepLR(other, 3)], milestones=[4]),
          ValueError, "expects all schedulers to belong to the same optimizer")


def test_a_period_of_zero_is_refused_at_once(torch):
    """PyTorch takes step_size=0 and T_max=0 and divides by zero at the first step(); ours says so when it is made."""
    their_opt = optimizers(torch)[1]
    for make in (lambda m, opt: m.StepLR(opt, step_size=0), lambda m, opt: m.CosineAnnealingLR(opt, T_max=0)):
        theirs = make(torch.optim.lr_scheduler, their_opt)
        with pytest.raises(ZeroDivisionError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs.step()
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer, got 0"):
        tp.optim.lr_scheduler.StepLR(optimizers(torch)[0], step_size=0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be positive, got 0"):
        tp.optim.lr_scheduler.CosineAnnealingLR(optimizers(torch)[0], T_max=0)
