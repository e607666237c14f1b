"""Looking at the graph behind a tensor: a text listing and Graphviz DOT text.

Nodes are listed parents first (a topological order), numbered, each with its op, shape, dtype and,
once backward has run, the norm of its gradient (leaves keep .grad; call retain_grad() on others).
Keep the graph after backward with loss.backward(retain_graph=True) to look at it then.
"""
from .tensor import topological_order


def _nodes(root, max_nodes=None):
    """Every tensor that leads to root (whether or not it requires grad), parents before children."""
    order = topological_order(root)
    return order if max_nodes is None else order[-max_nodes:]


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


def graph_text(root, max_nodes=200):
    """One line per node: '#3 Matmul (2, 4) float32 <- #1, #2  grad‖=0.53'."""
    nodes = _nodes(root)
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


def graph_dot(root, max_nodes=None):
    """Graphviz DOT text: leaves are boxes (named where they have a name), ops are ellipses; edges run parent -> child."""
    nodes = _nodes(root, max_nodes)
    numbers = {id(n): i for i, n in enumerate(nodes)}
    lines = ["digraph tinygrad_proust {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];']
    for node in nodes:
        text = f"{_label(node)}\\n{node.shape} {node.dtype}"
        norm = _grad_norm(node)
        if norm is not None:
            text += f"\\ngrad‖={norm:.3g}"
        shape = "box" if node.is_leaf else "ellipse"
        fill = ', style=filled, fillcolor="#dde8f5"' if node.is_leaf and node.requires_grad else ""
        lines.append(f'  n{numbers[id(node)]} [label="{text}", shape={shape}{fill}];')
    for node in nodes:
        for parent in node.parents:
            if id(parent) in numbers:
                lines.append(f"  n{numbers[id(parent)]} -> n{numbers[id(node)]};")
    lines.append("}")
    return "\n".join(lines)
