"""nn modules and the GPT: exact parameter counts, float64 gradient checks of every architecture family,
logits/loss/gradient parity with an independent PyTorch implementation, causality, state_dict errors."""
import math

import numpy as np
import pytest

import tinygrad_proust as tp
from models.gpt import GPT, GPTConfig, PRESETS, preset_config
from tinygrad_proust import functional as F, nn

# the published sizes of these designs (byte-gpt, proust, nanoGPT's baby GPT) and, for the other two, by hand;
# not from our code
EXPECTED_COUNTS = {
    "byte-gpt": 222_784, "proust": 419_840, "baby-gpt": 10_745_088,
    # embeddings 84·128 + 64·128; per block: qkv 128·384+384, proj 128·128+128, 2 LayerNorms 2·256,
    # fc 128·512+512, proj 512·128+128 = 198,272, × 4; final LayerNorm 256
    "char-small": 84 * 128 + 64 * 128 + 4 * 198_272 + 256,
    # embeddings 27·32 + 8·32; one block: 32·96+96 + 32·32+32 + 2·64 + 32·128+128 + 128·32+32 = 12,704; final 64
    "raven": 27 * 32 + 8 * 32 + 12_704 + 64,
}



@pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
def test_preset_parameter_counts_are_exact(name):
    assert GPT.from_preset(name).num_parameters() == EXPECTED_COUNTS[name]


def test_baby_gpt_count_without_position_table():
    model = GPT.from_preset("baby-gpt")
    assert model.num_parameters() - model.wpe.weight.numel() == 10_646_784


def test_raven_is_one_block_one_head_context_8():
    config = preset_config("raven")
    assert (config.n_layer, config.n_head, config.block_size, config.norm, config.ffn) == (1, 1, 8, "layernorm", "relu")


# ---- nn.Module ----

class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.layers = nn.ModuleList([nn.Linear(4, 4, bias=False), nn.Linear(4, 2)])
        self.layers[1].weight = nn.Parameter(tp.randn(2, 4))


def test_named_parameters_in_definition_order_with_dotted_names():
    names = [n for n, _ in TwoLayer().named_parameters()]
    assert names == ["first.weight", "first.bias", "norm.weight", "norm.bias", "layers.0.weight",
                     "layers.1.bias", "layers.1.weight"]


def test_linear_is_out_by_in_with_seed_init():
    tp.manual_seed(0)
    layer = nn.Linear(300, 200)
    assert layer.weight.shape == (200, 300) and layer.weight.dtype == np.float32
    assert abs(layer.weight.numpy().std() - 0.02) < 0.001 and abs(layer.weight.numpy().mean()) < 0.001
    assert not layer.bias.numpy().any()
    assert (nn.LayerNorm(5).weight.numpy() == 1).all() and (nn.RMSNorm(5).weight.numpy() == 1).all()


def test_tied_weight_is_one_parameter_listed_once_but_saved_under_its_name():
    model = GPT.from_preset("byte-gpt")
    params = model.parameters()
    assert len(params) == len({id(p) for p in params})
    assert model.head_weight() is model.wte.weight


def test_scaled_residual_init_shrinks_output_projections():
    tp.manual_seed(0)
    model = GPT.from_preset("baby-gpt")
    std = model.blocks[0].attn.c_proj.weight.numpy().std()
    assert abs(std - 0.02 / math.sqrt(2 * 6)) < 0.0005
    assert abs(model.blocks[0].attn.c_attn.weight.numpy().std() - 0.02) < 0.0005


def test_train_eval_reach_every_submodule():
    model = TwoLayer().eval()
    assert not any(m.training for m in model.modules())
    assert all(m.training for m in model.train().modules())


def test_state_dict_round_trip_and_zero_grad():
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict(a.state_dict())
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.numpy(), pb.numpy()) and pa is not pb
    x = tp.randn(5, 3)
    b.layers[1](b.layers[0](b.norm(b.first(x)))).sum().backward()
    assert b.first.weight.grad is not None
    b.zero_grad()
    assert all(p.grad is None for p in b.parameters())


def test_loaded_weights_are_c_contiguous_whatever_the_source_layout():
    # a transposed weight (as Hugging Face's Conv1D stores GPT-2's) must not stay Fortran-ordered: a GEMM rounds and
    # runs differently on another layout, so the same model would give other logits after a round trip
    model = TwoLayer()
    state = {name: np.asfortranarray(t.numpy()) for name, t in model.state_dict().items()}
    state["first.weight"] = np.ascontiguousarray(state["first.weight"].T).T         # a transposed view, too
    assert not state["first.weight"].flags.c_contiguous
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        assert p.data.flags.c_contiguous, name
        np.testing.assert_array_equal(p.numpy(), state[name])


def test_load_state_dict_errors_name_each_problem():
    model = TwoLayer()
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "norm.bias"}
    with pytest.raises(ValueError, match=r"missing: norm\.bias"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected: extra\.weight"):
        model.load_state_dict({**state, "extra.weight": np.zeros(2)})
    with pytest.raises(ValueError, match=r"shape mismatch: first\.weight: checkpoint \(3, 4\) vs model \(4, 3\)"):
        model.load_state_dict({**state, "first.weight": np.zeros((3, 4))})
    model.load_state_dict(missing, strict=False)  # strict=False lets a missing entry pass
    with pytest.raises(ValueError, match="shape mismatch"):  # ...but never a wrong shape
        model.load_state_dict({**state, "first.weight": np.zeros((3, 4))}, strict=False)


@pytest.mark.parametrize("positions, buffers", [("sinusoidal", ["wpe.table"]),
                                                ("rope", [f"blocks.{i}.attn.rotary.{k}" for i in (0, 1)
                                                          for k in ("cos", "sin")])])
def test_position_tables_are_buffers_left_out_of_state_dict(positions, buffers):
    """Computed from the config, as PyTorch code registers such tables with persistent=False: they move with the
    model, but checkpoints and exports hold the parameters only, as they always have."""
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, positions=positions))
    assert [name for name, _ in model.named_buffers()] == buffers
    assert list(model.state_dict()) == [name for name, _ in model.named_parameters(remove_duplicate=False)]
    model.load_state_dict(model.state_dict())


def test_module_must_call_super_init():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match="must call super"):
        Broken()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="GPTConfig.ffn must be one of"):
        GPTConfig(ffn="tanh")
    with pytest.raises(ValueError, match="unknown preset 'gpt5'"):
        GPT.from_preset("gpt5")


# ---- tiny models of every family ----

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8, ffn_hidden=12)
FAMILIES = {
    "pre_layernorm_gelu_learned_tied": dict(),
    "post_layernorm_relu_sinusoidal_untied_scaled": dict(norm_placement="post", ffn="relu", positions="sinusoidal",
                                                         tie_weights=False, scale_embeddings=True, attn_bias=False),
    "pre_rmsnorm_swiglu_rope_tied": dict(norm="rmsnorm", ffn="swiglu", positions="rope", ffn_bias=False,
                                         attn_bias=False),
    "post_rmsnorm_gelu_exact_rope_untied_head_bias": dict(norm="rmsnorm", norm_placement="post", ffn="gelu",
                                                          gelu_approximate="none", positions="rope",
                                                          tie_weights=False, head_bias=True, final_norm=False),
    "pre_layernorm_nobias_swiglu_sinusoidal": dict(norm_bias=False, ffn="swiglu", positions="sinusoidal"),
}


def tiny_batch(config, B=2, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, config.vocab_size, (B, config.block_size))
    return idx, rng.integers(0, config.vocab_size, (B, config.block_size))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_whole_model_gradient_matches_finite_differences(family):
    config = GPTConfig(**TINY, **FAMILIES[family])
    model = GPT(config).double()
    for p in model.parameters():  # move off the init (zeros, ones) so every path carries signal
        p.data = p.data + np.random.default_rng(1).normal(0, 0.3, p.shape)
    idx, _ = tiny_batch(config)
    assert tp.gradcheck(lambda *params: model(idx)[0], *model.parameters(), atol=1e-6, rtol=1e-5)


def _rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def _ours(config, dtype, idx, targets):
    """Our logits, loss and every parameter's gradient, by name, as float64 arrays."""
    tp.manual_seed(0)
    model = GPT(GPTConfig(**{**config.to_dict(), "dropout": 0.0})).to(dtype=dtype)
    logits, loss = model(idx, targets)
    loss.backward()
    return {"logits": logits.numpy(), "loss": np.array(loss.item()),
            **{name: p.grad.numpy() for name, p in model.named_parameters()}}


def _theirs(torch, config, dtype, idx, targets):
    """The same from the PyTorch twin (models/torch_gpt.py), given our initial weights."""
    from models.torch_gpt import TorchGPT, copy_weights
    tp.manual_seed(0)
    config = GPTConfig(**{**config.to_dict(), "dropout": 0.0})
    twin = TorchGPT(config).to(getattr(torch, dtype))
    copy_weights(GPT(config), twin)
    logits, loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    loss.backward()
    return {"logits": logits.detach().numpy(), "loss": np.array(loss.item()),
            **{name: p.grad.numpy() for name, p in twin.named_parameters()}}


def _errors(result, truth):
    assert set(result) == set(truth)
    return {name: _rel_err(result[name].astype(np.float64), truth[name].astype(np.float64)) for name in truth}


# ReLU's gradient jumps at 0: a pre-activation closer to 0 than float32's rounding error of it (at most 6e-7 here,
# measured over every ReLU preset) can land on either side in either framework, and flip a unit's gradient in one
# and not the other (a relative error of 0.2, seen). So a float32 comparison uses a batch whose float64
# pre-activations are all at least KINK_MARGIN from 0: chosen from float64 values alone, it is the same batch on
# every machine.
KINK_MARGIN = 1e-5


def _relu_preactivations(config, idx):
    tp.manual_seed(0)
    model = GPT(GPTConfig(**{**config.to_dict(), "dropout": 0.0})).double()
    seen = []
    for block in model.blocks:
        block.mlp.c_fc.register_forward_hook(lambda module, args, out: seen.append(out.numpy().ravel()))
    model(idx)
    return np.concatenate(seen)


def _batch(config, B=2, T=None, away_from_kinks=False):
    T = T or min(config.block_size, 16)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        idx, targets = rng.integers(0, config.vocab_size, (B, T)), rng.integers(0, config.vocab_size, (B, T))
        if not (away_from_kinks and config.ffn == "relu"):
            return idx, targets
        if np.abs(_relu_preactivations(config, idx)).min() >= KINK_MARGIN:
            return idx, targets
    raise AssertionError("no batch keeps every ReLU pre-activation away from 0")


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_pytorch_in_float64(name, torch):
    """The same arithmetic in both frameworks: equal to float64's rounding."""
    config = preset_config(name)
    idx, targets = _batch(config)
    errors = _errors(_ours(config, "float64", idx, targets), _theirs(torch, config, "float64", idx, targets))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-9, f"{worst}: relative error {errors[worst]:.3g}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_in_float32_land_near_float64_truth_in_both_frameworks(name, torch):
    """Our float32 against float64 truth (PyTorch's), and PyTorch's float32 against the same truth, which shows the
    batch is well-conditioned. 1e-4 relative to the largest value: float32's unit roundoff 6e-8, grown by sums of up
    to 1,536 terms (about 40x) through at most 6 blocks forward and back, is about 1e-5 at worst; measured, 1e-6."""
    config = preset_config(name)
    idx, targets = _batch(config, away_from_kinks=True)
    truth = _theirs(torch, config, "float64", idx, targets)
    for who, result in (("ours", _ours(config, "float32", idx, targets)),
                        ("PyTorch's", _theirs(torch, config, "float32", idx, targets))):
        errors = _errors(result, truth)
        worst = max(errors, key=errors.get)
        assert errors[worst] <= 1e-4, f"{who} float32 {worst}: relative error {errors[worst]:.3g}"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_families_match_pytorch_in_float64(family, torch):
    config = GPTConfig(**TINY, **FAMILIES[family])
    idx, targets = _batch(config, T=5)
    errors = _errors(_ours(config, "float64", idx, targets), _theirs(torch, config, "float64", idx, targets))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-9, f"{worst}: relative error {errors[worst]:.3g}"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_future_tokens_never_change_past_logits(family):
    config = GPTConfig(**TINY, **FAMILIES[family])
    model = GPT(config).eval()
    idx, _ = tiny_batch(config, B=1)
    changed = idx.copy()
    changed[0, 3:] = (changed[0, 3:] + 1) % config.vocab_size
    before, after = model(idx)[0].numpy(), model(changed)[0].numpy()
    np.testing.assert_allclose(before[0, :3], after[0, :3], rtol=1e-6, atol=1e-7)
    assert not np.allclose(before[0, 3:], after[0, 3:])


def test_first_loss_is_about_log_vocab():
    tp.manual_seed(0)
    model = GPT.from_preset("byte-gpt")
    idx, targets = tiny_batch(model.config, B=4)
    assert abs(model(idx, targets)[1].item() - math.log(256)) < 0.1


def test_attention_weights_are_causal_distributions():
    model = GPT(GPTConfig(**TINY)).eval()
    idx, _ = tiny_batch(model.config)
    attentions = []
    def hook(module, args, kwargs, output):  # the mask and causality by name, not by position
        attentions.append(F.attention_weights(*args[:2], kwargs.get("attn_mask"), kwargs.get("is_causal", False)))
    handles = [block.attn.attend.register_forward_hook(hook, with_kwargs=True) for block in model.blocks]
    logits, _ = model(idx)
    for handle in handles:
        handle.remove()
    np.testing.assert_allclose(logits.numpy(), model(idx)[0].numpy(), rtol=1e-5, atol=1e-6)
    assert len(attentions) == 2
    for att in attentions:
        a = att.numpy()
        assert a.shape == (2, 2, 5, 5)
        np.testing.assert_allclose(a.sum(-1), 1, rtol=1e-6)
        assert (np.triu(np.ones((5, 5)), 1) * a == 0).all()


def test_dropout_only_in_training():
    model = GPT(GPTConfig(**TINY, dropout=0.5))
    idx, _ = tiny_batch(model.config)
    model.eval()
    np.testing.assert_array_equal(model(idx)[0].numpy(), model(idx)[0].numpy())
    model.train()
    assert not np.array_equal(model(idx)[0].numpy(), model(idx)[0].numpy())


def dropped_out_shapes(loss):
    """The input shape of every Dropout op in loss's graph (attention's own dropout acts inside its op)."""
    shapes, seen, stack = [], set(), [loss]
    while stack:
        node = stack.pop()
        if id(node) in seen or node._ctx is None:
            continue
        seen.add(id(node))
        if type(node._ctx).__name__ == "Dropout":
            shapes.append(node._ctx.parents[0].shape)
        stack.extend(node._ctx.parents)
    return sorted(shapes)


@pytest.mark.parametrize("ffn_dropout, hidden", [(False, 0), (True, 1)])
def test_dropout_acts_where_nanogpt_applies_it_and_on_the_ffn_hidden_layer_only_when_asked(ffn_dropout, hidden):
    """nanoGPT (and GPT-2) drop out the embeddings, the attention weights and each sub-layer's output, not the
    MLP's hidden layer: baby-gpt, its recipe, does the same; ffn_dropout=True adds the hidden layer."""
    config = preset_config("baby-gpt", n_layer=2, n_head=2, n_embd=16, ffn_hidden=64, block_size=8,
                           ffn_dropout=ffn_dropout)
    idx, targets = tiny_batch(config)
    _, loss = GPT(config)(idx, targets)
    B, T, C = idx.shape + (16,)
    assert dropped_out_shapes(loss) == sorted([(B, T, C)] * (1 + 2 * 2) + [(B, T, 64)] * (2 * hidden))
    assert PRESETS["baby-gpt"]["ffn_dropout"] is False and GPTConfig().ffn_dropout is True
    saved_before = {k: v for k, v in config.to_dict().items() if k != "ffn_dropout"}  # a checkpoint older than it
    assert GPTConfig.from_dict(saved_before).ffn_dropout is True                  # resumes as it trained
    torch = pytest.importorskip("torch")
    from models.torch_gpt import TorchGPT
    twin_hidden = TorchGPT(config).blocks[0].mlp.hidden_dropout                  # the PyTorch twin the same way
    assert isinstance(twin_hidden, torch.nn.Dropout if ffn_dropout else torch.nn.Identity)


def test_sequence_longer_than_context_is_a_clear_error():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="longer than the context"):
        model(np.zeros((1, 6), dtype=np.int64))


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_and_run_on_device(name, device):
    model = GPT.from_preset(name).to(device)
    idx, targets = tiny_batch(model.config, B=1)
    idx, targets = idx[:, :8], targets[:, :8]
    logits, loss = model(tp.tensor(idx, device=device), tp.tensor(targets, device=device))
    loss.backward()
    assert logits.device == device and all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_and_reference_paths_agree_on_the_whole_model(family):
    config = GPTConfig(**TINY, **FAMILIES[family])
    model = GPT(config).double()
    idx, targets = tiny_batch(config)
    results = []
    for fused in (True, False):
        model.zero_grad()
        with tp.use_fused(fused):
            logits, loss = model(idx, targets)
        loss.backward()
        results.append((logits.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters()}))
    (logits_f, grads_f), (logits_r, grads_r) = results
    np.testing.assert_allclose(logits_f, logits_r, rtol=1e-10, atol=1e-12)
    for name in grads_f:
        np.testing.assert_allclose(grads_f[name], grads_r[name], rtol=1e-8, atol=1e-12, err_msg=name)
