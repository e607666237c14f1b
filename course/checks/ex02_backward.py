"""Checks of exercise 2: the topological order's two rules, a deep chain, and backward against finite differences."""
import math

from course.runner import Wrong

TITLE = "The backward walk (topological order, reversed)"
MINUTES = 25
NEEDS = [1]


def diamond(Value, a=0.6, b=-1.3, mirrored=False):
    """f = tanh(a*b + a) * (a*b): a and a*b are each used twice. Mirrored, f = (a*b) * tanh(a*b + a): the same
    graph with the inputs of the last product swapped (a walk that lists each node as it first meets it, then
    reverses the list, gets one of the two wrong, whichever order it pushes the inputs in)."""
    a, b = Value(a), Value(b)
    c = a * b
    d = (c + a).tanh()
    return a, b, c, d, c * d if mirrored else d * c


def f_of(a, b):
    return math.tanh(a * b + a) * (a * b)


def check_order(ex):
    """topological_order lists each node once, after all of its inputs, root last"""
    x = ex.Value(3.0)
    graph = ex.topological_order(x * x)
    if len({id(v) for v in graph}) != len(graph):
        raise Wrong("a node appears more than once in topological_order(x * x): remember the nodes already "
                    "visited, and skip one when you meet it again")
    for mirrored, name in ((False, "f = tanh(a*b + a) * (a*b)"), (True, "f = (a*b) * tanh(a*b + a)")):
        f = diamond(ex.Value, mirrored=mirrored)[-1]
        order = ex.topological_order(f)
        if len({id(v) for v in order}) != len(order):
            raise Wrong(f"a node appears more than once in topological_order(f) for {name}: remember the nodes "
                        "already visited, and skip one when you meet it again")
        if len(order) != 6:
            raise Wrong(f"topological_order(f) has {len(order)} nodes; the graph of {name} has 6 "
                        "(a, b, a*b, a*b + a, its tanh, f)")
        position = {id(v): i for i, v in enumerate(order)}
        for v in order:
            for p in v._prev:
                if id(p) not in position:
                    raise Wrong(f"an input of {v._op} is missing from topological_order: follow every node's _prev")
                if position[id(p)] > position[id(v)]:
                    raise Wrong(f"for {name}, node #{position[id(v)]} ({v._op}) comes before its input "
                                f"#{position[id(p)]} ({p._op or 'leaf'}): list a node only after all of its inputs are "
                                "listed, not when the walk first meets it (reversing a list made that way does not "
                                "put it right)")
        if order[-1] is not f:
            raise Wrong("the root is not last in topological_order(root)")


def check_deep_chain(ex):
    """a chain of 5,000 operations works (no recursion limit)"""
    x = ex.Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0
    try:
        order = ex.topological_order(y)
    except RecursionError:
        raise Wrong("topological_order recurses, and a chain of 5,000 operations passes Python's recursion limit: "
                    "use a loop and a list as your stack") from None
    if len(order) != 10001:
        raise Wrong(f"a chain of 5,000 multiplications by constants has 10,001 nodes; your order has {len(order)}")


def check_backward(ex):
    """backward(f) gives every gradient, as finite differences do"""
    a, b, c, d, f = diamond(ex.Value)
    ex.backward(f)
    if f.grad != 1.0:
        raise Wrong(f"root.grad is {f.grad!r} after backward(root): set it to 1 first (dL/dL = 1)")
    h = 1e-6
    want_a = (f_of(0.6 + h, -1.3) - f_of(0.6 - h, -1.3)) / (2 * h)
    want_b = (f_of(0.6, -1.3 + h) - f_of(0.6, -1.3 - h)) / (2 * h)
    for name, got, want in (("a", a.grad, want_a), ("b", b.grad, want_b)):
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            raise Wrong(f"for f = tanh(a*b + a) * (a*b), {name}.grad is {got:.6g}, it should be {want:.6g}: call "
                        "each node's _backward in the reversed topological order, so that a node passes its "
                        "gradient on only once every use of it has added its share")
