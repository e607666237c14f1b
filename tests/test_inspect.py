"""Looking inside: graph export and rendering, hooks, attention maps, the logit lens, the inspect command."""
import json
import shutil

import numpy as np
import pytest

import tinygrad_proust as tp
from inspection import main as inspection_main
from models import inspection
from models.loading import load_model
from models.gpt import GPT, GPTConfig
from tinygrad_proust import graph
from tinygrad_proust.checkpoint import save_checkpoint
from models.tokenizer import CharTokenizer

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, ffn_hidden=32)


def tiny_loss(record=True):
    tp.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    if record:
        with tp.record_modules(model):
            _, loss = model(idx, idx)
    else:
        _, loss = model(idx, idx)
    loss.backward(retain_graph=True)
    return model, loss


def node_lines(dot):
    return [line for line in dot.splitlines() if "[label=" in line]


def test_ops_are_boxed_by_the_module_that_made_them_without_record_modules():
    """Every op knows its module (ctx.module_name): the name record_modules gives it, without record_modules, so a
    drawing groups a plain forward's ops by block too."""
    from tinygrad_proust.tensor import topological_order
    _, recorded = tiny_loss()
    _, plain = tiny_loss(record=False)
    pairs = [(a, b) for a, b in zip(topological_order(recorded), topological_order(plain)) if not a.is_leaf]
    assert len(pairs) > 20 and all(type(a._ctx) is type(b._ctx) for a, b in pairs)
    assert [a._ctx.module_name for a, b in pairs] == [b._ctx.module_name for a, b in pairs]
    assert {a._ctx.module_name for a, _ in pairs} >= {"blocks.0.attn.attend", "blocks.1.mlp.c_fc", "ln_f", "wte", ""}
    boxes = [[line for line in node_lines(loss.to_dot(collapse=2)) if "box3d" in line] for loss in (plain, recorded)]
    assert boxes[0] == boxes[1] and len(boxes[0]) == 2  # the same boxes, holding the same ops and parameters


def test_collapsed_graph_has_one_box_per_block_and_named_leaves():
    _, loss = tiny_loss()
    full, collapsed = loss.to_dot(), loss.to_dot(collapse=2)
    assert len(node_lines(full)) == len(loss.graph().splitlines())
    boxes = [line for line in node_lines(collapsed) if "box3d" in line]
    assert len(boxes) == 2 and '"module blocks.0"' in boxes[0] and '"module blocks.1"' in boxes[1]
    inside = sum(int(line.split("(")[1].split(" ")[0]) for line in boxes)
    assert len(node_lines(collapsed)) - 2 + inside == len(node_lines(full))   # nothing lost, only grouped
    assert '"module blocks.0" -> "module blocks.1";' in collapsed
    assert 'label="wte.weight\\n(11, 16) float32\\ngrad‖=' in collapsed            # leaves by module path


def test_recording_names_the_parameters_of_any_module():
    from tinygrad_proust import nn
    layer = nn.Linear(3, 2)
    with tp.record_modules(layer):
        out = layer(tp.randn(4, 3)).sum()
    assert layer.weight.name == "weight" and 'label="weight\\n(2, 3) float32"' in out.to_dot()


def test_depth_limit_keeps_the_nodes_near_the_loss():
    _, loss = tiny_loss()
    dot = loss.to_dot(max_depth=2)  # CrossEntropy <- Reshape <- Linear <- (LayerNorm, wte.weight, ...)
    labels = [line.split('label="')[1].split("\\n")[0] for line in node_lines(dot) if "plaintext" not in line]
    assert labels == ["Linear", "Reshape", "CrossEntropy"]
    assert "deeper nodes not shown (max_depth=2)" in dot


def test_render_graph_draws_png_with_dot(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot: apt-get install graphviz (or brew install graphviz)")
    _, loss = tiny_loss()
    path = tp.render_graph(loss, tmp_path / "graph.png", collapse=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "graph.dot").exists()


def test_render_graph_without_dot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    _, loss = tiny_loss()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        tp.render_graph(loss, tmp_path / "graph.svg")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")


def test_hook_fires_once_per_backward_with_the_gradient():
    x = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * x
    calls = []
    h.register_hook(lambda g: calls.append(g.numpy()))
    loss = (h * tp.tensor([1.0, 10.0, 100.0])).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert len(calls) == 2
    for grad in calls:
        np.testing.assert_array_equal(grad, [1.0, 10.0, 100.0])


# ---- the model, looked into ----

@pytest.fixture
def checkpoint(tmp_path):
    text = "to be or not to be, that is the question\n"
    tokenizer = CharTokenizer.from_text(text)
    tp.manual_seed(0)
    model = GPT(GPTConfig(**{**TINY, "vocab_size": tokenizer.vocab_size}))
    return save_checkpoint(tmp_path / "best.npz", model, step=0, config=model.config.to_dict(),
                           tokenizer=tokenizer.to_dict())


def test_logit_lens_last_stage_is_the_models_own_logits():
    tp.manual_seed(0)
    model = GPT(GPTConfig(**TINY, norm_placement="post")).eval()
    idx = np.random.default_rng(0).integers(0, 11, (1, 8))
    stages = inspection.logit_lens_stages(model, idx)
    assert len(stages) == 3
    np.testing.assert_array_equal(stages[-1].numpy(), model(idx)[0].numpy())


def test_attention_maps_are_causal_distributions(checkpoint):
    model, tokenizer, _ = load_model(checkpoint)
    maps = inspection.attention_maps(model, tokenizer.encode("to be or"))
    assert len(maps) == 2 and maps[0].shape == (2, 8, 8)
    for weights in maps:
        np.testing.assert_allclose(weights.sum(-1), 1, rtol=1e-6)
        assert (weights[:, np.triu_indices(8, 1)[0], np.triu_indices(8, 1)[1]] == 0).all()


def test_logit_lens_table(checkpoint, capsys, tmp_path):
    inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to be", "--top", "2",
                  "--save", str(tmp_path / "lens.txt")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 3 * 5                      # header + (embeddings, block 0, block 1) x 5 positions
    assert lines[1].split()[:3] == ["embeddings", "0", "t"] and lines[-1].split()[:4] == ["block", "1", "4", "e"]
    assert (tmp_path / "lens.txt").read_text().strip().splitlines() == lines


@pytest.mark.parametrize("command", ["logit-lens", "attention"])
def test_a_prompt_longer_than_the_context_says_what_it_leaves_out(checkpoint, capsys, tmp_path, request, command):
    """The context is 8 tokens: of "to be or not to be" (18 characters), the model sees "ot to be", as generate.py's
    window keeps a prompt's last tokens; one line on stderr says that "to be or n" was left out."""
    out = []
    if command == "attention":
        request.getfixturevalue("matplotlib")
        out = ["--out", str(tmp_path / "a.png")]
    inspection_main([command, "--checkpoint", str(checkpoint), "--prompt", "to be or not to be", *out])
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == ("note: the model's context is 8 tokens: the first 10 of the prompt's 18 "
                                            "('to be or n') are left out")
    if command == "logit-lens":
        rows = [line.split() for line in captured.out.splitlines()[1:] if line.startswith("embeddings")]
        assert [row[2] for row in rows] == ["o", "t", "␣", "t", "o", "␣", "b", "e"]


def test_a_prompt_that_fits_the_context_brings_no_note(checkpoint, capsys):
    inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "ot to be"])
    assert capsys.readouterr().err == ""


def test_pictures_are_written(checkpoint, tmp_path, matplotlib):
    inspection_main(["attention", "--checkpoint", str(checkpoint), "--prompt", "to be or", "--out",
                  str(tmp_path / "attention.png")])
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps({"step": s, "train_loss": 3 - s / 100, "val_loss": 3.1 - s / 100})
                                 for s in (10, 20, 30)))
    inspection_main(["loss-curve", "--metrics", str(metrics), "--out", str(tmp_path / "loss.png")])
    for name in ("attention.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drawing_without_matplotlib_is_a_clear_error(checkpoint, tmp_path, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SystemExit):
        inspection_main(["attention", "--checkpoint", str(checkpoint), "--prompt", "to be", "--out",
                      str(tmp_path / "a.png")])
    assert "pip install matplotlib" in capsys.readouterr().err


def test_outputs_go_into_new_folders_and_a_folder_given_as_the_table_is_refused_before_the_work(checkpoint, tmp_path,
                                                                                                capsys, matplotlib):
    """Every output of inspection.py creates the folders its path names, as --save and the other scripts do (the
    pictures stopped at "No such file or directory"); --save naming a folder is one line before the table is
    computed and printed (it came after)."""
    inspection_main(["attention", "--checkpoint", str(checkpoint), "--prompt", "to be",
                     "--out", str(tmp_path / "new" / "folder" / "attention.png")])
    inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to be",
                     "--out", str(tmp_path / "other" / "lens.png")])
    inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to be",
                     "--save", str(tmp_path / "tables" / "lens.txt")])
    capsys.readouterr()
    for picture in ("new/folder/attention.png", "other/lens.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "tables" / "lens.txt").read_text().startswith("after ")
    with pytest.raises(SystemExit) as exit_info:
        inspection_main(["logit-lens", "--checkpoint", str(checkpoint), "--prompt", "to be", "--save", str(tmp_path)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err == f"error: {tmp_path}: is not a regular file (a folder, a device or a pipe?)\n"


def test_what_tokens_says_of_its_text_names_the_text_not_a_prompt(checkpoint, capsys):
    """inspection.py tokens takes --text: its notes and errors speak of the text (they said "the prompt", which
    tokens has none of). The vocabulary is that of "to be or not to be, that is the question\\n": no x, y or z."""
    inspection_main(["tokens", "--checkpoint", str(checkpoint), "--text", "tox", "--drop-unknown", "--no-color"])
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "[t][o]"
    assert captured.err == "note: left out of the text, not in the model's vocabulary: 'x'\n"
    for text, message in (("xyz", "no character of the text is in the model's vocabulary"),
                          ("to b\udce9", "the text holds bytes that are not UTF-8 (e9 at character 4)")):
        with pytest.raises(SystemExit) as exit_info:
            inspection_main(["tokens", "--checkpoint", str(checkpoint), "--text", text, "--drop-unknown"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
