#!/usr/bin/env python3
"""
GPU check for the shipped `gpt` target, without Node or Temporal.

Copies gpu-worker/targets/gpt into a scratch directory and runs it the way the
GPU worker does: cwd = the scratch copy, a sanitized environment (PATH with
this interpreter's bin directory first, HOME, LANG, AUTORESEARCH_CACHE if set,
AUTORESEARCH_TIME_BUDGET, AUTORESEARCH_EXPERIMENT_ID=gpu-check-0,
CUDA_VISIBLE_DEVICES=0, PYTHONUNBUFFERED=1), first `python prepare.py`, then
`python train.py`, then the harness's evaluation of the model it saved (the
model served by `python train.py` with the evaluation's pipes set, scored by
`python prepare.py --evaluate`; the worker runs the two in sandboxes, this
check does not). It streams their output, parses the summary blocks and prints
a grep-able report. Exit status: 0 with a finite val_bpb, else 1.

Run it with the Python that has torch (the shipped targets' environment):

    ~/.cache/autoresearch/python/bin/python gpu-worker/gpu-check.py --budget 90
    python gpu-check.py --tiny --budget 5         # CPU smoke run: a tiny model
    python gpu-check.py --set BATCH_SIZE=64       # any constant of train.py or prepare.py
"""

import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = {  # small enough for a CPU: about 0.1M parameters, a fast evaluation
    "N_LAYER": "2",
    "D_MODEL": "64",
    "HEAD_DIM": "32",
    "SEQ_LEN": "128",
    "BATCH_SIZE": "8",
    "EVAL_BYTES": "65_536",
}
REPORT_KEYS = [  # (report name, summary key)
    ("val_bpb", "val_bpb"),
    ("tokens_per_sec", "tokens_per_sec"),
    ("mfu_percent", "mfu_percent"),
    ("peak_vram_mb", "peak_vram_mb"),
    ("num_params_M", "num_params_M"),
    ("num_steps", "num_steps"),
    ("training_seconds", "training_seconds"),
    ("total_seconds", "total_seconds"),
    ("compile_s", "compile_seconds"),
]
SCORER_GRACE_S = 2  # seconds: a scorer still running this long after its model exited waits in vain
SUMMARY_LINE = re.compile(r"^([A-Za-z_]\w*):\s+(\S+)\s*$")


def parse_summary(output):
    """The `key: value` lines after the last `---` line, as the worker reads them."""
    lines = re.split(r"\r?\n|\r", output)
    stripped = [line.strip() for line in lines]
    if "---" not in stripped:
        return {}
    start = len(stripped) - 1 - stripped[::-1].index("---")
    out = {}
    for line in lines[start + 1 :]:
        m = SUMMARY_LINE.match(line.strip())
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def set_constant(scratch, name, value):
    """Rewrite `NAME = literal` at the top level of train.py or prepare.py in the scratch copy."""
    pattern = re.compile(rf"^({re.escape(name)}[ \t]*=[ \t]*)[^#\n]*?([ \t]*(#.*)?)$", re.M)
    for fname in ("train.py", "prepare.py"):
        path = os.path.join(scratch, fname)
        with open(path) as f:
            text = f.read()
        new, n = pattern.subn(lambda m: m.group(1) + value + m.group(2), text, count=1)
        if n:
            with open(path, "w") as f:
                f.write(new)
            return fname
    raise SystemExit(f"gpu-check: --set {name}: no top-level `{name} = ...` in train.py or prepare.py")


def run(cmd, cwd, env, timeout, give_up=None):
    """Run cmd, streaming its output; (exit code or None on timeout or give_up, output, seconds)."""
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    if give_up is not None:
        threading.Thread(target=lambda: give_up.wait() and kill(), daemon=True).start()
    chunks = []
    try:
        for raw in iter(proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace")
            chunks.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()
        proc.wait()
    finally:
        timer.cancel()
    return (None if timed_out else proc.returncode), "".join(chunks), time.time() - t0


def evaluate(python, scratch, env, timeout):
    """The harness's evaluation: (scorer exit code or None, its output, seconds), the model serving it."""
    channel = tempfile.mkdtemp(prefix="autoresearch-gpu-check-eval-")
    pipes = {
        "AUTORESEARCH_EVAL_QUERIES": os.path.join(channel, "queries"),
        "AUTORESEARCH_EVAL_ANSWERS": os.path.join(channel, "answers"),
    }
    for path in pipes.values():
        os.mkfifo(path, 0o600)
    env = {**env, **pipes}
    server = subprocess.Popen([python, "train.py"], cwd=scratch, env=env, start_new_session=True)
    served = threading.Event()

    def watch():
        server.wait()
        time.sleep(SCORER_GRACE_S)
        served.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        return run([python, "prepare.py", "--evaluate"], scratch, env, timeout, give_up=served)
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()
        shutil.rmtree(channel, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="Run the gpt target as the GPU worker does and report.")
    ap.add_argument("--budget", type=float, default=90, help="training seconds (AUTORESEARCH_TIME_BUDGET), default 90")
    ap.add_argument("--target", default=os.path.join(HERE, "targets", "gpt"), help="the target directory to copy")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch (default: this one)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model and a short evaluation, for a CPU smoke run")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="rewrite a constant in the copy")
    ap.add_argument("--timeout", type=float, default=None, help="hard limit per command, seconds (default budget + 420)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if not args.budget > 0:
        raise SystemExit("gpu-check: --budget must be a positive number of seconds")
    timeout = args.timeout or args.budget + 420

    scratch = tempfile.mkdtemp(prefix="autoresearch-gpu-check-")
    try:
        shutil.copytree(args.target, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        overrides = dict(TINY) if args.tiny else {}
        for item in args.set:
            name, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name) or not value:
                raise SystemExit(f"gpu-check: --set {item!r}: expected NAME=VALUE")
            overrides[name] = value
        for name, value in overrides.items():
            where = set_constant(scratch, name, value)
            print(f"gpu-check: {where}: {name} = {value}", flush=True)

        bindir = os.path.dirname(os.path.abspath(args.python))
        env = {
            "PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "AUTORESEARCH_TIME_BUDGET": f"{args.budget:g}",
            "AUTORESEARCH_EXPERIMENT_ID": "gpu-check-0",
            "CUDA_VISIBLE_DEVICES": "0",
            "PYTHONUNBUFFERED": "1",
        }
        if "AUTORESEARCH_CACHE" in os.environ:
            env["AUTORESEARCH_CACHE"] = os.environ["AUTORESEARCH_CACHE"]

        probe = subprocess.run(
            [args.python, "-c",
             "import torch; c = torch.cuda.is_available(); "
             "print(torch.__version__); print(torch.cuda.get_device_name(0) if c else 'none (cpu)')"],
            cwd=scratch, env=env, capture_output=True, text=True, timeout=300,
        )
        if probe.returncode != 0:
            print(probe.stderr.strip()[-2000:], file=sys.stderr)
            raise SystemExit(f"gpu-check: {args.python} cannot import torch")
        torch_version, gpu = probe.stdout.strip().splitlines()[-2:]

        rc, _, prepare_s = run([args.python, "prepare.py"], scratch, env, timeout)
        if rc != 0:
            print(f"gpu-check: prepare.py failed ({'timeout' if rc is None else f'exit {rc}'})", file=sys.stderr)
            return 1
        rc, output, wall = run([args.python, "train.py"], scratch, env, timeout)
        summary = parse_summary(output)
        eval_rc, eval_output, eval_s = evaluate(args.python, scratch, env, timeout) if rc == 0 else (None, "", 0.0)
        summary["val_bpb"] = parse_summary(eval_output).get("val_bpb", float("nan"))

        print("=== gpu-check report ===")
        print(f"gpu:              {gpu}")
        print(f"torch:            {torch_version}")
        print(f"budget_s:         {args.budget:g}")
        for report, key in REPORT_KEYS:
            if key in summary:
                print(f"{report + ':':<17} {summary[key]:g}")
        print(f"prepare_s:        {prepare_s:.1f}")
        print(f"wall_s:           {wall:.1f}")
        print(f"eval_s:           {eval_s:.1f}")
        print(f"exit:             {'timeout' if rc is None else rc}")
        print(f"eval_exit:        {'stopped' if eval_rc is None else eval_rc}")
        if args.keep:
            print(f"scratch:          {scratch}")
        val = summary.get("val_bpb")
        if rc != 0 or eval_rc != 0 or val is None or not math.isfinite(val):
            print("gpu-check: FAILED (no finite val_bpb, or a non-zero exit)", file=sys.stderr)
            return 1
        print("gpu-check: ok")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
