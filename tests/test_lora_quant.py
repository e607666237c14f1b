"""After training: LoRA adapters (gradients by finite differences and against PyTorch, merge/unmerge, a frozen
base, exact resume, adapter-only checkpoints tied to their base) and int8/int4 weights (error bounds, exact
packing, logits close to the float model's), with the bad inputs of both."""
import numpy as np
import pytest

import generate
import tinygrad_proust as tp
import train
from models import adapters
from models.loading import load_model
from models.gpt import GPT, GPTConfig
from quantize import main as quantize_main
from models.quantize import (dequantize, pack_int4, quantize_int4,
                             quantize_int8, unpack_int4)
from models.tokenizer import ByteTokenizer
from tinygrad_proust import nn
from tinygrad_proust.checkpoint import load_checkpoint, save_checkpoint


def lora_layer(dtype="float64", rank=3, alpha=6.0):
    tp.manual_seed(0)
    layer = nn.LoRALinear(nn.Linear(5, 4).to(dtype=dtype), rank, alpha)
    layer.lora_B.weight.data = np.random.default_rng(1).normal(0, 0.5, (4, rank)).astype(dtype)  # B = 0 at start
    return layer


def test_lora_gradients_match_finite_differences():
    layer = lora_layer()
    x = tp.tensor(np.random.default_rng(2).standard_normal((3, 5)), requires_grad=True)
    a, b = layer.lora_A.weight, layer.lora_B.weight
    assert tp.gradcheck(lambda x, a, b: layer(x), x, a, b)
    assert not layer.weight.requires_grad and not layer.bias.requires_grad          # the base is frozen


def test_lora_matches_pytorch(torch):
    layer = lora_layer("float32")
    x = np.random.default_rng(3).standard_normal((2, 3, 5)).astype(np.float32)
    g = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    xt = tp.tensor(x, requires_grad=True)
    (layer(xt) * tp.tensor(g)).sum().backward()
    W, bias, A, B = (torch.tensor(p.numpy()) for p in (layer.weight, layer.bias, layer.lora_A.weight,
                                                        layer.lora_B.weight))
    A.requires_grad_(), B.requires_grad_()
    xr = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.linear(xr, W, bias) + (xr @ A.T @ B.T) * 2.0            # alpha / r = 6 / 3
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(layer(xt).detach().numpy(), y.detach().numpy(), rtol=1e-5, atol=1e-6)
    for ours, theirs in ((xt.grad, xr.grad), (layer.lora_A.weight.grad, A.grad), (layer.lora_B.weight.grad, B.grad)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_merged_and_unmerged_outputs_are_equal():
    layer = lora_layer()
    x = tp.tensor(np.random.default_rng(5).standard_normal((4, 5)))
    unmerged = layer(x).numpy()
    base = layer.weight.numpy()
    np.testing.assert_allclose(layer.merge()(x).numpy(), unmerged, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.unmerge()(x).numpy(), unmerged, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.numpy(), base, rtol=0, atol=1e-15)


def test_lora_rejects_bad_ranks_and_targets():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, ffn_hidden=32))
    with pytest.raises(ValueError, match=r"rank must be in \[1, 16\]"):
        nn.apply_lora(model, 17, targets=["*.attn.c_proj"])
    with pytest.raises(ValueError, match="no Linear layer matches nothing.here"):
        nn.apply_lora(model, 2, targets=["nothing.here"])


# ---- through train.py ----

TINY = ["--batch-size", "4", "--eval-batches", "2", "--sample-tokens", "0", "--warmup", "2"]


@pytest.fixture
def base(tmp_path):
    corpus = tmp_path / "plays.txt"
    corpus.write_text("ROMEO. What say you, my lord? Nothing, madam; and yet I say it all.\n" * 40)
    train.main(["--data", str(corpus), "--steps", "4", "--eval-interval", "4", "--n-layer", "2", "--n-embd", "16",
                "--n-head", "2", "--ffn-hidden", "32", "--block-size", "16",
                "--out-dir", str(tmp_path / "base"), *TINY])
    sonnets = tmp_path / "sonnets.txt"
    sonnets.write_text("Shall I compare thee to a summer's day? Thou art more lovely and more temperate.\n" * 40)
    return tmp_path / "base" / "best.npz", sonnets


def lora_run(base, sonnets, out, steps, *extra):
    train.main(["--init-from", str(base), "--data", str(sonnets), "--lora-rank", "4", "--lora-dropout", "0.1",
                "--lora-targets", "attn,mlp",
                "--steps", str(steps), "--eval-interval", "2", "--lr-decay-steps", "6", "--out-dir", str(out),
                *TINY, *extra])


def test_lora_trains_only_the_adapters_and_keeps_the_base_bitwise(base, tmp_path, capsys):
    base_path, sonnets = base
    lora_run(base_path, sonnets, tmp_path / "lora", 6)
    printed = capsys.readouterr().out
    # by hand, r (in + out) per layer: c_attn 4(16+48), attn c_proj 4(16+16), c_fc 4(16+32), mlp c_proj 4(32+16)
    assert f"LoRA: rank 4 on 8 layers: training {2 * 4 * (64 + 32 + 48 + 48):,} of" in printed
    meta, weights, _ = load_checkpoint(tmp_path / "lora" / "last.npz")
    assert all(".lora_" in name for name in weights) and len(weights) == 16          # adapters only
    assert meta["base"]["sha256"] == adapters.base_digest(load_model(base_path)[0])
    model = load_model(tmp_path / "lora" / "last.npz", merge=False)[0]
    base_model = load_model(base_path)[0]
    for name, tensor in base_model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), tensor.numpy())   # bitwise the base
    assert not all(np.all(w == 0) for name, w in weights.items() if "lora_B" in name)  # the adapters trained
    generate.main(["--checkpoint", str(tmp_path / "lora" / "best.npz"), "--prompt", "What", "--max-new-tokens", "5"])
    assert capsys.readouterr().out.startswith("What")


def test_a_lora_resume_is_exact(base, tmp_path):
    base_path, sonnets = base
    lora_run(base_path, sonnets, tmp_path / "straight", 6)
    lora_run(base_path, sonnets, tmp_path / "halves", 2)
    train.main(["--resume", str(tmp_path / "halves" / "last.npz"), "--steps", "6"])
    straight, halves = (load_checkpoint(tmp_path / run / "last.npz")[1] for run in ("straight", "halves"))
    assert straight.keys() == halves.keys()
    for name in straight:
        np.testing.assert_array_equal(halves[name], straight[name])


def test_an_adapter_refuses_another_base_and_merges_into_one_checkpoint(base, tmp_path, capsys):
    base_path, sonnets = base
    lora_run(base_path, sonnets, tmp_path / "lora", 2)
    adapter = tmp_path / "lora" / "last.npz"
    from adapters import main as adapters_main
    adapters_main(["merge", str(adapter), str(tmp_path / "merged.npz")])
    merged = load_model(tmp_path / "merged.npz")[0]
    with_adapter = load_model(adapter)[0]
    idx = np.arange(8)[None] % 5
    np.testing.assert_allclose(merged(idx)[0].numpy(), with_adapter(idx)[0].numpy(), rtol=1e-5, atol=1e-6)
    model, tokenizer, meta = load_model(base_path)
    model.wte.weight.data = model.wte.weight.data + 1e-3                                     # another base
    save_checkpoint(base_path, model, step=0, config=model.config.to_dict(), tokenizer=tokenizer.to_dict())
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--checkpoint", str(adapter)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "is not the base this adapter was trained on" in err and "\n" not in err
    assert err.startswith(f"error: checkpoint {adapter}: ") and "damaged" not in err  # the adapter itself is whole


@pytest.mark.parametrize("lora", [[], ["--lora-rank", "2"]])
def test_an_adapter_as_a_starting_point_is_one_line(base, tmp_path, capsys, lora):
    """--init-from an adapter: its layers are not the plain model's (a traceback, before); merge it first, as
    quantize.py asks."""
    base_path, sonnets = base
    lora_run(base_path, sonnets, tmp_path / "lora", 2)
    adapter = tmp_path / "lora" / "last.npz"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--init-from", str(adapter), "--data", str(sonnets), "--steps", "2", *lora,
                    "--out-dir", str(tmp_path / "again"), *TINY])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err, err
    assert err == (f"error: --init-from {adapter}: a LoRA adapter: merge it into one checkpoint first (python "
                   "adapters.py merge) and start from that")
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("argv, message", [
    (["--lora-rank", "4"], "--lora-rank: LoRA adapts a trained model; name it with --init-from"),
    (["--lora-alpha", "8"], "give --lora-rank too"),
    (["--lora-rank", "0"], "argument --lora-rank: expected a whole number in [1, 65536], got 0"),
])
def test_lora_flags_without_what_they_need_are_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--out-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and "\n" not in err


@pytest.mark.parametrize("flags, message", [(["--lora-rank", "999"], "rank must be in [1, 16]"),
                                            (["--lora-targets", "nothing"], "no Linear layer matches nothing")])
def test_lora_shapes_that_fit_no_layer_are_one_line(base, tmp_path, capsys, flags, message):
    base_path, sonnets = base
    capsys.readouterr()
    with pytest.raises(SystemExit):
        train.main(["--init-from", str(base_path), "--data", str(sonnets), "--lora-rank", "4", *flags,
                    "--out-dir", str(tmp_path / "x"), *TINY])
    assert message in capsys.readouterr().err


# ---- quantised weights ----

def test_quantisation_error_is_at_most_half_a_step_per_element():
    w = np.random.default_rng(0).normal(0, 0.1, (12, 64)).astype(np.float32)
    w[3, :5] *= 20                                                        # an outlier row and group
    q, scale = quantize_int8(w)
    assert q.dtype == np.int8 and scale.shape == (12, 1)
    assert (np.abs(dequantize(q, scale, 8) - w) <= scale / 2 + 1e-7).all()
    for group in (32, 64):
        packed, scale = quantize_int4(w, group)
        assert packed.dtype == np.uint8 and packed.shape == (12, 32) and scale.shape == (12, 64 // group)
        error = np.abs(dequantize(packed, scale, 4, group) - w).reshape(12, -1, group)
        assert (error <= scale[..., None] / 2 + 1e-7).all()


def test_int4_packing_is_exact():
    values = np.array([[v for v in range(-8, 8)] * 2], dtype=np.int8)
    packed = pack_int4(values)
    assert packed.shape == (1, 16) and packed[0, 0] == (0 | (1 << 4))       # -8 -> 0 low, -7 -> 1 high
    np.testing.assert_array_equal(unpack_int4(packed), values)
    random = np.random.default_rng(1).integers(-8, 8, (5, 40)).astype(np.int8)
    np.testing.assert_array_equal(unpack_int4(pack_int4(random)), random)


@pytest.mark.parametrize("bits, max_change, mean_change", [(8, 0.05, 0.01), (4, 1.0, 0.12)])
def test_a_quantised_model_predicts_close_to_the_float_one(tmp_path, bits, max_change, mean_change, capsys):
    tp.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=64, ffn_hidden=128))
    for p in model.parameters():                                   # a trained model's spread, not the init's
        p.data = p.data + np.random.default_rng(0).normal(0, 0.05, p.shape).astype(np.float32)
    path = save_checkpoint(tmp_path / "f.npz", model, config=model.config.to_dict(),
                           tokenizer=ByteTokenizer().to_dict())
    groups = ["--group-size", "32"] if bits == 4 else []             # int8 has no groups: one scale per row
    quantize_main([str(path), str(tmp_path / "q.npz"), "--bits", str(bits), *groups])
    # by hand over the quantised matrices (out, in): wte, then per block c_attn, c_proj, c_fc, mlp c_proj.
    # int8: a byte per value and a 4-byte scale per row; int4: half a byte per value and 4 bytes per 32 values
    shapes = [(256, 64)] + [(192, 64), (64, 64), (128, 64), (64, 128)] * 2
    floats = sum(4 * o * i for o, i in shapes)
    expected = (sum(o * i + 4 * o for o, i in shapes) if bits == 8 else sum(o * i / 2 + o * i / 8 for o, i in shapes))
    expected /= floats
    assert f"take {expected:.3f} of their float32 size" in capsys.readouterr().out
    idx = np.random.default_rng(0).integers(0, 256, (2, 32))
    change = np.abs(load_model(tmp_path / "q.npz")[0](idx)[0].log_softmax(-1).numpy()
                    - model.eval()(idx)[0].log_softmax(-1).numpy())
    assert change.max() <= max_change and change.mean() <= mean_change
    generate.main(["--checkpoint", str(tmp_path / "q.npz"), "--prompt", "ab", "--max-new-tokens", "5"])
    with pytest.raises(SystemExit):
        train.main(["--resume", str(tmp_path / "q.npz")])
    assert "a quantised checkpoint cannot be trained" in capsys.readouterr().err


def test_bad_quantisation_requests_are_one_line(tmp_path, capsys):
    model = GPT(GPTConfig(vocab_size=256, block_size=8, n_layer=1, n_head=2, n_embd=48, ffn_hidden=96))
    path = save_checkpoint(tmp_path / "f.npz", model, config=model.config.to_dict(),
                           tokenizer=ByteTokenizer().to_dict())
    for argv, message in ((["--bits", "3"], "invalid choice: 3"),
                          (["--bits", "4", "--group-size", "32"], "group size 32 must be even and divide the input "
                                                                  "size 48"),
                          (["--bits", "8", "--group-size", "16"], "--group-size acts only with --bits 4 (int8 has one "
                                                                  "scale per row)")):
        with pytest.raises(SystemExit) as exit_info:
            quantize_main([str(path), str(tmp_path / "q.npz"), *argv])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and message in err and "\n" not in err
