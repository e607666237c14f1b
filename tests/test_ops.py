"""Every op: gradient vs float64 central differences, and forward + backward vs PyTorch.

Each case is written once, as a function of a namespace `m` (ours or torch's) and its inputs, so the very
same expression runs in both libraries. Inputs are fresh standard normals (never zeros); `positive`
cases shift them into (0.5, ∞) for log, sqrt, division.
"""
from types import SimpleNamespace

import numpy as np
import pytest

import tinygrad_proust as tp
from tinygrad_proust import functional as F

REPEATED = np.array([0, 2, 0, 1, 2, 2])           # indices with repeats: backward must scatter-ADD
TARGETS = np.array([1, 0, 3, 3, 2])
TARGETS_IGNORE = np.array([1, -100, 3, -100, 2])
WEIGHTS = np.array([0.5, 2.0, 1.0, 0.25])         # per-class weights of a loss
DIVIDENDS = np.array([[3.0, -3.0, 3.0, -3.0], [-3.0, 3.0, 3.0, -3.0], [3.0, 3.0, -3.0, -3.0]])  # every pair of signs
DIVISOR_SIGNS = np.array([1.0, -1.0, -1.0, 1.0])
SCATTER_ROWS = np.array([[2, 0, 3], [1, 3, 0]])   # no place twice in a row: scatter writes each once
REPEATED_ROWS = np.array([[2, 0, 2], [3, 3, 3]])  # places twice and three times: scatter_add adds them up
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
RUNNING_MEAN, RUNNING_VAR = np.array([0.3, -0.2, 0.5]), np.array([0.8, 1.5, 0.6])  # a batch norm's statistics


class Case:
    def __init__(self, name, fn, shapes, positive=False, torch_fn=None):
        self.name, self.fn, self.shapes, self.positive = name, fn, shapes, positive
        self.torch_fn = torch_fn or fn

    def __repr__(self):
        return self.name


CASES = [
    # ---- elementwise, with broadcasting ----
    Case("add", lambda m, a, b: a + b, [(3, 4), (3, 4)]),
    Case("add_broadcast_leading", lambda m, a, b: a + b, [(2, 3, 4), (4,)]),
    Case("add_broadcast_ones", lambda m, a, b: a + b, [(2, 3, 4), (2, 1, 4)]),
    Case("add_scalar_reflected", lambda m, a: 2.5 + a, [(3, 4)]),
    Case("sub_broadcast", lambda m, a, b: a - b, [(3, 4), (1, 4)]),
    Case("sub_reflected", lambda m, a: 1.5 - a, [(3, 4)]),
    Case("mul_broadcast", lambda m, a, b: a * b, [(2, 3), (3,)]),
    Case("mul_same_tensor", lambda m, a: a * a, [(3, 4)]),
    Case("div", lambda m, a, b: a / b, [(3, 4), (3, 1)], positive=True),
    Case("div_reflected", lambda m, a: 2.0 / a, [(3, 4)], positive=True),
    Case("pow_int", lambda m, a: a ** 3, [(3, 4)]),
    Case("pow_frac", lambda m, a: a ** 1.5, [(3, 4)], positive=True),
    Case("pow_reflected", lambda m, a: 2.0 ** a, [(3, 4)]),
    Case("neg", lambda m, a: -a, [(3, 4)]),
    Case("exp", lambda m, a: a.exp(), [(3, 4)]),
    Case("log", lambda m, a: a.log(), [(3, 4)], positive=True),
    Case("sqrt", lambda m, a: a.sqrt(), [(3, 4)], positive=True),
    Case("rsqrt", lambda m, a: a.rsqrt(), [(3, 4)], positive=True),
    Case("abs", lambda m, a: a.abs(), [(3, 4)]),
    Case("tanh", lambda m, a: a.tanh(), [(3, 4)]),
    Case("sigmoid", lambda m, a: a.sigmoid(), [(3, 4)]),
    Case("relu", lambda m, a: a.relu(), [(3, 4)]),
    Case("silu", lambda m, a: m.F.silu(a), [(3, 4)]),
    Case("swiglu", lambda m, a: m.F.swiglu(a), [(2, 3, 6)],
         torch_fn=lambda m, a: m.F.silu(a[..., :3]) * a[..., 3:]),
    Case("gelu_exact", lambda m, a: m.F.gelu(a), [(3, 4)]),
    Case("gelu_tanh", lambda m, a: m.F.gelu(a, approximate="tanh"), [(3, 4)]),
    # ---- compositions: PyTorch's names over the primitives ----
    Case("square", lambda m, a: a.square(), [(3, 4)]),
    Case("methods_add_sub_mul_div", lambda m, a, b: a.add(b).mul(a).sub(b).div(b), [(3, 4), (4,)], positive=True),
    Case("clamp", lambda m, a: a.clamp(-0.5, 0.5), [(3, 4)]),
    Case("clamp_min_only", lambda m, a: a.clamp(min=0.2), [(3, 4)]),
    Case("clip_max_only", lambda m, a: a.clip(max=-0.1), [(3, 4)]),
    Case("remainder_signs", lambda m, a, b: (a * m.const(DIVIDENDS)) % (b * m.const(DIVISOR_SIGNS)), [(3, 4), (4,)],
         positive=True),  # |a| in (1.5, 12), |b| in (0.5, 4): quotients both sides of 0, none near a whole number
    Case("remainder_by_numbers", lambda m, a: (a * 3) % 1.25 + (a * 3) % -0.75, [(3, 4)]),
    Case("remainder_reflected", lambda m, a: 2.5 % a, [(3, 4)],  # PyTorch has no gradient for number % tensor
         torch_fn=lambda m, a: m.const(np.full(tuple(a.shape), 2.5)) % a),
    Case("fmod_signs", lambda m, a, b: (a * m.const(DIVIDENDS)).fmod(b * m.const(DIVISOR_SIGNS)), [(3, 4), (4,)],
         positive=True),
    Case("fmod_by_a_number", lambda m, a: (a * 3).fmod(-1.25), [(3, 4)]),
    Case("std_dim", lambda m, a: a.std(dim=1), [(3, 4)]),
    Case("std_all_keepdim_correction0", lambda m, a: a.std(dim=(0, 1), keepdim=True, correction=0), [(3, 4)]),
    Case("logsumexp", lambda m, a: a.logsumexp(dim=1), [(3, 4)]),
    Case("logsumexp_keepdim", lambda m, a: (a * 30).logsumexp(dim=-1, keepdim=True), [(2, 3, 4)]),
    Case("leaky_relu", lambda m, a: m.F.leaky_relu(a, 0.1), [(3, 4)]),
    Case("softplus", lambda m, a: m.F.softplus(a, beta=2.0), [(3, 4)]),
    Case("softplus_past_threshold", lambda m, a: m.F.softplus(a * 30, threshold=20.0), [(3, 4)]),
    Case("flip", lambda m, a: a.flip(1), [(3, 4)]),
    Case("flip_two_dims", lambda m, a: a.flip((0, -1)), [(2, 3, 4)]),
    Case("unflatten", lambda m, a: a.unflatten(1, (2, 2)), [(3, 4)]),
    Case("sin", lambda m, a: (a * 3).sin(), [(3, 4)]),
    Case("cos", lambda m, a: (a * 3).cos(), [(3, 4)]),
    Case("cumsum", lambda m, a: a.cumsum(dim=1), [(3, 4)]),
    Case("cumsum_negative_dim", lambda m, a: a.cumsum(dim=-1), [(2, 3, 4)]),
    Case("cumsum_first_dim", lambda m, a: a.cumsum(dim=0), [(3, 4)]),
    Case("cumprod", lambda m, a: a.cumprod(dim=1), [(3, 4)]),
    Case("cumprod_negative_dim", lambda m, a: a.cumprod(-2), [(2, 3, 4)]),
    Case("cumprod_first_dim", lambda m, a: m.cumprod(a, 0), [(3, 4)]),
    Case("masked_fill", lambda m, a: a.masked_fill(m.const(MASK), -2.0), [(3, 4)]),
    Case("masked_fill_broadcast", lambda m, a: a.masked_fill(m.const(MASK[0]), 0.5), [(3, 4)]),
    Case("where", lambda m, a, b: m.where(m.const(MASK), a, b), [(3, 4), (3, 4)]),
    Case("where_broadcast", lambda m, a, b: m.where(m.const(MASK), a, b), [(3, 4), (4,)]),
    Case("maximum", lambda m, a, b: a.maximum(b), [(3, 4), (3, 4)]),
    Case("maximum_broadcast", lambda m, a, b: a.maximum(b), [(3, 4), (4,)]),
    Case("minimum_broadcast", lambda m, a, b: a.minimum(b), [(2, 1, 4), (3, 4)]),
    Case("erf", lambda m, a: a.erf(), [(3, 4)]),
    Case("clone", lambda m, a: a.clone() * a, [(3, 4)]),
    Case("repeat", lambda m, a: a.repeat(2, 1, 3), [(3, 4)]),
    Case("repeat_interleave", lambda m, a: a.repeat_interleave(3, dim=1), [(2, 3, 2)]),
    Case("repeat_interleave_flat", lambda m, a: a.repeat_interleave(2), [(3, 2)]),
    Case("pad", lambda m, a: m.F.pad(a, (1, 2, 0, 1), value=0.5), [(2, 3, 4)]),
    Case("pad_crop", lambda m, a: m.F.pad(a, (-1, 2, 1, -2)), [(2, 3, 4)]),
    Case("einsum_attention_scores", lambda m, q, k: m.einsum("bhqd,bhkd->bhqk", q, k), [(2, 3, 4, 5), (2, 3, 6, 5)]),
    Case("einsum_implicit_output", lambda m, a, b: m.einsum("ij,jk", a, b), [(3, 4), (4, 5)]),
    Case("einsum_ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), [(2, 3, 4), (2, 4, 5)]),
    Case("einsum_outer_and_sum", lambda m, a, b: m.einsum("i,jk->ij", a, b), [(3,), (4, 2)]),
    # ---- reductions ----
    Case("sum_all", lambda m, a: a.sum(), [(3, 4)]),
    Case("sum_dim", lambda m, a: a.sum(dim=1), [(2, 3, 4)]),
    Case("sum_dim_keepdim", lambda m, a: a.sum(dim=-1, keepdim=True), [(2, 3, 4)]),
    Case("sum_dims_tuple", lambda m, a: a.sum(dim=(0, 2)), [(2, 3, 4)]),
    Case("mean_all", lambda m, a: a.mean(), [(3, 4)]),
    Case("mean_dim_keepdim", lambda m, a: a.mean(dim=0, keepdim=True), [(3, 4)]),
    Case("mean_dim", lambda m, a: a.mean(dim=-1), [(2, 3, 4)]),
    Case("max_all", lambda m, a: a.max(), [(3, 4)]),
    Case("max_dim", lambda m, a: a.max(dim=1).values, [(2, 3, 4)]),
    Case("max_dim_keepdim", lambda m, a: a.max(dim=-1, keepdim=True)[0], [(2, 3, 4)]),
    Case("min_all", lambda m, a: a.min(), [(3, 4)]),
    Case("min_dim", lambda m, a: a.min(dim=1).values, [(2, 3, 4)]),
    Case("var", lambda m, a: a.var(dim=-1), [(3, 5)]),
    Case("var_keepdim_biased", lambda m, a: a.var(dim=0, keepdim=True, correction=0), [(3, 5)]),
    Case("var_unbiased_false", lambda m, a: a.var(1, unbiased=False), [(3, 5)]),
    Case("std_positional_unbiased_keepdim", lambda m, a: a.std(1, False, True), [(3, 5)]),  # (dim, unbiased, keepdim)
    Case("var_of_a_bool_is_unbiased", lambda m, a: a.var(False) + m.var(a, 0, True), [(3, 4)]),
    Case("var_mean_std_mean", lambda m, a: m.cat([*m.var_mean(a, 1, keepdim=True), *(
        t.unsqueeze(1) for t in m.std_mean(a, dim=(1,), correction=0))], dim=1), [(3, 4)]),
    Case("amax_dim", lambda m, a: a.amax(dim=1), [(2, 3, 4)]),
    Case("amax_dims_keepdim", lambda m, a: a.amax(dim=(0, 2), keepdim=True), [(2, 3, 4)]),
    Case("amax_all", lambda m, a: a.amax(), [(3, 4)]),
    Case("amin_dim", lambda m, a: a.amin(-1), [(2, 3, 4)]),
    Case("amin_dims", lambda m, a: a.amin(dim=(0, 1)), [(2, 3, 4)]),
    Case("norm", lambda m, a: a.norm(), [(3, 4)]),
    Case("norm_dim", lambda m, a: a.norm(dim=1), [(2, 3, 4)]),
    Case("norm_1_keepdim", lambda m, a: a.norm(p=1, dim=-1, keepdim=True), [(3, 4)]),
    Case("norm_3_dims", lambda m, a: a.norm(p=3, dim=(0, 1)), [(2, 3, 4)]),
    Case("norm_inf", lambda m, a: a.norm(p=float("inf"), dim=1), [(3, 4)]),
    # ---- movement ----
    Case("reshape", lambda m, a: a.reshape(4, 3) * m.const(np.arange(12.0).reshape(4, 3)), [(3, 4)]),
    Case("view_infer", lambda m, a: a.view(-1, 2).tanh(), [(3, 4)]),
    Case("flatten", lambda m, a: a.flatten(1).tanh(), [(2, 3, 4)]),
    Case("transpose", lambda m, a: a.transpose(0, 2).tanh(), [(2, 3, 4)]),
    Case("permute", lambda m, a: a.permute(2, 0, 1).tanh(), [(2, 3, 4)]),
    Case("T", lambda m, a: a.T @ a, [(3, 4)]),
    Case("unsqueeze_squeeze", lambda m, a: a.unsqueeze(1).tanh().squeeze(1), [(3, 4)]),
    Case("squeeze_dim", lambda m, a: a.squeeze(0).tanh(), [(1, 3, 4)]),
    Case("expand", lambda m, a: a.expand(2, 3, 4).tanh(), [(3, 1)]),
    Case("gather", lambda m, a: a.gather(1, m.const(np.array([[0, 2, 2], [3, 0, 1], [1, 1, 1]]))), [(3, 4)]),
    Case("gather_dim0_smaller_index", lambda m, a: a.gather(0, m.const(np.array([[2, 0], [2, 2]]))), [(3, 4)]),
    Case("scatter", lambda m, a, s: a.scatter(1, m.const(SCATTER_ROWS), s), [(2, 4), (2, 3)]),
    Case("scatter_dim0", lambda m, a, s: m.scatter(a, 0, m.const(np.array([[2, 0], [0, 1]])), s), [(3, 4), (2, 2)]),
    Case("scatter_a_number", lambda m, a: a.scatter(-1, m.const(SCATTER_ROWS), -1.5) * a, [(2, 4)]),
    Case("scatter_add_repeated", lambda m, a, s: a.scatter_add(1, m.const(REPEATED_ROWS), s), [(2, 4), (2, 3)]),
    Case("scatter_add_3d", lambda m, a, s: m.scatter_add(a, -1, m.const(REPEATED_ROWS[:, None, :2].repeat(3, 1)), s),
         [(2, 3, 4), (2, 3, 2)]),
    Case("sort_values", lambda m, a: a.sort(dim=1).values * m.const(np.arange(4.0)), [(3, 4)]),
    Case("sort_descending_dim0",
         lambda m, a: a.sort(dim=0, descending=True)[0] * m.const(np.arange(12.0).reshape(3, 4)),
         [(3, 4)]),
    Case("topk", lambda m, a: a.topk(2, dim=-1).values * m.const(np.array([1.0, 3.0])), [(2, 3, 4)]),
    Case("topk_smallest", lambda m, a: a.topk(3, dim=0, largest=False)[0], [(4, 3)]),
    Case("getitem_slice", lambda m, a: a[1:, ::2], [(3, 4)]),
    Case("getitem_int", lambda m, a: a[1], [(3, 4)]),
    Case("getitem_negative_ellipsis", lambda m, a: a[..., -1], [(2, 3, 4)]),
    Case("getitem_repeated_indices", lambda m, a: a[m.const(REPEATED)], [(3, 4)]),
    Case("getitem_two_arrays", lambda m, a: a[m.const(REPEATED), m.const(REPEATED)], [(3, 4)]),
    Case("getitem_array_and_slice", lambda m, a: a[:, m.const(REPEATED)], [(4, 3)]),
    Case("cat", lambda m, a, b: m.cat([a, b, a], dim=1), [(2, 3), (2, 2)]),
    Case("stack", lambda m, a, b: m.stack([a, b], dim=1), [(2, 3), (2, 3)]),
    Case("split_sizes", lambda m, a: m.cat([p * (i + 1) for i, p in enumerate(a.split([1, 3], dim=1))], dim=1),
         [(2, 4)]),
    Case("split_int", lambda m, a: m.cat([p * (i + 1) for i, p in enumerate(a.split(2, dim=1))], dim=1),
         [(2, 5)]),
    Case("chunk", lambda m, a: m.cat([p * (i + 1) for i, p in enumerate(a.chunk(3, dim=0))], dim=0), [(6, 2)]),
    Case("unbind", lambda m, a: m.cat([p * (i + 1) for i, p in enumerate(a.unbind(1))], dim=0), [(2, 3, 4)]),
    Case("expand_as", lambda m, a, b: a.expand_as(b).tanh() * b, [(3, 1), (2, 3, 4)]),
    Case("view_as", lambda m, a, b: a.view_as(b) * b, [(3, 4), (2, 6)]),
    Case("roll", lambda m, a: a.roll(1, 1), [(3, 4)]),
    Case("roll_two_dims", lambda m, a: a.roll((2, -1), (0, 2)), [(3, 2, 4)]),
    Case("roll_flat", lambda m, a: a.roll(5), [(3, 4)]),
    Case("index_select", lambda m, a: a.index_select(1, m.const(REPEATED[:4])), [(2, 3, 4)]),
    Case("tril", lambda m, a: a.tril(), [(4, 4)]),
    Case("tril_batched_offset", lambda m, a: a.tril(-1), [(2, 3, 3)]),
    Case("triu", lambda m, a: a.triu(1), [(3, 4)]),
    # ---- matmul ----
    Case("matmul_2d", lambda m, a, b: a @ b, [(3, 4), (4, 5)]),
    Case("matmul_3d_by_2d", lambda m, a, b: a @ b, [(2, 3, 4), (4, 5)]),
    Case("matmul_batched_4d", lambda m, a, b: a @ b, [(2, 2, 3, 4), (2, 2, 4, 3)]),
    Case("matmul_broadcast_batch", lambda m, a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)]),
    Case("matmul_2d_by_3d", lambda m, a, b: a @ b, [(3, 4), (2, 4, 2)]),
    Case("matmul_vector", lambda m, a, b: a @ b, [(4,), (4, 3)]),
    Case("matmul_matrix_vector", lambda m, a, b: a @ b, [(3, 4), (4,)]),
    Case("mm", lambda m, a, b: a.mm(b), [(3, 4), (4, 5)]),
    Case("bmm", lambda m, a, b: a.bmm(b), [(2, 3, 4), (2, 4, 5)]),
    Case("outer", lambda m, a, b: a.outer(b), [(3,), (4,)]),
    # ---- softmax family, fused ----
    Case("softmax", lambda m, a: m.F.softmax(a, dim=-1), [(3, 5)]),
    Case("softmax_dim0", lambda m, a: m.F.softmax(a, dim=0), [(3, 5)]),
    Case("log_softmax", lambda m, a: m.F.log_softmax(a, dim=-1), [(2, 3, 5)]),
    Case("tensor_softmax_method", lambda m, a: a.softmax(dim=1), [(3, 4)]),
    Case("cross_entropy", lambda m, a: m.F.cross_entropy(a, m.const(TARGETS)), [(5, 4)]),
    Case("cross_entropy_ignore_index", lambda m, a: m.F.cross_entropy(a, m.const(TARGETS_IGNORE)), [(5, 4)]),
    Case("cross_entropy_sum_and_none", lambda m, a: m.F.cross_entropy(a, m.const(TARGETS_IGNORE), reduction="none")
         * 2 + m.F.cross_entropy(a, m.const(TARGETS), reduction="sum"), [(5, 4)]),
    Case("cross_entropy_label_smoothing_weight", lambda m, a: m.F.cross_entropy(
        a, m.const(TARGETS_IGNORE), weight=m.const(WEIGHTS), label_smoothing=0.2), [(5, 4)]),
    Case("cross_entropy_per_position", lambda m, a: m.F.cross_entropy(a, m.const(TARGETS[:4].reshape(2, 2))),
         [(2, 4, 2)]),  # (N, C, d): the classes on dim 1
    Case("cross_entropy_probabilities", lambda m, a, p: m.F.cross_entropy(a, m.F.softmax(p, dim=1),
                                                                         label_smoothing=0.1), [(5, 4), (5, 4)]),
    Case("nll_loss", lambda m, a: m.F.nll_loss(m.F.log_softmax(a, dim=1), m.const(TARGETS_IGNORE)), [(5, 4)]),
    Case("mse_loss", lambda m, a, b: m.F.mse_loss(a, b), [(3, 4), (3, 4)]),
    Case("mse_loss_sum_and_none", lambda m, a, b: m.F.mse_loss(a, b, reduction="none") * 2
         + m.F.mse_loss(a, b, reduction="sum"), [(2, 3, 4), (2, 3, 4)]),
    Case("nll_loss_weight_sum", lambda m, a: m.F.nll_loss(a, m.const(TARGETS), weight=m.const(WEIGHTS),
                                                          reduction="sum"), [(5, 4)]),
    # ---- normalisation and layers, fused ----
    Case("layer_norm", lambda m, x, w, b: m.F.layer_norm(x, (5,), w, b), [(2, 3, 5), (5,), (5,)]),
    Case("layer_norm_no_bias", lambda m, x, w: m.F.layer_norm(x, (5,), w, eps=1e-3), [(3, 5), (5,)]),
    Case("layer_norm_no_affine", lambda m, x: m.F.layer_norm(x, (5,)), [(3, 5)]),
    # batch norm: training normalises with the batch's statistics (and moves the running ones, so it is given copies:
    # torch.as_tensor would share the array), eval with the running ones
    Case("batch_norm_training", lambda m, x, w, b: m.F.batch_norm(x, None, None, w, b, training=True),
         [(4, 3), (3,), (3,)]),
    Case("batch_norm_training_ncl_running", lambda m, x, w, b: m.F.batch_norm(
        x, m.const(RUNNING_MEAN.copy()), m.const(RUNNING_VAR.copy()), w, b, training=True, momentum=0.3),
        [(4, 3, 5), (3,), (3,)]),
    Case("batch_norm_training_no_affine", lambda m, x: m.F.batch_norm(x, None, None, training=True, eps=1e-3),
         [(2, 3, 2)]),
    Case("batch_norm_eval", lambda m, x, w, b: m.F.batch_norm(x, m.const(RUNNING_MEAN), m.const(RUNNING_VAR), w, b),
         [(4, 3), (3,), (3,)]),
    Case("batch_norm_eval_ncl_no_bias", lambda m, x, w: m.F.batch_norm(
        x, m.const(RUNNING_MEAN), m.const(RUNNING_VAR), w, eps=1e-3), [(2, 3, 4), (3,)]),
    Case("rms_norm", lambda m, x, w: m.F.rms_norm(x, (5,), w, eps=1e-6), [(2, 3, 5), (5,)]),
    Case("linear", lambda m, x, w, b: m.F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)]),
    Case("linear_no_bias", lambda m, x, w: m.F.linear(x, w), [(3, 4), (2, 4)]),
    Case("embedding_repeated", lambda m, w: m.F.embedding(m.const(REPEATED.reshape(2, 3)), w), [(4, 3)]),
    # more rows than 4x the width: the fused backward scatters (add.at) instead of multiplying by a one-hot
    Case("embedding_large_vocabulary", lambda m, w: m.F.embedding(m.const(REPEATED.reshape(3, 2) * 4), w), [(9, 2)]),
    Case("sdpa_causal", lambda m, q, k, v: m.F.scaled_dot_product_attention(q, k, v, is_causal=True),
         [(2, 2, 4, 3), (2, 2, 4, 3), (2, 2, 4, 3)]),
    Case("sdpa_causal_several_blocks", lambda m, q, k, v: m.F.scaled_dot_product_attention(q, k, v, is_causal=True),
         [(1, 2, 40, 3), (1, 2, 40, 3), (1, 2, 40, 2)]),  # 40 query rows: a block of 32 and one of 8
    Case("sdpa_causal_long", lambda m, q, k, v: m.F.scaled_dot_product_attention(q, k, v, is_causal=True),
         [(1, 1, 267, 1), (1, 1, 267, 1), (1, 1, 267, 1)]),  # 267 // 8: eight blocks of 33 rows and one of 3
    Case("sdpa_full", lambda m, q, k, v: m.F.scaled_dot_product_attention(q, k, v),
         [(2, 3, 4), (2, 5, 4), (2, 5, 3)]),
    Case("sdpa_mask_and_scale", lambda m, q, k, v: m.F.scaled_dot_product_attention(
        q, k, v, attn_mask=m.const(MASK), scale=0.3), [(3, 2), (4, 2), (4, 3)]),
    Case("sdpa_grouped_query", lambda m, q, k, v: m.F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                  enable_gqa=True),
         [(1, 4, 5, 3), (1, 2, 5, 3), (1, 2, 5, 2)]),  # 4 query heads share 2 key/value heads
]


def ours():
    return SimpleNamespace(F=F, cat=tp.cat, stack=tp.stack, where=tp.where, const=tp.tensor, einsum=tp.einsum,
                           float64=tp.float64, var=tp.var, var_mean=tp.var_mean, std_mean=tp.std_mean,
                           cumprod=tp.cumprod, scatter=tp.scatter, scatter_add=tp.scatter_add)


def theirs(torch):
    return SimpleNamespace(F=torch.nn.functional, cat=torch.cat, stack=torch.stack, where=torch.where,
                           const=torch.as_tensor, einsum=torch.einsum, float64=torch.float64, var=torch.var,
                           var_mean=torch.var_mean, std_mean=torch.std_mean, cumprod=torch.cumprod,
                           scatter=torch.scatter, scatter_add=torch.scatter_add)


def random_inputs(case, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in case.shapes]
    return [np.abs(a) + 0.5 for a in arrays] if case.positive else arrays


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_gradient_matches_finite_differences(case, device):
    inputs = [tp.tensor(a, device=device, requires_grad=True) for a in random_inputs(case, seed=1)]

    def fn(*xs):  # constants (masks, indices) must live on the same device as the inputs
        m = ours()
        m.const = lambda a: tp.tensor(a, device=device)
        return case.fn(m, *xs)

    assert tp.gradcheck(fn, *inputs)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_pytorch(case, torch):
    arrays = random_inputs(case, seed=2)
    mine = [tp.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = case.fn(ours(), *mine)
    ref = case.torch_fn(theirs(torch), *theirs_in)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)

    upstream = np.random.default_rng(3).standard_normal(ref.shape)
    out.backward(tp.tensor(upstream))
    ref.backward(torch.tensor(upstream))
    for t, r in zip(mine, theirs_in):
        expected = np.zeros(r.shape) if r.grad is None else r.grad.numpy()
        got = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith(
    ("softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm", "linear", "embedding", "sdpa", "swiglu",
     "gelu_tanh"))],
    ids=repr)
def test_fused_matches_reference_composition(case):
    arrays = random_inputs(case, seed=4)
    results = []
    for fused in (True, False):
        inputs = [tp.tensor(a, requires_grad=True) for a in arrays]
        with tp.use_fused(fused):
            out = case.fn(ours(), *inputs)
        out.backward(tp.tensor(np.random.default_rng(5).standard_normal(out.shape)))
        results.append((out.numpy(), [t.grad.numpy() for t in inputs]))
    (out_fused, grads_fused), (out_ref, grads_ref) = results
    np.testing.assert_allclose(out_fused, out_ref, rtol=1e-10, atol=1e-12)
    for gf, gr in zip(grads_fused, grads_ref):
        np.testing.assert_allclose(gf, gr, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("T", [5, 40])
def test_attention_dropout_fused_matches_reference_with_the_same_mask(T):
    arrays = [np.random.default_rng(i).standard_normal((2, 2, T, 4)) for i in range(3)]
    results = []
    for fused in (True, False):
        tp.manual_seed(11)  # both paths draw the (B, H, T, T) keep-mask once, from the same generator
        inputs = [tp.tensor(a, requires_grad=True) for a in arrays]
        with tp.use_fused(fused):
            out = F.scaled_dot_product_attention(*inputs, is_causal=True, dropout_p=0.3)
        out.backward(tp.tensor(np.random.default_rng(5).standard_normal(out.shape)))
        results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("is_causal", [False, True])
def test_a_float_attention_mask_is_added_to_the_scores_and_gets_its_gradient(fused, is_causal, device, torch):
    """PyTorch adds a float attn_mask to the scores (a bool one says where attention may look); the mask, (3, 3)
    here, is broadcast over batch and heads, so its gradient sums over them. With is_causal as well (which PyTorch
    refuses), the two add up: the causal -inf above the diagonal, the mask everywhere."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, 3, 4)) for _ in range(3))
    mask = np.array([[0.0, -1e9, 2.0], [2.0, 0.0, -1e9], [0.5, 0.0, 0.0]])
    with tp.use_fused(fused):
        ours = [tp.tensor(a, requires_grad=True, device=device) for a in (q, k, v, mask)]
        out = F.scaled_dot_product_attention(*ours[:3], attn_mask=ours[3], is_causal=is_causal)
        (out * out).sum().backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    bias = theirs[3] + (torch.triu(torch.full((3, 3), float("-inf"), dtype=torch.float64), 1) if is_causal else 0)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs[:3], attn_mask=bias)
    (expected * expected).sum().backward()
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert tp.gradcheck(lambda m: F.scaled_dot_product_attention(*(t.detach() for t in ours[:3]), attn_mask=m),
                        tp.tensor(np.array([[0.1, -0.3, 0.2], [0.0, 0.4, -0.1], [0.5, 0.0, 0.3]]), device=device,
                                  requires_grad=True))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_a_query_a_mask_leaves_no_key_gets_zero_weights_as_pytorchs(fused, kind, device, torch):
    """A padding mask can leave a query no key at all (its row all False, or all -inf): PyTorch's attention gives
    that query zeros and its inputs no gradient through it. Softmax there was 0/0, and the NaN spread through the
    backward to every key and value."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 2, 3, 5))
    allowed = np.array([[False, False, False], [True, False, False], [True, True, True]])
    mask = allowed if kind == "bool" else np.where(allowed, 0.0, -np.inf) + np.array([0.0, 0.5, -0.25])
    with tp.use_fused(fused):
        ours = [tp.tensor(a, requires_grad=True, device=device) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ours, attn_mask=tp.tensor(mask, device=device))
        (out * out).sum().backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(mask))
    (expected * expected).sum().backward()
    assert not out.numpy()[..., 0, :].any() and np.isfinite(ours[1].grad.numpy()).all()
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("index", [(0, slice(None), [0, 1]), (slice(None), 1, [0, 2]), (0, [1, 2]),
                                   (0, Ellipsis, [0, 3]), ([0, 1], slice(None), 2), (1, None, slice(None), [0])],
                         ids=["int-slice-tensor", "slice-int-tensor", "int-tensor", "int-ellipsis-tensor",
                              "tensor-slice-int", "int-none-slice-tensor"])
def test_integers_beside_index_tensors_follow_pytorch(index, device, torch):
    """PyTorch applies integer indices first; NumPy, mixing them with index arrays, moves the broadcast dims to the
    front when a slice separates them: x[0, :, t] is (3, 2) in PyTorch, (2, 3) in NumPy."""
    values = np.arange(24.0).reshape(2, 3, 4)
    x, t = tp.tensor(values, requires_grad=True, device=device), torch.tensor(values, requires_grad=True)
    ours = x[tuple(tp.tensor(np.array(i), device=device) if isinstance(i, list) else i for i in index)]
    theirs = t[tuple(torch.tensor(i) if isinstance(i, list) else i for i in index)]
    (ours * ours).sum().backward()
    (theirs * theirs).sum().backward()
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_clamp_passes_the_gradient_at_its_bounds_and_not_beyond(device, torch):
    """A kink: finite differences cannot pin it, so by hand and against PyTorch: x at a bound is inside."""
    values = np.array([-1.5, -1.0, 0.0, 2.0, 2.5])
    x, t = tp.tensor(values, requires_grad=True, device=device), torch.tensor(values, requires_grad=True)
    x.clamp(-1.0, 2.0).sum().backward()
    t.clamp(-1.0, 2.0).sum().backward()
    assert x.grad.tolist() == t.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_one_hot_matches_pytorch(device, torch):
    indices = np.array([[0, 3], [2, 2]])
    for classes in (-1, 5):
        ours = F.one_hot(tp.tensor(indices, device=device), classes)
        theirs = torch.nn.functional.one_hot(torch.tensor(indices), classes)
        assert ours.dtype == np.int64 and ours.tolist() == theirs.tolist()


def test_value_tests_and_creation_match_pytorch(device, torch):
    values = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    x, t = tp.tensor(values, device=device), torch.tensor(values)
    for name in ("isnan", "isinf", "isfinite"):
        assert getattr(x, name)().tolist() == getattr(t, name)().tolist(), name
    assert (~x.isnan()).tolist() == x.isnan().logical_not().tolist() == (~t.isnan()).tolist()
    assert tp.eye(2, 3, device=device).tolist() == torch.eye(2, 3).tolist()
    assert tp.full_like(x, 7).dtype == np.float64 and tp.full_like(x, 7).tolist() == torch.full_like(t, 7).tolist()
    assert tp.empty(2, 3, device=device).shape == tuple(torch.empty(2, 3).shape) and tp.empty(1).dtype == np.float32


def test_leaky_relu_at_zero_has_pytorchs_slope(torch):
    """A kink, pinned by hand: at 0 the gradient is negative_slope, as PyTorch's."""
    x, t = tp.tensor(np.zeros(2), requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)
    F.leaky_relu(x, 0.1).sum().backward()
    torch.nn.functional.leaky_relu(t, 0.1).sum().backward()
    assert x.grad.tolist() == t.grad.tolist() == [0.1, 0.1]


def test_relu_of_infinities_and_negatives_is_pytorchs_zero(device, torch):
    """relu(-inf) is 0 (not -inf · 0 = NaN), a negative gives +0 (not -0), NaN stays NaN and passes its gradient."""
    values = [-np.inf, -2.0, np.nan, 3.0, np.inf]
    x, t = tp.tensor(values, requires_grad=True, device=device), torch.tensor(values, requires_grad=True)
    y, ty = F.relu(x), torch.nn.functional.relu(t)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    assert not np.signbit(y.numpy()[:2]).any()
    y.sum().backward()
    ty.sum().backward()
    assert x.grad.tolist() == t.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_ties_and_kinks_follow_pytorch(device, torch):
    """Where finite differences cannot decide (a tie, a kink), pinned by hand and against PyTorch: maximum and
    minimum split a tie's gradient in half, min() splits it evenly and min(dim) gives it to the first minimum,
    abs and relu have gradient 0 at 0, a sort keeps tied values in their order (each gets its own slot's
    gradient)."""
    a_values, b_values = np.array([1.0, 2.0, 3.0, -1.0]), np.array([1.0, 0.0, 3.0, 5.0])
    upstream = np.array([1.0, 2.0, 3.0, 4.0])
    cases = [lambda m, a, b: a.maximum(b), lambda m, a, b: a.minimum(b), lambda m, a, b: (a * 0).abs() + a.min(),
             lambda m, a, b: m.stack([a, b]).min(dim=0).values * 1.0 + a.sort(stable=True).values,
             lambda m, a, b: m.stack([a, a]).sort(dim=-1, descending=True, stable=True).values.sum(0),
             lambda m, a, b: m.F.relu(a - 1) + m.F.relu(b - 1) * 2]   # 0 at a relu's kink
    for i, case in enumerate(cases):
        a, b = (tp.tensor(v, requires_grad=True, device=device) for v in (a_values, b_values))
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a_values, b_values))
        case(ours(), a, b).backward(tp.tensor(upstream, device=device))
        case(theirs(torch), ta, tb).backward(torch.tensor(upstream))
        assert a.grad.tolist() == ta.grad.tolist(), (i, a.grad.tolist(), ta.grad.tolist())
        assert (b.grad.tolist() if b.grad is not None else [0.0] * 4) == \
            (tb.grad.tolist() if tb.grad is not None else [0.0] * 4), i
    x = tp.tensor([[3.0, 1.0, 3.0, 2.0]], device=device)
    assert x.topk(2).indices.tolist() == [[0, 2]] and x.argmin(dim=1).tolist() == [1]
    assert x.sort(descending=True).indices.tolist() == torch.tensor([[3.0, 1.0, 3.0, 2.0]]).sort(
        descending=True, stable=True).indices.tolist() == [[0, 2, 3, 1]]


def test_dtypes_follow_pytorchs_promotion(device, torch):
    """Integers with floats give the float's dtype (NumPy would give float64), float functions of integers give
    float32, true division of integers too, and a gradient has its input's dtype whatever it met."""
    i, ti = tp.tensor([1, 2], device=device), torch.tensor([1, 2])
    f, tf = tp.tensor([0.5, 1.5], device=device), torch.tensor([0.5, 1.5])
    pairs = [(i + 0.5, ti + 0.5), (i.exp(), ti.exp()), (i / 2, ti / 2), (2 / i, 2 / ti), (i * f, ti * tf),
             (f - i, tf - ti), (i ** 0.5, ti ** 0.5), (i.sqrt(), ti.sqrt()), (i + 1, ti + 1), (i.sum(dtype=tp.float32),
             ti.sum(dtype=torch.float32)), (f.sum(dtype=tp.float64), tf.sum(dtype=torch.float64)),
             (tp.maximum(i, f), torch.maximum(ti, tf))]
    for k, (ours_, theirs_) in enumerate(pairs):
        assert str(ours_.dtype) == str(theirs_.dtype).replace("torch.", ""), (k, ours_.dtype, theirs_.dtype)
        np.testing.assert_allclose(ours_.numpy(), theirs_.numpy(), rtol=1e-6)
    p = tp.tensor([1.0, 2.0], requires_grad=True, device=device)
    (tp.tensor(np.array([0.5, 0.25]), device=device) * p).sum().backward()   # a float64 constant
    assert p.grad.dtype == np.float32 and p.grad.tolist() == [0.5, 0.25]


def promotions(T, F):
    """dtypes where NumPy's rules (integers with float32 give float64; a 0-d array's dtype counts as any other's)
    and PyTorch's differ: joining, choosing and clamping, and a 0-d tensor meeting a tensor with dims."""
    b = T.tensor([True, False])
    return [T.cat([T.tensor([1.5]), T.tensor([2])]), T.stack([T.tensor(1.5), T.tensor(2)]),
            T.where(T.tensor([True]), T.tensor([1]), T.tensor([2.5])), T.where(b, T.tensor([1, 2]), 1.5),
            T.tensor([1, 5]).clamp(max=2.5), T.ones(3) * T.tensor(2.0, dtype=T.float64),
            T.ones(3, dtype=T.int32) * T.tensor(2), T.ones(3).pow(T.tensor(2.0, dtype=T.float64)),
            T.where(b, T.ones(2), T.tensor(2.0, dtype=T.float64)),
            T.ones(3, dtype=T.int32) * T.tensor(2.5, dtype=T.float64), T.tensor([True]) + T.tensor(2),
            T.ones(3, dtype=T.float64) + T.ones(3), T.cat([T.ones(2, dtype=T.float64), T.ones(2)]),
            T.cat([T.ones(2, dtype=T.int32), T.ones(2, dtype=T.int64)]), T.tensor(2.0, dtype=T.float64) * T.tensor(3.0),
            T.maximum(T.ones(2), T.tensor(1.0, dtype=T.float64))]


def test_joins_choices_and_zero_dim_tensors_promote_as_pytorchs(torch):
    ours, theirs = promotions(tp, F), promotions(torch, torch.nn.functional)
    assert [str(t.dtype) for t in ours] == [str(t.dtype).removeprefix("torch.") for t in theirs]
    assert [t.tolist() for t in ours] == [t.tolist() for t in theirs]
    assert [str(t.dtype) for t in ours[:9]] == ["float32"] * 6 + ["int32", "float32", "float32"]  # no silent float64
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    (tp.cat([x, tp.tensor([3])]) * tp.tensor(2.0, dtype=tp.float64)).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [2.0, 2.0]


def test_multinomial_draws_by_weight_and_refuses_what_torch_refuses(device):
    tp.manual_seed(0)
    weights = tp.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 1.0, 1.0]], device=device)
    draws = tp.multinomial(weights, 4000, replacement=True)
    assert draws.shape == (2, 4000) and draws.dtype == np.int64 and draws.device == device
    counts = np.stack([np.bincount(row, minlength=4) for row in draws.numpy()]) / 4000
    np.testing.assert_allclose(counts, [[0.1, 0.0, 0.6, 0.3], [0.25] * 4], atol=0.03)  # sd at most 0.008
    without = weights.multinomial(3)
    assert [sorted(row) for row in without.tolist()][0] == [0, 2, 3] and len(set(without.tolist()[1])) == 3
    tp.manual_seed(0)
    assert tp.multinomial(weights, 4000, replacement=True).tolist() == draws.tolist()   # manual_seed repeats it
    for bad, message in [(tp.tensor([0.5, -0.1]), "non-negative"), (tp.tensor([0.0, 0.0]), "positive sum"),
                         (tp.tensor([1.0, 0.0]), "without replacement")]:
        with pytest.raises(ValueError, match=message):
            bad.multinomial(2)


def test_new_ops_refuse_bad_input_in_one_line_naming_themselves():
    x = tp.randn(2, 3)
    for call, match in [(lambda: x.gather(1, tp.tensor([0, 1])), "gather: index must be integers with 2 dims"),
                        (lambda: x.gather(1, tp.tensor([[0], [1], [0]])), "gather: index of shape"),
                        (lambda: F.pad(x, (1,)), "pad: 1 amounts"), (lambda: F.pad(x, (1, 1), mode="reflect"),
                                                                      "only mode 'constant'"),
                        (lambda: tp.einsum("ii->i", tp.randn(2, 2)), "Einsum: subscripts 'ii'"),
                        (lambda: tp.einsum("ij,jk->ik", x), "Einsum: 'ij,jk->ik' names 2 operands"),
                        (lambda: x.repeat(2), "repeat: 1 sizes"), (lambda: x.topk(4), "topk: k = 4"),
                        (lambda: F.cross_entropy(x, tp.tensor([0, 1]), reduction="avg"), "reduction must be"),
                        (lambda: F.cross_entropy(x, tp.randn(2, 4)), "probability targets need"),
                        (lambda: F.scaled_dot_product_attention(tp.randn(1, 3, 2, 4), tp.randn(1, 2, 2, 4),
                                                                tp.randn(1, 2, 2, 4), enable_gqa=True),
                         "3 query heads")]:
        with pytest.raises(ValueError, match=match):
            call()


def test_edges_a_port_meets_follow_pytorch(device, torch):
    """Each of these was once silently different from PyTorch: booleans with integers, float arrays meeting
    integer tensors, integer min/argmin/minimum (which must not negate: unsigned and lowest values wrap), the
    gradient of a NaN maximum, every target ignored (NaN loss, zero gradients), torch.max(a, b), integer casts
    (no gradient), einsum over a broadcast operand, and a copy where PyTorch copies."""
    t = lambda values, **kw: tp.tensor(values, device=device, **kw)
    assert (t([True, False]) + 2).tolist() == (torch.tensor([True, False]) + 2).tolist() == [3, 2]
    assert (t([1, 2]) + np.array([0.5, 0.5])).tolist() == [1.5, 2.5]
    unsigned = np.array([[0, 1, 2], [3, 0, 1]], np.uint8)
    u, tu = t(unsigned), torch.tensor(unsigned)
    assert u.min().item() == tu.min().item() and u.argmin(1).tolist() == tu.argmin(1).tolist() == [0, 1]
    assert u.minimum(t(np.array([1], np.uint8))).tolist() == tu.minimum(torch.tensor([1], dtype=torch.uint8)).tolist()
    lowest = np.array([np.iinfo(np.int64).min, 0, 5])
    assert t(lowest).argmin().item() == 0 and t(lowest).min().item() == lowest[0]
    x, tx = t([1.0, np.nan, 2.0], requires_grad=True), torch.tensor([1.0, np.nan, 2.0], requires_grad=True)
    x.max().backward()
    tx.max().backward()
    assert x.grad.tolist() == tx.grad.tolist() == [0.0, 1.0, 0.0]
    for fused in (True, False):
        logits, tlogits = t([[1.0, 2.0]], requires_grad=True), torch.tensor([[1.0, 2.0]], requires_grad=True)
        with tp.use_fused(fused):
            loss = F.cross_entropy(logits, t([-100]))
        tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor([-100]))
        loss.backward()
        tloss.backward()
        assert np.isnan(loss.item()) and np.isnan(tloss.item())
        assert np.abs(logits.grad.numpy()).tolist() == tlogits.grad.abs().tolist() == [[0.0, 0.0]]
    assert tp.max(t([1.0, 5.0]), t([3.0, 2.0])).tolist() == torch.max(torch.tensor([1.0, 5.0]),
                                                                          torch.tensor([3.0, 2.0])).tolist()
    assert not t([1.5], requires_grad=True).long().requires_grad
    for approximate in ("none", "tanh"):                             # GELU of integers: float32, as PyTorch's
        ours_gelu = F.gelu(t([1, -2]), approximate=approximate)
        theirs_gelu = torch.nn.functional.gelu(torch.tensor([1.0, -2.0]), approximate=approximate)
        assert ours_gelu.dtype == np.float32
        np.testing.assert_allclose(ours_gelu.numpy(), theirs_gelu.numpy(), rtol=1e-6)
    a, b = (np.random.default_rng(0).standard_normal(s) for s in ((2, 3, 4), (1, 4, 5)))
    ours_in, their_in = [t(v, requires_grad=True) for v in (a, b)], [torch.tensor(v, requires_grad=True)
                                                                     for v in (a, b)]
    tp.einsum("bij,bjk->bik", *ours_in).sum().backward()
    torch.einsum("bij,bjk->bik", *their_in).sum().backward()
    np.testing.assert_allclose(ours_in[1].grad.numpy(), their_in[1].grad.numpy(), rtol=1e-12)
    array = np.ones(3)
    copied = tp.tensor(array)
    array[0] = 50.0
    assert copied.tolist() == [1.0, 1.0, 1.0]                       # torch.tensor copies; tp.from_numpy shares
    w, saved = t([1.0, 2.0, 3.0], requires_grad=True), t([1.0, 2.0, 3.0])
    y = (w * saved).sum()
    view = saved.flip(0)
    view[0] = 100.0                                                 # written into a copy: nothing else changes
    saved[0] = 100.0
    y.backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0] and view.tolist() == [100.0, 2.0, 1.0]
    with pytest.raises(IndexError):
        t([[1.0, 2.0]]).gather(2, t([[0]]))


def test_amax_and_norm_follow_pytorch_at_ties_and_at_zero(device, torch):
    """amax/amin split a tie's gradient evenly along the reduced dims (max(dim) gives it to the first); a norm of
    zeros has gradient 0, as PyTorch's. Pinned by hand: finite differences cannot decide either."""
    values = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    upstream = np.array([1.0, 2.0])
    for case in (lambda x: x.amax(1), lambda x: (-x).amin(dim=1), lambda x: x.amax().reshape(1) * 3,
                 lambda x: (x * 0).norm(dim=1) + (x * 0).norm(p=1, dim=1)):
        x, t = tp.tensor(values, requires_grad=True, device=device), torch.tensor(values, requires_grad=True)
        out, ref = case(x), case(t)
        out.backward(tp.tensor(upstream[:out.shape[0]], device=device))
        ref.backward(torch.tensor(upstream[:ref.shape[0]]))
        assert out.tolist() == ref.tolist() and x.grad.tolist() == t.grad.tolist()


def test_more_ops_refuse_bad_input_in_one_line_naming_themselves():
    x = tp.randn(2, 3)
    for call, error, match in [
            (lambda: x.mm(tp.randn(2, 3, 4)), ValueError, "mm: need two 2-D"),
            (lambda: tp.randn(2, 3, 4).bmm(tp.randn(1, 4, 2)), ValueError, "bmm: need two 3-D"),
            (lambda: x.outer(tp.randn(3)), ValueError, "outer: need two 1-D"),
            (lambda: x.index_select(0, tp.tensor([[0]])), ValueError, "index_select: index must be"),
            (lambda: x.index_select(0, tp.tensor([0.0])), ValueError, "index_select: index must be"),
            (lambda: x.index_select(1, tp.tensor([3])), IndexError, "index_select: index 3 is out of range"),
            (lambda: x.roll((1, 2), 0), ValueError, "roll: 2 shifts for 1 dims"),
            (lambda: x.norm(p=0), ValueError, "norm: p must be"),
            (lambda: x.amax(2), IndexError, "dim 2 is out of range")]:
        with pytest.raises(error, match=match):
            call()


def test_the_new_methods_are_torch_functions_too(torch):
    rng = np.random.default_rng(0)
    a, b, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 3)), rng.standard_normal(3)
    calls = [("unbind", (a, 1)), ("amax", (a, 1)), ("amin", (a, (0, 2))), ("norm", (a,)), ("roll", (a, 1, 2)),
             ("index_select", (a, 2, np.array([3, 0]))), ("mm", (a[0], b[0])), ("bmm", (a, b)), ("outer", (v, v))]
    for name, args in calls:
        ours = getattr(tp, name)(*(tp.tensor(x) if isinstance(x, np.ndarray) else x for x in args))
        theirs = getattr(torch, name)(*(torch.tensor(x) if isinstance(x, np.ndarray) else x for x in args))
        ours, theirs = (tp.stack(ours), torch.stack(theirs)) if name == "unbind" else (ours, theirs)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, err_msg=name)


# the cases of ops ported code reaches that run again in float32, against PyTorch's float64 on the same inputs
FLOAT32_CASES = ["var_unbiased_false", "std_positional_unbiased_keepdim", "var_mean_std_mean", "remainder_signs",
                 "remainder_reflected", "fmod_signs", "cumprod", "cumprod_negative_dim", "scatter", "scatter_a_number",
                 "scatter_add_repeated", "batch_norm_training", "batch_norm_training_ncl_running", "batch_norm_eval"]


@pytest.mark.parametrize("case", [c for c in CASES if c.name in FLOAT32_CASES], ids=repr)
def test_in_float32_values_and_gradients_are_close_to_float64_truth(case, device, torch):
    """float32 in, float32 out (values and gradients), within float32's rounding of PyTorch's float64 results for
    the very same (float32) inputs."""
    arrays = [a.astype(np.float32) for a in random_inputs(case, seed=6)]
    mine = [tp.tensor(a, device=device, requires_grad=True) for a in arrays]
    truth = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    m = ours()
    m.const = lambda a: tp.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, device=device)
    out, ref = case.fn(m, *mine), case.torch_fn(theirs(torch), *truth)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=2e-6, atol=1e-6)
    upstream = np.random.default_rng(7).standard_normal(ref.shape).astype(np.float32)
    out.backward(tp.tensor(upstream, device=device))
    ref.backward(torch.tensor(upstream.astype(np.float64)))
    for t, r in zip(mine, truth):
        assert t.grad.dtype == np.float32
        np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_var_and_std_take_unbiased_or_correction_not_both_as_pytorchs(torch):
    x, tx = tp.ones(2, 3), torch.ones(2, 3)
    for call in (lambda lib, x: x.var(1, unbiased=False, correction=0), lambda lib, x: x.std(unbiased=True,
                                                                                              correction=1),
                 lambda lib, x: lib.var_mean(x, 0, unbiased=True, correction=1)):
        with pytest.raises(TypeError, match="unbiased= and correction= given at once"):
            call(tp, x)
        with pytest.raises(TypeError):
            call(torch, tx)


def test_floor_division_rounds_down_and_has_no_gradient_as_pytorchs(device, torch):
    """// and floor_divide round toward -inf, so % (remainder) takes the divisor's sign and fmod the dividend's,
    for floats and integers, with a number on either side and a float divisor of integers (float32); a zero
    remainder keeps PyTorch's sign. PyTorch defines no gradient for floor_divide: its result requires grad and a
    backward through it is an error, in both."""
    for a, b in ((np.array([-7.5, 7.5, -7.5, 7.5, 0.3, -4.0, 4.0]), np.array([2.0, -2.0, -2.0, 2.0, 0.7, 2.0, -2.0])),
                 (np.array([-7, 7, -7, 7, 5]), np.array([2, -2, -2, 2, 3]))):
        x, y, tx, ty = tp.tensor(a, device=device), tp.tensor(b, device=device), torch.tensor(a), torch.tensor(b)
        pairs = [(x // y, tx // ty), (x % y, tx % ty), (x.fmod(y), tx.fmod(ty)), (x.remainder(y), tx.remainder(ty)),
                 (tp.floor_divide(x, y), torch.floor_divide(tx, ty)), (tp.remainder(x, 3), torch.remainder(tx, 3)),
                 (tp.fmod(x, -3), torch.fmod(tx, -3)), (7 // y, 7 // ty), (7 % y, 7 % ty), (x // 2.5, tx // 2.5),
                 (x % -2.5, tx % -2.5), (x.floor_divide(-2), tx.floor_divide(-2)), (np.int64(9) % y, 9 % ty)]
        for k, (ours_, theirs_) in enumerate(pairs):
            assert str(ours_.dtype) == str(theirs_.dtype).replace("torch.", ""), (k, ours_.dtype, theirs_.dtype)
            assert ours_.tolist() == theirs_.tolist(), (k, ours_.tolist(), theirs_.tolist())
            assert np.signbit(ours_.numpy()).tolist() == np.signbit(theirs_.numpy()).tolist(), k  # -4.0 % 2 is -0.0
    values = np.array([-7.5, 7.5, 0.3])
    x, tx = tp.tensor(values, requires_grad=True, device=device), torch.tensor(values, requires_grad=True)
    q, tq = x // 2, tx // 2
    assert q.requires_grad and tq.requires_grad
    for loss in ((q * x).sum(), (tq * tx).sum()):
        with pytest.raises(RuntimeError, match="floor_divide"):
            loss.backward()
    (x.detach() // 2 * x).sum().backward()                          # a quotient taken as a constant
    assert x.grad.tolist() == [-4.0, 3.0, 0.0]


ZEROS_ALONG_ROWS = np.array([[0.5, 0.0, 1.5, -2.0, 0.7],    # one zero
                             [1.2, 0.0, 0.0, -0.8, 1.1],    # two in a row
                             [0.0, 1.3, -0.6, 0.0, 2.0],    # one first, another later
                             [0.9, -1.4, 0.8, 1.6, 0.0],    # one last
                             [1.1, -0.7, 1.9, 0.6, -1.3]])  # none


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cumprod_gradient_at_zeros_is_pytorchs(dtype, device, torch):
    """cumprod's gradient Σ_{i>=k} g_i Π_{j<=i, j≠k} x_j, where the shortcut Σ g y / x divides by zero: PyTorch's
    (in float64; float32 within its rounding), finite differences' (the products are polynomials, so they are exact
    at a zero too), and by hand for a row with two zeros in a row."""
    upstream = np.random.default_rng(0).standard_normal((5, 5))
    for values, dim in ((ZEROS_ALONG_ROWS, 1), (ZEROS_ALONG_ROWS.T, 0), (ZEROS_ALONG_ROWS.reshape(5, 5, 1), -2)):
        x = tp.tensor(values, dtype=dtype, requires_grad=True, device=device)
        truth = torch.tensor(values, requires_grad=True)             # float64, and the float32 inputs are exact in it
        y, ty = x.cumprod(dim), truth.cumprod(dim)
        y.backward(tp.tensor(upstream.reshape(values.shape), dtype=dtype, device=device))
        ty.backward(torch.tensor(upstream.reshape(values.shape)))
        tolerance = dict(rtol=1e-12, atol=1e-15) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
        assert y.dtype == x.grad.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tolerance)
        np.testing.assert_allclose(x.grad.numpy(), truth.grad.numpy(), **tolerance)
        if dtype == "float64":
            assert tp.gradcheck(lambda t: t.cumprod(dim), tp.tensor(values, requires_grad=True, device=device))
    x = tp.tensor(ZEROS_ALONG_ROWS[1], requires_grad=True, device=device)
    x.cumprod(0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.2, 0.0, 0.0, 0.0]              # 1 + 0 + ..., x_0 · 1, then a zero in each


def test_scatter_gradients_where_pytorch_and_finite_differences_part(device, torch):
    """Where index repeats a place, scatter writes one of its entries; PyTorch still reads every entry's gradient
    back from its place (a gather) and gives self 0 there, so this does too, though finite differences would give
    the entries written over 0. A src larger than index: PyTorch's backward fails (its gradient for src has index's
    shape); here the entries index does not reach get 0, as finite differences say."""
    rng = np.random.default_rng(0)
    values, src, upstream = rng.standard_normal((3, 4)), rng.standard_normal((2, 2)), rng.standard_normal((3, 4))
    twice = np.array([[0, 1], [0, 1]])                              # places (0, 0) and (1, 1) written twice
    x, s = (tp.tensor(v, requires_grad=True, device=device) for v in (values, src))
    tx, ts = (torch.tensor(v, requires_grad=True) for v in (values, src))
    x.scatter(0, tp.tensor(twice, device=device), s).backward(tp.tensor(upstream, device=device))
    tx.scatter(0, torch.tensor(twice), ts).backward(torch.tensor(upstream))
    assert x.grad.tolist() == tx.grad.tolist() and s.grad.tolist() == ts.grad.tolist()
    assert s.grad.tolist() == [[upstream[0, 0], upstream[1, 1]]] * 2    # both entries of a place read it back
    larger = np.array([[1, 0], [2, 1]])
    for name in ("scatter", "scatter_add"):
        inputs = [tp.tensor(v, requires_grad=True, device=device) for v in (values, rng.standard_normal((3, 5)))]
        assert tp.gradcheck(lambda a, b: getattr(a, name)(0, tp.tensor(larger, device=device), b), *inputs)
        reached = np.zeros((3, 5), dtype=bool)
        reached[:2, :2] = True                                      # index's (2, 2) corner of src
        assert (inputs[1].grad.numpy()[~reached] == 0).all() and (inputs[1].grad.numpy()[reached] != 0).all()


def test_scatter_refuses_what_pytorch_refuses(torch):
    """Out of range and negative places, an index larger than src or of another rank, a float index, src of another
    dtype than self, a number to scatter_add, neither or both of src and value, and (for gather too) a negative
    index: each refused, by PyTorch too, and here in one line naming it."""
    for call, error, match in [
            (lambda lib, x, s: x.scatter(0, lib.tensor([[-1]]), s), IndexError, "scatter: index -1 is out of range"),
            (lambda lib, x, s: x.scatter_add(1, lib.tensor([[4]]), s), IndexError, "scatter_add: index 4 is out of"),
            (lambda lib, x, s: x.scatter_add(0, lib.tensor([[0, 1, 2]]), s), ValueError,
             r"scatter_add: index of shape \(1, 3\) is larger than src"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([[0.0]]), s), ValueError, "scatter: index must be integers"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([0]), s), ValueError, "scatter: index must be integers with 2"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([[0]]), s.double()), TypeError, "scatter: src is float64"),
            (lambda lib, x, s: x.scatter_add(0, lib.tensor([[0]]), 2.0), TypeError, "scatter_add: src must be a"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([[0]])), TypeError, "scatter: give what to write"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([[0]]), s, value=5.0), TypeError, "scatter: give what"),
            (lambda lib, x, s: x.scatter(0, lib.tensor([[0]]), s[0]), ValueError, "scatter: src has 1 dims and the"),
            (lambda lib, x, s: x.gather(1, lib.tensor([[-1], [0], [1]])), IndexError, "gather: index -1 is out of")]:
        with pytest.raises(error, match=match):
            call(tp, tp.zeros(3, 4), tp.ones(2, 2))
        with pytest.raises((RuntimeError, TypeError, IndexError)):
            call(torch, torch.zeros(3, 4), torch.ones(2, 2))


def test_reductions_take_numpys_keepdims_as_pytorchs(device, torch):
    """keepdims=, NumPy's spelling of keepdim=, is taken by PyTorch's reductions (not by norm, a Python function
    there, nor here); both at once is a TypeError in both."""
    values = np.random.default_rng(0).standard_normal((2, 3, 4))
    calls = [lambda lib, x: x.sum(1, keepdims=True), lambda lib, x: x.mean((0, 2), keepdims=True),
             lambda lib, x: x.max(1, keepdims=True).values, lambda lib, x: x.max(1, keepdims=True).indices,
             lambda lib, x: x.min(-1, keepdims=True)[0], lambda lib, x: x.amax((0, 1), keepdims=True),
             lambda lib, x: x.amin(2, keepdims=True), lambda lib, x: x.var(1, keepdims=True),
             lambda lib, x: x.std(1, unbiased=False, keepdims=True), lambda lib, x: x.logsumexp(2, keepdims=True),
             lambda lib, x: (x > 0).any(1, keepdims=True), lambda lib, x: (x > 0).all(2, keepdims=True),
             lambda lib, x: x.argmax(1, keepdims=True), lambda lib, x: x.argmin(0, keepdims=True),
             lambda lib, x: lib.sum(x, 2, keepdims=True), lambda lib, x: lib.var_mean(x, 1, keepdims=True)[0],
             lambda lib, x: lib.std_mean(x, (0, 1), keepdims=True)[1], lambda lib, x: x.mean(1, keepdims=False)]
    for k, call in enumerate(calls):
        ours_, theirs_ = call(tp, tp.tensor(values, device=device)), call(torch, torch.tensor(values))
        assert ours_.shape == tuple(theirs_.shape), (k, ours_.shape, theirs_.shape)
        np.testing.assert_allclose(ours_.numpy(), theirs_.numpy(), rtol=1e-12, err_msg=str(k))
    for x, match in ((tp.tensor(values, device=device), "keepdim and keepdims given at once"), (torch.tensor(values),
                                                                                            "keepdims")):
        with pytest.raises(TypeError, match=match):
            x.sum(1, keepdim=True, keepdims=True)
        with pytest.raises(TypeError, match="keepdims"):
            x.norm(dim=1, keepdims=True)


def test_a_scan_of_a_0d_tensor_is_0d_as_pytorchs(torch):
    for name in ("cumsum", "cumprod"):
        ours, theirs = tp.tensor(3.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
        out, expected = getattr(ours, name)(-1), getattr(theirs, name)(-1)
        (out * 2).backward(), (expected * 2).backward()
        assert out.shape == tuple(expected.shape) == () and out.item() == expected.item() == 3.0
        assert ours.grad.item() == theirs.grad.item() == 2.0
        with pytest.raises(IndexError, match="dim 1 is out of range"):
            getattr(ours, name)(1)


def test_integer_division_by_zero_is_an_error_as_in_pytorch(torch):
    for call in (lambda lib: lib.tensor([5, -5]) // 0, lambda lib: lib.tensor([5, -5]) % lib.tensor([1, 0]),
                 lambda lib: lib.tensor([5]).fmod(0)):
        with pytest.raises(ZeroDivisionError, match="integer division or remainder by zero"):
            call(tp)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            call(torch)
    floats = [5.0, -5.0]                                              # float divisors are not checked
    assert (tp.tensor(floats) // 1e-30).tolist() == (torch.tensor(floats) // 1e-30).tolist()


def test_arithmetic_functions_take_a_number_first_as_pytorchs(torch):
    for values in ([2.0, -3.0], [2, -3]):
        for name in ("add", "sub", "mul", "div", "remainder", "floor_divide"):
            ours, theirs = getattr(tp, name)(7, tp.tensor(values)), getattr(torch, name)(7, torch.tensor(values))
            assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), name
            assert ours.tolist() == theirs.tolist(), name
    for a, b in ((7, 2), (7.5, 2), (-7, 2.0), (True, 3)):                 # two numbers: a 0-d tensor, as PyTorch's
        for name in ("add", "mul", "div", "floor_divide") + (("sub",) if a is not True else ()):
            ours, theirs = getattr(tp, name)(a, b), getattr(torch, name)(a, b)
            assert ours.shape == () and str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (name, a, b)
            assert ours.item() == pytest.approx(theirs.item(), rel=1e-6), (name, a, b)
