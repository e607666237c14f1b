"""Exercise 2 · The backward walk: every node after all the nodes that use it

Goal: `backward(root)` fills in dL/dv for every Value v that `root` (L) was made from. Exercise 1 gave each node a
`_backward` that passes its gradient one step down; calling them in the right order does the rest:

1. `topological_order(root)`: every Value reachable from root through `_prev`, each once, each listed AFTER all of
   its inputs (a node's inputs come first). Use a loop with your own stack, not recursion: a chain of 5,000
   operations must work (Python stops recursing at about 1,000).
2. `backward(root)`: set root.grad = 1 (dL/dL), then call `_backward` on every node in the REVERSED order, so a
   node passes its gradient on only when every node that uses it has added its share.

`draw(root, path)` (given) draws the graph with each node's number in your order. Check: python -m course check 2
"""
from .ex01_value import Value  # noqa: F401  (your Value from exercise 1)


def topological_order(root):
    """The Values root depends on (root included), each after all of its inputs."""
    # TODO exercise 2: topological_order
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._prev:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
    # END


def backward(root):
    """dL/dv into v.grad for every v root depends on, with L = root."""
    # TODO exercise 2: backward
    root.grad = 1.0
    for node in reversed(topological_order(root)):
        node._backward()
    # END


def draw(root, path):
    """Write the graph behind root as Graphviz DOT text to path (and an SVG beside it when `dot` is installed):
    each node shows its number in topological_order, its operation, data and grad."""
    import shutil
    import subprocess
    from pathlib import Path

    number = {id(v): i for i, v in enumerate(topological_order(root))}
    lines = ["digraph {", "  rankdir=LR; node [shape=record, fontname=monospace];"]
    for v in topological_order(root):
        label = f"#{number[id(v)]} {v._op or 'leaf'} | data {v.data:.4g} | grad {v.grad:.4g}"
        lines.append(f'  n{id(v)} [label="{{{label}}}"];')
        lines += [f"  n{id(p)} -> n{id(v)};" for p in v._prev]
    lines.append("}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", str(path), "-o", str(path.with_suffix(".svg"))], check=True)
    return path


# ---- mistakes: wrong answers the checks must catch
from course.runner import Mistake  # noqa: E402

MISTAKES = [
    Mistake("the walk in forward order, not reversed", "for node in reversed(topological_order(root)):",
            "for node in topological_order(root):", "reversed"),
    Mistake("root.grad never set to 1", "    root.grad = 1.0\n", "", "root.grad"),
    Mistake("a node listed before its inputs (appended on the way down)",
            "        visited.add(id(node))\n        stack.append((node, True))",
            "        visited.add(id(node))\n        order.append(node)", "before its input"),
    Mistake("each node listed when first met, the list reversed at the end (right for some graphs only)",
            "        visited.add(id(node))\n        stack.append((node, True))\n        for parent in node._prev:\n"
            "            if id(parent) not in visited:\n                stack.append((parent, False))\n"
            "    return order\n",
            "        visited.add(id(node))\n        order.append(node)\n        for parent in reversed(node._prev):\n"
            "            stack.append((parent, False))\n    return order[::-1]\n", "reversing a list made that way"),
    Mistake("a shared node visited twice (no visited set)", "        if id(node) in visited:\n            continue\n",
            "", "more than once"),
]
