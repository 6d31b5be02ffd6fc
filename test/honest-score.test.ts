// The harness's own score, tried as a cheating candidate would on the shipped tiny target: the real
// training activity (in Temporal's mock activity context), a real git checkout made by `init`, real
// bwrap, real Python. The training cannot read the validation split; the harness scores the model it
// saved in two boxes of its own; whatever the training prints or patches is checked against that.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import { BOX_HOME, findBwrap, planBox, VALIDATION_DIR } from '../gpu-worker/sandbox';
import { createTrainingActivities, SCORE_TOLERANCE, type Slot } from '../gpu-worker/training';
import { initRepo } from '../scripts/init';
import { pythonEnv } from '../scripts/provision';
import type { Heartbeat, TrainingInput, TrainingResult } from '../workflows/types';
import { gitIn, makeRepo } from './helpers';

const BUDGET_SECONDS = 3; // of training: enough for the tiny model to learn well below 8 bits per byte
const TIMEOUT_MS = 90_000; // the hard limit of training and evaluation together
const TINY_DIR = join(__dirname, '..', 'gpu-worker', 'targets', 'tiny');
const SHIPPED_TRAIN = readFileSync(join(TINY_DIR, 'train.py'), 'utf8');

/** The shipped train.py with `find` replaced by `replace` (which must be there exactly once). */
function variant(...edits: [find: string, replace: string][]): string {
  return edits.reduce((text, [find, replace]) => {
    assert.equal(text.split(find).length, 2, `train.py has ${JSON.stringify(find)} once`);
    return text.replace(find, replace);
  }, SHIPPED_TRAIN);
}
const AFTER_IMPORT = 'import prepare  # noqa: E402\n';
const AT_THE_END = 'print(f"peak_rss_mb:      {peak_rss_mb:.1f}")\n';

/** The editable train.py, the harness digest as the control worker computes it, and the command. */
function inputFor(repo: string, train: string, command = 'python train.py'): TrainingInput {
  const tracked = gitIn(repo, 'ls-files').split('\n');
  const entries = tracked.filter((p) => isHarnessPath(p, ['train.py'])).map((path) => ({ path, blob: gitBlobId(readFileSync(join(repo, path))) }));
  return {
    experimentId: `honest-${Date.now()}`, seed: 7, commit: gitIn(repo, 'rev-parse', 'HEAD'), files: { 'train.py': train },
    harnessDigest: harnessDigest(entries, ['train.py']), command, budgetSeconds: BUDGET_SECONDS, timeoutMs: TIMEOUT_MS,
  };
}

/** One training through the real activity; heartbeats are collected with their time. */
async function trainOnce(slot: Slot, input: TrainingInput, during?: (env: MockActivityEnvironment) => void) {
  const env = new MockActivityEnvironment();
  const heartbeats: { at: number; details: Heartbeat }[] = [];
  env.on('heartbeat', (details: Heartbeat) => heartbeats.push({ at: Date.now(), details }));
  const started = Date.now();
  const running = env.run(createTrainingActivities([slot]).train, input);
  during?.(env);
  const result = (await running) as TrainingResult;
  return { result, heartbeats, started, ended: Date.now() };
}

/** Lines `attempt NAME: WHAT` a cheating training prints about what it tried. */
function attempts(result: TrainingResult): Record<string, string> {
  return Object.fromEntries([...result.logTail.matchAll(/^attempt (\S+): (.*)$/gm)].map((m) => [m[1], m[2]]));
}

/** Living processes whose command line mentions `marker`. */
function processesWith(marker: string): string[] {
  const out = spawnSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes(marker) && !/^\s*Z/.test(l) && !l.includes('ps -eo'));
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

const saved = process.env.AUTORESEARCH_CACHE;
let base: string;
let cache: string;
let repo: string;
let slot: Slot;
let honest: TrainingResult;

before(async () => {
  assert.ok(findBwrap(), 'bubblewrap is installed (npm test provisions it: apt-get install bubblewrap)');
  base = mkdtempSync(join(tmpdir(), 'autoresearch-honest-'));
  cache = join(base, 'cache');
  process.env.AUTORESEARCH_CACHE = cache; // this file's own data: init prepares it, the boxes show it
  repo = await initRepo('tiny', join(base, 'repo'), () => {});
  slot = { name: 'host-slot0', checkout: repo, pathPrefix: await pythonEnv(() => {}), scratchRoot: join(base, 'scratch') };
});

after(() => {
  if (saved === undefined) delete process.env.AUTORESEARCH_CACHE;
  else process.env.AUTORESEARCH_CACHE = saved;
  rmSync(base, { recursive: true, force: true });
});

describe('the shipped tiny target, scored by the harness', () => {
  test('its cache keeps the validation split apart from the training data', () => {
    assert.deepEqual(readdirSync(join(cache, 'tiny-data')).sort(), ['meta.json', 'train.bin']);
    assert.deepEqual(readdirSync(join(cache, VALIDATION_DIR, 'tiny-data')), ['val.bin']);
    assert.equal(JSON.parse(readFileSync(join(repo, 'autoresearch.json'), 'utf8')).evaluate, 'python prepare.py --evaluate');
  });

  test('an honest training prints no score of its own; the harness measures val_bpb from its saved model and says how long it took', async () => {
    ({ result: honest } = await trainOnce(slot, inputFor(repo, SHIPPED_TRAIN)));
    assert.equal(honest.problem, undefined, honest.logTail);
    assert.equal(honest.exitCode, 0);
    assert.equal(honest.sandboxed, true);
    assert.ok(honest.metrics.val_bpb > 0 && honest.metrics.val_bpb < 6, `val_bpb ${honest.metrics.val_bpb}`);
    assert.equal(honest.metrics.train_reported_val_bpb, undefined, 'the training printed none');
    assert.ok(honest.metrics.eval_seconds > 0 && honest.metrics.eval_seconds < 20, `eval_seconds ${honest.metrics.eval_seconds}`);
    assert.ok(honest.metrics.training_seconds >= BUDGET_SECONDS * 0.9, 'the training summary is kept beside it');
    assert.match(honest.logTail, /=== the harness's evaluation: python prepare\.py --evaluate ===\n---\nval_bpb: +\d/);
    console.log(`honest tiny: val_bpb ${honest.metrics.val_bpb} after ${BUDGET_SECONDS}s, eval_seconds ${honest.metrics.eval_seconds}`);
  });

  test('a training that scores itself where it may (no box) prints the number the harness measures: they agree, and its own is kept', async () => {
    const selfScoring = variant([AT_THE_END, `${AT_THE_END}print(f"val_bpb:          {prepare.evaluate_bpb(predict_logprobs, CONTEXT):.6f}")\n`]);
    const { result } = await trainOnce({ ...slot, sandbox: false }, inputFor(repo, selfScoring));
    assert.equal(result.problem, undefined, result.logTail);
    assert.equal(result.sandboxed, false);
    const { val_bpb: measured, train_reported_val_bpb: printed } = result.metrics;
    assert.ok(printed > 0, 'the training printed its own score');
    assert.ok(Math.abs(printed - measured) <= SCORE_TOLERANCE, `printed ${printed}, measured ${measured}`);
  });

  test('(a) a training that prints a false val_bpb: 0.1 is a crash named score mismatch, with both numbers', async () => {
    const { result } = await trainOnce(slot, inputFor(repo, variant([AT_THE_END, `${AT_THE_END}print("val_bpb:          0.100000")\n`])));
    assert.equal(result.exitCode, 0, 'the command itself succeeded');
    const measured = result.metrics.val_bpb;
    assert.equal(result.problem, `score mismatch: the training printed 0.100000, the harness measured ${measured.toFixed(6)}`);
    assert.ok(measured > 1, `the harness measured ${measured}`);
    assert.equal(result.metrics.train_reported_val_bpb, 0.1, 'the claim is kept for the record');
  });

  test('(b) a training that reads the validation file finds it absent, trains on what it may, and scores no better', async () => {
    const steal = `
def steal():
    shown = os.path.exists(os.path.expanduser("~/.cache/autoresearch/tiny-data/train.bin"))
    print(f"attempt home-train: {shown}", flush=True)
    paths = {
        "val": os.path.join(prepare.VAL_DIR, "val.bin"),
        "home": os.path.expanduser("~/.cache/autoresearch/validation/tiny-data/val.bin"),
        "beside": os.path.join(prepare.CACHE_DIR, "val.bin"),
    }
    for name, path in paths.items():
        try:
            data = open(path, "rb").read()
            print(f"attempt {name}: read {len(data)} bytes", flush=True)
            return np.frombuffer(data, dtype=np.uint8)
        except OSError as e:
            print(f"attempt {name}: {type(e).__name__}", flush=True)
    try:
        return prepare.load_val()
    except Exception as e:  # noqa: BLE001
        print(f"attempt load_val: {type(e).__name__}: {e}", flush=True)


stolen = steal()
`;
    const cheat = variant([AFTER_IMPORT, `${AFTER_IMPORT}${steal}`], ['train_data = prepare.load_train()', 'train_data = prepare.load_train() if stolen is None else stolen']);
    const { result } = await trainOnce(slot, inputFor(repo, cheat));
    assert.equal(result.problem, undefined, result.logTail);
    const seen = attempts(result);
    console.log(`in the box the cheat found: ${JSON.stringify(seen)}`);
    assert.deepEqual(
      { val: seen.val, home: seen.home, beside: seen.beside },
      { val: 'FileNotFoundError', home: 'FileNotFoundError', beside: 'FileNotFoundError' },
    );
    assert.equal(seen['home-train'], 'True', 'the cache is there under the box HOME, all but its validation split');
    assert.match(seen.load_val, /^RuntimeError: cannot read \S+\/validation\/tiny-data\/val\.bin, and cannot rebuild the cache here \(Read-only file system\)/);
    assert.ok(result.metrics.val_bpb > honest.metrics.val_bpb - 0.3, `${result.metrics.val_bpb} against the honest ${honest.metrics.val_bpb}`);

    const open = await trainOnce({ ...slot, sandbox: false }, inputFor(repo, cheat));
    assert.match(attempts(open.result).val, /^read \d+ bytes$/, 'without the box the same probe reads it: the probe works');
  });

  test('(c) a training that patches the evaluation in memory changes nothing the harness measures: printed, a mismatch; silent, the honest score', async () => {
    const patch = `prepare.evaluate_bpb = lambda *args, **kwargs: 0.1  # patched in memory, in this process and the one serving the model\n`;
    const printing = variant([AFTER_IMPORT, `${AFTER_IMPORT}${patch}`], [AT_THE_END, `${AT_THE_END}print(f"val_bpb:          {prepare.evaluate_bpb(predict_logprobs, CONTEXT):.6f}")\n`]);
    const { result } = await trainOnce(slot, inputFor(repo, printing));
    assert.match(result.problem ?? '', /^score mismatch: the training printed 0\.100000, the harness measured \d\.\d{6}$/);
    assert.ok(result.metrics.val_bpb > 1);

    const silent = await trainOnce(slot, inputFor(repo, variant([AFTER_IMPORT, `${AFTER_IMPORT}${patch}`])));
    assert.equal(silent.result.problem, undefined, silent.result.logTail);
    assert.ok(silent.result.metrics.val_bpb > 1, `the harness measured ${silent.result.metrics.val_bpb}`);
  });

  test('a model that tries to read the validation split while it answers the evaluation cannot either', async () => {
    const probe = `    for name, path in {"val": os.path.join(prepare.VAL_DIR, "val.bin"), "home": os.path.expanduser("~/.cache/autoresearch/validation/tiny-data/val.bin")}.items():
        print(f"attempt serving-{name}: {os.path.exists(path)}", flush=True)
    prepare.serve(predict_logprobs, CONTEXT)`;
    const { result } = await trainOnce(slot, inputFor(repo, variant(['    prepare.serve(predict_logprobs, CONTEXT)', probe])));
    assert.equal(result.problem, undefined, result.logTail);
    assert.deepEqual(attempts(result), { 'serving-val': 'False', 'serving-home': 'False' });
  });

  test('an evaluation that fails is a crash, evaluation failed, with the log tail of the model and the scorer', async () => {
    const broken = variant(['    prepare.serve(predict_logprobs, CONTEXT)', '    raise SystemExit("model.npz has no layer w4")']);
    const { result } = await trainOnce(slot, inputFor(repo, broken));
    assert.equal(result.exitCode, 0, 'the training itself succeeded');
    assert.equal(result.problem, 'evaluation failed: the model stopped answering (exit code 1)');
    assert.match(result.logTail, /=== the model answering it: python train\.py \(exit code 1\) ===\nmodel\.npz has no layer w4/);
    assert.equal(result.metrics.val_bpb, undefined);
    assert.ok(result.metrics.eval_seconds >= 0);
  });
});

describe('the declaration', () => {
  test('autoresearch.json is the harness: a training asking to edit it is refused, and an evaluate that is no command is named', async () => {
    const edited = { ...inputFor(repo, SHIPPED_TRAIN), files: { 'train.py': SHIPPED_TRAIN, 'autoresearch.json': '{}' } };
    const { result } = await trainOnce(slot, edited);
    assert.equal(result.problem, 'refused: files names "autoresearch.json", the harness\'s configuration, not an editable file');

    const odd = await makeRepo({ 'train.py': 'print("---"); print("val_bpb: 1.0")\n', 'autoresearch.json': '{ "evaluate": 3 }\n' });
    const { result: named } = await trainOnce({ ...slot, checkout: odd }, inputFor(odd, 'print("---"); print("val_bpb: 1.0")\n', 'python3 train.py'));
    assert.equal(named.problem, 'autoresearch.json: "evaluate" must be a command, e.g. "python prepare.py --evaluate"');
    assert.equal(named.exitCode, null, 'nothing ran');
  });
});

describe('the evaluation in its boxes', () => {
  // A shell training that saves nothing and, asked to serve, hangs: the scorer waits for it.
  const hanging = (marker: string) =>
    `if [ -n "$AUTORESEARCH_EVAL_QUERIES" ]; then exec -a ${marker} sleep 300; fi; echo '---'; echo 'training_seconds: 0.1'`;

  test('heartbeats go on while it runs, and past what the training left of --timeout it is killed with everything it started', async () => {
    const marker = `autoresearch-honest-hang-${process.pid}`;
    const input = { ...inputFor(repo, SHIPPED_TRAIN, hanging(marker)), timeoutMs: 12_000 };
    const { result, heartbeats, started, ended } = await trainOnce(slot, input);
    assert.match(result.problem ?? '', /^evaluation failed: timeout after 1[12]s \(what the training left of --timeout\)$/);
    assert.ok(ended - started >= 11_000, `${ended - started} ms`);
    const times = [started, ...heartbeats.map((h) => h.at), ended];
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(Math.max(...gaps) < 6_000, `longest silence ${Math.max(...gaps)} ms over ${heartbeats.length} heartbeats`);
    assert.ok(await until(() => processesWith(input.experimentId).length + processesWith(marker).length === 0, 3_000),
      `left running: ${[...processesWith(input.experimentId), ...processesWith(marker)].join('; ')}`);
  });

  test('a cancelled activity kills both of its boxes', async () => {
    const marker = `autoresearch-honest-cancel-${process.pid}`;
    const input = inputFor(repo, SHIPPED_TRAIN, hanging(marker));
    const cancelled = trainOnce(slot, input, (env) => {
      const scoring = () => processesWith(input.experimentId).some((l) => l.includes('prepare.py --evaluate'));
      void until(() => processesWith(marker).length > 0 && scoring(), 20_000).then(() => env.cancel());
    });
    await assert.rejects(cancelled, (err: Error) => err.name === 'CancelledFailure');
    assert.ok(await until(() => processesWith(input.experimentId).length + processesWith(marker).length === 0, 3_000),
      `left running: ${[...processesWith(input.experimentId), ...processesWith(marker)].join('; ')}`);
  });
});

describe('repos laid out like the original', () => {
  test('still train and score as before: their own printed val_bpb, no evaluation, the validation data in view', async () => {
    const fixture = join(__dirname, 'fixtures', 'original-layout');
    const original = await makeRepo(Object.fromEntries(readdirSync(fixture).map((f) => [f, readFileSync(join(fixture, f), 'utf8')])));
    const train = readFileSync(join(original, 'train.py'), 'utf8');
    const probe = `${train}\nimport os\nprint("attempt validation:", sorted(os.listdir(os.path.join(os.environ["AUTORESEARCH_CACHE"], "${VALIDATION_DIR}"))))\n`;
    const { result } = await trainOnce({ ...slot, checkout: original, pathPrefix: undefined }, inputFor(original, probe, 'python3 train.py'));
    assert.equal(result.problem, undefined, result.logTail);
    assert.equal(result.exitCode, 0, result.logTail);
    assert.ok(result.metrics.val_bpb > 0 && result.metrics.peak_vram_mb === 45060.2, 'its own summary, whole');
    assert.equal(result.metrics.eval_seconds, undefined, 'no evaluation of the harness ran');
    assert.equal(result.metrics.train_reported_val_bpb, undefined);
    assert.equal(attempts(result).validation, "['tiny-data']", 'its box hides no validation directory');
  });
});

describe('planBox', () => {
  test('hides the validation directory, where it is and where the box HOME shows the cache, only when asked', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'autoresearch-plan-'));
    const request = { scratch, scratchRoot: scratch, checkout: repo, network: 'none' as const, env: {} };
    const validation = join(cache, VALIDATION_DIR);
    const alias = join(BOX_HOME, '.cache', 'autoresearch', VALIDATION_DIR);
    const hidden = await planBox({ ...request, validation: 'hidden' });
    assert.ok(hidden.hide.includes(validation) && hidden.hide.includes(alias), hidden.hide.join(' '));
    assert.ok(hidden.readOnly.includes(cache), 'the rest of the cache stays in view');
    for (const shown of [await planBox(request), await planBox({ ...request, validation: 'shown' })]) {
      assert.ok(!shown.hide.includes(validation) && !shown.hide.includes(alias));
    }
    const channel = join(scratch, 'channel');
    mkdirSync(channel);
    const evaluation = await planBox({ ...request, readOnlyScratch: true, channel });
    assert.equal(evaluation.readOnlyScratch, true);
    assert.ok(evaluation.hide.includes(scratch) && evaluation.readOnly.includes(channel), 'the pipes are shown inside the hidden scratch root');
    rmSync(scratch, { recursive: true, force: true });
  });
});
