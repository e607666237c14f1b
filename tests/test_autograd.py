"""The engine itself: accumulation, broadcasting, graph walking, freeing, no_grad, dtypes, errors, debugging aids."""
import gc
import sys
import warnings
import weakref

import numpy as np
import pytest

import tinygrad_proust as tp
from tinygrad_proust import functional as F, nn
from tinygrad_proust.device import DeviceError


def test_scalar_chain_rule_by_hand():
    # f = (x*y + x)² at x=2, y=3: f = 8² = 64, df/dx = 2·8·(y+1) = 64, df/dy = 2·8·x = 32
    x, y = tp.tensor(2.0, requires_grad=True), tp.tensor(3.0, requires_grad=True)
    f = (x * y + x) ** 2
    f.backward()
    assert f.item() == 64.0 and x.grad.item() == 64.0 and y.grad.item() == 32.0


def test_gradients_accumulate_across_uses_and_calls():
    x = tp.tensor([1.0, -2.0], requires_grad=True)
    (x * 3 + x * x).sum().backward()          # d/dx = 3 + 2x
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0])
    (x * 3).sum().backward()                  # a second backward adds 3
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 2.0])


def test_broadcast_gradient_is_summed_back_to_input_shape():
    a = tp.ones(2, 3, requires_grad=True)
    b = tp.ones(3, requires_grad=True)
    c = tp.ones(2, 1, requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3,) and c.grad.shape == (2, 1)
    np.testing.assert_allclose(b.grad.numpy(), [2, 2, 2])
    np.testing.assert_allclose(c.grad.numpy(), [[3], [3]])


def test_deep_graph_does_not_recurse():
    x = tp.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() * 3):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


@pytest.mark.parametrize("case", ["split", "chunk", "slices", "unbind", "ellipsis", "unused", "overlap", "strided",
                                  "dense"])
def test_slices_that_tile_a_tensor_are_joined_as_pytorch(case, torch):
    """Slices of a tensor that tile it along one dim (split, chunk, x[:, a:b] and x[:, b:]) get their gradients
    joined by one concatenation, in whatever order the walk reaches them; pieces that do not (unbind's integer
    indices, an Ellipsis, one piece unused, two overlapping, strided ones, or a use of the whole tensor beside them)
    are added into zeros as before. Values against PyTorch; where PyTorch joins the pieces too (split, chunk), the
    sign of a zero gradient as well: a piece's -0.0 stays -0.0 (added to zeros, it would be +0.0)."""
    x0 = np.random.default_rng(1).standard_normal((3, 7, 5))

    def run(lib, x):
        pieces = {"split": lambda: x.split([2, 4, 1], dim=1), "chunk": lambda: x.chunk(3, dim=-1),
                  "slices": lambda: (x[:, 5:], x[:, :5]), "unbind": lambda: x.unbind(0),
                  "ellipsis": lambda: (x[..., :2], x[..., 2:]),
                  "unused": lambda: x.split(3, dim=1)[:2], "overlap": lambda: (x[:, :4], x[:, 3:]),
                  "strided": lambda: (x[:, ::2], x[:, 1::2]), "dense": lambda: x.split(2, dim=2)}[case]()
        loss = (pieces[0] * -0.0).sum()                         # a gradient of -0.0 everywhere in the first
        for i, piece in enumerate(reversed(pieces[1:])):          # the others reached in another order
            loss = loss + (piece * piece * (i + 1)).sum()
        if case == "dense":
            loss = loss + (x * 3).sum()
        loss.backward()
        return x.grad.numpy() if lib is tp else x.grad.detach().numpy()

    ours = run(tp, tp.tensor(x0, dtype=tp.float64, requires_grad=True))
    theirs = run(torch, torch.tensor(x0, dtype=torch.float64, requires_grad=True))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    if case in ("split", "chunk"):
        assert np.signbit(ours).any() and np.array_equal(np.signbit(ours), np.signbit(theirs))


def test_an_op_of_ones_own_with_backward_into_and_no_region_works(torch):
    """An op written with backward_into but no region() (the docstring makes region optional): its gradient is added
    into the input's as any slice's that cannot be joined."""
    class FirstRows(tp.Function):
        def forward(self, x, n):
            self.n, self.shape = n, x.shape
            return x[:n]

        def backward(self, g):
            gx = self.xp.zeros(self.shape, g.dtype)
            self.backward_into(g, gx)
            return gx

        def backward_into(self, g, gx):
            gx[:self.n] += g

    x = tp.tensor(np.ones((4, 3)), requires_grad=True)
    (FirstRows.apply(x, n=2) * 3 + x[2:] * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[3] * 3] * 2 + [[5] * 3] * 2)


def test_overlapping_slices_gradients_are_added_in_as_they_come():
    """Slices that cannot tile their tensor (here sixteen shifted windows, a filter written with slices) are added
    into one array as each gradient comes, not all kept until the tensor is reached: the backward holds about one
    copy of x, not sixteen."""
    import tracemalloc
    x = tp.tensor(np.random.default_rng(0).standard_normal((16, 4096, 8)), dtype=tp.float32, requires_grad=True)
    w = tp.tensor(np.linspace(-1, 1, 16), dtype=tp.float32, requires_grad=True)
    y = sum((x[:, k:k + 4080] * w[k]).tanh() for k in range(16))
    loss = (y * y).sum()
    tracemalloc.start()
    try:
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * x.data.nbytes, peak / x.data.nbytes            # 16 windows held would be 16 x's and more
    reference = sum(np.tanh(x.numpy()[:, k:k + 4080] * w.numpy()[k]) for k in range(16))
    dy = 2 * reference
    expected = np.zeros_like(x.numpy())
    for k in range(16):
        t = np.tanh(x.numpy()[:, k:k + 4080] * w.numpy()[k])
        expected[:, k:k + 4080] += dy * (1 - t * t) * w.numpy()[k]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_a_split_tensor_gets_its_gradient_in_one_copy(standin):
    """q, k and v split from one tensor: on a GPU their gradients are joined by one concatenation, which CuPy runs
    as a copy of each piece into place (each element read once and written once), not a memset of the whole and an
    add per piece (which reads each element twice and writes it twice)."""
    import cupy_standin
    x = tp.randn(4, 6, 9, device="gpu", requires_grad=True)
    q, k, v = x.split(3, dim=-1)
    loss = (q * 2).sum() + (k * 3).sum() + (v * 4).sum()
    with cupy_standin.count_kernels() as counts:
        loss.backward()
    walk = counts.by_op["Tensor.backward"]
    assert counts.total("memset") == 0 and "GetItem.backward_into" not in counts.by_op
    assert walk["copy"] == [3, 2 * x.data.nbytes]
    np.testing.assert_array_equal(x.grad.numpy(), np.concatenate([np.full((4, 6, 3), c) for c in (2, 3, 4)], -1))


def test_repeated_indices_scatter_add():
    w = tp.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    w[tp.tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [[3, 3], [0, 0], [1, 1]])


@pytest.mark.parametrize("observed", [False, True])
def test_slices_of_one_tensor_add_their_gradients_as_pytorch(observed, torch):
    """The walk adds a slice's gradient into the gradient it already holds for the sliced tensor (q, k and v from
    one tensor), in place; where that gradient is an array another op handed to two tensors (Add's g, g) it adds
    into a copy. Overlapping, strided, repeated and integer-array pieces, and other uses before and after the
    slices, against PyTorch; with an observer attached (the plain path: every op's own backward) the same."""
    rng = np.random.default_rng(0)
    x0, w0, c0 = rng.standard_normal((4, 6)), rng.standard_normal((4, 6)), rng.standard_normal((4, 6))

    def run(lib, tensor):
        x, w, c = (tensor(a, requires_grad=True) for a in (x0, w0, c0))
        h = x * w
        seen = []
        h.register_hook(lambda grad: seen.append(grad))
        k = x * 3
        early = (h * c).sum(0)                       # a use of h before its pieces
        s = h + k                                    # Add hands the same g to h and to k
        a, b, p = h.split(2, dim=1)
        rows = h[lib.tensor([0, 0, 3])]              # a row taken twice
        strided = h[1:3, ::2]                        # overlaps a, b and p
        late = h.sum(1)                              # and a use after them
        loss = ((a * 1.5).sum() + (b ** 2).sum() + (p * early[None, 4:]).sum() + rows.sum() * 3
                + strided.exp().sum() + (late * late).sum() + (s * c).sum() + (k * k).sum())
        leaves = [x, w, c]
        for add_first in (False, True):              # Add's g reaches h before or after the slice's
            x2, y2 = tensor(x0, requires_grad=True), tensor(w0, requires_grad=True)
            h2 = x2 * 2
            s2, a2 = h2 + y2, h2[:, :2]                  # y2.grad is Add's g itself
            terms = [(s2 * 5.0).sum(), (a2 * a2).sum()]
            loss = loss + (terms[0] + terms[1] if add_first else terms[1] + terms[0])
            leaves += [x2, y2]
        loss.backward()
        return [t.grad.numpy() if lib is tp else t.grad.detach().numpy() for t in leaves] + [
            seen[0].numpy() if lib is tp else seen[0].detach().numpy()]

    if observed:
        with tp.observe(tp.Observer()):
            ours = run(tp, lambda a, requires_grad: tp.tensor(a, dtype=tp.float64, requires_grad=requires_grad))
    else:
        ours = run(tp, lambda a, requires_grad: tp.tensor(a, dtype=tp.float64, requires_grad=requires_grad))
    theirs = run(torch, lambda a, requires_grad: torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad))
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-12)


BASIC_INDICES = [(0, 1), 1, -1, (Ellipsis, 1), (None, 0), (slice(None), 1), True, (0, True), (Ellipsis, True, 0),
                 (slice(None, None, -1), slice(1, None, 2)), "0-d array", "0-d tensor"]


@pytest.mark.parametrize("index", BASIC_INDICES, ids=repr)
def test_every_basic_index_adds_its_gradient_where_its_values_came_from(index, device="cpu"):
    """A basic index (integers, slices, a negative step, None, Ellipsis, a bool) taken twice and x used once more:
    the walk adds each piece into the gradient it holds (into a view of it, or, for a single element or a bool's
    copy, by assignment). The loss 3 Σ x[i] + Σ x[i]² + Σ x² has the gradient 2x, plus 3 + 2x at the indexed
    places (a basic index picks each place at most once). tests/test_gpu_path.py runs it on the GPU."""
    x0 = np.arange(12.0).reshape(3, 4) / 7
    x = tp.tensor(x0, dtype=tp.float64, requires_grad=True, device=device)
    if index in ("0-d array", "0-d tensor"):  # an index NumPy reads as advanced: x[i] is a copy
        where = tp.tensor([0.0, 5.0, 1.0], device=device).argmax()
        index, taken = (where.data if index == "0-d array" else where), 1
    else:
        taken = index
    ((x[index] * 3).sum() + (x[index] ** 2).sum() + (x * x).sum()).backward()
    expected = 2 * x0
    expected[taken] += 3 + 2 * x0[taken]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15)
    if device == "cpu":  # Python's sum over a tensor takes one element at a time
        y = tp.tensor(x0[0], requires_grad=True)
        sum(y).backward()
        np.testing.assert_array_equal(y.grad.numpy(), np.ones(4))


def test_no_grad_and_detach_record_nothing():
    x = tp.randn(3, requires_grad=True)
    with tp.no_grad():
        y = x * 2
    assert not y.requires_grad and y.op is None
    z = (x * 2).detach()
    assert not z.requires_grad and z.is_leaf
    assert tp.is_grad_enabled()


def test_requires_grad_propagates_only_from_inputs_that_need_it():
    a, b = tp.randn(2), tp.randn(2, requires_grad=True)
    assert not (a * 2).requires_grad
    assert (a * b).requires_grad and (a * b).op == "Mul"


def test_backward_frees_graph_unless_retained():
    x = tp.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * x.numpy() + 2 * x.numpy(), rtol=1e-6)


def test_saved_arrays_are_released_after_backward():
    x = tp.randn(4, requires_grad=True)
    h = x.exp()
    op = weakref.ref(h._ctx)          # the Exp node, which holds its saved output
    h.sum().backward()
    gc.collect()
    assert op() is None               # nothing keeps it (or its saved arrays) alive
    assert h.op == "Exp (freed)" and h.parents == ()


def test_non_leaf_grad_only_when_retained():
    x = tp.randn(3, requires_grad=True)
    h = x * 2
    k = (x * 3).retain_grad()
    (h + k).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad.numpy(), np.ones(3))


def test_hook_sees_and_can_replace_gradient():
    x = tp.randn(3, requires_grad=True)
    seen = []
    h = x * 2
    h.register_hook(lambda g: seen.append(g.numpy()) or g * 10)
    h.sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 20.0))


# ---- dtypes ----

def test_argmax_matches_numpy_and_has_no_gradient():
    data = np.random.default_rng(0).standard_normal((3, 5))
    x = tp.tensor(data, requires_grad=True)
    assert x.argmax().item() == data.argmax()
    np.testing.assert_array_equal(x.argmax(dim=1).numpy(), data.argmax(axis=1))
    assert x.argmax(dim=0, keepdim=True).shape == (1, 5) and not x.argmax(dim=0).requires_grad


def test_default_dtypes():
    assert tp.tensor(1.5).dtype == np.float32
    assert tp.tensor([1.0, 2.0]).dtype == np.float32
    assert tp.tensor([1, 2]).dtype == np.int64
    assert tp.tensor(np.zeros(2)).dtype == np.float64          # an ndarray keeps its dtype
    assert tp.randn(2, 2).dtype == np.float32 and tp.zeros(2).dtype == np.float32
    assert tp.arange(5).dtype == np.int64 and tp.arange(0.0, 1.0, 0.5).dtype == np.float32


def test_anything_array_like_becomes_a_numpy_array(torch):
    assert type(tp.tensor(np.float64(2.5)).data) is np.ndarray
    assert tp.tensor(np.float64(2.5)).dtype == np.float64          # a NumPy value keeps its dtype
    t = tp.tensor(torch.tensor([1.0, 2.0]))
    assert type(t.data) is np.ndarray and t.dtype == np.float32


def test_python_numbers_never_promote_float32():
    x = tp.randn(3, requires_grad=True)
    y = ((x * 0.5 + 1e-3) / 3.0 - 2.0) ** 2
    y = F.gelu(y) + F.gelu(y, approximate="tanh") + F.silu(y) + y.rsqrt().abs() + 1.0 / (1.0 + y) + 2.0 ** y
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_an_upstream_gradient_takes_the_tensors_dtype():
    x = tp.randn(3, requires_grad=True)
    (x * 2).backward(np.ones(3, dtype=np.float64))
    assert x.grad.dtype == np.float32


def test_cast_is_differentiable():
    x = tp.randn(3, requires_grad=True)
    y = x.double() * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


# ---- numerical stability ----

def test_softmax_family_is_stable_on_huge_logits():
    logits = tp.tensor([[1e4, 0.0, -1e4], [5e3, 5e3, 0.0]], requires_grad=True)
    for fused in (True, False):
        with tp.use_fused(fused):
            p = F.softmax(logits, dim=-1).numpy()
            lp = F.log_softmax(logits, dim=-1).numpy()
            loss = F.cross_entropy(logits, tp.tensor([1, 0]))
        np.testing.assert_allclose(p, [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-6)
        np.testing.assert_allclose(lp[0, :2], [0.0, -1e4], rtol=1e-6)
        np.testing.assert_allclose(loss.item(), (1e4 + np.log(2)) / 2, rtol=1e-6)
        logits.grad = None
        loss.backward()
        assert np.isfinite(logits.grad.numpy()).all()


def test_sigmoid_is_stable():
    out = tp.tensor([-1000.0, 0.0, 1000.0]).sigmoid().numpy()
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


def test_cross_entropy_mean_over_counted_rows_by_hand():
    # uniform logits: every counted row loses ln(3); ignored rows count for nothing
    logits = tp.zeros(4, 3, requires_grad=True)
    loss = F.cross_entropy(logits, tp.tensor([0, -100, 2, -100]))
    np.testing.assert_allclose(loss.item(), np.log(3), rtol=1e-6)
    loss.backward()
    g = logits.grad.numpy()
    np.testing.assert_allclose(g[1], 0)
    np.testing.assert_allclose(g[3], 0)
    np.testing.assert_allclose(g[0], np.array([1 / 3 - 1, 1 / 3, 1 / 3]) / 2, rtol=1e-6)


def test_dropout_keeps_expectation_and_is_identity_in_eval():
    x = tp.ones(200, 100)
    y = F.dropout(x, 0.25)
    kept = y.numpy() != 0
    assert 0.72 < kept.mean() < 0.78
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75, rtol=1e-6)
    assert F.dropout(x, 0.25, training=False) is x


def keyed_lowbias32(word, key):
    """The mask stream's hash, one Python integer at a time (the slow, obviously correct reference)."""
    for shift, multiplier, mixed in ((16, 0x7FEB352D, key >> 32), (15, 0x846CA68B, 0), (16, 1, 0)):
        word = (((word ^ (word >> shift)) * multiplier) & 0xFFFFFFFF) ^ mixed
    return word


def test_the_mask_stream_is_a_hash_of_each_counter_keyed_by_the_seed_and_epoch():
    from tinygrad_proust import rng
    tp.manual_seed(7)
    key = lambda epoch: rng._mix(rng._mix(7) ^ epoch)
    wraps = (2**32 - 2 - key(0)) % 2**32                                 # counter + key passes 2³² in the piece
    for start, count in [(0, 5), (2**32 - 3, 6), (5 * 2**32 + 11, 4), (wraps, 5), (9, 0)]:  # and across an epoch
        words = rng._words(np, start, count)
        expected = [keyed_lowbias32((i % 2**32 + key(i // 2**32)) & 0xFFFFFFFF, key(i // 2**32))
                    for i in range(start, start + count)]
        assert words.dtype == np.uint32 and words.tolist() == expected
    tp.manual_seed(7)
    first = rng.random_uint16(np, (3, 3))              # 9 values: 5 words, the last one half used
    second = rng.random_uint16(np, (2,))               # the next word, not the unused half
    assert rng.get_state()["position"] == 6 and rng.random_uint16(np, (0, 4)).shape == (0, 4)
    assert second.tolist() == rng._words(np, 5, 1).view(np.uint16).tolist()
    assert first.ravel().tolist() == rng._words(np, 0, 5).view(np.uint16)[:9].tolist()


def test_two_seeds_give_two_streams_not_one_shifted():
    from tinygrad_proust import rng
    low = {seed: rng._mix(rng._mix(seed)) & 0xFFFFFFFF for seed in (0, 1)}   # the keys added to the counters
    tp.manual_seed(1)
    words1 = rng._words(np, 0, 1000)
    tp.manual_seed(0)                                  # seed 0's words at the counters seed 1 starts from
    shifted = rng._words(np, (low[1] - low[0]) % 2**32, 1000)
    assert (shifted == words1).mean() < 0.01


def test_dropout_of_an_empty_tensor_is_empty():
    assert F.dropout(tp.ones(0, 4), 0.5).shape == (0, 4)


def test_masks_are_unbiased_and_uncorrelated():
    tp.manual_seed(0)
    a, b = (F.dropout(tp.ones(1000, 1000), 0.5).numpy() != 0 for _ in range(2))
    assert abs(a.mean() - 0.5) < 0.002 and abs(b.mean() - 0.5) < 0.002     # 1e6 fair coins: sd 0.0005
    for x, y in [(a, b), (a[:, 1:], a[:, :-1]), (a[1:], a[:-1])]:        # two masks, neighbours in a row, a column
        assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.005      # sd 0.001


def test_a_nested_no_grad_leaves_the_outer_one_in_force():
    x = tp.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with tp.no_grad():
        with tp.no_grad():
            pass
        assert not tp.is_grad_enabled() and not (x * 2).requires_grad    # the inner exit restored False, not True
    assert tp.is_grad_enabled() and (x * 2).requires_grad


@pytest.mark.parametrize("left", [np.float64(0.5), np.ones(3), np.float32(2.0)])
def test_numpy_values_on_the_left_give_tensors(left):
    x = tp.tensor(np.array([1.0, -2.0, 3.0], dtype=np.float32), requires_grad=True)
    for y, expected, grad in [(left * x, np.asarray(left) * x.numpy(), np.broadcast_to(left, (3,))),
                              (left + x, np.asarray(left) + x.numpy(), np.ones(3))]:
        assert isinstance(y, tp.Tensor) and y.dtype == np.float32           # not an object array of Tensors
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
        x.grad = None
        y.sum().backward()
        assert x.grad.dtype == np.float32
        np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-6)


def test_max_of_everything_splits_the_gradient_between_ties(torch):
    values = np.array([[1.0, 1.0, 0.0, 1.0]], dtype=np.float32)
    x, t = tp.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    x.max().backward()
    t.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1 / 3, 1 / 3, 0, 1 / 3]], rtol=1e-6)       # by hand
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


ZERO_D = {  # ours, PyTorch's
    "sigmoid": (lambda t: t.sigmoid(), lambda torch, t: t.sigmoid()),
    "silu": (F.silu, lambda torch, t: torch.nn.functional.silu(t)),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda torch, t: torch.nn.functional.gelu(t, approximate="tanh")),
    "gelu": (F.gelu, lambda torch, t: torch.nn.functional.gelu(t)),
    "relu": (F.relu, lambda torch, t: t.relu()),
    "tanh": (lambda t: t.tanh(), lambda torch, t: t.tanh()),
}


@pytest.mark.parametrize("op", list(ZERO_D))
def test_activations_of_a_0d_tensor_match_pytorch(op, torch):
    ours, theirs = ZERO_D[op]
    for value in (0.3, -1.7):
        x = tp.tensor(np.float64(value), requires_grad=True)
        t = torch.tensor(value, dtype=torch.float64, requires_grad=True)
        y, r = ours(x), theirs(torch, t)
        y.backward()
        r.backward()
        assert y.shape == () and x.grad.shape == ()
        np.testing.assert_allclose([y.item(), x.grad.item()], [r.item(), t.grad.item()], rtol=1e-10)


def test_0d_tensors_take_dim_0_and_out_of_range_dims_are_index_errors(torch):
    x = tp.tensor(np.float32(2.5), requires_grad=True)
    assert x.squeeze(0).shape == x.sum(0).shape == x.sum(-1).shape == torch.tensor(2.5).sum(0).shape == ()
    x.sum(0).backward()
    assert x.grad.item() == 1.0
    with pytest.raises(IndexError, match="dim 50 is out of range for a tensor with 4 dims"):
        tp.zeros(1, 2, 3, 4).squeeze(50)
    with pytest.raises(IndexError):
        torch.zeros(1, 2, 3, 4).squeeze(50)                                   # PyTorch agrees


def test_conversions_and_refusals_as_pytorch(torch):
    assert float(tp.tensor([1.5])) == float(torch.tensor([1.5])) == 1.5 and int(tp.tensor([[3]])) == 3
    assert tp.where(tp.tensor([True, False]), 4, 2).tolist() == torch.where(torch.tensor([True, False]), 4, 2).tolist()
    with pytest.raises(TypeError, match="only floating-point tensors can require grad, not int64"):
        tp.tensor([1, 2]).requires_grad_()
    with pytest.raises(TypeError, match="<U1 data is not numbers"):
        tp.tensor(np.array(["a", "b"]))


@pytest.mark.parametrize("case", ["tensor ** tensor", "x ** 0", "0 ** x", "-2 ** x"])
def test_powers_at_zero_and_negative_bases_match_pytorch(case, torch):
    """Where x ** y is defined with x <= 0 (0 ** 0 = 1, (-2) ** 3 = -8), values and gradients are PyTorch's, its nan
    included (d/dy of (-2) ** y); no exp(y ln x) detour."""
    bases, exponents = {"tensor ** tensor": ([0.0, -2.0, -2.0, 2.0], [0.0, 2.0, 3.0, 0.5]),
                        "x ** 0": ([0.0, 1.5, -3.0], 0), "0 ** x": (0, [0.0, 1.0, 2.0]),
                        "-2 ** x": (-2, [2.0, 3.0])}[case]
    ours, theirs = [], []
    for make in (lambda v: tp.tensor(np.array(v), requires_grad=True),
                 lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)):
        x, y = (make(v) if isinstance(v, list) else v for v in (bases, exponents))
        out = x ** y
        out.sum().backward()
        grads = [t.grad for t in (x, y) if not isinstance(t, (int, float))]
        (ours if isinstance(out, tp.Tensor) else theirs).append([out.detach().numpy(), *(g.numpy() for g in grads)])
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_tensor_powers_match_finite_differences():
    x = tp.tensor(np.array([0.7, 1.3, 2.0]), requires_grad=True)
    y = tp.tensor(np.array([-1.5, 0.5, 3.0]), requires_grad=True)
    assert tp.gradcheck(lambda a, b: a ** b, x, y)


@pytest.mark.parametrize("case", ["mean over an empty dim", "var over an empty dim", "var of one element"])
def test_reductions_with_nothing_to_reduce_match_pytorch(case, torch):
    shape, reduce = {"mean over an empty dim": ((2, 0), lambda t: t.mean(1)),
                     "var over an empty dim": ((2, 0), lambda t: t.var(1)),
                     "var of one element": ((3, 1), lambda t: t.var(1))}[case]
    x, t = tp.ones(*shape, dtype="float64", requires_grad=True), torch.ones(shape, dtype=torch.float64,
                                                                             requires_grad=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")                # PyTorch and NumPy both warn about the empty mean
        ours, theirs = reduce(x), reduce(t)
        ours.sum().backward()
        theirs.sum().backward()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), equal_nan=True)
    assert x.grad.shape == tuple(t.grad.shape)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), equal_nan=True)


def test_a_hook_that_changes_the_gradients_shape_or_dtype_is_an_error_at_once(torch):
    """As PyTorch's: a hook's gradient keeps the tensor's shape and dtype (a float32 gradient of a float64 tensor
    would otherwise reach its input's .grad, whichever way the walk puts it there)."""
    w = tp.Tensor(np.ones(3, dtype=np.float32), requires_grad=True, name="w")
    w.register_hook(lambda g: g.sum())
    with pytest.raises(ValueError, match=r"a hook on w of shape \(3,\) and dtype float32 returned a gradient of "
                                         r"shape \(\) and dtype float32"):
        (w * 2).sum().backward()
    for lib in (tp, torch):
        x = lib.tensor(np.ones((2, 5)), dtype=lib.float64, requires_grad=True)
        a, b = x.split([2, 3], 1)
        a.register_hook(lambda g: g.float())
        with pytest.raises((ValueError, RuntimeError), match="dtype|type"):
            ((a * a).sum() + (b * b).sum()).backward()


@pytest.mark.parametrize("value", [4, 2.5, True])
def test_full_takes_its_dtype_from_the_value_as_pytorch(value, torch):
    ours, theirs = tp.full((2,), value), torch.full((2,), value)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "") and ours.tolist() == theirs.tolist()
    assert tp.full((2,), 4, dtype="float32").dtype == np.float32


def test_max_along_a_dim_gives_values_and_indices_as_pytorch(torch):
    values = np.array([[3.0, 1.0, 3.0], [0.0, 2.0, -1.0]], dtype=np.float32)
    ours, theirs = tp.tensor(values).max(dim=1), torch.tensor(values).max(dim=1)
    assert ours.values.tolist() == theirs.values.tolist() and ours[0].tolist() == theirs[0].tolist()
    assert ours.indices.tolist() == theirs.indices.tolist() == [0, 1]            # the first of tied maxima
    assert tp.tensor(values).max(dim=0, keepdim=True).indices.shape == (1, 3)
    assert tp.tensor(values).max().shape == ()                                    # over everything: a tensor


def test_manual_seed_reproduces():
    tp.manual_seed(123)
    a = tp.randn(4).numpy()
    tp.manual_seed(123)
    np.testing.assert_array_equal(a, tp.randn(4).numpy())


# ---- clear errors ----

def test_backward_on_non_scalar_needs_grad():
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(3,\)"):
        (tp.randn(3, requires_grad=True) * 2).backward()


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tp.randn(3).sum().backward()


@pytest.mark.parametrize("fn, message", [
    (lambda: tp.randn(2, 3) @ tp.randn(4, 5), r"Matmul: shapes \(2, 3\) @ \(4, 5\)"),
    (lambda: tp.randn(2, 3, 4) @ tp.randn(3, 4, 2), r"Matmul: batch dims"),
    (lambda: tp.randn(2, 3).reshape(4, 2), r"Reshape: cannot view shape \(2, 3\)"),
    (lambda: tp.randn(2, 3).expand(4, 3), r"Expand: cannot expand shape \(2, 3\)"),
    (lambda: tp.cat([tp.randn(2, 3), tp.randn(3, 2)], dim=0), r"Cat: shapes"),
    (lambda: tp.randn(2, 3) + tp.randn(4), r"operands could not be broadcast|Add"),
    (lambda: F.linear(tp.randn(2, 3), tp.randn(4, 5)), r"Linear: input of shape \(2, 3\)"),
    (lambda: F.layer_norm(tp.randn(2, 3), (4,)), r"layer_norm: normalized_shape \(4,\)"),
    (lambda: F.cross_entropy(tp.randn(2, 3, 4), tp.tensor([0, 1])), r"cross_entropy: need input \(N, C\)"),
    (lambda: F.scaled_dot_product_attention(tp.randn(2, 3), tp.randn(2, 4), tp.randn(2, 3)),
     r"ScaledDotProductAttention: q \(2, 3\)"),
    (lambda: tp.randn(2, 3)[5], r"GetItem: .*input shapes \(2, 3\)"),
    (lambda: tp.randn(2, 3).permute(0, 0), r"Permute: dims \(0, 0\)"),
    (lambda: tp.randn(2, 3).sum(dim=2), r"dim 2 is out of range"),
    (lambda: tp.tensor([1, 2], requires_grad=True), r"only floating-point"),
    (lambda: F.dropout(tp.randn(2), 1.0), r"dropout probability"),
])
def test_bad_input_names_the_op_and_shapes(fn, message):
    with pytest.raises((ValueError, IndexError, TypeError, RuntimeError), match=message):
        fn()


def test_broadcast_error_names_the_op():
    with pytest.raises(ValueError) as info:
        tp.randn(2, 3) + tp.randn(4)
    assert "Add" in str(info.value) and "(2, 3)" in str(info.value) and "(4,)" in str(info.value)


class _FakeGpuArray(np.ndarray):
    """A host array whose type claims to come from CuPy: lets the mixed-device check run on any machine."""


_FakeGpuArray.__module__ = "cupy._fake"


def test_mixing_devices_is_a_clear_error():
    a = tp.randn(2)
    b = tp.Tensor(np.ones(2, dtype=np.float32).view(_FakeGpuArray))
    assert b.device == "gpu"
    with pytest.raises(DeviceError, match=r"Mul: inputs are on different devices \(cpu and gpu\)"):
        a * b


def test_unknown_device():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        tp.zeros(2, device="tpu")


# ---- debugging aids ----

def test_repr_shows_shape_dtype_device_statistics_grad_and_op():
    x = tp.ones(3, 4, requires_grad=True)                  # norm sqrt(12) = 3.464
    assert repr(x) == "Tensor(shape=(3, 4), dtype=float32, device=cpu, norm=3.464, min=1, max=1, mean=1, " \
                      "requires_grad=True)"
    assert repr(x * 2) == "Tensor(shape=(3, 4), dtype=float32, device=cpu, norm=6.928, min=2, max=2, mean=2, " \
                          "requires_grad=True, op=Mul)"


def test_repr_shows_the_values_of_small_tensors():
    loss = (tp.tensor([1.0, 2.0], requires_grad=True) * 1.5).sum()
    assert repr(loss) == "Tensor(4.5, dtype=float32, device=cpu, requires_grad=True, op=Sum)"
    assert repr(tp.tensor([[1, 2], [3, 4]])) == "Tensor([[1, 2],\n [3, 4]], dtype=int64, device=cpu)"
    named = nn.Parameter(tp.tensor([0.25, -0.5]))
    named.name = "bias"
    assert repr(named) == "Parameter(name='bias', [ 0.25, -0.5 ], dtype=float32, device=cpu, requires_grad=True)"


def test_bool_is_the_truth_of_one_element_and_an_error_for_more():
    assert bool(tp.tensor(0.0)) is False and bool(tp.tensor([[3]])) is True
    assert (tp.tensor(2.0) > 1) and not (tp.tensor(2.0) < 1)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tp.ones(2))
    a, b = tp.ones(3), tp.zeros(3)
    with pytest.raises(RuntimeError, match="ambiguous"):  # no silent `a in [b]` == True
        a in [b]
    assert a in [a]  # identity comes first, as for any Python object


def test_graph_text_and_dot_list_every_node_and_edge():
    x = tp.tensor([[1.0, 2.0]], requires_grad=True, dtype="float64")
    x.name = "x"
    w = tp.tensor([[1.0], [-1.0]], requires_grad=True, dtype="float64")
    loss = (x @ w).tanh().sum()
    text_before = loss.graph()
    assert [line.split()[2] for line in text_before.splitlines()] == ["x", "param", "Matmul", "Tanh", "Sum"]
    assert "<- #0, #1" in text_before and "grad" not in text_before
    loss.backward(retain_graph=True)
    text_after = loss.graph()
    assert "grad‖=" in text_after.splitlines()[0]        # x's gradient norm is shown
    dot = loss.to_dot()
    assert dot.startswith("digraph") and dot.count("->") == 4 and dot.count("[label=") == 5
    assert "n0 -> n2" in dot and "n1 -> n2" in dot and "n2 -> n3" in dot and "n3 -> n4" in dot


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/Inf on purpose
def test_detect_anomaly_names_the_forward_op_and_the_user_line():
    x = tp.tensor([1.0, -1.0], requires_grad=True)
    with tp.detect_anomaly():
        with pytest.raises(tp.AnomalyError) as info:
            x.log()  # log(-1) = NaN
    message = str(info.value)
    assert message.startswith("Log produced NaN in its forward output (input shapes (2,))")
    assert "test_autograd.py" in message and "x.log()" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/Inf on purpose
def test_detect_anomaly_names_the_backward_op():
    x = tp.tensor([0.0, 4.0], requires_grad=True)
    with tp.detect_anomaly():
        y = x.sqrt()  # fine forward; d sqrt(x)/dx = 1/(2 sqrt x) is Inf at 0
        with pytest.raises(tp.AnomalyError, match=r"Sqrt produced Inf in its backward gradient.*y = x\.sqrt\(\)"):
            y.sum().backward()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/Inf on purpose
def test_anomaly_mode_is_off_outside_the_block():
    with tp.detect_anomaly():
        pass
    assert np.isnan(tp.tensor([-1.0]).log().numpy()).all()  # no error outside
