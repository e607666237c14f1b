"""Checks of exercise 1: each operation's `_backward`, alone, against its derivative worked out by hand."""
import math

from course.runner import Wrong

TITLE = "A number that knows its gradient (Value: + * tanh exp)"
MINUTES = 20
NEEDS = []

UPSTREAM = 0.7  # out.grad: not 1, so that a forgotten `* out.grad` shows


def one_step(ex, make, *inputs, start=0.0):
    """Run only the output's own _backward: out.grad = UPSTREAM, inputs' grads starting at `start`."""
    values = [ex.Value(x) for x in inputs]
    out = make(*values)
    for v in values:
        v.grad = start
    out.grad = UPSTREAM
    out._backward()
    return [v.grad for v in values]


def expect(what, got, want, rule):
    if not isinstance(got, float) or not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
        shown = f"{got:.6g}" if isinstance(got, float) else repr(got)
        raise Wrong(f"{what} is {shown}, it should be {want:.6g} ({rule})")


def check_add(ex):
    """the gradient of a + b"""
    ga, gb = one_step(ex, lambda a, b: a + b, 2.0, -3.0)
    expect("after out = a + b and out._backward(), a.grad", ga, UPSTREAM, "1 · out.grad")
    expect("after out = a + b and out._backward(), b.grad", gb, UPSTREAM, "1 · out.grad")


def check_mul(ex):
    """the gradient of a * b"""
    ga, gb = one_step(ex, lambda a, b: a * b, 2.0, -3.0)
    expect("after out = a * b and out._backward() (a = 2, b = -3), a.grad", ga, -3.0 * UPSTREAM,
           "b.data · out.grad")
    expect("after out = a * b and out._backward() (a = 2, b = -3), b.grad", gb, 2.0 * UPSTREAM,
           "a.data · out.grad")


def check_tanh(ex):
    """the gradient of tanh(a)"""
    (ga,) = one_step(ex, lambda a: a.tanh(), 0.8)
    expect("after out = tanh(a) and out._backward() (a = 0.8), a.grad", ga, (1 - math.tanh(0.8) ** 2) * UPSTREAM,
           "(1 - tanh² a) · out.grad")


def check_exp(ex):
    """the gradient of exp(a)"""
    (ga,) = one_step(ex, lambda a: a.exp(), 0.8)
    expect("after out = exp(a) and out._backward() (a = 0.8), a.grad", ga, math.exp(0.8) * UPSTREAM,
           "exp(a) · out.grad")


def check_accumulates(ex):
    """gradients are added (+=) to what an input already has"""
    cases = [("a + b", lambda a, b: a + b, (2.0, -3.0), (1.0, 1.0)),
             ("a * b", lambda a, b: a * b, (2.0, -3.0), (-3.0, 2.0)),
             ("tanh(a)", lambda a: a.tanh(), (0.8,), (1 - math.tanh(0.8) ** 2,)),
             ("exp(a)", lambda a: a.exp(), (0.8,), (math.exp(0.8),))]
    for name, make, inputs, derivatives in cases:
        grads = one_step(ex, make, *inputs, start=0.25)
        for input_name, got, derivative in zip("ab", grads, derivatives):
            if isinstance(got, float) and math.isclose(got, derivative * UPSTREAM, rel_tol=1e-9):
                raise Wrong(f"in {name}, {input_name}.grad was 0.25 before and {got:.6g} after: the gradient must "
                            "be added (+=), not assigned, or a Value used twice keeps only one use's gradient")
            expect(f"in {name} with {input_name}.grad = 0.25 before, {input_name}.grad after", got,
                   0.25 + derivative * UPSTREAM, "0.25 + its share")


def check_used_twice(ex):
    """a Value used twice, out = a * a, gets both shares"""
    a = ex.Value(3.0)
    out = a * a
    out.grad = 1.0
    out._backward()
    expect("after out = a * a (a = 3) and out._backward(), a.grad", a.grad, 6.0, "d a²/da = 2a: both uses add")
