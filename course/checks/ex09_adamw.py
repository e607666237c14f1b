"""Checks of exercise 9: AdamW steps against a float64 NumPy AdamW written here (and the usual wrong versions of it,
to name what is wrong), against PyTorch's torch.optim.AdamW where installed (the framework's otherwise), and a GPT
trained with the learner's AdamW: the same losses as with the framework's, and a stated loss on the Sonnets."""
import numpy as np

import tinygrad_proust as tp
from course.diagnose import compare
from course.plugin import gpt_losses, same_losses
from course.runner import Wrong, quick
from tinygrad_proust import optim

TITLE = "AdamW (moments, bias correction, decoupled weight decay)"
MINUTES = 25
NEEDS = [2]

SETTINGS = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)


def reference(w, grads, lr, betas, eps, weight_decay, l2=False, correct_m=True, correct_v=True, eps_inside=False,
              keep_m=True, keep_v=True, decay_by_shape=False):
    """float64 AdamW over a list of gradients: the weights after each step. The flags make the usual wrong versions."""
    (b1, b2), w = betas, w.copy()
    if decay_by_shape and w.ndim < 2:  # nanoGPT's rule for making the groups, applied by the optimizer instead
        weight_decay = 0.0
    m, v, after = np.zeros_like(w), np.zeros_like(w), []
    for t, g in enumerate(grads, 1):
        if l2:
            g = g + weight_decay * w
        else:
            w = w * (1 - lr * weight_decay)
        m_t, v_t = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m, v = (m_t if keep_m else m), (v_t if keep_v else v)
        m_hat = m_t / (1 - b1 ** t) if correct_m else m_t
        v_hat = v_t / (1 - b2 ** t) if correct_v else v_t
        w = w - lr * m_hat / (np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps)
        after.append(w)
    return after


WRONG = [(dict(l2=True), "weight decay goes into the gradient: that is Adam with L2 regularisation, not AdamW; "
                         "shrink the weight itself, w -= lr·wd·w, and leave the gradient alone"),
         (dict(correct_m=False), "the first steps are too small: AdamW's bias correction of m is missing, "
                                 "m̂ = m / (1 - β1ᵗ) (m starts at 0, so at first it is about (1 - β1) g)"),
         (dict(correct_m=False, correct_v=False), "the first steps are too large: the bias correction is missing, "
                                                  "m̂ = m / (1 - β1ᵗ) and v̂ = v / (1 - β2ᵗ)"),
         (dict(correct_v=False), "the first steps are too large: the bias correction of v is missing, "
                                 "v̂ = v / (1 - β2ᵗ)"),
         (dict(eps_inside=True), "eps is inside the square root: the denominator is sqrt(v̂) + eps"),
         *((keep, "the running means are not kept between steps: store m and v in state[\"exp_avg\"] and "
                  "state[\"exp_avg_sq\"], so that each step starts from the last step's")
           for keep in (dict(keep_m=False), dict(keep_v=False), dict(keep_m=False, keep_v=False))),
         (dict(decay_by_shape=True), "weight 2, of shape (4,) in a group with weight_decay 0.2, was not decayed: "
                                     "decay every weight by its group's weight_decay, whatever its shape (which "
                                     "weights decay is the groups' choice: a GPT's optimizer_groups puts its biases "
                                     "and norms in a group with weight_decay 0)"),
         (dict(lr=SETTINGS["lr"]), "weight 2, in a group with lr 0.005, moved as with the optimizer's lr 0.01: "
                                   "take every hyperparameter from the weight's own group (group[\"lr\"], ...)")]

# each weight's group beside the defaults: the second is not decayed, the third (1-D) is, at a rate and with a
# learning rate of its own
GROUPS = [{}, {"weight_decay": 0.0}, {"weight_decay": 0.2, "lr": 0.005}]


def problem(seed=0, steps=6):
    """Three weights (one per group of GROUPS) and gradients of very different sizes, 1e-5 to 1."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (4,)]
    weights = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) * 10.0 ** rng.uniform(-5, 0, s) for s in shapes] for _ in range(steps)]
    return weights, grads


def run_theirs(ex, weights, grads, settings):
    params = [tp.Tensor(w.copy(), requires_grad=True) for w in weights]
    opt = ex.AdamW([{"params": [p], **options} for p, options in zip(params, GROUPS)], **settings)
    after = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = tp.Tensor(g.copy())
        opt.step()
        after.append([p.numpy().copy() for p in params])
    return after


def check_steps(ex):
    """six steps on three weights (in three groups: one not decayed) equal a float64 AdamW written out in NumPy"""
    weights, grads = problem()
    theirs = run_theirs(ex, weights, grads, SETTINGS)
    groups = [{**SETTINGS, **options} for options in GROUPS]  # each weight's hyperparameters
    right = [reference(w, [g[i] for g in grads], **group) for i, (w, group) in enumerate(zip(weights, groups))]
    for t, got in enumerate(theirs):
        if all(np.allclose(a, b[t], rtol=1e-9, atol=1e-12) for a, b in zip(got, right)):
            continue
        for flags, says in WRONG:
            wrong = [reference(w, [g[i] for g in grads], **{**group, **flags})
                     for i, (w, group) in enumerate(zip(weights, groups))]
            if all(np.allclose(a, b[t], rtol=1e-9, atol=1e-12) for a, b in zip(got, wrong)):
                raise Wrong(f"after step {t + 1}: {says}")
        for i, (a, b) in enumerate(zip(got, right)):
            compare(f"weight {i} after step {t + 1}", a, b[t], rtol=1e-9, atol=1e-12)


def check_against_pytorch(ex):
    """five steps equal PyTorch's torch.optim.AdamW (the framework's AdamW where PyTorch is not installed)"""
    weights, grads = problem(seed=1, steps=5)
    settings = dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
    theirs = run_theirs(ex, weights, grads, settings)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        params = [torch.tensor(w, requires_grad=True) for w in weights]
        opt = torch.optim.AdamW([{"params": [p], **options} for p, options in zip(params, GROUPS)], **settings)
        by = "PyTorch's AdamW"
    else:
        params = [tp.Tensor(w.copy(), requires_grad=True) for w in weights]
        opt = optim.AdamW([{"params": [p], **options} for p, options in zip(params, GROUPS)], **settings)
        by = "the framework's AdamW"
    for t, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g) if torch is not None else tp.Tensor(g.copy())
        opt.step()
        for i, p in enumerate(params):
            want = p.detach().numpy() if torch is not None else p.numpy()
            group = {**settings, **GROUPS[i]}
            compare(f"weight {i} after step {t + 1} (lr {group['lr']:g}, betas (0.8, 0.99), eps 1e-6, weight_decay "
                    f"{group['weight_decay']:g}), by {by},", theirs[t][i], want, rtol=1e-7, atol=1e-10)


def check_trains_a_gpt(ex):
    """a GPT trained with your AdamW has the same losses as with the framework's"""
    steps = 6 if quick() else 30

    def yours(model):
        return ex.AdamW(model.optimizer_groups(0.1), lr=3e-3)

    same_losses("a GPT trained with your AdamW", gpt_losses(steps, make_optimizer=yours), gpt_losses(steps),
                reference="the framework's AdamW", later="the first loss agrees, and a step differs")


def check_learns_the_sonnets(ex):
    """your AdamW trains a GPT on the Sonnets below a stated loss (a few seconds; about a minute in full)"""
    def yours(model):
        return ex.AdamW(model.optimizer_groups(0.1), lr=3e-3)

    if quick():
        steps, target, losses = 60, 3.3, gpt_losses(60, make_optimizer=yours)
    else:
        steps, target = 400, 2.3
        losses = gpt_losses(steps, make_optimizer=yours, batch=16, n_embd=64, block_size=32, n_layer=2,
                            ffn_hidden=128)
    final = float(np.mean(losses[-10:]))
    if not final < target:
        raise Wrong(f"after {steps} steps with your AdamW the loss is {final:.3f} (the mean of the last 10 steps); "
                    f"it should be below {target}")
