"""
Tiny byte-level language model, trained for a fixed budget of its own CPU time.

This is the file the agent edits. The model is a Bengio-style MLP language
model: embed each of the last CONTEXT bytes, concatenate the embeddings, pass
them through two ReLU hidden layers, and predict the next byte with a softmax
over 256 values. Forward and backward passes are written by hand in numpy,
optimised with AdamW, everything in float32. No torch, no GPU.

    python train.py        # AUTORESEARCH_TIME_BUDGET seconds of training; saves model.npz

The budget is this process's CPU time, not the wall clock: two trainings side by side on two cores, or a
busy host, must not make a change look better or worse by the steps it happened to get.

The training never sees the validation split. The harness scores the saved
model afterwards: it runs this same command again with the evaluation's pipes
set (prepare.serving()), and this file then loads model.npz and answers the
scorer's queries (prepare.serve) instead of training. Keep that path working
when you change the model, and print no val_bpb of your own: the harness's
number is the score, and a different one printed here is a crash.
"""

import math
import os
import resource
import sys
import time

# One BLAS thread: these matrices are small, and on a shared machine a
# multi-threaded BLAS spinning against other processes runs many times slower.
# setdefault, so an operator can still ask for more threads.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)

import prepare  # noqa: E402

# ---------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------

CONTEXT = 8  # bytes: how many preceding bytes the model sees
EMBED_DIM = 32  # floats per byte embedding
HIDDEN_DIM = 256  # units in each of the two hidden layers
BATCH_SIZE = 512  # training positions per optimiser step
LEARNING_RATE = 0.006  # peak AdamW step size
WEIGHT_DECAY = 0.01  # decoupled L2 shrinkage per unit of lr, weight matrices only
BETA1 = 0.9  # AdamW first-moment (momentum) decay
BETA2 = 0.99  # AdamW second-moment decay
WARMUP_FRAC = 0.02  # fraction of the time budget spent ramping lr up from 0
FINAL_LR_FRAC = 0.05  # lr at the end of the budget, as a fraction of the peak
INIT_STD = 1.4  # scale on the 1/sqrt(fan_in) weight init (~sqrt(2) suits ReLU)

t_start = time.time()
time_budget = float(os.environ.get("AUTORESEARCH_TIME_BUDGET", "20"))  # seconds
seed = int(os.environ.get("AUTORESEARCH_SEED", "1337"))  # repeats of one commit differ by it alone
model_file = "model.npz"  # the trained parameters, for the harness's evaluation
rng = np.random.default_rng(seed)

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

train_data = prepare.load_train()
offsets = np.arange(-CONTEXT, 0)


def get_batch():
    # Random positions, not a sweep: each step sees a fresh mix of files.
    targets_at = rng.integers(CONTEXT, len(train_data), size=BATCH_SIZE)
    x = train_data[targets_at[:, None] + offsets]
    y = train_data[targets_at]
    return x, y


# ---------------------------------------------------------------------------
# Model: parameters
# ---------------------------------------------------------------------------


def init_matrix(fan_in, fan_out):
    # 1/sqrt(fan_in) keeps pre-activations O(1); the sqrt(2) in INIT_STD makes
    # up for ReLU zeroing half of them, so activations keep their size per layer.
    w = rng.standard_normal((fan_in, fan_out)) * (INIT_STD / math.sqrt(fan_in))
    return w.astype(np.float32)


params = {
    "emb": rng.standard_normal((256, EMBED_DIM)).astype(np.float32),
    "w1": init_matrix(CONTEXT * EMBED_DIM, HIDDEN_DIM),
    "b1": np.zeros(HIDDEN_DIM, dtype=np.float32),
    "w2": init_matrix(HIDDEN_DIM, HIDDEN_DIM),
    "b2": np.zeros(HIDDEN_DIM, dtype=np.float32),
    # The output layer starts at zero: the first prediction is uniform (8 bpb).
    "w3": np.zeros((HIDDEN_DIM, 256), dtype=np.float32),
    "b3": np.zeros(256, dtype=np.float32),
}
# Weight decay only on matrices that mix features; embeddings and biases
# carry per-symbol / per-unit offsets that shrinking would only distort.
decayed = {"w1", "w2", "w3"}
num_params = sum(p.size for p in params.values())

# ---------------------------------------------------------------------------
# Model: forward and backward
# ---------------------------------------------------------------------------


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def forward(x):
    """Log-probabilities of the next byte, plus what backward needs."""
    p = params
    e = p["emb"][x].reshape(len(x), -1)  # concatenated embeddings, oldest first
    h1 = np.maximum(e @ p["w1"] + p["b1"], 0.0)
    h2 = np.maximum(h1 @ p["w2"] + p["b2"], 0.0)
    logp = log_softmax(h2 @ p["w3"] + p["b3"])
    return logp, (x, e, h1, h2)


def backward(logp, cache, y):
    """Mean cross-entropy and its gradient for every parameter."""
    p = params
    x, e, h1, h2 = cache
    n = len(y)
    rows = np.arange(n)
    loss = -float(logp[rows, y].mean())
    # d(loss)/d(logits) of softmax cross-entropy is softmax minus one-hot.
    dlogits = np.exp(logp)
    dlogits[rows, y] -= 1.0
    dlogits /= n
    grads = {"w3": h2.T @ dlogits, "b3": dlogits.sum(axis=0)}
    # ReLU passes gradient only where it passed the signal forward (h > 0).
    dz2 = (dlogits @ p["w3"].T) * (h2 > 0)
    grads["w2"] = h1.T @ dz2
    grads["b2"] = dz2.sum(axis=0)
    dz1 = (dz2 @ p["w2"].T) * (h1 > 0)
    grads["w1"] = e.T @ dz1
    grads["b1"] = dz1.sum(axis=0)
    # The same byte appears at many positions; add.at sums its contributions.
    de = (dz1 @ p["w1"].T).reshape(-1, EMBED_DIM)
    grads["emb"] = np.zeros_like(p["emb"])
    np.add.at(grads["emb"], x.reshape(-1), de)
    return loss, grads


def predict_logprobs(x):
    return forward(x)[0]


if prepare.serving():  # the harness's evaluation: answer it with the saved model, train nothing
    with np.load(model_file) as saved:
        params.update({name: saved[name] for name in params})
    prepare.serve(predict_logprobs, CONTEXT)
    sys.exit(0)


# ---------------------------------------------------------------------------
# Optimiser: AdamW with warmup and linear decay over the time budget
# ---------------------------------------------------------------------------

adam_m = {k: np.zeros_like(v) for k, v in params.items()}
adam_v = {k: np.zeros_like(v) for k, v in params.items()}


def lr_at(progress):
    # The schedule follows the budget (CPU seconds): progress is in [0, 1].
    if progress < WARMUP_FRAC:
        return LEARNING_RATE * progress / WARMUP_FRAC
    decay = (progress - WARMUP_FRAC) / max(1.0 - WARMUP_FRAC, 1e-9)
    return LEARNING_RATE * (1.0 - (1.0 - FINAL_LR_FRAC) * min(decay, 1.0))


def adamw_step(grads, lr, step):
    bias1 = 1.0 - BETA1**step
    bias2 = 1.0 - BETA2**step
    for k, p in params.items():
        g = grads[k]
        m, v = adam_m[k], adam_v[k]
        m *= BETA1
        m += (1.0 - BETA1) * g
        v *= BETA2
        v += (1.0 - BETA2) * (g * g)
        if k in decayed:
            p *= 1.0 - lr * WEIGHT_DECAY
        p -= (lr / bias1) * m / (np.sqrt(v / bias2) + 1e-8)


# ---------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------

step = 0
smooth_loss = 0.0
last_print = 0.0
t_train = time.time()
cpu_start = time.process_time()
while True:
    elapsed = time.process_time() - cpu_start
    if elapsed >= time_budget:
        break
    t0 = time.time()
    progress = elapsed / time_budget
    lr = lr_at(progress)
    x, y = get_batch()
    logp, cache = forward(x)
    loss, grads = backward(logp, cache, y)
    if not math.isfinite(loss):
        print(f"FAIL: non-finite loss ({loss}) at step {step}", flush=True)
        sys.exit(1)
    adamw_step(grads, lr, step + 1)
    step += 1
    dt = time.time() - t0

    # Debiased exponential moving average of the loss (nats per byte; divide
    # by ln 2 for bits): a steadier number to watch than any single batch.
    smooth_loss = 0.95 * smooth_loss + 0.05 * loss
    now = time.time() - t_train
    if now - last_print >= 0.5:
        last_print = now
        shown = smooth_loss / (1.0 - 0.95**step)
        pct = 100.0 * min((time.process_time() - cpu_start) / time_budget, 1.0)
        print(
            f"step {step:05d} ({pct:.1f}%) | loss: {shown:.6f} | "
            f"lr: {lr:.5f} | dt: {dt * 1000:.0f}ms",
            flush=True,
        )

training_seconds = time.time() - t_train

# ---------------------------------------------------------------------------
# Save and summarise (the harness's evaluation adds val_bpb)
# ---------------------------------------------------------------------------

np.savez(model_file, **params)
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
print("---")
print(f"training_seconds: {training_seconds:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"peak_vram_mb:     {0.0:.1f}")
print(f"num_steps:        {step}")
print(f"num_params_M:     {num_params / 1e6:.2f}")
print(f"peak_rss_mb:      {peak_rss_mb:.1f}")
