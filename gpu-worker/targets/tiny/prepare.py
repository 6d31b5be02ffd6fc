"""
Fixed harness for the `tiny` research target: data and scoring.

The agent never edits this file. It builds a byte-level corpus offline from
the Python standard library's own sources (present wherever Python is), caches
train/val splits, and defines the one number that matters: val_bpb, the bits
per byte a model needs to encode a fixed slice of held-out text.

    python prepare.py      # build the cache and print a summary
"""

import hashlib
import json
import math
import os
import stat
import sysconfig

import numpy as np

# ---------------------------------------------------------------------------
# Constants (fixed; changing any of them changes what val_bpb means)
# ---------------------------------------------------------------------------

CORPUS_BYTES = 8_000_000  # bytes: cap on the concatenated stdlib sources
VAL_FRACTION = 0.1  # fraction: tail of the corpus held out for validation
EVAL_BYTES = 65_536  # bytes: validation bytes scored, from the start of val
EVAL_BATCH = 4_096  # positions per predict_logprobs call during scoring
CACHE_DIR = os.path.join(
    os.path.expanduser(os.environ.get("AUTORESEARCH_CACHE", "~/.cache/autoresearch")),
    "tiny-data",
)  # directory: holds train.bin, val.bin, meta.json
FORMAT_VERSION = 1  # integer: bump to invalidate caches built by older code

# ---------------------------------------------------------------------------
# Corpus: the stdlib's .py files, in a fixed order, no network ever
# ---------------------------------------------------------------------------


def _stdlib_files():
    """(relative posix path, absolute path) of every stdlib .py file, sorted.

    Sorting by relative path makes the byte stream independent of directory
    listing order, so two machines with the same Python build the same corpus.
    """
    root = sysconfig.get_paths()["stdlib"]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Third-party packages differ between machines; they are not "stdlib".
        dirnames[:] = [d for d in dirnames if d != "site-packages"]
        for name in filenames:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            found.append((rel, path))
    found.sort()
    return found


def build_corpus():
    """Concatenate stdlib sources as raw bytes, up to CORPUS_BYTES."""
    chunks, total = [], 0
    for _rel, path in _stdlib_files():
        try:
            # lstat: a symlink or device is not a regular file, skip it.
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue  # unreadable: skipped, like anything else we cannot use
        take = min(len(data), CORPUS_BYTES - total)
        chunks.append(data[:take])
        total += take
        if total >= CORPUS_BYTES:
            break
    return b"".join(chunks)


# ---------------------------------------------------------------------------
# Cache: atomic writes so concurrent processes never see half a file
# ---------------------------------------------------------------------------


def _paths():
    return (
        os.path.join(CACHE_DIR, "train.bin"),
        os.path.join(CACHE_DIR, "val.bin"),
        os.path.join(CACHE_DIR, "meta.json"),
    )


def _atomic_write(path, data):
    # A unique temp name per process, then rename: readers see the old file
    # or the new one, never a torn write. Racing writers write equal bytes.
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_meta():
    _, _, meta_path = _paths()
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    expected = {
        "format_version": FORMAT_VERSION,
        "corpus_bytes_cap": CORPUS_BYTES,
        "val_fraction": VAL_FRACTION,
    }
    if any(meta.get(k) != v for k, v in expected.items()):
        return None
    return meta


def build_cache():
    """Build the corpus, split it and write the cache. Returns the meta dict."""
    corpus = build_corpus()
    n_val = int(len(corpus) * VAL_FRACTION)
    if n_val < EVAL_BYTES:
        raise RuntimeError(
            f"corpus too small: {len(corpus)} bytes gives {n_val} validation "
            f"bytes, need at least EVAL_BYTES={EVAL_BYTES}"
        )
    # Held-out tail, no shuffle: validation text is files the model never saw.
    train, val = corpus[: len(corpus) - n_val], corpus[len(corpus) - n_val :]
    meta = {
        "format_version": FORMAT_VERSION,
        "corpus_bytes_cap": CORPUS_BYTES,
        "val_fraction": VAL_FRACTION,
        "corpus_bytes": len(corpus),
        "train_bytes": len(train),
        "val_bytes": len(val),
        "eval_bytes": EVAL_BYTES,
        "corpus_digest": hashlib.sha256(corpus).hexdigest(),
        "stdlib": sysconfig.get_paths()["stdlib"],
    }
    os.makedirs(CACHE_DIR, exist_ok=True)
    train_path, val_path, meta_path = _paths()
    _atomic_write(train_path, train)
    _atomic_write(val_path, val)
    # meta.json last: its presence says both splits are complete.
    _atomic_write(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def load_splits():
    """(train, val) as uint8 numpy arrays, building the cache first if needed."""
    train_path, val_path, _ = _paths()
    meta = _read_meta()
    for _attempt in range(2):
        if meta is not None:
            try:
                train = np.fromfile(train_path, dtype=np.uint8)
                val = np.fromfile(val_path, dtype=np.uint8)
                if len(train) == meta["train_bytes"] and len(val) == meta["val_bytes"]:
                    return train, val
            except OSError:
                pass
        meta = build_cache()
    raise RuntimeError(f"could not build a consistent cache in {CACHE_DIR}")


# ---------------------------------------------------------------------------
# Scoring: bits per byte on a fixed slice of validation text
# ---------------------------------------------------------------------------


def evaluate_bpb(predict_logprobs, context):
    """Bits per byte of the model on the first EVAL_BYTES validation bytes.

    predict_logprobs(x) gets int64 contexts of shape (B, context), oldest byte
    first, and returns natural-log scores of shape (B, 256) for the next byte.
    The first bytes of val have less than `context` bytes before them; their
    contexts are left-padded with byte 0. Scores are renormalised here, so a
    model can never look better than the probabilities it actually assigns.
    """
    context = int(context)
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    _, val = load_splits()
    targets = val[:EVAL_BYTES].astype(np.int64)
    padded = np.concatenate([np.zeros(context, dtype=np.int64), targets])
    offsets = np.arange(context, dtype=np.int64)
    total_nats = 0.0
    for start in range(0, EVAL_BYTES, EVAL_BATCH):
        stop = min(start + EVAL_BATCH, EVAL_BYTES)
        # Row i holds the `context` bytes just before target position start+i.
        x = padded[np.arange(start, stop, dtype=np.int64)[:, None] + offsets]
        scores = np.asarray(predict_logprobs(x), dtype=np.float64)
        if scores.shape != (stop - start, 256):
            raise ValueError(
                f"predict_logprobs returned shape {scores.shape}, "
                f"expected {(stop - start, 256)}"
            )
        peak = scores.max(axis=1, keepdims=True)
        log_z = peak[:, 0] + np.log(np.exp(scores - peak).sum(axis=1))
        picked = scores[np.arange(stop - start), targets[start:stop]]
        total_nats += float(np.sum(log_z - picked))
    bpb = total_nats / (EVAL_BYTES * math.log(2))
    return bpb if math.isfinite(bpb) else float("inf")


# ---------------------------------------------------------------------------
# CLI: build the cache and print a grep-able summary
# ---------------------------------------------------------------------------

if __name__ == "__main__":
    import time

    t0 = time.time()
    train, val = load_splits()
    meta = _read_meta()
    print(f"cache_dir:     {CACHE_DIR}")
    print(f"corpus_bytes:  {meta['corpus_bytes']}")
    print(f"train_bytes:   {len(train)}")
    print(f"val_bytes:     {len(val)}")
    print(f"eval_bytes:    {EVAL_BYTES}")
    print(f"corpus_digest: {meta['corpus_digest']}")
    print(f"seconds:       {time.time() - t0:.2f}")
