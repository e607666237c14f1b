"""PyTorch code ported by changing one import: a GPT written the way nanoGPT's model.py writes it (its layer norm
with an optional bias, causal attention both through SDPA and by hand with a registered tril buffer, weight tying,
`self.apply(init)`, `ModuleDict`, `@no_grad()` top-k sampling that assigns -inf in place) is defined once, as a
function of the library it is given, and built with `torch` and with `tinygrad_proust`. The same weights give the
same logits, loss and gradients (float64, to 1e-9), and the same greedy continuation.

Then smaller programs, written the same way: a makemore-style character MLP trained by a hand-written SGD step (each
of the three ways PyTorch code writes one) and sampled with a generator of its own; the same model as makemore part 3
builds it from nn modules, with a BatchNorm1d after its hidden layer, trained on minibatches and evaluated with the
running statistics; and an MLP in nn.Sequential whose init is adjusted in place under no_grad, trained with AdamW,
zero_grad(set_to_none=True) and nn.utils.clip_grad_norm_; and the in-place rules those programs rely on. Last, the
names more ported code reaches: grad modes, loss and layer modules, linspace, randperm, allclose and equal, an
embedding's padding row, a layer norm without affine parameters, nn.init's distributions, and buffers in state_dict
(persistent, non-persistent, None) with PyTorch's keys, loading and refusals."""
import math

import numpy as np
import pytest

import tinygrad_proust as tp

CONFIG = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)


def define_gpt(torch, nn, F):
    """The model, written against `torch`, `nn` and `F` exactly as PyTorch code is."""

    class LayerNorm(nn.Module):
        def __init__(self, ndim, bias):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(ndim))
            self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, n_head, block_size, bias, flash):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
            self.n_head, self.n_embd, self.flash = n_head, n_embd, flash
            mask = torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size)
            self.register_buffer("bias", mask)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            if self.flash:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                att = F.softmax(att, dim=-1)
                y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self, n_embd, bias, dropout):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))

    class Block(nn.Module):
        def __init__(self, config, flash):
            super().__init__()
            self.ln_1 = LayerNorm(config["n_embd"], bias=config["bias"])
            self.attn = CausalSelfAttention(config["n_embd"], config["n_head"], config["block_size"],
                                            config["bias"], flash)
            self.ln_2 = LayerNorm(config["n_embd"], bias=config["bias"])
            self.mlp = MLP(config["n_embd"], config["bias"], config["dropout"])

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self, config, flash=True):
            super().__init__()
            self.block_size = config["block_size"]
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config["vocab_size"], config["n_embd"]),
                wpe=nn.Embedding(config["block_size"], config["n_embd"]),
                drop=nn.Dropout(config["dropout"]),
                h=nn.ModuleList([Block(config, flash) for _ in range(config["n_layer"])]),
                ln_f=LayerNorm(config["n_embd"], bias=config["bias"]),
            ))
            self.lm_head = nn.Linear(config["n_embd"], config["vocab_size"], bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # tied
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            b, t = idx.size()
            pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = None
            if targets is not None:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= self.block_size else idx[:, -self.block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1)
                idx = torch.cat((idx, idx_next), dim=1)
            return idx

    return GPT


def both_models(torch, flash):
    torch.manual_seed(0)
    theirs = define_gpt(torch, torch.nn, torch.nn.functional)(CONFIG, flash).double()
    ours = define_gpt(tp, tp.nn, tp.functional)(CONFIG, flash).double()
    assert all(float(p.std()) < 0.03 for n, p in ours.named_parameters() if n.endswith("c_fc.weight"))  # init ran
    with torch.no_grad():  # weights far from the init's near-uniform logits, so the greedy path is not trivial
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    ours.load_state_dict(theirs.state_dict())  # the weights and each block's causal-mask buffer attn.bias
    return ours, theirs


@pytest.mark.parametrize("flash", [True, False])
def test_a_nanogpt_style_model_ports_by_changing_the_import(torch, flash):
    ours, theirs = both_models(torch, flash)
    assert ours.transformer.wte.weight is ours.lm_head.weight                     # tied, as written
    assert sorted(n for n, _ in ours.named_parameters()) == sorted(n for n, _ in theirs.named_parameters())
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, CONFIG["vocab_size"], (2, 2, CONFIG["block_size"]))
    targets[0, :3] = -1                                                           # ignored positions
    logits, loss = ours(tp.tensor(idx), tp.tensor(targets))
    ref_logits, ref_loss = theirs(torch.tensor(idx), torch.tensor(targets))
    np.testing.assert_allclose(logits.numpy(), ref_logits.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert abs(loss.item() - ref_loss.item()) <= 1e-12 * abs(ref_loss.item())
    loss.backward()
    ref_loss.backward()
    theirs_grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_grads[name].grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=name)


def test_its_top_k_sampling_runs_and_greedy_continues_as_pytorch(torch):
    ours, theirs = both_models(torch, flash=True)
    prompt = np.array([[1, 2, 3], [7, 5, 9]])
    mine = ours.generate(tp.tensor(prompt), 10, top_k=1)                          # top-1: the argmax each step
    ref = theirs.generate(torch.tensor(prompt), 10, top_k=1)                      # past the context of 8 too
    assert mine.tolist() == ref.tolist() and mine.shape == (2, 13) and len(set(mine[:, 3:].numpy().ravel())) > 2
    sampled = ours.generate(tp.tensor(prompt), 6, temperature=0.8, top_k=4)
    assert sampled.shape == (2, 9) and 0 <= sampled.numpy().min() and sampled.numpy().max() < CONFIG["vocab_size"]


# ---- a makemore-style character MLP: an embedding table indexed by C[X], tanh, cross_entropy, a hand-written SGD
# step, and sampling with a generator of its own, written once against `torch` and `F` ----
NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"]
BLOCK = 3


def makemore_data(torch):
    stoi = {ch: i + 1 for i, ch in enumerate(sorted(set("".join(NAMES))))}
    stoi["."] = 0
    xs, ys = [], []
    for name in NAMES:
        context = [0] * BLOCK
        for ch in name + ".":
            xs.append(context)
            ys.append(stoi[ch])
            context = context[1:] + [stoi[ch]]
    return torch.tensor(xs), torch.tensor(ys), len(stoi)


def sgd_through_data(torch, parameters, lr):
    for p in parameters:
        p.data += -lr * p.grad


def sgd_under_no_grad(torch, parameters, lr):
    with torch.no_grad():
        for p in parameters:
            p -= lr * p.grad


def sgd_with_add_(torch, parameters, lr):
    with torch.no_grad():
        for p in parameters:
            p.add_(p.grad, alpha=-lr)


def train_makemore(torch, F, weights, update, steps=6):
    X, Y, vocab = makemore_data(torch)
    C, W1, b1, W2, b2 = parameters = [torch.tensor(w) for w in weights]
    for p in parameters:
        p.requires_grad = True
    losses = []
    for i in range(steps):
        emb = C[X]                                                 # (N, BLOCK, d)
        h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Y)
        for p in parameters:
            p.grad = None
        loss.backward()
        update(torch, parameters, 0.1 if i < steps // 2 else 0.01)
        losses.append(loss.item())
    return losses, parameters, sum(p.nelement() for p in parameters)


def sample_makemore(torch, F, parameters, seed, count=4):
    C, W1, b1, W2, b2 = parameters
    g = torch.Generator().manual_seed(seed)
    names = []
    with torch.no_grad():
        for _ in range(count):
            context, out = [0] * BLOCK, []
            while len(out) < 20:
                h = torch.tanh(C[torch.tensor([context])].view(1, -1) @ W1 + b1)
                probs = F.softmax(h @ W2 + b2, dim=1)
                ix = torch.multinomial(probs, num_samples=1, replacement=True, generator=g).item()
                context = context[1:] + [ix]
                out.append(ix)
                if ix == 0:
                    break
            names.append(out)
    return names, torch.randn((2, 3), generator=g), torch.randint(0, 5, (4,), generator=g)


@pytest.mark.parametrize("update", [sgd_through_data, sgd_under_no_grad, sgd_with_add_])
def test_a_makemore_mlp_trains_as_pytorch_by_hand(update, torch):
    """The three ways PyTorch code writes a hand-made SGD step each update the parameters themselves: the same
    losses and weights as PyTorch's, float64 to 1e-12."""
    rng = np.random.default_rng(0)
    vocab = makemore_data(torch)[2]
    weights = [rng.standard_normal(s) for s in ((vocab, 2), (2 * BLOCK, 20), (20,), (20, vocab), (vocab,))]
    ours, ours_params, ours_count = train_makemore(tp, tp.functional, weights, update)
    theirs, their_params, their_count = train_makemore(torch, torch.nn.functional, weights, update)
    assert ours_count == their_count == sum(w.size for w in weights)
    assert ours[-1] < ours[0] - 0.1                                  # it learns
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    for mine, ref in zip(ours_params, their_params):
        assert mine.is_leaf and mine.requires_grad
        np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_sampling_with_a_generator_of_its_own_repeats_and_leaves_the_global_stream_alone(torch):
    rng = np.random.default_rng(0)
    vocab = makemore_data(torch)[2]
    params = [tp.tensor(rng.standard_normal(s)) for s in ((vocab, 2), (2 * BLOCK, 20), (20,), (20, vocab), (vocab,))]
    tp.manual_seed(5)
    first = sample_makemore(tp, tp.functional, params, seed=2147483647)
    after_first = tp.randn(3).tolist()
    tp.manual_seed(5)
    again = sample_makemore(tp, tp.functional, params, seed=2147483647)
    assert tp.randn(3).tolist() == after_first                       # the global stream never moved
    assert first[0] == again[0] and first[1].tolist() == again[1].tolist() and first[2].tolist() == again[2].tolist()
    assert all(0 <= ix < vocab for name in first[0] for ix in name)
    other = sample_makemore(tp, tp.functional, params, seed=1)
    assert (other[0], other[1].tolist()) != (first[0], first[1].tolist())
    assert first[1].shape == (2, 3) and first[2].dtype == np.int64 and 0 <= first[2].numpy().min() <= 4


# ---- makemore part 3: the character model with a batch norm after its hidden layer, written with nn modules as the
# lecture ends up writing it: trained on minibatches by a hand-written SGD step, then evaluated in eval mode ----
def train_makemore_batchnorm(torch, nn, F, weights, batches):
    X, Y, vocab = makemore_data(torch)
    n_embd, n_hidden = weights["C.weight"].shape[1], weights["0.weight"].shape[0]
    C = nn.Embedding(vocab, n_embd).double()
    layers = [nn.Linear(n_embd * BLOCK, n_hidden, bias=False).double(), nn.BatchNorm1d(n_hidden).double(),
              nn.Tanh(), nn.Linear(n_hidden, vocab).double()]  # no bias before the batch norm: its shift replaces it
    C.load_state_dict({"weight": torch.tensor(weights["C.weight"])})
    for i in (0, 3):
        layers[i].load_state_dict({k[2:]: torch.tensor(v) for k, v in weights.items() if k.startswith(f"{i}.")})
    with torch.no_grad():
        layers[-1].weight *= 0.1                                   # a less confident last layer at init
    parameters = list(C.parameters()) + [p for layer in layers for p in layer.parameters()]

    def forward(Xb):
        x = C(Xb).view(Xb.shape[0], -1)                            # the context's vectors side by side
        for layer in layers:
            x = layer(x)
        return x

    losses, running_means = [], []
    for i, ix in enumerate(batches):
        loss = F.cross_entropy(forward(X[ix]), Y[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < len(batches) // 2 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        losses.append(loss.item())
        running_means.append(layers[1].running_mean.tolist())
    for layer in layers:
        layer.eval()                                               # the running statistics from here on
    with torch.no_grad():
        eval_loss = F.cross_entropy(forward(X), Y).item()
        first = F.softmax(forward(X[:1]), dim=1)                   # one example at a time, as sampling goes
    state = {f"C.{name}": t for name, t in C.state_dict().items()}
    state.update({f"{i}.{name}": t for i, layer in enumerate(layers) for name, t in layer.state_dict().items()})
    return losses, running_means, eval_loss, first, state


def test_a_makemore_mlp_with_batch_norm_trains_as_pytorch(torch):
    """Every step's loss and running mean, then the eval loss (running statistics), the parameters and the running
    variance and batch count are PyTorch's, float64 to 1e-12."""
    rng = np.random.default_rng(0)
    vocab, examples = makemore_data(torch)[2], len(makemore_data(torch)[1])
    weights = {"C.weight": rng.standard_normal((vocab, 4)), "0.weight": rng.standard_normal((24, 4 * BLOCK)) * 0.3,
               "3.weight": rng.standard_normal((vocab, 24)) * 0.2, "3.bias": np.zeros(vocab)}
    batches = rng.integers(0, examples, (8, 16))
    losses, running_means, eval_loss, first, state = train_makemore_batchnorm(
        tp, tp.nn, tp.functional, weights, [tp.tensor(ix) for ix in batches])
    ref_losses, ref_means, ref_eval_loss, ref_first, ref_state = train_makemore_batchnorm(
        torch, torch.nn, torch.nn.functional, weights, [torch.tensor(ix) for ix in batches])
    assert losses[-1] < losses[0] - 0.1                            # it learns
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    np.testing.assert_allclose(running_means, ref_means, rtol=1e-12, atol=1e-14)
    assert abs(eval_loss - ref_eval_loss) <= 1e-12 * ref_eval_loss
    np.testing.assert_allclose(first.numpy(), ref_first.numpy(), rtol=1e-12, atol=1e-14)
    assert list(state) == list(ref_state)                          # the batch norm's buffers among the weights
    for name, t in state.items():
        assert t.dtype == (np.int64 if name.endswith("num_batches_tracked") else np.float64), name
        np.testing.assert_allclose(t.numpy(), ref_state[name].numpy(), rtol=1e-12, atol=1e-14, err_msg=name)
    assert state["1.num_batches_tracked"].item() == len(batches)


# ---- an MLP in nn.Sequential trained by an optimizer, its init adjusted in place under no_grad ----
def train_sequential(torch, nn, F, optim, weights, x, y, steps=5):
    model = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(0.0), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 3)).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.tensor(weights[name]))
        model[-1].weight *= 0.1                                      # a less confident last layer
        model[-1].bias.zero_()
        model[0].bias.fill_(0.01)
        model[3].weight.clamp_(-0.4, 0.4)
    names = [name for name, _ in model.named_parameters()]
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses, norms = [], []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), 0.5)))
        opt.step()
        losses.append(loss.item())
    opt.zero_grad(set_to_none=False)
    return names, losses, norms, model


def test_an_mlp_with_its_init_adjusted_in_place_trains_as_pytorch(torch):
    from tinygrad_proust import optim
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 3))
    weights = {name.replace("1.", "3.").replace("2.", "5."): p.detach().double().numpy()
               for name, p in reference.named_parameters()}
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)
    ours = train_sequential(tp, tp.nn, tp.functional, optim, weights, tp.tensor(x), tp.tensor(y))
    theirs = train_sequential(torch, torch.nn, torch.nn.functional, torch.optim, weights, torch.tensor(x),
                              torch.tensor(y))
    assert ours[0] == theirs[0] == list(weights)                     # no parameter fell out of the model
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-12)
    their_params = dict(theirs[3].named_parameters())
    for name, p in ours[3].named_parameters():
        np.testing.assert_allclose(p.numpy(), their_params[name].detach().numpy(), rtol=1e-12, atol=1e-14)
        assert p.grad.tolist() == their_params[name].grad.tolist() == np.zeros(p.shape).tolist()


def test_in_place_ops_write_into_the_tensor_where_no_gradient_flows(device, torch):
    """x += y, x.add_(y) and the rest change x itself, as PyTorch's, so every name for x sees the change; where a
    gradient flows, `x += y` is `x = x + y` (a new tensor, the same values) and the named methods refuse."""
    for lib in (tp, torch):
        on = (lambda t: t.to(device)) if lib is tp else (lambda t: t)
        x = on(lib.zeros(3))
        alias = x
        alias += 1
        alias *= on(lib.tensor([1.0, 2.0, 3.0]))
        alias -= 0.5
        alias /= 2
        assert x.tolist() == [0.25, 0.75, 1.25] and alias is x
        x.sub_(0.25).mul_(2).add_(on(lib.ones(3)), alpha=2).div_(2)
        assert x.tolist() == [1.0, 1.5, 2.0]
        assert x.clamp_(min=1.25).tolist() == [1.25, 1.5, 2.0] and x.fill_(7).tolist() == [7.0] * 3
        assert x.zero_().tolist() == [0.0] * 3 and x.copy_(lib.tensor([1, 2, 3])).tolist() == [1.0, 2.0, 3.0]
        counts = on(lib.zeros(2, dtype=lib.int64))
        counts += 3
        assert counts.tolist() == [3, 3] and counts.dtype == lib.int64
        alias = counts
        alias //= 2
        alias %= on(lib.tensor([1, 2]))
        assert counts.tolist() == [0, 1] and alias is counts and counts.dtype == lib.int64  # 3 // 2, then 1 % 1, 1 % 2
        grid = on(lib.zeros(2, 3))
        alias = grid.scatter_(1, on(lib.tensor([[2], [0]])), on(lib.ones(2, 1)))
        alias.scatter_add_(1, on(lib.tensor([[2, 2], [1, 0]])), on(lib.full((2, 2), 0.5))).scatter_(0, on(
            lib.tensor([[1]])), value=-1.0)
        assert grid.tolist() == [[0.0, 0.0, 2.0], [-1.0, 0.5, 0.0]] and alias is grid
        with pytest.raises((TypeError, RuntimeError)):               # a float result into integers
            counts += 0.5
        with pytest.raises((ValueError, RuntimeError)):              # the result would not fit x's shape
            on(lib.zeros(3)).add_(on(lib.ones(2, 3)))
    w = tp.ones(3, requires_grad=True)
    h = w * 2
    before = h
    h += 1                                                           # a gradient flows: a new tensor
    assert h is not before and before.tolist() == [2.0] * 3 and h.tolist() == [3.0] * 3
    h.sum().backward()
    assert w.grad.tolist() == [2.0] * 3
    for method in (lambda: w.add_(1), lambda: w.zero_(), lambda: h.mul_(2),
                   lambda: h.scatter_add_(0, tp.tensor([1]), tp.ones(1))):
        with pytest.raises(ValueError, match="gradient"):
            method()
    with tp.no_grad():
        w -= 0.5 * w.grad                                            # a leaf, under no_grad: in place
    assert w.tolist() == [0.0] * 3 and w.is_leaf and w.requires_grad


def test_a_parameter_is_replaced_only_by_a_parameter_and_its_data_stays_an_array(torch):
    model = tp.nn.Linear(3, 2)
    with pytest.raises(TypeError, match="weight"):
        model.weight = model.weight * 2                              # as PyTorch's TypeError: not silently dropped
    with pytest.raises(TypeError):
        torch.nn.Linear(3, 2).weight = torch.ones(2, 3)
    assert [name for name, _ in model.named_parameters()] == ["weight", "bias"]
    model.bias = None                                                # None is allowed, as in PyTorch
    model.weight.data = tp.full((2, 3), 0.5)                         # torch's way to swap a parameter's values
    assert isinstance(model.weight.data, np.ndarray)
    assert model(tp.ones(1, 3)).tolist() == [[1.5, 1.5]]


# ---- what more ported code reaches: grad modes, loss and layer modules, init, a few ops and creation functions ----
def grad_modes(torch):
    """is_grad_enabled() after each way PyTorch code switches recording off and back on, and whether a product
    made there records a graph."""
    w = torch.ones(2, requires_grad=True)
    seen = []

    def note():
        seen.append((torch.is_grad_enabled(), (w * 2).requires_grad))

    @torch.no_grad()
    def sample():
        note()
        with torch.enable_grad():                                    # a gradient inside an evaluation loop
            note()

    @torch.inference_mode()
    def evaluate():
        note()

    @torch.set_grad_enabled(False)
    def frozen():
        note()

    note()
    sample(), evaluate(), frozen()
    note()                                                           # decorating switched nothing off
    with torch.inference_mode():
        note()
        with torch.inference_mode(False):                            # recording on again, as PyTorch's
            note()
    with torch.set_grad_enabled(False):
        note()
        with torch.set_grad_enabled(True):
            note()
        note()
    note()
    torch.set_grad_enabled(False)                                    # a statement: off until switched back
    note()
    torch.set_grad_enabled(True)
    note()
    return seen


def test_grad_modes_switch_recording_as_pytorchs(torch):
    ours = grad_modes(tp)
    assert ours == grad_modes(torch)
    assert [on for on, _ in ours] == [True, False, True, False, False, True, False, True, False, True, False,
                                      True, False, True] and tp.is_grad_enabled()


def bare_decorators(torch):
    """What functions decorated without parentheses (PyTorch 2's `@torch.no_grad`) see and give back."""
    w = torch.ones(2, requires_grad=True)

    @torch.no_grad
    def sample(n):
        """Draws n."""
        return (w * n).requires_grad, torch.is_grad_enabled(), n + 1

    @torch.inference_mode
    def evaluate():
        return (w * 2).requires_grad

    @torch.enable_grad
    def step():
        return (w * 2).requires_grad, torch.is_grad_enabled()

    with torch.no_grad():
        inside = step(), torch.is_grad_enabled()
    return [sample(3), sample.__name__, sample.__doc__, evaluate(), evaluate.__name__, inside, step.__name__,
            torch.is_grad_enabled()]


def test_grad_modes_decorate_without_parentheses_as_pytorchs(torch):
    ours = bare_decorators(tp)
    assert ours == bare_decorators(torch)
    assert ours == [(False, False, 4), "sample", "Draws n.", False, "evaluate", ((True, True), False), "step", True]
    for lib in (tp, torch):
        for mode in (lambda: None, 0):                               # a bare @set_grad_enabled, or not a bool
            with pytest.raises(TypeError):
                lib.set_grad_enabled(mode)
        assert lib.is_grad_enabled()


def generator_modes(torch):
    """What generator functions decorated with a grad mode see each time they resume (a token-streaming sampler
    under @no_grad()), and what the caller sees between: send(), close(), throw(), `yield from` and its return."""
    w = torch.ones(2, requires_grad=True)
    seen = []

    def note(where):
        seen.append((where, (w * 2).requires_grad, torch.is_grad_enabled()))

    @torch.no_grad()
    def tokens(n):
        """Yields n tokens."""
        for i in range(n):
            note(f"in {i}")
            got = yield i
            note(f"got {got}")
        return "done"

    @torch.no_grad
    def bare():
        note("bare")
        yield 1

    @torch.inference_mode()
    def infer():
        try:
            yield 1
        except ValueError:
            note("thrown")
            yield 2

    @torch.enable_grad()
    def recording():
        note("enabled")
        yield 1

    def outer():
        result = yield from tokens(2)
        note("after yield from")
        return result

    stream = tokens(3)
    note("made")
    seen.append(next(stream))
    note("between")
    seen.append(stream.send("a"))
    stream.close()
    note("closed")
    chained = outer()
    seen.append([next(chained), next(chained)])
    with pytest.raises(StopIteration) as stop:
        next(chained)
    seen.append(("returned", stop.value.value))
    seen.append(list(bare()))
    caught = infer()
    next(caught)
    seen.append(caught.throw(ValueError("to the generator")))
    with torch.no_grad():
        seen.append(list(recording()))
    note("end")
    return seen + [(tokens.__name__, tokens.__doc__)]


def test_generator_functions_run_in_their_grad_mode_each_time_they_resume_as_pytorchs(torch):
    ours = generator_modes(tp)
    assert ours == generator_modes(torch)
    off, on = False, True
    assert [entry for entry in ours if isinstance(entry, tuple) and len(entry) == 3] == [
        ("made", on, on), ("in 0", off, off), ("between", on, on), ("got a", off, off), ("in 1", off, off),
        ("closed", on, on), ("in 0", off, off), ("got None", off, off), ("in 1", off, off), ("got None", off, off),
        ("after yield from", on, on), ("bare", off, off), ("thrown", off, off), ("enabled", on, on),
        ("end", on, on)]
    assert ("returned", "done") in ours and ours[-1] == ("tokens", "Yields n tokens.")


def classifier_losses(torch, nn, weights, x, y, target):
    """A classifier in nn.Sequential (flattened images through sigmoid and tanh layers) and its losses as modules:
    cross entropy with class weights, an ignored target and label smoothing, and the squared error of the softmax
    against a target distribution, mean, summed and per element."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 3))
    model.double()
    model.load_state_dict({name: torch.tensor(value) for name, value in weights.items()})
    logits = model(x)
    probs = nn.Softmax(dim=1)(logits)
    criterion = nn.CrossEntropyLoss(weight=torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), ignore_index=-1,
                                    label_smoothing=0.1)
    losses = [criterion(logits, y), nn.CrossEntropyLoss()(logits, y.clamp(min=0)), nn.MSELoss()(probs, target),
              nn.MSELoss(reduction="sum")(probs, target), nn.MSELoss(reduction="none")(probs, target)[1, 2]]
    sum(losses).backward()
    return ([loss.item() for loss in losses], [p.grad.numpy() for p in model.parameters()], tuple(logits.shape),
            [type(m).__name__ for m in model])


def test_loss_and_layer_modules_match_pytorchs(torch):
    rng = np.random.default_rng(0)
    weights = {f"{i}.{kind}": rng.standard_normal((5, 6 if i == 1 else 5)[:1 if kind == "bias" else 2])
               for i in (1, 3) for kind in ("weight", "bias")}
    weights.update({"5.weight": rng.standard_normal((3, 5)), "5.bias": rng.standard_normal(3)})
    x, y, target = rng.standard_normal((4, 2, 3)), np.array([0, 2, -1, 1]), rng.dirichlet(np.ones(3), 4)
    ours = classifier_losses(tp, tp.nn, weights, tp.tensor(x), tp.tensor(y), tp.tensor(target))
    theirs = classifier_losses(torch, torch.nn, weights, torch.tensor(x), torch.tensor(y), torch.tensor(target))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    for mine, ref in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-14)
    assert ours[2:] == theirs[2:] and ours[2] == (4, 3)
    with pytest.raises(ValueError, match="mse_loss: reduction"):
        tp.nn.MSELoss(reduction="avg")(tp.ones(2), tp.ones(2))
    with pytest.warns(UserWarning, match="mse_loss"):                  # a broadcast target, as PyTorch warns
        tp.functional.mse_loss(tp.ones(3, 1), tp.ones(3))


def test_linspace_randperm_allclose_and_equal_follow_pytorch(device, torch):
    for args, kwargs in [((0, 1, 7), {}), ((-2.5, 4, 5), {"dtype": "float64"}), ((3, 3, 1), {}), ((0, 1, 0), {}),
                         ((0, 10, 5), {"dtype": "int64"})]:
        ours = tp.linspace(*args, device=device, **kwargs)
        theirs = torch.linspace(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
        assert ours.shape == tuple(theirs.shape) and str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        assert ours.device == device and not ours.requires_grad
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6 if ours.dtype == np.float32 else 1e-15)
    assert tp.linspace(0, 1, 3, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match="linspace: steps"):
        tp.linspace(0, 1, -1)
    tp.manual_seed(3)
    perm = tp.randperm(50, device=device)
    assert perm.dtype == np.int64 and perm.device == device and sorted(perm.tolist()) == list(range(50))
    assert perm.tolist() != list(range(50)) and tp.randperm(0).shape == (0,)
    tp.manual_seed(3)
    assert tp.randperm(50).tolist() == perm.tolist()                 # manual_seed repeats it
    tp.manual_seed(3)
    first = tp.randn(2).tolist()
    tp.manual_seed(3)
    own = tp.randperm(50, generator=tp.Generator().manual_seed(1))
    assert tp.randn(2).tolist() == first                             # a generator of its own leaves the stream alone
    assert own.tolist() == tp.randperm(50, generator=tp.Generator().manual_seed(1)).tolist() != perm.tolist()
    a, b = np.array([1.0, 2.0, np.nan]), np.array([1.0 + 1e-9, 2.00001, np.nan])
    for lib in (tp, torch):
        x, y = (lib.tensor(a, device=device), lib.tensor(b, device=device)) if lib is tp else map(torch.tensor, (a, b))
        assert (lib.allclose(x, y), lib.allclose(x, y, equal_nan=True), x.allclose(y, rtol=1e-7, equal_nan=True),
                lib.allclose(x[:2], y[:2].flip(0), atol=1.5)) == (False, True, False, True)
        assert (lib.equal(x[:2], x[:2].clone()), lib.equal(x, x), x[:2].equal(y[:2]), lib.equal(x[:1], x[:2]),
                lib.equal(x[:2].long(), x[:2])) == (True, False, False, False, True)


@pytest.mark.parametrize("fused", [True, False])
def test_an_embedding_padding_row_starts_at_zero_and_never_learns_as_pytorchs(fused, device, torch):
    table = tp.nn.Embedding(6, 3, padding_idx=-2)
    assert table.padding_idx == torch.nn.Embedding(6, 3, padding_idx=-2).padding_idx == 4
    assert table.weight.numpy()[4].tolist() == [0.0, 0.0, 0.0] and np.abs(table.weight.numpy()[:4]).min() > 0
    assert "padding_idx=4" in repr(table)
    weights = np.random.default_rng(0).standard_normal((6, 3))          # a padding row that is not 0 any more
    ids, upstream = np.array([[4, 1, 4], [2, 4, 1]]), np.random.default_rng(1).standard_normal((2, 3, 3))
    table.double().load_state_dict({"weight": weights})
    table.to(device)
    theirs = torch.nn.Embedding(6, 3, padding_idx=4).double()
    theirs.load_state_dict({"weight": torch.tensor(weights)})
    with tp.use_fused(fused):
        out = table(tp.tensor(ids, device=device))
        plain = tp.functional.embedding(tp.tensor(ids, device=device), table.weight, padding_idx=4)
    ref = theirs(torch.tensor(ids))
    (out * tp.tensor(upstream, device=device) + plain).sum().backward()
    (ref * torch.tensor(upstream) + torch.nn.functional.embedding(torch.tensor(ids), theirs.weight, 4)).sum().backward()
    np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    np.testing.assert_allclose(table.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-14)
    assert table.weight.grad.numpy()[4].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="embedding: padding_idx 6 is out of range for 6 rows"):
        tp.nn.Embedding(6, 3, padding_idx=6)


def test_a_layer_norm_without_affine_or_bias_has_pytorchs_parameters_and_values(torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    for kwargs in ({"elementwise_affine": False}, {"bias": False}, {"elementwise_affine": False, "bias": False},
                   {"eps": 1e-3}):
        ours, theirs = tp.nn.LayerNorm(5, **kwargs), torch.nn.LayerNorm(5, **kwargs).double()
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()], kwargs
        for p, q in zip(ours.parameters(), theirs.parameters()):
            with torch.no_grad():
                q.copy_(torch.tensor(np.random.default_rng(len(p.shape)).standard_normal(q.shape)))
            p.data = q.detach().numpy().copy()
        np.testing.assert_allclose(ours(tp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12,
                                   atol=1e-14)
    assert "elementwise_affine=False" in repr(tp.nn.LayerNorm(5, elementwise_affine=False))


def test_nn_init_fills_in_place_with_pytorchs_distributions(device, torch):
    """The values are random, so the test reads the distribution: a uniform one's bounds (reached within 1%), a
    normal one's mean and std (to 3%: 60,000 draws give 0.3%), with PyTorch's formulas, which PyTorch's own draws
    meet too; fan_in is size(1) · the rest of the shape, fan_out size(0) · the rest."""
    init, tinit = tp.nn.init, torch.nn.init
    for shape in ((200, 300), (40, 30, 50)):
        fan_in, fan_out = shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:])
        xavier = math.sqrt(2 / (fan_in + fan_out))
        cases = [(lambda m, w: m.uniform_(w, -0.3, 0.7), "uniform", -0.3, 0.7),
                 (lambda m, w: m.xavier_uniform_(w, gain=2.0), "uniform", -2 * math.sqrt(3) * xavier,
                  2 * math.sqrt(3) * xavier),
                 (lambda m, w: m.kaiming_uniform_(w, a=math.sqrt(5)), "uniform", -fan_in ** -0.5, fan_in ** -0.5),
                 (lambda m, w: m.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu"), "uniform",
                  -math.sqrt(6 / fan_out), math.sqrt(6 / fan_out)),
                 (lambda m, w: m.xavier_normal_(w, gain=m.calculate_gain("tanh")), "normal", 0.0, 5 / 3 * xavier),
                 (lambda m, w: m.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), "normal", 0.0,
                  math.sqrt(2 / fan_out)),
                 (lambda m, w: m.kaiming_normal_(w, a=0.2), "normal", 0.0, math.sqrt(2 / (1.04 * fan_in))),
                 (lambda m, w: m.normal_(w, mean=1.0, std=0.5), "normal", 1.0, 0.5)]
        for fill, kind, a, b in cases:
            for m, w in ((init, tp.nn.Parameter(tp.zeros(*shape, device=device))), (tinit, torch.zeros(shape))):
                assert fill(m, w) is w and tuple(w.shape) == shape
                values = w.detach().numpy() if m is tinit else w.numpy()
                if kind == "uniform":
                    assert a <= values.min() < a + 0.01 * (b - a) and b - 0.01 * (b - a) < values.max() < b
                else:
                    assert abs(values.mean() - a) < 0.03 * b and abs(values.std() / b - 1) < 0.03
    w = tp.nn.Parameter(tp.zeros(3, 4, dtype=tp.float64, device=device))
    assert init.constant_(w, 0.25) is w and w.numpy().tolist() == [[0.25] * 4] * 3 and w.dtype == np.float64
    assert init.kaiming_uniform_(w).device == device and w.dtype == np.float64 and w.requires_grad and w.is_leaf
    for name in ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(name) == pytest.approx(tinit.calculate_gain(name), rel=1e-15), name
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(tinit.calculate_gain("leaky_relu", 0.2))
    g = tp.Generator().manual_seed(7)
    first = init.uniform_(tp.zeros(5), generator=g).tolist()
    assert init.uniform_(tp.zeros(5), generator=tp.Generator().manual_seed(7)).tolist() == first
    for call, match in [(lambda: init.xavier_uniform_(tp.zeros(5)), "xavier_uniform_: fan_in and fan_out need"),
                        (lambda: init.kaiming_normal_(tp.zeros(2, 2), mode="fan"), "kaiming_normal_: mode must be"),
                        (lambda: init.calculate_gain("swish"), "calculate_gain: unsupported nonlinearity")]:
        with pytest.raises(ValueError, match=match):
            call()


def define_buffered(torch, nn):
    """A module with each kind of buffer PyTorch code registers: a persistent one (a running statistic, saved),
    a non-persistent one (a table computed from the config, not saved), a None one (skipped), and an integer one."""

    class Normalizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.register_buffer("running_mean", torch.zeros(2))
            self.register_buffer("table", torch.ones(4, 2), persistent=False)
            self.register_buffer("cache", None)

        def forward(self, x):
            return self.linear(x) - self.running_mean

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = Normalizer()
            self.register_buffer("steps", torch.tensor(0))
            self.head = nn.Linear(2, 1)

        def forward(self, x):
            return self.head(self.norm(x))

    return Net


def test_buffers_are_in_state_dict_as_in_pytorch(torch):
    ours, theirs = define_buffered(tp, tp.nn)(), define_buffered(torch, torch.nn)()
    keys = ["steps", "norm.running_mean", "norm.linear.weight", "norm.linear.bias", "head.weight", "head.bias"]
    assert list(theirs.state_dict()) == keys                        # each module's own, then its children's
    assert list(ours.state_dict()) == keys
    buffers = ["steps", "norm.running_mean", "norm.table"]          # named_buffers: non-persistent too, not None
    assert [n for n, _ in theirs.named_buffers()] == [n for n, _ in ours.named_buffers()] == buffers
    assert [b.shape for b in ours.buffers()] == [(), (2,), (4, 2)]
    buffer_ids = {id(b) for b in ours.buffers()}                    # never trained
    assert not buffer_ids & {id(p) for p in ours.parameters()}
    assert not buffer_ids & {id(p) for g in tp.optim.AdamW(ours.parameters()).param_groups for p in g["params"]}

    ours.norm.cache, theirs.norm.cache = tp.ones(2), torch.ones(2)  # assigned: still a buffer, persistent as it was
    ours.norm.table, theirs.norm.table = tp.zeros(1), torch.zeros(1)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == keys[:2] + ["norm.cache"] + keys[2:]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()] == buffers + ["norm.cache"]
    ours.norm.cache = theirs.norm.cache = None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == keys

    ours.double(), theirs.double()                                  # floating buffers cast, integer ones kept
    assert [str(b.dtype) for b in ours.buffers()] == ["int64", "float64", "float64"]
    assert [str(b.dtype) for b in theirs.buffers()] == ["torch.int64", "torch.float64", "torch.float64"]


def test_a_pytorch_state_dict_with_buffers_loads_and_strict_loading_names_them(torch):
    ours, theirs = define_buffered(tp, tp.nn)(), define_buffered(torch, torch.nn)()
    with torch.no_grad():
        theirs.norm.running_mean.copy_(torch.tensor([0.25, -1.5]))
        theirs.steps.fill_(7)
    ours.load_state_dict(theirs.state_dict())
    assert ours.norm.running_mean.numpy().tolist() == [0.25, -1.5] and ours.norm.running_mean.dtype == np.float32
    assert ours.steps.item() == 7 and ours.steps.dtype == np.int64
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(tp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6)

    state = {k: v for k, v in theirs.state_dict().items() if k != "norm.running_mean"}
    with pytest.raises(RuntimeError, match='Missing key.*"norm.running_mean"'):
        theirs.load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing: norm\.running_mean$"):
        ours.load_state_dict(state)
    ours.load_state_dict(state, strict=False)                        # not strict: the buffer keeps its values
    assert ours.norm.running_mean.numpy().tolist() == [0.25, -1.5]
    state = {**theirs.state_dict(), "norm.table": torch.zeros(4, 2)}  # a non-persistent buffer is not a key
    with pytest.raises(RuntimeError, match='Unexpected key.*"norm.table"'):
        theirs.load_state_dict(state)
    with pytest.raises(ValueError, match=r"unexpected: norm\.table$"):
        ours.load_state_dict(state)
    with pytest.raises(ValueError, match=r"shape mismatch: norm\.running_mean: checkpoint \(3,\) vs model \(2,\)"):
        ours.load_state_dict({**theirs.state_dict(), "norm.running_mean": torch.zeros(3)})


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_buffers_come_back_from_a_checkpoint_with_their_shapes(tmp_path, suffix, torch):
    """A 0-d buffer (a step count) stays 0-d through either format."""
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    from tinygrad_proust.checkpoint import load_checkpoint, save_checkpoint
    saved = define_buffered(tp, tp.nn)()
    saved.steps.fill_(7)
    saved.norm.running_mean.copy_(tp.tensor([0.25, -1.5]))
    save_checkpoint(tmp_path / f"m{suffix}", saved, None)
    loaded = define_buffered(tp, tp.nn)()
    loaded.load_state_dict(load_checkpoint(tmp_path / f"m{suffix}")[1])
    assert loaded.steps.shape == () and loaded.steps.item() == 7
    assert loaded.norm.running_mean.numpy().tolist() == [0.25, -1.5]


def test_buffers_move_with_the_module_and_load_onto_its_device(device, torch):
    ours, theirs = define_buffered(tp, tp.nn)().to(device), define_buffered(torch, torch.nn)()
    assert {b.device for b in ours.buffers()} == {device}                    # the None one is passed over
    with torch.no_grad():
        theirs.norm.running_mean.copy_(torch.tensor([0.5, 2.0]))
    ours.load_state_dict(theirs.state_dict())
    assert ours.norm.running_mean.device == device and ours.norm.running_mean.tolist() == [0.5, 2.0]
    ours.to("cpu")
    assert {b.device for b in ours.buffers()} == {"cpu"} and ours.norm.table.tolist() == [[1.0, 1.0]] * 4


def test_register_buffer_refuses_what_pytorch_refuses(torch):
    for nn, tensor in ((tp.nn, tp.ones(1)), (torch.nn, torch.ones(1))):
        module = nn.Linear(2, 2)
        for call, error, match in [(lambda: module.register_buffer("a.b", tensor), KeyError, r'contain "\."'),
                                   (lambda: module.register_buffer("", tensor), KeyError, "be empty"),
                                   (lambda: module.register_buffer("weight", tensor), KeyError, "already exists"),
                                   (lambda: module.register_buffer("x", [1.0]), TypeError, "cannot assign 'list'")]:
            with pytest.raises(error, match=match):
                call()
        module.register_buffer("x", None)
        with pytest.raises(TypeError, match="cannot assign 'float'.* buffer 'x'"):
            module.x = 3.0


def ported_idioms(torch, F, nn):
    """What common PyTorch code does with each library: an EMA copy under no_grad, an f-string of the loss, a
    dtype given to Module.to positionally, a slice of a Sequential, load_state_dict's report, clipping one tensor or
    none with a gradient, a hook's handle, abs() and a tensor as an index."""
    torch.manual_seed(0)
    model, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    loss = (model(torch.ones(4, 3)) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.copy_(p)                                                   # p requires grad: no graph under no_grad
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    head = seq[:2]
    report = nn.Linear(3, 2).load_state_dict({"weight": torch.zeros(2, 3)}, strict=False)
    w = torch.ones(3, requires_grad=True)
    (w * 2).sum().backward()
    one = torch.nn.utils.clip_grad_norm_(w, 1.0)                         # a single tensor
    none = torch.nn.utils.clip_grad_norm_(nn.Linear(2, 2).parameters(), 1.0)   # nothing has a gradient yet
    seen = []
    handle = w.register_hook(lambda g: seen.append(1))
    (w * 3).sum().backward()
    handle.remove()
    (w * 3).sum().backward()
    index = torch.tensor(2)
    return [bool((ema.weight == model.weight).all()), f"{loss:.4f}" == f"{loss.item():.4f}", type(head).__name__,
            tuple(head(torch.ones(5, 3)).shape), len(seq[1:]), list(report.missing_keys),
            list(report.unexpected_keys), round(float(one), 6), w.grad.tolist(), float(none), len(seen),
            str(nn.Linear(2, 2).to(torch.float64).weight.dtype).removeprefix("torch."),
            abs(torch.tensor([-1.5])).tolist(),
            ["a", "b", "c"][index], list(range(index)), F.one_hot(torch.tensor([0, 2]), 3).tolist(),
            torch.tensor([[0.0, -float("inf")], [-float("inf"), -float("inf")]]).logsumexp(1).tolist(),
            tuple(torch.ones(2, 3).unsqueeze(-3).shape), tuple(torch.ones(2, 3).unsqueeze(2).shape)]


def test_ported_idioms_behave_as_in_pytorch(torch):
    from tinygrad_proust import functional, nn
    ours, theirs = ported_idioms(tp, functional, nn), ported_idioms(torch, torch.nn.functional, torch.nn)
    assert ours == theirs
    assert ours[:3] == [True, True, "Sequential"] and ours[9] == 0.0 and ours[10] == 1 and ours[11] == "float64"
    assert ours[16] == [0.0, -np.inf]


def test_what_pytorch_refuses_is_refused(torch):
    """A one-hot class out of range or not an integer (a silent row of zeros), a new dim out of range, tril of a
    vector, a float tensor as an index: PyTorch raises, and so does this (ValueError where PyTorch's is a
    RuntimeError, the README's rule)."""
    cases = [(lambda T, F: F.one_hot(T.tensor([5]), 3), (IndexError, RuntimeError)),
             (lambda T, F: F.one_hot(T.tensor([-1]), 3), (IndexError, RuntimeError)),
             (lambda T, F: F.one_hot(T.tensor([1.0]), 3), (TypeError, RuntimeError)),
             (lambda T, F: T.ones(2, 3).unsqueeze(3 + 1), IndexError),
             (lambda T, F: T.ones(2, 3).unsqueeze(-4), IndexError),
             (lambda T, F: T.tril(T.ones(3)), (ValueError, RuntimeError)),
             (lambda T, F: [1, 2][T.tensor(1.0)], TypeError)]
    from tinygrad_proust import functional as F
    for call, errors in cases:
        for lib, functional in ((tp, F), (torch, torch.nn.functional)):
            with pytest.raises(errors):
                call(lib, functional)
    assert F.softmax(tp.tensor([1, 2]), dim=0).dtype == np.float32          # of integers: float32, the README's rule


def test_numpy_meets_tensors_as_pytorchs_and_a_module_names_what_it_was_given(torch):
    """np.asarray(t) is the tensor's values on the CPU (it was an object array of tensors), a list of 0-d tensors
    makes a tensor, and a module given an array or a list says so (an AttributeError from inside before)."""
    for lib in (tp, torch):
        values = np.asarray(lib.tensor([1.5, 2.5]))
        assert values.dtype == np.float32 and values.tolist() == [1.5, 2.5]
        assert lib.tensor([lib.tensor(1.0), lib.tensor(2.0)]).tolist() == [1.0, 2.0]
    for given in (np.ones((1, 3), dtype=np.float32), [[1.0, 2.0, 3.0]]):
        with pytest.raises(TypeError, match=f"Linear: an input is a {type(given).__name__}, not a Tensor"):
            tp.nn.Linear(3, 2)(given)


def test_a_gpu_tensor_is_no_numpy_array_without_a_copy(standin):
    with pytest.raises(TypeError, match=r"call \.numpy\(\)"):
        np.asarray(tp.tensor([1.0], device="gpu"))


def test_mixed_kinds_and_zero_dim_tensors_keep_values_gradients_and_dtypes(torch):
    """What a second reading of the promotion rules found: minimum of floats with small integers or booleans (wrong
    values, or no gradient), clamp by a 0-d tensor, np.asarray of a 0-d comparison, integers divided by a 0-d
    float64, Module.to(torch.device), a slice of a Sequential keeping its names and class."""
    from collections import OrderedDict
    from tinygrad_proust import nn
    for lib in (tp, torch):
        lib_nn = nn if lib is tp else torch.nn
        x = lib.tensor([1.5, 0.5, -2.0], requires_grad=True)
        small = lib.tensor([0, 4, 1], dtype=lib.uint8 if lib is torch else "uint8")
        m = lib.minimum(x, small) + x.minimum(lib.tensor([True, False, True])) * 2
        m.sum().backward()
        seq = lib_nn.Sequential(OrderedDict(fc=lib_nn.Linear(2, 2), act=lib_nn.ReLU(), out=lib_nn.Linear(2, 1)))
        results = [m.tolist(), x.grad.tolist(), lib.tensor(1.0).clamp(min=lib.tensor(2.0)).item(),
                   np.asarray(lib.tensor(1.0) > 0).tolist(), str((lib.tensor([1, 2]) / lib.tensor(
                       2.0, dtype=lib.float64)).dtype).removeprefix("torch."), type(seq[1:]).__name__,
                   list(seq[1:].state_dict()), str(lib_nn.Linear(2, 2).to(torch.device("cpu")).weight.dtype)]
        if lib is tp:
            ours = results
    theirs = results
    assert ours[:7] == theirs[:7] and ours[7] == "float32"
    assert ours[0] == [0.0 + 2.0, 0.5 + 0.0, -2.0 - 4.0] and ours[4] == "float64"


def test_one_hot_on_a_gpu_reads_nothing_back(standin):
    import cupy_standin
    from tinygrad_proust import functional
    with cupy_standin.count_syncs() as syncs:
        functional.one_hot(tp.tensor([0, 2, 1], device="gpu"), 3)
    assert syncs.count == 0
