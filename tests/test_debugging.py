"""Debugging as a learner meets it: break_on lands in an op's forward or backward (under pdb, with one command),
PYTHONBREAKPOINT is honoured, the backward loop's pending gradients are keyed by their tensors, and module
forward hooks see and may replace what a module returns."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_proust as tp
from tinygrad_proust import nn

ROOT = Path(__file__).resolve().parent.parent
TWO_LINES = ("""import tinygrad_proust as tp
with tp.break_on({op!r}, phase={phase!r}): """
             """print("loss", tp.randn(2, 3, requires_grad=True).softmax(-1).max().backward())
""")


def debug_session(tmp_path, commands, op="Softmax", phase="backward", under_pdb=True, env=None):
    script = tmp_path / "two.py"
    script.write_text(TWO_LINES.format(op=op, phase=phase))
    command = [sys.executable, "-m", "pdb", str(script)] if under_pdb else [sys.executable, str(script)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environment.pop("PYTHONBREAKPOINT", None) if "PYTHONBREAKPOINT" not in (env or {}) else None
    result = subprocess.run(command, input="\n".join(commands) + "\n", capture_output=True, text=True,
                            cwd=tmp_path, env=environment, timeout=60)
    return result.stdout


def test_one_continue_under_pdb_lands_in_the_ops_backward(tmp_path):
    out = debug_session(tmp_path, ["c", "p type(self).__name__, g.shape", "where", "q"])
    stop = out.split("(Pdb) ")[1]                          # what the first `c` printed
    assert "tinygrad_proust/fused.py" in stop and "backward()" in stop and "-> def backward(self, g):" in stop
    assert "('Softmax', (2, 3))" in out                     # the op's own frame: self and g are there to print
    assert "parent_grads = ctx.backward(g)" in out          # one frame up: the engine's loop that called it


def test_break_on_without_pdb_opens_the_debugger_in_forward(tmp_path):
    out = debug_session(tmp_path, ["p type(self).__name__, x.shape", "c"], phase="forward", under_pdb=False)
    assert "-> def forward(self, x, dim=-1):" in out and "('Softmax', (2, 3))" in out
    assert "loss None" in out                               # `c` runs the program to its end


def test_pythonbreakpoint_0_turns_break_on_off(tmp_path):
    out = debug_session(tmp_path, [], under_pdb=False, env={"PYTHONBREAKPOINT": "0"})
    assert "(Pdb)" not in out and "loss None" in out


def test_break_on_calls_an_installed_breakpoint_hook_once(monkeypatch):
    calls = []
    monkeypatch.setattr(sys, "breakpointhook", lambda: calls.append("stop"))
    x = tp.randn(4, 3, requires_grad=True)
    with tp.break_on("Tanh"):
        x.tanh().sum().backward()
        assert calls == ["stop"]
        x.tanh().sum().backward()                           # only the next time it runs
    assert calls == ["stop"]
    with tp.break_on("Exp", phase="forward"):
        x.tanh().sum().backward()                           # no Exp ran
    assert calls == ["stop"]


def test_break_on_names_what_it_accepts():
    with pytest.raises(ValueError, match="no op named 'Softmaks'.*Softmax"):
        with tp.break_on("Softmaks"):
            pass
    with pytest.raises(ValueError, match="phase must be 'forward' or 'backward'"):
        with tp.break_on("Softmax", phase="sideways"):
            pass


def test_pending_gradients_are_keyed_by_their_tensors(monkeypatch):
    seen = []

    def look_at_the_backward_loop():
        frame = sys._getframe(1)
        while "pending" not in frame.f_locals:
            frame = frame.f_back
        seen.append((dict(frame.f_locals["pending"]), [repr(key) for key in frame.f_locals["pending"]]))

    monkeypatch.setattr(sys, "breakpointhook", look_at_the_backward_loop)
    w = tp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a, b = w * 2, w.exp()
    with tp.break_on("Exp"):                               # the walk: Sum, Add, Exp, Mul, w
        (a + b).sum().backward()
    (pending, shown), = seen
    assert len(pending) == 1 and list(pending)[0] is a      # Add gave a its gradient; Mul has not run yet
    assert shown == ["Tensor([[2., 4.],\n [6., 8.]], dtype=float32, device=cpu, requires_grad=True, op=Mul)"]
    np.testing.assert_array_equal(pending[a], np.ones((2, 2)))


def test_forward_hooks_see_and_may_replace_the_output():
    layer = nn.Linear(3, 2)
    x = tp.randn(4, 3)
    seen = []
    handle = layer.register_forward_hook(lambda module, args, output: seen.append((module, args[0], output)))
    out = layer(x)
    assert seen[0][0] is layer and seen[0][1] is x and seen[0][2] is out
    doubling = layer.register_forward_hook(lambda module, args, output: output * 2)
    np.testing.assert_allclose(layer(x).numpy(), 2 * out.numpy(), rtol=1e-6)
    handle.remove()
    doubling.remove()
    np.testing.assert_array_equal(layer(x).numpy(), out.numpy())
    assert len(seen) == 2


def test_global_module_hooks_see_every_module_in_order():
    model = nn.ModuleList([nn.Linear(3, 3), nn.ReLU()])
    order = []
    pre = nn.register_module_forward_pre_hook(lambda module, args: order.append(("enter", type(module).__name__)))
    post = nn.register_module_forward_hook(lambda module, args, out: order.append(("leave", type(module).__name__)))
    try:
        x = tp.randn(2, 3)
        for module in model:
            x = module(x)
    finally:
        pre.remove()
        post.remove()
    assert order == [("enter", "Linear"), ("leave", "Linear"), ("enter", "ReLU"), ("leave", "ReLU")]
    model[0](x)
    assert len(order) == 4
