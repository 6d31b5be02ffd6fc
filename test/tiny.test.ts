// The shipped tiny target: a real numpy byte-level model that learns on two CPU cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import { findHyperparameters } from '../activities/sweep';
import { createTrainingActivities } from '../gpu-worker/training';
import { initRepo } from '../scripts/init';
import { pythonEnv } from '../scripts/provision';
import type { Heartbeat, TrainingInput, TrainingResult } from '../workflows/types';
import { gitIn } from './helpers';

const BUDGET_SECONDS = 10; // the README's figure is for 20 s; half of it must already learn clearly

test('init makes a committed tiny repo whose model learns far below uniform guessing (8 bits per byte)', async () => {
  const repo = await initRepo('tiny', join(await mkdtemp(join(tmpdir(), 'autoresearch-tiny-')), 'repo'), () => {});
  assert.deepEqual(gitIn(repo, 'ls-files').split('\n').sort(), ['.gitignore', 'autoresearch.json', 'prepare.py', 'program.md', 'requirements.txt', 'train.py']);
  assert.equal(gitIn(repo, 'status', '--porcelain'), '');

  const source = await readFile(join(repo, 'train.py'), 'utf8');
  const params = findHyperparameters(source);
  assert.ok(params.length >= 5, `hyperparameters: ${params.map((p) => p.name)}`);
  for (const p of params) assert.match(source, new RegExp(`^${p.name} = ${p.literal.replace('.', '\\.')}\\s+# \\S`, 'm'), `${p.name} has a comment`);

  // As the GPU worker runs it: the training in its box, then the harness's evaluation of the saved model.
  const tracked = gitIn(repo, 'ls-files').split('\n');
  const harness = tracked.filter((p) => isHarnessPath(p, ['train.py'])).map((path) => ({ path, blob: gitBlobId(readFileSync(join(repo, path))) }));
  const input: TrainingInput = {
    experimentId: `tiny-${Date.now()}`, seed: 1, commit: gitIn(repo, 'rev-parse', 'HEAD'), files: { 'train.py': source },
    harnessDigest: harnessDigest(harness, ['train.py']), command: 'python train.py', budgetSeconds: BUDGET_SECONDS, timeoutMs: 120_000,
  };
  const env = new MockActivityEnvironment();
  const heartbeats: Heartbeat[] = [];
  env.on('heartbeat', (h: Heartbeat) => heartbeats.push(h));
  const slot = { name: 'host-slot0', checkout: repo, pathPrefix: await pythonEnv(() => {}) };
  const { metrics, problem, logTail } = (await env.run(createTrainingActivities([slot]).train, input)) as TrainingResult;
  assert.equal(problem, undefined, logTail);
  assert.ok(heartbeats.filter((h) => h.step !== undefined).length >= 5, 'progress lines for heartbeats');
  assert.ok(metrics.val_bpb < 4, `val_bpb ${metrics.val_bpb} after ${BUDGET_SECONDS}s`);
  assert.ok(metrics.training_seconds >= BUDGET_SECONDS * 0.9 && metrics.training_seconds < BUDGET_SECONDS + 5, `trained ${metrics.training_seconds}s`);
  assert.ok(metrics.eval_seconds < 10, `the harness's evaluation took ${metrics.eval_seconds}s`);
});

test('the tiny corpus is built offline and deterministically', async () => {
  const bin = await pythonEnv(() => {});
  const digests = [1, 2].map(() => {
    const cache = spawnSync('mktemp', ['-d'], { encoding: 'utf8' }).stdout.trim();
    const out = spawnSync(join(bin, 'python'), ['prepare.py'], {
      cwd: join(__dirname, '..', 'gpu-worker', 'targets', 'tiny'),
      env: { PATH: process.env.PATH, AUTORESEARCH_CACHE: cache },
      encoding: 'utf8',
    });
    assert.equal(out.status, 0, out.stderr);
    return /corpus_digest:\s+(\w+)/.exec(out.stdout)![1];
  });
  assert.equal(digests[0], digests[1]);
});
