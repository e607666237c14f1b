"""Checks of exercise 18: a LoRA layer is its base at init, adds exactly (alpha/r) B A x, merges to the same
outputs; in the learner's GPT only A and B get gradients; fine-tuning on a new text lowers its loss and leaves
the trained weights as they were."""
import numpy as np

import tinygrad_proust as tp
from course import training
from course.diagnose import compare
from course.runner import Wrong, quick, sibling
from tinygrad_proust import functional as F
from tinygrad_proust import nn

TITLE = "LoRA (a frozen model, a low-rank update, merged)"
MINUTES = 30
NEEDS = [9, 10, 15]


def layer(ex, r=2, alpha=5.0):  # alpha / r = 2.5, not a whole number: alpha // r shows
    tp.manual_seed(0)
    base = nn.Linear(5, 4)
    base.bias.data = np.random.default_rng(25).standard_normal(4).astype(np.float32)
    return base, ex.LoRALinear(base, r, alpha)


def check_init(ex):
    """at init the LoRA layer's output is its base's (B starts at zero), and A is random, randn / sqrt(in)"""
    base, lora = layer(ex)
    x = tp.tensor(np.random.default_rng(26).standard_normal((3, 5)).astype(np.float32))
    with tp.no_grad():
        got, want = lora(x).numpy(), base(x).numpy()
    if got.shape == want.shape and not np.allclose(got, want, rtol=1e-6, atol=1e-7):
        raise Wrong("at init your LoRA layer's output differs from the base layer's: B starts at zero, so that "
                    "fine-tuning starts from the trained model exactly")
    thawed = [name for name in ("weight", "bias") if getattr(base, name).requires_grad]
    if thawed:
        raise Wrong(f"the base layer's {' and '.join(thawed)} still require gradients: a LoRA layer keeps its base "
                    "frozen (requires_grad = False), so only A and B train")
    if not np.abs(lora.A.numpy()).max() > 0:
        raise Wrong("A is zero at init: then B's gradient, (alpha/r) dy (A x)ᵀ, is zero too, and nothing trains")
    # rank 4: 1,024 entries of A, their spread measured to about 3%; an init of spread 1/r (1/4, 4 times too wide)
    # is then refused whatever the draw, where at rank 8 (1/8, exactly 2 times) it would pass or not by chance
    wide = ex.LoRALinear(nn.Linear(256, 8), 4, 16.0)
    spread = float(wide.A.numpy().std())
    if not 0.5 < spread * 16 < 2:
        raise Wrong(f"A's entries have a spread (standard deviation) of {spread:.3g} in a layer of 256 inputs; A "
                    "starts as randn / sqrt(in), a spread of 1/16 = 0.0625 here, so that A x has about the scale of "
                    "one of x's features whatever the layer's width")


def randomised_b(lora):
    lora.B.data = np.random.default_rng(27).standard_normal(lora.B.shape).astype(np.float32)
    return lora


def check_update(ex):
    """the layer adds (alpha / r) x Aᵀ Bᵀ to its base's output"""
    base, lora = layer(ex)
    randomised_b(lora)
    x = np.random.default_rng(28).standard_normal((3, 5))
    with tp.no_grad():
        got = lora(tp.tensor(x.astype(np.float32))).numpy() - base(tp.tensor(x.astype(np.float32))).numpy()
    A, B = lora.A.numpy().astype(np.float64), lora.B.numpy().astype(np.float64)
    want = 2.5 * x @ A.T @ B.T
    if got.shape == want.shape and np.allclose(got, want / 2.5, rtol=1e-4, atol=1e-5):
        raise Wrong("your LoRA layer adds x Aᵀ Bᵀ without the scale alpha / r (here 5 / 2 = 2.5)")
    if got.shape == want.shape and np.allclose(got, want * 2 / 2.5, rtol=1e-4, atol=1e-5):
        raise Wrong("your LoRA layer scales x Aᵀ Bᵀ by 2, alpha // r (integer division); the scale is alpha / r "
                    "= 5 / 2 = 2.5")
    compare("what the LoRA layer adds to its base (alpha 5, r 2)", got, want, rtol=1e-4, atol=1e-5)


def check_merged(ex):
    """merged() is one Linear layer with the same outputs: W + (alpha / r) B A"""
    base, lora = layer(ex)
    randomised_b(lora)
    x = tp.tensor(np.random.default_rng(29).standard_normal((3, 5)).astype(np.float32))
    with tp.no_grad():
        got, want = lora.merged()(x).numpy(), lora(x).numpy()
    compare("the merged layer's output (it should be the LoRA layer's)", got, want, rtol=1e-4, atol=1e-5)


def small_gpt(ex, vocab, n_layer=1):
    tp.manual_seed(0)
    return sibling(ex, "ex15_gpt").GPT(vocab, 32, n_layer, 2, 32)


def check_only_adapters_train(ex):
    """in your GPT with add_lora, only the A and B matrices get gradients; the trained weights are frozen"""
    vocab, train_ids, _ = training.dataset()
    model = ex.add_lora(small_gpt(ex, vocab, n_layer=2), 2, 4.0)
    x = np.stack([train_ids[:32], train_ids[100:132]])
    y = np.stack([train_ids[1:33], train_ids[101:133]])
    F.cross_entropy(model(tp.tensor(x)).reshape(-1, vocab), tp.tensor(y.reshape(-1))).backward()
    graded = [n for n, p in model.named_parameters() if p.grad is not None]
    adapters = [n for n in graded if n.rsplit(".", 1)[-1] in ("A", "B")]
    others = [n for n in graded if n not in adapters]
    if others:
        raise Wrong(f"{len(others)} trained weights get gradients ({', '.join(others[:3])}, ...): the model is not "
                    "frozen; set requires_grad = False on every parameter before adding the adapters")
    if len(adapters) != 8:
        raise Wrong(f"the gradients reach {len(adapters)} adapter matrices ({', '.join(adapters)}); a two-block GPT "
                    "has 8 (A and B of attn.c_attn and attn.c_proj, in every block)")


def check_fine_tune(ex):
    """fine-tuning only the adapters on a new text lowers its loss; the trained weights do not change"""
    training.require(ex, check_init, check_update, check_merged, check_only_adapters_train)
    vocab, train_ids, val_ids = training.dataset()
    # measured on the reference answers: 2.455 -> 2.271 (full), 2.786 -> 2.689 (quick); the pretraining at lr 1e-2
    # is noisy: its validation loss ranges over 2.21 to 2.34 for seeds 0 to 3, with the learner's ops or the
    # framework's alike
    pre, tune, drop = ((200, 60, 0.05) if quick() else (1000, 300, 0.12))
    model = small_gpt(ex, vocab)
    run = dict(batch_size=16, block_size=32, steps=pre, lr=1e-2)
    training.train_with(ex, model, run)
    new_ids = training.encode(training.decode(val_ids).lower())  # the last sonnets in lower case
    before = training.validation_loss(model, new_ids, 32)
    ex.add_lora(model, 4, 8.0)
    frozen = {n: p.numpy().copy() for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] not in ("A", "B")}
    adapters = [p for p in model.parameters() if p.requires_grad]
    optimizer = sibling(ex, "ex09_adamw").AdamW(adapters, lr=1e-2, weight_decay=0.0)  # the learner's AdamW
    sibling(ex, "ex10_bigram").train(model, optimizer, new_ids, tune, 16, 32, np.random.default_rng(1))
    after = training.validation_loss(model, new_ids, 32)
    changed = [n for n, p in model.named_parameters() if n in frozen and not np.array_equal(p.numpy(), frozen[n])]
    if changed:
        raise Wrong(f"fine-tuning changed trained weights ({', '.join(changed[:3])}): they must stay frozen")
    if not after < before - drop:
        raise Wrong(f"fine-tuning the adapters for {tune} steps took the new text's loss from {before:.3f} to "
                    f"{after:.3f}; it should drop by more than {drop}")
