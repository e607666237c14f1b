"""Debugging as a learner meets it: break_on lands in an op's forward or backward (under pdb, with one command),
PYTHONBREAKPOINT is honoured, the backward loop's pending gradients are keyed by their tensors, and module
forward hooks see and may replace what a module returns."""
import os
import re
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
    with pytest.warns(UserWarning, match="no Exp forward ran"), tp.break_on("Exp", phase="forward"):
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


# ---- at a GPT's scale: every layer, one module, the warning, reprs, module names, the accumulate step ----

GPT_SCRIPT = """import numpy as np
import tinygrad_proust as tp
from models.gpt import GPT, GPTConfig
tp.manual_seed(0)
model = GPT(GPTConfig(vocab_size=10, block_size=6, n_layer={n_layer}, n_head=2, n_embd=8, ffn_hidden=16))
_, loss = model(np.array([[1, 2, 3, 4, 5, 6]]), np.array([[2, 3, 4, 5, 6, 7]]))
with {breaks}:
    loss.backward()
print("finished")
"""


def gpt_session(tmp_path, breaks, commands, n_layer=3):
    script = tmp_path / "gpt_walk.py"
    script.write_text(GPT_SCRIPT.format(n_layer=n_layer, breaks=breaks))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("PYTHONBREAKPOINT", None)
    result = subprocess.run([sys.executable, "-m", "pdb", str(script)], input="\n".join(commands) + "\n",
                            capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=60)
    return result.stdout


def test_every_stops_at_each_layers_attention_last_layer_first(tmp_path):
    out = gpt_session(tmp_path, 'tp.break_on("ScaledDotProductAttention", every=True)',
                      ["c", "p self.module_name"] * 4, n_layer=3)
    assert out.count("-> def backward(self, g):") == 3                  # one stop per layer, then the end
    assert re.findall(r"'(blocks[\w.]*)'", out) == \
        ["blocks.2.attn.attend", "blocks.1.attn.attend", "blocks.0.attn.attend"]
    assert "finished" in out


def test_module_stops_only_inside_that_module(tmp_path):
    out = gpt_session(tmp_path, 'tp.break_on("Linear", module="blocks.1.attn", every=True)',
                      ["c", "p self.module_name"] * 3, n_layer=3)
    assert re.findall(r"'(blocks[\w.]*)'", out) == ["blocks.1.attn.c_proj", "blocks.1.attn.c_attn"]  # backward order
    out = gpt_session(tmp_path, 'tp.break_on("ScaledDotProductAttention", module="blocks.1.attn")',
                      ["c", "p self.module_name", "c"], n_layer=3)
    assert out.count("-> def backward(self, g):") == 1 and "'blocks.1.attn.attend'" in out


def test_a_block_where_the_op_never_ran_warns_naming_what_ran(monkeypatch, recwarn):
    monkeypatch.setattr(sys, "breakpointhook", lambda: None)
    x = tp.randn(4, 3, requires_grad=True)
    with tp.break_on("Tanh"):                                          # it stopped: nothing to say
        x.tanh().sum().backward()
    assert not recwarn.list
    with pytest.warns(UserWarning, match=r"^break_on: no Softmax backward ran inside the block; the ops that ran: "
                                         r"Sum, Tanh$"):
        with tp.break_on("Softmax"):
            x.tanh().sum().backward()
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    with pytest.warns(UserWarning, match=r"^break_on: Linear ran only outside 5, in: 0, 1$"):
        with tp.break_on("Linear", module="5"):
            model(x).sum().backward()
    with pytest.warns(UserWarning, match="summed no gradient"):
        with tp.break_on("accumulate"):
            x.tanh().sum().backward()                                   # a chain: nothing to add up


def test_a_large_tensors_repr_shows_its_statistics_and_its_gradients_norm():
    values = np.arange(12, dtype=np.float64).reshape(3, 4) - 5.5           # -5.5 .. 5.5
    w = tp.tensor(values.astype(np.float32), requires_grad=True)
    # norm: sqrt(2 * (0.5² + 1.5² + ... + 5.5²)) = sqrt(143) = 11.96
    assert repr(w) == ("Tensor(shape=(3, 4), dtype=float32, device=cpu, norm=11.96, min=-5.5, max=5.5, mean=0, "
                       "requires_grad=True)")
    (w * w).sum().backward()                                            # grad 2w: norm 2 sqrt(143)
    assert repr(w).endswith(f"requires_grad=True, grad_norm={2 * np.sqrt(143):.4g})")
    small = tp.tensor([1.0, -2.0], requires_grad=True)
    (small * 3).sum().backward()
    assert repr(small) == f"Tensor([ 1., -2.], dtype=float32, device=cpu, requires_grad=True, " \
                          f"grad_norm={np.sqrt(18):.4g})"
    mixed = tp.tensor(np.linspace(-1, 3, 9))
    expected = np.linspace(-1, 3, 9)
    assert f"norm={np.linalg.norm(expected):.4g}, min=-1, max=3, mean={expected.mean():.4g}" in repr(mixed)


def test_every_op_knows_the_module_that_made_it():
    from models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=10, block_size=6, n_layer=2, n_head=2, n_embd=8, ffn_hidden=16))
    _, loss = model(np.array([[1, 2, 3, 4, 5, 6]]), np.array([[2, 3, 4, 5, 6, 7]]))
    ops = [node._ctx for node in loss._topological_order() if node._ctx is not None]
    names = {name for name, _ in model.named_modules()}
    assert all(op.module_name in names for op in ops)
    attention = [op.module_name for op in ops if op.name == "ScaledDotProductAttention"]
    assert attention == ["blocks.0.attn.attend", "blocks.1.attn.attend"]
    assert {op.module_name for op in ops if op.name == "LayerNorm"} == {"blocks.0.ln_1", "blocks.0.ln_2",
                                                                          "blocks.1.ln_1", "blocks.1.ln_2", "ln_f"}
    assert loss._ctx.module_name == "" and repr(loss._ctx) == "<CrossEntropy op, parents=[(6, 10)]>"
    assert repr([op for op in ops if op.name == "LayerNorm"][0]) == \
        "<LayerNorm op, parents=[(1, 6, 8), (8,), (8,)], module=blocks.0.ln_1>"
    assert tp.randn(2, requires_grad=True).exp()._ctx.module_name == ""                     # made outside any module


def test_an_observer_sees_each_gradient_before_the_engine_sums_it():
    seen = []

    class Watch(tp.Observer):
        def accumulate(self, ctx, parent, grad, earlier):
            seen.append((ctx.name, parent, np.array(grad), None if earlier is None else np.array(earlier)))

    x = tp.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    b = tp.tensor([10.0, 20.0, 30.0], requires_grad=True)
    with tp.observe(Watch()):
        (x * b + x).sum().backward()                                    # x twice; b broadcast over the rows
    by_parent = {(name, id(parent)): (grad, earlier) for name, parent, grad, earlier in seen}
    grad, earlier = by_parent[("Mul", id(b))]
    np.testing.assert_array_equal(grad, [[1, 2, 3], [4, 5, 6]])        # at the broadcast shape, before the sum
    assert earlier is None
    grad, earlier = by_parent[("Mul", id(x))]                           # Add handed x its 1s first
    np.testing.assert_array_equal(grad, [[10, 20, 30]] * 2)
    np.testing.assert_array_equal(earlier, np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad.numpy(), [[11, 21, 31]] * 2)


def test_break_on_accumulate_stops_in_the_engine_between_two_ops(tmp_path):
    script = tmp_path / "acc.py"
    script.write_text("import tinygrad_proust as tp\n"
                      "x = tp.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)\n"
                      "b = tp.tensor([10.0, 20.0, 30.0], requires_grad=True)\n"
                      "with tp.break_on('accumulate', every=True):\n"
                      "    (x * b + x).sum().backward()\n")
    commands = ["c", "p ctx.name, parent.shape, pending[parent]", "n", "n", "p pending[parent]",
                "c", "p ctx.name, parent.shape, pg.shape", "n", "p pg", "c"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("PYTHONBREAKPOINT", None)
    out = subprocess.run([sys.executable, "-m", "pdb", str(script)], input="\n".join(commands) + "\n",
                         capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=60).stdout
    stops = out.split("(Pdb) ")
    assert "tinygrad_proust/tensor.py" in stops[1] and "-> pg = _fit_to(parent, pg, ctx)" in stops[1]
    assert "('Mul', (2, 3), array([[1., 1., 1.]," in stops[2]          # x: Add's share is waiting
    assert "array([[11., 21., 31.]," in stops[5]                        # and Mul's (b) is added to it
    assert "-> pg = _fit_to(parent, pg, ctx)" in stops[6]
    assert "('Mul', (3,), (2, 3))" in stops[7]                          # b's gradient at the broadcast shape
    assert "array([5., 7., 9.], dtype=float32)" in stops[9]             # summed over the rows: column sums of x
    assert out.count("-> pg = _fit_to(parent, pg, ctx)") == 2


@pytest.mark.parametrize("script", ["two.py", "gpt_walk.py", "twice.py"])
def test_the_debugger_sessions_in_the_docs_are_what_pdb_prints(script, tmp_path):
    """docs/2-step-through.md shows pdb sessions as transcripts: replay each one's commands on its script, and
    find every line it shows pdb printing, in order ("..." stands for any text: a path, a line number)."""
    page = (ROOT / "docs" / "2-step-through.md").read_text()
    source = page.split(f"$ cat {script}\n")[1].split(f"$ python -m pdb {script}\n")[0]
    transcript = page.split(f"$ python -m pdb {script}\n")[1].split("```")[0].splitlines()
    commands = [line[len("(Pdb) "):].split("  #")[0].strip() for line in transcript if line.startswith("(Pdb) ")]
    shown = [line for line in transcript if not line.startswith("(Pdb) ")]
    (tmp_path / script).write_text(source)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("PYTHONBREAKPOINT", None)
    out = subprocess.run([sys.executable, "-m", "pdb", script], input="\n".join(commands + ["q"]) + "\n",
                         capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=60).stdout
    position = 0
    for line in shown:
        found = re.compile(".*?".join(map(re.escape, line.split("...")))).search(out, position)
        assert found, f"{script}: pdb did not print {line!r} after:\n{out[:position][-600:]}"
        position = found.end()


def test_the_ops_the_readme_breaks_on_run_in_the_gpts_backward():
    """README's break_on examples are about a GPT: each op they name must be one its backward pass runs (the
    README once sent readers to a Softmax that the GPT, with its attention fused, never runs)."""
    from models.gpt import GPT
    readme = (ROOT / "README.md").read_text()
    named, modules = re.findall(r"break_on\(\"(\w+)\"", readme), re.findall(r"module=\"([\w.]+)\"", readme)
    model = GPT.from_preset("char-small", vocab_size=10)
    _, loss = model(np.array([[1, 2, 3, 4]]), np.array([[2, 3, 4, 5]]))
    ran = {node.op for node in loss._topological_order() if node.op}
    assert named and set(named) <= ran | {"accumulate"}, (named, ran)   # accumulate: the engine's step, not an op
    assert set(modules) <= {name for name, _ in model.named_modules()}, modules
