"""
Fixed harness for the `gpt` research target: data and scoring.

The agent never edits this file. It builds a byte-level corpus and defines the
one number that matters: val_bpb, the bits per byte a model needs to encode a
fixed slice of held-out text (vocabulary: the 256 byte values, so bits per
byte = mean cross-entropy in nats / ln 2).

Two datasets, cached under $AUTORESEARCH_CACHE/gpt-data/ (default
~/.cache/autoresearch/gpt-data/), each with its validation split apart, under
the cache's validation/gpt-data/, which the training's sandbox hides:

- local (the default, never touches the network): Python source text already on
  the machine. Validation is a fixed, hash-chosen quarter-or-so of the standard
  library's non-test modules, so it depends only on the Python version; training
  is every other stdlib file plus the .py sources of the interpreter's
  site-packages (on a GPU host with torch installed, ~100 MB), deduplicated, in
  a fixed order, up to TRAIN_BYTES_CAP. The corpus is frozen once built: its
  digest is in meta.json, and `--rebuild` builds it again.
- enwik8 (only when asked, and only online): `python prepare.py --download`
  fetches the standard 100 MB Wikipedia byte benchmark (90 MB train, the next
  5 MB validation) and makes it the active dataset for later runs on this
  machine; `python prepare.py --local` switches back.

The training saves its model, and the harness scores it in a second step:
the scorer (this file, `--evaluate`) alone reads the validation bytes; the
model answers its queries from another process that never sees them (train.py
run with the two pipes below set, which loads the saved model and calls
`serve`).

    python prepare.py              # build (or check) the active dataset's cache
    python prepare.py --download   # fetch enwik8 and make it active
    python prepare.py --local      # make the local corpus active again
    python prepare.py --evaluate   # the harness's evaluation (the GPU worker runs it)
"""

import hashlib
import io
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

EVAL_BYTES = 2_097_152  # bytes: validation bytes scored, from the start of val
VAL_FILE_FRACTION = 0.3  # fraction of non-test stdlib modules held out (chosen by path hash)
TRAIN_BYTES_CAP = 256_000_000  # bytes: cap on the local training corpus
MAX_FILE_BYTES = 1_000_000  # bytes: larger .py files are generated tables, skipped
CAUSALITY_TOL = 1e-2  # nats: how far earlier log-probs may move when a later byte changes
EVAL_ANSWER_BYTES = 256 << 20  # bytes: the most logits one query may ask for (it caps the batch)
MAX_MESSAGE_BYTES = 1 << 30  # bytes: the largest array either side of the evaluation accepts
PIPE_BYTES = 1 << 20  # bytes: the pipes' buffer, where the system allows it (fewer wake-ups per answer)
ENWIK8_URL = "http://mattmahoney.net/dc/enwik8.zip"
ENWIK8_BYTES = 100_000_000  # size of the unzipped file
ENWIK8_TRAIN = 90_000_000  # the customary split: 90M train, 5M validation, 5M test (unused)
ENWIK8_VAL = 5_000_000
CACHE_ROOT = os.path.expanduser(os.environ.get("AUTORESEARCH_CACHE", "~/.cache/autoresearch"))
DATA_DIR = os.path.join(CACHE_ROOT, "gpt-data")  # directory: one sub-directory per dataset, plus `active`
# directory: each dataset's val.bin, in a sub-directory named like its data; hidden from trainings
VAL_DIR = os.path.join(CACHE_ROOT, "validation", "gpt-data")
FORMAT_VERSION = 2  # integer: bump to invalidate caches built by older code (1: val.bin beside train.bin)
QUERIES_ENV = "AUTORESEARCH_EVAL_QUERIES"  # pipe: the scorer's windows, to the model
ANSWERS_ENV = "AUTORESEARCH_EVAL_ANSWERS"  # pipe: the model's logits, to the scorer

_TEST_DIRS = {"test", "tests", "idle_test"}
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _atomic_write(path, data):
    # A unique temp name per process, then rename: readers see the old file
    # or the new one, never a torn write. Racing writers write equal bytes.
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_regular(path):
    """The bytes of a regular file, or None (symlinks, devices, unreadable)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _py_files(root, skip_dirs):
    """(relative posix path, absolute path) of every .py file under root, sorted.

    Sorting by relative path makes the byte stream independent of directory
    listing order, so two machines with the same Python build the same corpus.
    """
    found = []
    if not root or not os.path.isdir(root):
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    found.sort()
    return found


def _is_val_module(rel):
    """Held out: a non-test stdlib module whose path hashes into the first VAL_FILE_FRACTION."""
    parts = rel.split("/")
    if _TEST_DIRS & set(parts[:-1]) or parts[-1].startswith("test_"):
        return False
    h = int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) / 2**32
    return h < VAL_FILE_FRACTION


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def _site_dirs():
    paths = sysconfig.get_paths()
    out = []
    for key in ("purelib", "platlib"):
        p = os.path.realpath(paths[key])
        if p not in out:
            out.append(p)
    return out


def _local_name():
    # One cache per interpreter: a venv with torch and a bare python differ.
    ident = json.dumps([sys.version, sysconfig.get_paths()["stdlib"], _site_dirs()])
    return "local-" + hashlib.sha256(ident.encode()).hexdigest()[:10]


def build_local():
    """(train bytes, val bytes, info) from the stdlib and site-packages sources."""
    stdlib = sysconfig.get_paths()["stdlib"]
    val_chunks, val_digests = [], set()
    train_files = []
    for rel, path in _py_files(stdlib, _SKIP_DIRS):
        data = _read_regular(path)
        if not data:
            continue
        if _is_val_module(rel):
            val_chunks.append(data)
            val_digests.add(hashlib.sha256(data).digest())
        else:
            train_files.append(data)
    for root in _site_dirs():
        for _rel, path in _py_files(root, {"__pycache__"}):
            data = _read_regular(path)
            if data:
                train_files.append(data)
    # Deduplicate by content (site-packages repeat files, e.g. empty __init__.py
    # and vendored copies), and never train on a file that is in validation.
    seen = set(val_digests)
    train_chunks, total = [], 0
    for data in train_files:
        d = hashlib.sha256(data).digest()
        if d in seen:
            continue
        seen.add(d)
        take = min(len(data), TRAIN_BYTES_CAP - total)
        train_chunks.append(data[:take])
        total += take
        if total >= TRAIN_BYTES_CAP:
            break
    info = {"stdlib": stdlib, "site_packages": _site_dirs(), "python": sys.version.split()[0]}
    return b"".join(train_chunks), b"".join(val_chunks), info


def build_enwik8():
    """(train bytes, val bytes, info) from enwik8, downloaded now."""
    import urllib.request
    import zipfile

    print(f"downloading {ENWIK8_URL} ...", flush=True)
    with urllib.request.urlopen(ENWIK8_URL, timeout=60) as r:
        blob = r.read()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        data = z.read("enwik8")
    if len(data) != ENWIK8_BYTES:
        raise RuntimeError(f"enwik8 has {len(data)} bytes, expected {ENWIK8_BYTES}")
    train = data[:ENWIK8_TRAIN]
    val = data[ENWIK8_TRAIN : ENWIK8_TRAIN + ENWIK8_VAL]
    return train, val, {"url": ENWIK8_URL, "zip_sha256": hashlib.sha256(blob).hexdigest()}


# ---------------------------------------------------------------------------
# Cache: atomic writes so concurrent processes never see half a file
# ---------------------------------------------------------------------------


def active_dataset():
    """'enwik8' if an operator downloaded it and made it active, else this interpreter's local corpus."""
    try:
        with open(os.path.join(DATA_DIR, "active")) as f:
            if f.read().strip() == "enwik8":
                return "enwik8"
    except OSError:
        pass
    return _local_name()


def _set_active(name):
    os.makedirs(DATA_DIR, exist_ok=True)
    _atomic_write(os.path.join(DATA_DIR, "active"), (name + "\n").encode())


def _paths(name):
    d = os.path.join(DATA_DIR, name)
    return d, os.path.join(d, "train.bin"), os.path.join(VAL_DIR, name, "val.bin"), os.path.join(d, "meta.json")


def read_meta(name=None):
    _, _, _, meta_path = _paths(name or active_dataset())
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if meta.get("format_version") != FORMAT_VERSION:
        return None
    return meta


def build_cache(name):
    """Build dataset `name`, check it, write its cache. Returns the meta dict."""
    train, val, info = build_enwik8() if name == "enwik8" else build_local()
    if len(val) < EVAL_BYTES + 1:
        raise RuntimeError(
            f"validation text too small: {len(val)} bytes, need EVAL_BYTES+1={EVAL_BYTES + 1}"
        )
    if len(train) < 1_000_000:
        raise RuntimeError(f"training text too small: {len(train)} bytes")
    h = hashlib.sha256()
    h.update(len(train).to_bytes(8, "little"))
    h.update(train)
    h.update(val)
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": name,
        "train_bytes": len(train),
        "val_bytes": len(val),
        "eval_bytes": EVAL_BYTES,
        "corpus_digest": h.hexdigest(),
        "val_digest": hashlib.sha256(val[: EVAL_BYTES + 1]).hexdigest(),
        **info,
    }
    d, train_path, val_path, meta_path = _paths(name)
    os.makedirs(d, exist_ok=True)
    os.makedirs(os.path.dirname(val_path), exist_ok=True)
    _atomic_write(train_path, train)
    _atomic_write(val_path, val)
    # meta.json last: its presence says both splits are complete.
    _atomic_write(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    # Format 1 kept val.bin beside train.bin, where a training could read it.
    try:
        os.remove(os.path.join(d, "val.bin"))
    except FileNotFoundError:
        pass
    return meta


def _load(name, index, size_key):
    """(one split as a uint8 numpy array, meta) of dataset `name`, building its cache if needed."""
    path = _paths(name)[index]
    meta = read_meta(name)
    for _attempt in range(2):
        if meta is not None:
            try:
                data = np.fromfile(path, dtype=np.uint8)
                if len(data) == meta[size_key]:
                    return data, meta
            except OSError:
                pass
        if name == "enwik8":
            raise RuntimeError(
                "the enwik8 cache is missing or damaged: run `python prepare.py --download` (online) or `--local`"
            )
        try:
            meta = build_cache(name)
        except OSError as e:
            raise RuntimeError(
                f"cannot read {path}, and cannot rebuild the cache here ({e.strerror}): "
                "run `python prepare.py` once on this host; the validation split is read "
                "by the harness's evaluation alone, never by a training"
            ) from None
    raise RuntimeError(f"could not build a consistent cache in {_paths(name)[0]}")


def load_train(name=None):
    """(train, meta) of the active dataset: a uint8 numpy array and its meta dict."""
    return _load(name or active_dataset(), 1, "train_bytes")


def load_val(name=None):
    """The active dataset's validation split: the harness's evaluation alone can read it."""
    return _load(name or active_dataset(), 2, "val_bytes")[0]


# ---------------------------------------------------------------------------
# Scoring: bits per byte on a fixed slice of validation text
# ---------------------------------------------------------------------------


def _windows(seq_len):
    """(start, first scored offset) of windows that score targets val[1 .. EVAL_BYTES] exactly once.

    Every window is a full seq_len bytes, so a compiled model sees one shape. The
    last one is moved back to end at EVAL_BYTES and scores only what is new.
    """
    out, scored = [], 0
    while scored < EVAL_BYTES:
        start = min(scored, EVAL_BYTES - seq_len)
        out.append((start, scored - start))
        scored = start + seq_len
    return out


def evaluate_bpb(predict_logits, seq_len, batch_size):
    """Bits per byte of a model on the first EVAL_BYTES validation bytes.

    predict_logits(x) gets int64 byte ids, a numpy array of shape (B, seq_len),
    and returns next-byte logits of shape (B, seq_len, 256): position t predicts
    byte t+1 from bytes 0..t. Every window starts fresh, so a longer seq_len
    gives each byte more context. Logits are renormalised here (log-softmax in
    float32), so a model can never look better than the probabilities it
    actually assigns; and the first batch is checked for causality (a changed
    later byte must not move earlier scores).
    """
    seq_len, batch_size = int(seq_len), int(batch_size)
    if not 1 <= seq_len <= EVAL_BYTES:
        raise ValueError(f"seq_len must be in [1, {EVAL_BYTES}], got {seq_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    val = load_val()[: EVAL_BYTES + 1].astype(np.int64)
    windows = _windows(seq_len)
    # Pad to whole batches with copies that score nothing: one shape throughout.
    windows += [(0, seq_len)] * (-len(windows) % batch_size)
    pos = np.arange(seq_len)
    total_nats, counted = 0.0, 0
    for b in range(0, len(windows), batch_size):
        chunk = np.array(windows[b : b + batch_size], dtype=np.int64)
        idx = chunk[:, :1] + pos
        x, y = val[idx], val[idx + 1]
        logits = _logits(predict_logits, x)
        if b == 0 and seq_len >= 2:
            _check_causal(predict_logits, x, logits, seq_len // 2)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=-1))
        nll = log_z - np.take_along_axis(shifted, y[..., None], axis=-1)[..., 0]
        mask = pos[None, :] >= chunk[:, 1:]
        total_nats += float(nll[mask].sum(dtype=np.float64))
        counted += int(mask.sum())
    if counted != EVAL_BYTES:
        raise RuntimeError(f"scored {counted} bytes, expected {EVAL_BYTES}")
    bpb = total_nats / (EVAL_BYTES * math.log(2))
    return bpb if math.isfinite(bpb) else float("inf")


def _logits(predict_logits, x):
    logits = np.asarray(predict_logits(x), dtype=np.float32)
    if logits.shape != (*x.shape, 256):
        raise ValueError(f"the model returned logits of shape {logits.shape}, expected {(*x.shape, 256)}")
    return logits


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_causal(predict_logits, x, logits, k):
    """Change byte k of every row: the scores of positions before k must not move."""
    x2 = x.copy()
    x2[:, k] = (x2[:, k] + 1) % 256
    before = _log_softmax(logits[:, :k])
    after = _log_softmax(_logits(predict_logits, x2)[:, :k])
    moved = float(np.abs(after - before).max())
    if not moved <= CAUSALITY_TOL:
        raise RuntimeError(
            f"the model is not causal: changing byte {k} moved the log-probabilities of "
            f"earlier positions by {moved:.4g} nats (tolerance {CAUSALITY_TOL}); "
            "position t may only see bytes 0..t"
        )


# ---------------------------------------------------------------------------
# The harness's evaluation: the scorer here, the model in another process
# ---------------------------------------------------------------------------

_DTYPES = {"<i8", "<f4"}  # all either side sends: byte windows, logits


def _pipe(path, mode):
    f = open(path, mode)
    try:
        import fcntl

        fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe is only slower
    return f


def _send(f, array):
    array = np.ascontiguousarray(array)
    header = {"dtype": array.dtype.str, "shape": list(array.shape)}
    f.write(json.dumps(header).encode() + b"\n")
    f.write(memoryview(array).cast("B"))
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
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size and (n := f.readinto(view[got:])):
        got += n
    if got != size:
        raise EOFError(f"the pipe ended {size - got} bytes into an array")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def serving():
    """True when this process is to answer the harness's evaluation rather than train."""
    return QUERIES_ENV in os.environ and ANSWERS_ENV in os.environ


def serve(predict_logits, seq_len, batch_size):
    """The model's side of the evaluation: answers every query until the scorer is done."""
    with _pipe(os.environ[QUERIES_ENV], "rb") as queries, _pipe(os.environ[ANSWERS_ENV], "wb") as answers:
        _send(answers, np.array([seq_len, batch_size], dtype=np.int64))
        while (x := _receive(queries)) is not None:
            _send(answers, np.asarray(predict_logits(x), dtype=np.float32))


def evaluate_served():
    """The harness's side: scores the model another process serves and prints the summary."""
    t0 = time.time()
    with _pipe(os.environ[QUERIES_ENV], "wb") as queries, _pipe(os.environ[ANSWERS_ENV], "rb") as answers:

        def answer():
            reply = _receive(answers)
            if reply is None:
                raise EOFError("the model stopped answering (see its output above)")
            return reply

        hello = answer()
        if hello.shape != (2,) or hello.dtype != np.int64:
            raise ValueError(f"the model's first message must be [seq_len, batch_size], got {hello!r}")
        seq_len, batch_size = (int(v) for v in hello)
        batch_size = max(1, min(batch_size, EVAL_ANSWER_BYTES // (max(seq_len, 1) * 256 * 4)))

        def predict_logits(x):
            _send(queries, x)
            return answer()

        val_bpb = evaluate_bpb(predict_logits, seq_len, batch_size)
        # Printed before the pipes close: once they do, the model exits, and the worker soon stops waiting.
        print("---")
        print(f"val_bpb:          {val_bpb:.6f}")
        print(f"eval_seconds:     {time.time() - t0:.2f}", flush=True)


# ---------------------------------------------------------------------------
# CLI: build the cache and print a grep-able summary, or evaluate
# ---------------------------------------------------------------------------


def main(argv):
    flags = set(argv)
    if flags == {"--evaluate"}:
        evaluate_served()
        return 0
    unknown = flags - {"--download", "--local", "--rebuild"}
    if unknown:
        options = "--download, --local, --rebuild or --evaluate"
        print(f"prepare.py: unknown option {sorted(unknown)[0]} (use {options})", file=sys.stderr)
        return 2
    t0 = time.time()
    if "--download" in flags or os.environ.get("AUTORESEARCH_GPT_DOWNLOAD") == "1":
        try:
            build_cache("enwik8")
        except Exception as e:  # noqa: BLE001  (network, zip or size: one clear line)
            print(f"prepare.py: could not download enwik8: {e}", file=sys.stderr)
            return 1
        _set_active("enwik8")
    elif "--local" in flags:
        _set_active("local")
    name = active_dataset()
    if "--rebuild" in flags and name != "enwik8":
        build_cache(name)
    train, meta = load_train(name)
    val = load_val(name)
    print(f"data_dir:      {os.path.join(DATA_DIR, name)}")
    print(f"val_dir:       {os.path.dirname(_paths(name)[2])}")
    print(f"dataset:       {name}")
    print(f"train_bytes:   {len(train)}")
    print(f"val_bytes:     {len(val)}")
    print(f"eval_bytes:    {EVAL_BYTES}")
    print(f"corpus_digest: {meta['corpus_digest']}")
    print(f"val_digest:    {meta['val_digest']}")
    print(f"seconds:       {time.time() - t0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
