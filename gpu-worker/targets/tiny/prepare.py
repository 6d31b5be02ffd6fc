"""
Fixed harness for the `tiny` research target: data and scoring.

The agent never edits this file. It builds a byte-level corpus offline from
the Python standard library's own sources (present wherever Python is), caches
train/val splits, and defines the one number that matters: val_bpb, the bits
per byte a model needs to encode a fixed slice of held-out text.

The validation split lives apart from the training data, under the cache's
`validation/` directory, which the training's sandbox hides: the training saves
its model, and the harness scores it in a second step. The scorer (this file,
`--evaluate`) alone reads the validation bytes; the model answers its queries
from another process that never sees them (train.py run with the two pipes
below set, which loads the saved model and calls `serve`).

    python prepare.py              # build the cache and print a summary
    python prepare.py --evaluate   # the harness's evaluation (the GPU worker runs it)
"""

import hashlib
import json
import math
import os
import stat
import sys
import sysconfig
import time

import numpy as np

# ---------------------------------------------------------------------------
# Constants (fixed; changing any of them changes what val_bpb means)
# ---------------------------------------------------------------------------

CORPUS_BYTES = 8_000_000  # bytes: cap on the concatenated stdlib sources
VAL_FRACTION = 0.1  # fraction: tail of the corpus held out for validation
EVAL_BYTES = 65_536  # bytes: validation bytes scored, from the start of val
EVAL_STREAMS = 64  # segments of the scored slice, one row each per predict_logprobs call
MAX_CONTEXT = 65_536  # bytes: the longest context the evaluation builds
CACHE_ROOT = os.path.expanduser(os.environ.get("AUTORESEARCH_CACHE", "~/.cache/autoresearch"))
CACHE_DIR = os.path.join(CACHE_ROOT, "tiny-data")  # directory: train.bin, meta.json
VAL_DIR = os.path.join(CACHE_ROOT, "validation", "tiny-data")  # directory: val.bin, hidden from trainings
FORMAT_VERSION = 2  # integer: bump to invalidate caches built by older code (1: val.bin beside train.bin)
QUERIES_ENV = "AUTORESEARCH_EVAL_QUERIES"  # pipe: the scorer's contexts, to the model
ANSWERS_ENV = "AUTORESEARCH_EVAL_ANSWERS"  # pipe: the model's scores, to the scorer
MAX_MESSAGE_BYTES = 1 << 30  # bytes: the largest array either side accepts

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
        os.path.join(VAL_DIR, "val.bin"),
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
    os.makedirs(VAL_DIR, exist_ok=True)
    train_path, val_path, meta_path = _paths()
    _atomic_write(train_path, train)
    _atomic_write(val_path, val)
    # meta.json last: its presence says both splits are complete.
    _atomic_write(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    # Format 1 kept val.bin beside train.bin, where a training could read it.
    try:
        os.remove(os.path.join(CACHE_DIR, "val.bin"))
    except FileNotFoundError:
        pass
    return meta


def _load(path, size_key):
    """One split as a uint8 numpy array, building the cache first if needed."""
    meta = _read_meta()
    for _attempt in range(2):
        if meta is not None:
            try:
                data = np.fromfile(path, dtype=np.uint8)
                if len(data) == meta[size_key]:
                    return data
            except OSError:
                pass
        try:
            meta = build_cache()
        except OSError as e:
            raise RuntimeError(
                f"cannot read {path}, and cannot rebuild the cache here ({e.strerror}): "
                "run `python prepare.py` once on this host; the validation split is read "
                "by the harness's evaluation alone, never by a training"
            ) from None
    raise RuntimeError(f"could not build a consistent cache in {CACHE_DIR}")


def load_train():
    """The training split, as a uint8 numpy array."""
    return _load(_paths()[0], "train_bytes")


def load_val():
    """The validation split, as a uint8 numpy array: the harness's evaluation alone can read it."""
    return _load(_paths()[1], "val_bytes")


# ---------------------------------------------------------------------------
# Scoring: bits per byte on a fixed slice of validation text
# ---------------------------------------------------------------------------


def evaluate_bpb(predict_logprobs, context):
    """Bits per byte of the model on the first EVAL_BYTES validation bytes.

    predict_logprobs(x) gets int64 contexts of shape (B, context), oldest byte
    first, and returns natural-log scores of shape (B, 256) for the next byte.
    The slice is cut into EVAL_STREAMS segments scored side by side: call t asks
    for byte t of every segment, given the `context` bytes before it within its
    segment (left-padded with byte 0 at the segment's start). So every byte a
    call shows was the target of an earlier call: a model cannot be shown what
    it is asked to predict, whatever it remembers between calls. Scores are
    renormalised here, so a model can never look better than the probabilities
    it actually assigns.
    """
    context = int(context)
    if not 1 <= context <= MAX_CONTEXT:
        raise ValueError(f"context must be in [1, {MAX_CONTEXT}], got {context}")
    targets = load_val()[:EVAL_BYTES].astype(np.int64).reshape(EVAL_STREAMS, -1)
    padded = np.concatenate([np.zeros((EVAL_STREAMS, context), dtype=np.int64), targets], axis=1)
    rows = np.arange(EVAL_STREAMS)
    total_nats = 0.0
    for t in range(targets.shape[1]):
        x = np.ascontiguousarray(padded[:, t : t + context])
        scores = np.asarray(predict_logprobs(x), dtype=np.float64)
        if scores.shape != (EVAL_STREAMS, 256):
            raise ValueError(
                f"predict_logprobs returned shape {scores.shape}, expected {(EVAL_STREAMS, 256)}"
            )
        peak = scores.max(axis=1, keepdims=True)
        log_z = peak[:, 0] + np.log(np.exp(scores - peak).sum(axis=1))
        total_nats += float(np.sum(log_z - scores[rows, targets[:, t]]))
    bpb = total_nats / (EVAL_BYTES * math.log(2))
    return bpb if math.isfinite(bpb) else float("inf")


# ---------------------------------------------------------------------------
# The harness's evaluation: the scorer here, the model in another process
# ---------------------------------------------------------------------------

_DTYPES = {"<i8", "<f4", "<f8"}  # all either side sends: contexts, scores


def _send(f, array):
    array = np.ascontiguousarray(array)
    header = {"dtype": array.dtype.str, "shape": list(array.shape)}
    f.write(json.dumps(header).encode() + b"\n")
    f.write(array.tobytes())
    f.flush()


def _receive(f):
    """The next array on `f`, or None at its end; anything malformed raises."""
    line = f.readline(4096)
    if not line:
        return None
    header = json.loads(line)
    dtype, shape = np.dtype(header["dtype"]), tuple(int(n) for n in header["shape"])
    if dtype.str not in _DTYPES or any(n < 0 for n in shape):
        raise ValueError(f"unexpected array {header}")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"an array of {size} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    data = f.read(size)
    if len(data) != size:
        raise EOFError(f"the pipe ended {size - len(data)} bytes into an array")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def serving():
    """True when this process is to answer the harness's evaluation rather than train."""
    return QUERIES_ENV in os.environ and ANSWERS_ENV in os.environ


def serve(predict_logprobs, context):
    """The model's side of the evaluation: answers every query until the scorer is done."""
    with open(os.environ[QUERIES_ENV], "rb") as queries, open(os.environ[ANSWERS_ENV], "wb") as answers:
        _send(answers, np.array([context], dtype=np.int64))
        while (x := _receive(queries)) is not None:
            scores = np.asarray(predict_logprobs(x))
            _send(answers, scores if scores.dtype.str in ("<f4", "<f8") else scores.astype(np.float64))


def evaluate_served():
    """The harness's side: scores the model another process serves and prints the summary."""
    t0 = time.time()
    with open(os.environ[QUERIES_ENV], "wb") as queries, open(os.environ[ANSWERS_ENV], "rb") as answers:

        def answer():
            reply = _receive(answers)
            if reply is None:
                raise EOFError("the model stopped answering (see its output above)")
            return reply

        hello = answer()
        if hello.shape != (1,) or hello.dtype != np.int64:
            raise ValueError(f"the model's first message must be its context length, got {hello!r}")

        def predict(x):
            _send(queries, x)
            return answer()

        val_bpb = evaluate_bpb(predict, int(hello[0]))
        # Printed before the pipes close: once they do, the model exits, and the worker soon stops waiting.
        print("---")
        print(f"val_bpb:          {val_bpb:.6f}")
        print(f"eval_seconds:     {time.time() - t0:.2f}", flush=True)


# ---------------------------------------------------------------------------
# CLI: build the cache and print a grep-able summary, or evaluate
# ---------------------------------------------------------------------------


def main(argv):
    t0 = time.time()
    if argv == ["--evaluate"]:
        evaluate_served()
        return 0
    if argv:
        print(f"prepare.py: unknown arguments {argv} (use none, or --evaluate)", file=sys.stderr)
        return 2
    train, val = load_train(), load_val()
    meta = _read_meta()
    print(f"cache_dir:     {CACHE_DIR}")
    print(f"val_dir:       {VAL_DIR}")
    print(f"corpus_bytes:  {meta['corpus_bytes']}")
    print(f"train_bytes:   {len(train)}")
    print(f"val_bytes:     {len(val)}")
    print(f"eval_bytes:    {EVAL_BYTES}")
    print(f"corpus_digest: {meta['corpus_digest']}")
    print(f"seconds:       {time.time() - t0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
