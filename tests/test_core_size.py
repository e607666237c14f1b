"""Line budgets (as teenygrad's sz.py), in code lines: not blank, not comments, not docstrings.

The engine is what a reader follows from loss.backward() into any op's gradient: Tensor and the backward walk,
the primitive ops, the fused ops and the functional API over them. It must stay readable in one sitting.
The framework is all of tinygrad_proust/: the engine plus nn modules, optimizers, devices, random numbers,
checkpoints, gradcheck and the debugging and drawing tools. The language-model application (models/) is not
counted: it is an application of the framework, and grows with what users train.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_proust"
ENGINE = ["tensor.py", "ops.py", "fused.py", "functional.py"]
# 1,100 -> 1,188 (2026-12): PyTorch's conversions and refusals (float()/int() of a one-element tensor, non-numeric
# data and integer requires_grad_ refused, a hook that changes a gradient's shape refused at once), 0-d tensors
# through sigmoid/SiLU/GELU, where() of two numbers, mean/var with nothing to reduce, tensor ** tensor as one
# primitive (PyTorch's values and gradients at 0 and for negative bases), a float attention mask added to the
# scores with its gradient (fused and reference), max(dim) as (values, indices), integer indices applied before
# index tensors (PyTorch's order, not NumPy's); compositions clamp/clip, std, logsumexp, square, add/sub/mul/div,
# flip, unflatten, isnan/isinf/isfinite/logical_not/~, F.one_hot, F.leaky_relu, F.softplus (33); primitives
# Sin, Cos and CumSum (22). 1,188 -> 1,207: on a GPU, the compiled kernel beside the plain lines it replaces, for
# the dropout mask (2), GELU's tanh form (8) and attention's softmax (7, p · keep kept for the backward), their
# imports (2); a constant exponent's gradient decided in Python, as CuPy's where() needs (1). 1,207 -> 1,388:
# PyTorch's ops a course or a ported snippet reaches: primitives Maximum, Erf and Einsum (with "..." and implicit
# outputs: 47); compositions min/argmin/minimum, gather, sort/argsort/topk, repeat/repeat_interleave, clone,
# sum(dtype=), F.pad, F.einsum, F.nll_loss, cross_entropy's weight/reduction/label_smoothing/probability
# targets/(N, C, d...) and SDPA's enable_gqa (111); PyTorch's dtype promotion (integers with floats, float functions
# of integers, a gradient in its input's dtype: 14); in-place assignment without a gradient, contiguous (9).
# 1,388 -> 1,422: what more ported PyTorch code met: booleans with integers, float arrays never truncated,
# integer min/argmin/minimum without negation, a NaN maximum's gradient, torch.max(a, b), integer casts without a
# gradient, checked dims, a copy on assignment, zero gradients when every target is ignored (34); a line the linter
# wrapped (1). 1,423 -> 1,415: each op reads its array module once (Function.xp, set where the op is made: 40
# array_module() calls gone from ops.py and fused.py), one unwrap() for the Tensor-or-array pattern (17 copies),
# argmax and argmin through one helper. 1,415 -> 1,425: GELU's tanh form as a formula that reads in one line
# (ops.Gelu, the reference) beside its passes in one buffer and its compiled kernel (fused.GeluTanh). 1,425 -> 1,438:
# the debugger at a GPT's scale: every op records the modules whose forward made it (Function.module_path,
# module_name, shown in its repr: 5), the observers' accumulate event between two ops (5), a large tensor's repr
# with its norm, min, max and mean and a gradient's norm (4), less one notify() for every event (1). 1,438 -> 1,456:
# a slice's gradient added into the part of its input's gradient the walk already holds (Function.backward_into,
# GetItem's, the walk's owned arrays: 14), and on a GPU attention's two products that read a score matrix
# transposed computed transposed instead, sparing CuPy's copy of the matrix (4); GetItem's in place for each kind
# of basic index: into a view, or for one element, a bool or a 0-d array by assignment (6). 1,462 -> 1,499: what
# ported PyTorch code met: in-place ops where no gradient flows (+= -= *= /=, add_ sub_ mul_ div_ clamp_ fill_ zero_
# copy_: 28), `p.data += -lr * p.grad` through __array_ufunc__ (9). 1,499 -> 1,500: nelement (1). 1,500 -> 1,501:
# ReLU's gradient mask from its output (x > 0, or NaN, in one kernel: 1). 1,501 -> 1,519: how ported code switches
# recording off and on: enable_grad, inference_mode, set_grad_enabled (a statement, a block or a decorator: 18).
# 1,519 -> 1,528: F.mse_loss, with PyTorch's warning for a broadcast target (9). 1,528 -> 1,581: the tensor methods
# ported code calls: amax/amin (Max's even split of ties over a tuple of dims: 1), norm (0 gradient at 0, as
# PyTorch's), mm/bmm (no broadcasting), outer, roll, index_select, unbind, expand_as, view_as, with their checks (52).
# 1,581 -> 1,585: allclose and equal, which ported tests compare results with (4). 1,585 -> 1,591: F.embedding's
# padding_idx, whose row gets no gradient (6). 1,591 -> 1,604: var/std's unbiased= beside correction= (and
# x.var(False)), the two refused together, as PyTorch's (7); var_mean and std_mean (6). 1,604 -> 1,606: no_grad,
# enable_grad and inference_mode as bare decorators (0), set_grad_enabled refusing what is not a bool (2).
# 1,606 -> 1,631: primitives Fmod and FloorDivide (whose backward is an error, as PyTorch's: 12); remainder as
# fmod plus the divisor where the signs differ, PyTorch's steps (5); // and % with their reflected and in-place
# forms, fmod, floor_divide (8). 1,631 -> 1,647: primitive CumProd, whose gradient is right at zeros (13), and
# cumprod (1); CumSum's reversed cumulative sum a helper both use (2). 1,647 -> 1,689: primitive Scatter, src
# written or added into zeros at gather's index, its backward a gather (11); scatter and scatter_add over it, with
# PyTorch's checks of index and src (26), gather's index built in a helper they share (2); scatter_, scatter_add_ (3).
# 1,689 -> 1,702: keepdims=, NumPy's spelling, beside keepdim= in every reduction PyTorch takes it in (13).
# 1,702 -> 1,715: scatter refuses neither or both of src and value, and names a src of another rank; gather
# refuses a negative index as scatter does (one check, in their shared helper); a 0-d tensor's cumsum and cumprod
# stay 0-d; an integer divisor of 0 is an error in //, % and fmod, as PyTorch's; check_ids moved down into ops.py,
# so Tensor no longer imports functional (13 in all). 1,715 -> 1,745: F.batch_norm, a composition of existing ops
# (its gradient from its parts) that moves the running statistics in place under no_grad, with PyTorch's checks (30).
# 1,745 -> 1,746: both running statistics computed before either is written (1). 1,746 -> 1,784: slices that tile
# their tensor along one dim (split, chunk: q, k and v) get their gradients joined by one concatenation instead of
# added into zeros: GetItem.region and Function.region (12), the walk holding slices' gradients while they may still
# tile their tensor and adding them in as they come otherwise (gather: 19 in place of 6), _side_by_side and _joined
# (13); a hook that changes a gradient's dtype refused as one that changes its shape (0). 1,784 -> 1,811: a generator
# function decorated with no_grad, enable_grad, inference_mode or set_grad_enabled runs in the mode each time it
# resumes, as PyTorch's (the grad mode a class: 33 in place of 8, and 2 imports). 1,811 -> 1,814: PyTorch's
# promotion in cat, stack, where and clamp, and for a 0-d tensor meeting one with dims (no silent float64: 3).
# 1,814 -> 1,821: a query a mask leaves no key gets weights 0, as PyTorch's SDPA gives, in the fused op (4) and the
# reference (3), where softmax was 0/0. 1,821 -> 1,851: what ported code met (30 in all): register_hook's handle
# (_Handle moved down from nn.py, 9 of them), copy_(p) under no_grad, f"{loss:.4f}", abs(t) and lst[t], logsumexp of
# a row all -inf, unsqueeze's, tril/triu's and one_hot's checks, softmax of integers in float32. 1,851 -> 1,853: the
# promotion check returning at once when the dtypes agree, as they nearly always do (an add: 6.8 -> 3.0 us).
# 1,853 -> 1,860: np.asarray(t) on the CPU (4), an op given an array or a list names it (3)
ENGINE_BUDGET = 1860
# 2,100 -> 2,207 (2026-12): the engine's 88, full()'s dtype from its value, full_like/empty/eye, the GPU's
# whole-group optimizer step (optim.flatten, Adam.step_group) and the dropout mask stream's keyed hash, with the
# warning for older states. 2,207 -> 2,399: the engine's 19; the compiled GPU kernels (kernels.py, 156 lines, 80
# of them CUDA: the dropout mask, Adam's group step, GELU and attention's softmax, each with its backward where it
# has one), the stream's words claimed for a kernel (rng.claim_words), Adam's group step through the kernel.
# 2,399 -> 2,650: the engine's 181; multinomial (21); nn.ModuleDict, Sequential, Tanh, Module.apply and nn.init
# (44); the torch-style functions at the package's top (5). 2,650 -> 2,706: the engine's 34; tp.tensor copies its
# array, multinomial's checks (5); ModuleDict's and Sequential's names and checks (14); torch's dtype names (3);
# load_checkpoint's result by name, Checkpoint(meta, weights, optimizer), and lines the linter wrapped (2);
# less the engine's cleanups and one shape normaliser instead of two (6); GELU's formula beside its fused form (10);
# a checksum of the checkpoint's own metadata (4); write_atomically, shared by every writer, refusing a device, pipe
# or folder where a file goes and naming the file (not its .tmp) when a write fails (11); graph pictures that teach
# on small graphs, each node's data and gradient (values=True) and each op's step in the backward walk (order=True)
# (14); the engine's 13; break_on at every occurrence, in one module, and at the engine's accumulate step, with a
# warning when it never stopped (42); Module.__call__ keeping the stack of running modules (4); less one walk (1)
# and record_modules' own module recorder, now that every op knows its module (19); the engine's 24. 2,804 -> 2,852:
# the engine's 37; a parameter replaced only by a parameter, a module's tensor changed in place keeping its place,
# `p.data = tensor` keeping the array (11). 2,852 -> 2,864: the engine's 1; Generator and generator= (9);
# nn.utils.clip_grad_norm_ (2). 2,864 -> 2,865: the engine's 1. 2,865 -> 2,884: the engine's 18; their names at the
# package's top (1). 2,884 -> 2,923: the engine's 9; the modules ported classifiers are built of, nn.Sigmoid,
# Softmax, Flatten, CrossEntropyLoss and MSELoss (30). 2,923 -> 2,977: the engine's 53; their names at the
# package's top (1). 2,977 -> 2,986: the engine's 4; linspace and randperm (6); less a line of the package's names (1).
# 2,986 -> 3,037: the engine's 6; nn.Embedding's padding_idx, LayerNorm's elementwise_affine (7); the nn.init
# functions ported models initialise with, uniform_, constant_, xavier_uniform_/normal_, kaiming_uniform_/normal_,
# calculate_gain, with PyTorch's fans and generator= (38). 3,037 -> 3,041: load_checkpoint given a folder (a run's,
# most often) says so and names the checkpoints in it, where it said "no such file" (4). 3,041 -> 3,154: the
# engine's 111 (var/std's unbiased= 13, bare grad-mode decorators 2, // and % 25, cumprod 16, scatter 42,
# keepdims= 13); their names at the package's top (2). 3,154 -> 3,181: buffers as PyTorch's: persistent ones in
# state_dict and load_state_dict, register_buffer's persistent= and checks, a tensor assigned to a buffer staying
# one, named_buffers/buffers (through one walk shared with named_parameters), to(dtype) casting floating buffers (27).
# 3,181 -> 3,365: torch.optim.lr_scheduler's schedulers (optim/lr_scheduler.py: LRScheduler with step, get_last_lr,
# state_dict and PyTorch's step(epoch); LambdaLR, StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR,
# each with PyTorch's step form and the closed form; SequentialLR; PyTorch's argument checks: 183), and their name
# in optim (1). 3,365 -> 3,388: the engine's 13; MultiStepLR's milestones back to step numbers after a JSON round
# trip (3); torch.add(2, t), torch.remainder(7, t) and the other arithmetic functions with a number first (7).
# 3,388 -> 3,392: a .safetensors checkpoint read without the safetensors package says it needs the package (4).
# 3,392 -> 3,422: the engine's 30. 3,422 -> 3,448: nn.BatchNorm1d, its running statistics and batch count as
# PyTorch's buffers, momentum=None's cumulative average (26). 3,448 -> 3,454: the engine's 1; check_writable, the
# checks write_atomically makes before writing (now of the nearest existing folder), for the scripts to make before
# their work (4); a file that is not an .npz archive and not named .safetensors is no checkpoint, whatever packages
# are installed (1). 3,454 -> 3,519: the engine's 65. 3,519 -> 3,534: the engine's 10; torch.add(2, 3) with two
# numbers (2); a state_dict may lack BatchNorm1d's num_batches_tracked, as PyTorch's (3). 3,534 -> 3,562: the
# engine's 30; less _Handle, moved into tensor.py (9); a slice of a Sequential or ModuleList is one again (2),
# Module.to(dtype) (2), load_state_dict's missing and unexpected keys (2), clipping one tensor or none with a
# gradient (1). 3,562 -> 3,567: the engine's 2; a file that is neither an .npz archive nor a safetensors one is
# said to be so, not with safetensors' own words for it (3). 3,567 -> 3,574: the engine's 7. 3,574 -> 3,575: a slice
# of a Sequential keeps its modules' names, and a subclass its class, as PyTorch's (1). 3,575 -> 3,576: the same
# words for a file neither .npz nor safetensors without the safetensors package (1)
FRAMEWORK_BUDGET = 3576


def code_lines(path):
    source = path.read_text()
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None:
            first = node.body[0]
            docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in docstring_lines)


def test_engine_fits_its_line_budget():
    sizes = {name: code_lines(PACKAGE / name) for name in ENGINE}
    assert sum(sizes.values()) <= ENGINE_BUDGET, f"engine is {sum(sizes.values())} code lines: {sizes}"


def test_framework_fits_its_line_budget():
    sizes = {str(path.relative_to(PACKAGE)): code_lines(path) for path in sorted(PACKAGE.rglob("*.py"))}
    assert sum(sizes.values()) <= FRAMEWORK_BUDGET, f"framework is {sum(sizes.values())} code lines: {sizes}"


def test_counter_skips_docstrings_and_comments(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""doc\nstring"""\n# comment\n\ndef f():\n    """doc"""\n    return 1\n')
    assert code_lines(sample) == 2
