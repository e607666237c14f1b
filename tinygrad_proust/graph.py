"""Looking at the graph behind a tensor: a text listing, Graphviz DOT text, and pictures drawn from it.

Nodes are listed parents first (a topological order), numbered, each with its op, shape, dtype and,
once backward has run, the norm of its gradient (leaves keep .grad; call retain_grad() on others).
Keep the graph after backward with loss.backward(retain_graph=True) to look at it then.

Large graphs (a GPT's loss has hundreds of nodes) stay legible two ways: `max_depth` keeps only the nodes
within that many edges of the root, and `collapse` draws every module's ops as one labelled box (every op
knows its module; `with tp.record_modules(model):` around the forward also names parameters by their path).
Small graphs teach more with `values=True` (each node's data and gradient, as numbers or a norm) and
`order=True` (each op numbered by when backward() reaches it).
"""
import shutil
import subprocess
from pathlib import Path

from .tensor import topological_order


def _grad_norm(t):
    if t.grad is None:
        return None
    g = t.grad.data
    return float((g.astype("float64") ** 2).sum() ** 0.5)


def _label(t):
    if t.op is not None:
        return t.op
    if t.name:
        return t.name
    return "param" if t.requires_grad else "input"


def _numbers(array):
    """A few numbers as text ('[1.5 -2]'), or the norm of a larger array ('‖·‖=3.2')."""
    a = array.astype("float64")
    if a.size <= 4:
        return "[" + " ".join(f"{x:.3g}" for x in a.ravel().tolist()) + "]" if a.ndim else f"{float(a):.4g}"
    return f"‖·‖={float((a ** 2).sum() ** 0.5):.3g}"


def backward_order(root):
    """The op nodes in the order backward() runs their backward: the reverse of the topological order over the
    nodes that require grad (the root's op first)."""
    return [node for node in reversed(root._topological_order()) if node.op is not None]


def graph_text(root, max_nodes=200):
    """One line per node: '#3 op Matmul (2, 4) float32 <- #1, #2  grad‖=0.53'."""
    nodes = topological_order(root)
    numbers = {id(n): i for i, n in enumerate(nodes)}
    shown = nodes[-max_nodes:]
    lines = []
    if len(shown) < len(nodes):
        lines.append(f"... {len(nodes) - len(shown)} earlier nodes not shown (max_nodes={max_nodes})")
    for node in shown:
        kind = "leaf" if node.is_leaf else "op"
        line = f"#{numbers[id(node)]:<3} {kind:4} {_label(node):<24} {str(node.shape):<16} {node.dtype}"
        if node.parents:
            line += "  <- " + ", ".join(f"#{numbers[id(p)]}" for p in node.parents)
        norm = _grad_norm(node)
        if norm is not None:
            line += f"  grad‖={norm:.4g}"
        lines.append(line)
    if root.op is not None and root.op.endswith("(freed)"):
        lines.append("(the graph was freed by backward(); call backward(retain_graph=True) to keep it)")
    return "\n".join(lines)


def _depths(root):
    """Fewest edges from each node up to root (breadth first over parents)."""
    depth, frontier = {id(root): 0}, [root]
    while frontier:
        following = []
        for node in frontier:
            for parent in node.parents:
                if id(parent) not in depth:
                    depth[id(parent)] = depth[id(node)] + 1
                    following.append(parent)
        frontier = following
    return depth


def _module_of(node, collapse):
    """The module box a node belongs to when collapsing to `collapse` name components, or None."""
    if node.is_leaf:
        path = node.name.rsplit(".", 1)[0] if node.name and "." in node.name else ""  # blocks.0.ln_1.weight
    else:
        path = node._ctx.module_name
    parts = path.split(".") if path else []
    return ".".join(parts[:collapse]) if len(parts) >= collapse else None


def graph_dot(root, max_depth=None, collapse=None, values=False, order=False):
    """Graphviz DOT text. Leaves are boxes (parameters filled and named by their module path), ops ellipses,
    edges run parent -> child. max_depth: only nodes within that many edges of root. collapse=k: one box per
    module named by k components (collapse=2: 'blocks.0'): every op knows its module; parameters are named by their
    path under record_modules().
    values: each node's data and gradient (up to 4 numbers, else their norm). order: each op labelled with its
    step in the backward walk (1: the root's op, which backward() runs first)."""
    nodes = topological_order(root)
    step = {id(node): i + 1 for i, node in enumerate(backward_order(root))} if order else {}
    if max_depth is not None:
        depth = _depths(root)
        hidden = sum(1 for n in nodes if depth[id(n)] > max_depth)
        nodes = [n for n in nodes if depth[id(n)] <= max_depth]
    key = {}  # node id -> DOT node name
    groups = {}  # module box -> number of nodes inside
    lines = ["digraph tinygrad_proust {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    for i, node in enumerate(nodes):
        box = _module_of(node, collapse) if collapse else None
        if box is not None:
            key[id(node)] = f'"module {box}"'
            groups[box] = groups.get(box, 0) + 1
            continue
        key[id(node)] = f"n{i}"
        text = f"{_label(node)}\\n{node.shape} {node.dtype}"
        if id(node) in step:
            text = f"backward step {step[id(node)]}: {text}"
        norm = _grad_norm(node)
        if values:
            text += f"\\ndata {_numbers(node.data)}"
            text += f"\\ngrad {_numbers(node.grad.data)}" if norm is not None else ""
        elif norm is not None:
            text += f"\\ngrad‖={norm:.3g}"
        shape = "box" if node.is_leaf else "ellipse"
        fill = ', style=filled, fillcolor="#dde8f5"' if node.is_leaf and node.requires_grad else ""
        lines.append(f'  n{i} [label="{text}", shape={shape}{fill}];')
    for box, count in groups.items():
        lines.append(f'  "module {box}" [label="{box}\\n({count} nodes)", shape=box3d, style=filled, '
                     f'fillcolor="#f5ecd7"];')
    edges = []
    for node in nodes:
        for parent in node.parents:
            if id(parent) in key and key[id(parent)] != key[id(node)]:
                edge = f"  {key[id(parent)]} -> {key[id(node)]};"
                if edge not in edges:
                    edges.append(edge)
    lines.extend(edges)
    if max_depth is not None and hidden:
        lines.append(f'  more [label="{hidden} deeper nodes not shown (max_depth={max_depth})", shape=plaintext];')
    lines.append("}")
    return "\n".join(lines)


def render_graph(root, path, max_depth=None, collapse=None, values=False, order=False):
    """Draw the graph behind root to path (.svg, .png or .pdf) with Graphviz's `dot`; the DOT text is written
    beside it (.dot). The options are graph_dot's. Without `dot` installed, a RuntimeError says how to install it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render_graph: {path} should end in .svg, .png or .pdf")
    dot_path = path.with_suffix(".dot")
    dot_path.write_text(graph_dot(root, max_depth=max_depth, collapse=collapse, values=values, order=order))
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(f"drawing the graph needs Graphviz's `dot` program: apt-get install graphviz (Debian, "
                           f"Ubuntu), brew install graphviz (macOS) or conda install graphviz; the DOT text is in "
                           f"{dot_path}")
    subprocess.run([dot, f"-T{fmt}", str(dot_path), "-o", str(path)], check=True, capture_output=True)
    return path
