"""
A compact byte-level GPT, trained for a fixed wall-clock budget, then scored.

This is the file the agent edits. The model reads raw bytes (vocabulary 256)
and predicts the next one: token embedding, then N_LAYER pre-norm transformer
blocks (RMSNorm, causal self-attention with rotary position embeddings and
QK-norm through scaled_dot_product_attention, i.e. flash attention on a GPU,
and a ReLU^2 MLP), a final RMSNorm and a soft-capped linear head.

Optimisation: Muon (momentum, then Newton-Schulz orthogonalisation) for the
hidden weight matrices, AdamW for the embedding and the head; the learning
rate warms up, holds, then cools down linearly over the time budget. On CUDA:
bf16 autocast and torch.compile. On a CPU it runs too, slowly and eagerly.

    python train.py    # AUTORESEARCH_TIME_BUDGET seconds of training; saves model.pt

The budget counts training steps only: the first few steps (compilation,
warm-up) are timed separately and reported as compile_seconds.

The training never sees the validation split. The harness scores the saved
model afterwards: it runs this same command again with the evaluation's pipes
set (prepare.serving()), and this file then loads model.pt into the model,
uncompiled, and answers the scorer's queries (prepare.serve) instead of
training. Keep that path working when you change the model, and print no
val_bpb of your own: the harness's number is the score, and a different one
printed here is a crash.
"""

import math
import os
import shutil
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import prepare

# ---------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------

N_LAYER = 8  # transformer blocks
D_MODEL = 512  # width of the residual stream
HEAD_DIM = 64  # width of one attention head (heads = D_MODEL // HEAD_DIM)
MLP_RATIO = 4  # MLP hidden width as a multiple of D_MODEL
SEQ_LEN = 1024  # bytes of context per training sequence (also used for eval)
BATCH_SIZE = 128  # sequences per micro-batch (tokens per step = BATCH_SIZE * SEQ_LEN * GRAD_ACCUM)
GRAD_ACCUM = 1  # micro-batches summed per optimiser step
MATRIX_LR = 0.02  # Muon learning rate for the hidden weight matrices
EMBED_LR = 0.3  # AdamW learning rate for the byte embedding
HEAD_LR = 0.008  # AdamW learning rate for the output head
MUON_MOMENTUM = 0.95  # Muon momentum (Nesterov)
NS_STEPS = 5  # Newton-Schulz iterations per Muon update
ADAM_BETA1 = 0.8  # AdamW first-moment decay
ADAM_BETA2 = 0.95  # AdamW second-moment decay
WARMUP_FRAC = 0.02  # fraction of the time budget spent ramping the lr up
COOLDOWN_FRAC = 0.4  # fraction of the time budget, at the end, spent decaying the lr
FINAL_LR_FRAC = 0.05  # lr at the end of the budget, as a fraction of the peak
ROPE_BASE = 10000.0  # rotary embedding base period
LOGIT_SOFTCAP = 15.0  # logits are squashed to (-cap, cap) by cap * tanh(logits / cap)

seed = int(os.environ.get("AUTORESEARCH_SEED", "1337"))  # repeats of one commit differ by it alone
model_file = "model.pt"  # the trained weights (a state_dict), for the harness's evaluation
timing_skip_steps = 3  # first steps (compilation, warm-up) are not counted in the budget

t_start = time.time()
time_budget = float(os.environ.get("AUTORESEARCH_TIME_BUDGET", "300"))  # seconds
torch.manual_seed(seed)

# ---------------------------------------------------------------------------
# Device: CUDA with bf16 autocast and torch.compile, else a plain CPU run
# ---------------------------------------------------------------------------

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if device.type == "cuda":
    torch.set_float32_matmul_precision("high")
    use_bf16 = torch.cuda.is_bf16_supported()
    gpu_name = torch.cuda.get_device_name(device)
else:
    use_bf16 = False
    gpu_name = "cpu"
autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
# Inductor's GPU kernels (triton) need a C compiler for their launchers.
use_compile = device.type == "cuda" and bool(shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc"))


def peak_flops(name):
    """Dense bf16 peak of the GPU, FLOP/s; 0 when unknown (MFU is then reported as 0)."""
    n = name.upper()
    table = [  # order matters: first match wins
        ("H100 PCIE", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12),
        ("GH200", 989e12), ("B200", 2250e12), ("B100", 1750e12), ("A100", 312e12),
        ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
        ("RTX 4090", 165e12), ("RTX 3090", 71e12),
    ]
    if device.type != "cuda" or not use_bf16:
        return 0.0
    for key, flops in table:
        if key in n:
            return flops
    return 0.0


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def rotary(x, cos, sin):
    # x: (B, T, H, D); rotate the two halves of each head by position-dependent angles.
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


def linear(n_in, n_out, zero=False):
    layer = nn.Linear(n_in, n_out, bias=False)
    if zero:
        nn.init.zeros_(layer.weight)
    else:
        nn.init.normal_(layer.weight, std=0.5 / math.sqrt(n_in))
    return layer


class Block(nn.Module):
    def __init__(self, d, n_head, head_dim, mlp_dim):
        super().__init__()
        self.n_head, self.head_dim = n_head, head_dim
        a = n_head * head_dim
        self.q, self.k, self.v = linear(d, a), linear(d, a), linear(d, a)
        self.proj = linear(a, d, zero=True)  # zero: each block starts as the identity
        self.fc = linear(d, mlp_dim)
        self.fc_out = linear(mlp_dim, d, zero=True)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = norm(x)
        shape = (B, T, self.n_head, self.head_dim)
        q, k, v = self.q(h).view(shape), self.k(h).view(shape), self.v(h).view(shape)
        q, k = rotary(norm(q), cos, sin).to(v.dtype), rotary(norm(k), cos, sin).to(v.dtype)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, -1))
        return x + self.fc_out(F.relu(self.fc(norm(x))).square())


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        n_head = max(1, D_MODEL // HEAD_DIM)
        head_dim = max(2, min(HEAD_DIM, D_MODEL) // 2 * 2)  # even, for the rotary halves
        self.attn_dim = n_head * head_dim
        self.embed = nn.Embedding(256, D_MODEL)
        nn.init.normal_(self.embed.weight, std=1.0)
        self.blocks = nn.ModuleList(Block(D_MODEL, n_head, head_dim, MLP_RATIO * D_MODEL) for _ in range(N_LAYER))
        self.head = linear(D_MODEL, 256, zero=True)  # zero: the first prediction is uniform (8 bpb)
        inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(SEQ_LEN, dtype=torch.float32), inv_freq)[None, :, None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.head(norm(x)).float()
        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, 256), targets.reshape(-1))


raw_model = GPT().to(device)

if prepare.serving():  # the harness's evaluation: answer it with the saved model, uncompiled, train nothing
    raw_model.load_state_dict(torch.load(model_file, map_location=device, weights_only=True))
    raw_model.eval()

    @torch.no_grad()
    def predict_logits(x):
        with autocast:
            return raw_model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    prepare.serve(predict_logits, SEQ_LEN, BATCH_SIZE)
    sys.exit(0)

# ---------------------------------------------------------------------------
# Data: the whole training split on the device, random windows per step
# ---------------------------------------------------------------------------

train_np, data_meta = prepare.load_train()
train_data = torch.from_numpy(train_np).to(device)
gen = torch.Generator(device=device)
gen.manual_seed(seed)
window = torch.arange(SEQ_LEN + 1, device=device)


def get_batch():
    starts = torch.randint(0, len(train_data) - SEQ_LEN - 1, (BATCH_SIZE,), device=device, generator=gen)
    chunk = train_data[starts[:, None] + window].long()
    return chunk[:, :-1], chunk[:, 1:]


num_params = sum(p.numel() for p in raw_model.parameters())
matrix_params = [p for p in raw_model.blocks.parameters() if p.ndim == 2]
# FLOPs per trained token: 6 per weight (forward + backward) for every matmul
# weight (not the embedding lookup), plus attention's scores and mixing.
num_matmul = sum(p.numel() for p in matrix_params) + raw_model.head.weight.numel()
flops_per_token = 6 * num_matmul + 12 * N_LAYER * raw_model.attn_dim * SEQ_LEN
tokens_per_step = BATCH_SIZE * SEQ_LEN * GRAD_ACCUM
peak = peak_flops(gpu_name)

# ---------------------------------------------------------------------------
# Optimisers: Muon for hidden matrices, AdamW for the embedding and head
# ---------------------------------------------------------------------------


def orthogonalize(g, steps):
    """Approximately U V^T of g = U S V^T: a quintic Newton-Schulz iteration (Keller Jordan's Muon)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        s = x @ x.mT
        x = a * x + (b * s + c * s @ s) @ x
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum, ns_steps):
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p.grad)
                buf = state["momentum"]
                buf.lerp_(p.grad, 1 - group["momentum"])
                g = p.grad.lerp(buf, group["momentum"])  # Nesterov
                update = orthogonalize(g, group["ns_steps"])
                # Tall matrices (more outputs than inputs) get proportionally larger steps.
                scale = max(1.0, p.size(-2) / p.size(-1)) ** 0.5
                p.add_(update.to(p.dtype), alpha=-group["lr"] * scale)


muon = Muon(matrix_params, lr=MATRIX_LR, momentum=MUON_MOMENTUM, ns_steps=NS_STEPS)
adam = torch.optim.AdamW(
    [dict(params=[raw_model.embed.weight], lr=EMBED_LR), dict(params=[raw_model.head.weight], lr=HEAD_LR)],
    betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10, weight_decay=0.0,
    **({"fused": True} if device.type == "cuda" else {}),
)
optimizers = [muon, adam]
for opt in optimizers:
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]


def lr_multiplier(progress):
    """Warm up over WARMUP_FRAC, hold, then decay linearly over the last COOLDOWN_FRAC."""
    warm = min(1.0, (progress + 1e-6) / WARMUP_FRAC)
    cool = min(1.0, (1.0 - progress) / COOLDOWN_FRAC)
    return min(warm, FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * max(cool, 0.0))


model = torch.compile(raw_model) if use_compile else raw_model


def train_step():
    for _ in range(GRAD_ACCUM):
        x, y = get_batch()
        with autocast:
            loss = model(x, y)
        (loss / GRAD_ACCUM).backward()
    for opt in optimizers:
        opt.step()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    return loss


# ---------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------

print(f"device: {device.type} ({gpu_name}), bf16: {use_bf16}, compile: {use_compile}", flush=True)
print(f"dataset: {data_meta['dataset']} ({len(train_np):,} train bytes, digest {data_meta['corpus_digest'][:16]})", flush=True)
print(f"params: {num_params:,}, tokens/step: {tokens_per_step:,}, budget: {time_budget:.0f}s", flush=True)

step = 0
training_time = 0.0  # seconds of timed steps: what the budget counts
timed_tokens = 0
compile_time = 0.0
smooth_loss = 0.0
last_print = 0.0
while step < timing_skip_steps or training_time < time_budget:
    progress = min(training_time / time_budget, 1.0)
    lr_mult = lr_multiplier(progress)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lr_mult
    t0 = time.time()
    try:
        loss = train_step()
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as e:  # noqa: BLE001
        if step > 0 or model is raw_model:
            raise
        # torch.compile may not work on this host: say so and train eagerly instead.
        first = (str(e).splitlines() or [""])[0][:200]
        print(f"the first compiled step failed ({type(e).__name__}: {first}); retrying without torch.compile", flush=True)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        model, use_compile = raw_model, False
        loss = train_step()
    loss_f = loss.item()  # waits for the GPU: dt below is the real step time
    dt = time.time() - t0
    if not math.isfinite(loss_f) or loss_f > 100:
        print(f"FAIL: non-finite or exploding loss ({loss_f}) at step {step}", flush=True)
        sys.exit(1)
    if step < timing_skip_steps:
        compile_time += dt
    else:
        training_time += dt
        timed_tokens += tokens_per_step
    step += 1

    # Debiased moving average of the loss (nats per byte; / ln 2 for bits).
    smooth_loss = 0.9 * smooth_loss + 0.1 * loss_f
    now = time.time()
    if now - last_print >= 0.5:
        last_print = now
        shown = smooth_loss / (1.0 - 0.9**step)
        pct = 100.0 * min(training_time / time_budget, 1.0)
        tok_s = tokens_per_step / dt
        mfu = 100.0 * flops_per_token * tok_s / peak if peak else 0.0
        print(
            f"step {step:05d} ({pct:.1f}%) | loss: {shown:.6f} | lr: {MATRIX_LR * lr_mult:.5f} | "
            f"dt: {dt * 1000:.0f}ms | tok/sec: {tok_s:,.0f} | mfu: {mfu:.1f}%",
            flush=True,
        )

# ---------------------------------------------------------------------------
# Save and summarise (the harness's evaluation adds val_bpb)
# ---------------------------------------------------------------------------

torch.save(raw_model.state_dict(), model_file)  # raw_model: the compiled model shares its weights
tokens_per_sec = timed_tokens / training_time if training_time > 0 else 0.0
mfu_percent = 100.0 * flops_per_token * tokens_per_sec / peak if peak else 0.0
peak_vram_mb = torch.cuda.max_memory_allocated() / 1024**2 if device.type == "cuda" else 0.0
print("---")
print(f"training_seconds: {training_time:.1f}")
print(f"total_seconds:    {time.time() - t_start:.1f}")
print(f"peak_vram_mb:     {peak_vram_mb:.1f}")
print(f"mfu_percent:      {mfu_percent:.2f}")
print(f"num_params_M:     {num_params / 1e6:.1f}")
print(f"num_steps:        {step}")
print(f"tokens_per_sec:   {tokens_per_sec:.0f}")
print(f"compile_seconds:  {compile_time:.1f}")
