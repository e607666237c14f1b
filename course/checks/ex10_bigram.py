"""Checks of exercise 10: the batches, the bigram's logits, the loss against a float64 log-softmax, the loop's
gradients step by step, and a training run to a stated validation loss."""
import math

import numpy as np

import tinygrad_proust as tp
from course import training
from course.diagnose import compare
from course.runner import Wrong, quick
from tinygrad_proust import nn
from tinygrad_proust.optim import AdamW

TITLE = "A bigram model and its training loop"
MINUTES = 30
NEEDS = [5, 9]



def run():
    """The training run's settings, and the validation loss it must reach: measured on the reference answer,
    2.41 (full), 2.45 (quick); a model that does not learn stays at ln 62 = 4.13."""
    settings = training.run_settings(full=dict(batch_size=32, block_size=64, steps=1500, lr=0.1),
                                     fast=dict(batch_size=32, block_size=32, steps=150, lr=0.1))
    return settings, 2.55 if quick() else 2.46


def check_get_batch(ex):
    """get_batch gives (B, T) windows and, for each, the characters one place later"""
    ids = np.arange(1000, dtype=np.int64)  # each id is its own position: a window shows where it starts
    x, y = ex.get_batch(ids, 8, 16, np.random.default_rng(0))
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != (8, 16) or y.shape != (8, 16):
        raise Wrong(f"get_batch(ids, 8, 16, rng) gave x of shape {x.shape} and y of shape {y.shape}; both should be "
                    "(8, 16): batch_size windows of block_size characters")
    if x.dtype.kind not in "iu" or y.dtype.kind not in "iu":
        raise Wrong(f"get_batch gave x of dtype {x.dtype}, y of {y.dtype}: ids are integers (int64)")
    if not (np.diff(x, axis=1) == 1).all():
        raise Wrong("a row of x is not a window of consecutive characters: x[b] = ids[i : i + T]")
    if not (y == x + 1).all():
        raise Wrong("y is not x moved one character later: each target is the character one character after "
                    "its input, y[b] = ids[i + 1 : i + T + 1]")
    if len({int(s) for s in x[:, 0]}) < 4:
        raise Wrong("the windows of a batch start at (almost) the same place: draw each start with rng")
    short = np.arange(18, dtype=np.int64)  # starts 0 and 1 are the only ones whose targets fit for T = 16
    seen = set()
    for seed in range(20):
        try:
            xs, ys = ex.get_batch(short, 4, 16, np.random.default_rng(seed))
            xs, ys = np.asarray(xs), np.asarray(ys)
        except ValueError as error:
            raise Wrong(f"get_batch on 18 ids with T = 16 raised ValueError ({error}): a start i needs its targets "
                        "ids[i + 1 : i + T + 1], so i is at most len(ids) - T - 1") from None
        if ys.shape != (4, 16) or ys.max() >= 18:
            raise Wrong("on 18 ids with T = 16, a window's targets ran off the end of the data: i is at most "
                        "len(ids) - T - 1")
        seen |= {int(s) for s in xs[:, 0]}
    if seen != {0, 1}:
        raise Wrong(f"on 18 ids with T = 16 the starts should be 0 or 1 (i is at most len(ids) - T - 1), your "
                    f"windows started at {sorted(seen)}")


def check_logits(ex):
    """Bigram(V)(idx) has shape (B, T, V): row idx[b, t] of the table"""
    tp.manual_seed(0)
    model = ex.Bigram(5)
    idx = np.array([[0, 3, 3, 1], [4, 2, 0, 0]], dtype=np.int64)
    logits = model(tp.tensor(idx))
    compare("Bigram(5)(idx) for idx of shape (2, 4)", logits, model.table.weight.numpy()[idx])


def check_loss(ex):
    """loss_of is the mean cross-entropy of the logits (a float64 log-softmax says what it should be)"""
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 5, 7)) * 3  # large logits: a softmax taken twice shows
    targets = rng.integers(0, 7, (3, 5))
    got = float(ex.loss_of(tp.tensor(logits.astype(np.float32)), tp.tensor(targets)).item())
    shifted = logits - logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = -np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    want = picked.mean()
    if math.isclose(got, want, rel_tol=1e-4):
        return
    if math.isclose(got, picked.sum(), rel_tol=1e-4):
        raise Wrong(f"loss_of gave {got:.5g}, the sum over the 15 positions; it should be the mean, {want:.5g}")
    probs = np.exp(log_p)
    twice = probs - np.log(np.exp(probs).sum(-1, keepdims=True))
    if math.isclose(got, -np.take_along_axis(twice, targets[..., None], -1).mean(), rel_tol=1e-4):
        raise Wrong(f"loss_of gave {got:.5g}, it should be {want:.5g}: you passed probabilities where the logits "
                    "go; cross_entropy's softmax is inside it")
    raise Wrong(f"loss_of for logits (3, 5, 7) gave {got:.5g}; the mean cross-entropy is {want:.5g}")


def check_initial_loss(ex):
    """a fresh model's loss is near ln V (it knows nothing yet)"""
    vocab, train_ids, _ = training.dataset()
    tp.manual_seed(0)
    x, y = ex.get_batch(train_ids, 16, 32, np.random.default_rng(0))
    loss = float(ex.loss_of(ex.Bigram(vocab)(tp.tensor(x)), y).item())
    if not abs(loss - math.log(vocab)) < 0.1:
        raise Wrong(f"a fresh Bigram's loss is {loss:.4g}; near-uniform guesses over {vocab} characters give about "
                    f"ln {vocab} = {math.log(vocab):.3f}: loss_of should be the mean over the B·T positions of "
                    "-log softmax(logits)[target], with the table's rows as logits")


class Watched(nn.Module):
    """The model, keeping the shape of every batch of ids it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, idx):
        self.shapes.append(tuple(idx.shape))
        return self.model(idx)


class Recording(AdamW):
    """AdamW with lr 0 (the weights stay put) that keeps a copy of every gradient it is asked to step with."""

    def __init__(self, params):
        super().__init__(params, lr=0.0, weight_decay=0.0)
        self.seen = []

    def step(self):
        self.seen.append([None if p.grad is None else p.grad.numpy().copy() for p in self.params()])
        super().step()


def check_loop_gradients(ex):
    """each step of train() steps with that step's gradient alone (zero_grad, then backward, then step)"""
    tp.manual_seed(0)
    model = Watched(ex.Bigram(3))
    optimizer = Recording(model.parameters())
    ids = np.zeros(50, dtype=np.int64)  # every window is the same: with lr 0 every step's gradient is the same
    losses = ex.train(model, optimizer, ids, 3, 4, 8, np.random.default_rng(0))
    if len(optimizer.seen) != 3:
        raise Wrong(f"train(..., steps=3, ...) called optimizer.step() {len(optimizer.seen)} times, not 3")
    if losses is None or len(losses) != 3:
        raise Wrong("train(..., steps=3, ...) should return the list of the 3 losses")
    if any(isinstance(loss, tp.Tensor) for loss in losses):
        raise Wrong("train returned the losses as Tensors: append loss.item(), a float; a list of Tensors keeps "
                    "every step's graph, and the arrays it holds, alive to the end of training")
    if model.shapes and set(model.shapes) != {(4, 8)}:
        raise Wrong(f"with batch_size 4 and block_size 8, train gave the model batches of shape {model.shapes[0]}, "
                    "not (4, 8): pass them to get_batch in its order, get_batch(ids, batch_size, block_size, rng)")
    grads = [step[0] for step in optimizer.seen]
    if grads[0] is None or not np.abs(grads[0]).max() > 0:
        raise Wrong("at optimizer.step() the table has no gradient: call loss.backward() before optimizer.step(), "
                    "and optimizer.zero_grad() before backward, not between them: with no gradient the step changes "
                    "nothing and the model did not learn")
    for n in (1, 2):
        if grads[n] is None:
            raise Wrong(f"at step {n + 1} the table has no gradient when the optimizer steps")
        ratio = np.abs(grads[n]).sum() / np.abs(grads[0]).sum()
        if not np.isclose(ratio, 1, rtol=1e-4):
            raise Wrong(f"the gradient at step {n + 1} is {ratio:.3g} times step 1's on the same batch: gradients "
                        "pile up from step to step; call optimizer.zero_grad() before loss.backward()")


def check_training(ex):
    """the loop trains the bigram model to the stated validation loss"""
    vocab, _, _ = training.dataset()
    tp.manual_seed(0)
    model = ex.Bigram(vocab)
    settings, target = run()
    val, losses = training.train_with(ex, model, settings)
    if not val < target:
        start = f"from {losses[0]:.3f} " if losses else ""
        raise Wrong(f"after {settings['steps']} steps the validation loss is {val:.3f} (training loss {start}to "
                    f"{losses[-1] if losses else float('nan'):.3f}); it should be below {target}: the model did not "
                    "learn enough (each step: a batch, the loss, zero_grad, backward, step)")

