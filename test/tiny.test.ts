// The shipped tiny target: a real numpy byte-level model that learns on two CPU cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findHyperparameters } from '../activities/sweep';
import { parseProgress, parseSummary } from '../gpu-worker/summary';
import { initRepo } from '../scripts/init';
import { pythonEnv } from '../scripts/provision';
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

  const bin = await pythonEnv(() => {});
  const run = spawnSync('python', ['train.py'], {
    cwd: repo,
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: process.env.HOME, AUTORESEARCH_TIME_BUDGET: String(BUDGET_SECONDS) },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const progress = run.stdout.split(/\r|\n/).map(parseProgress).filter(Boolean);
  assert.ok(progress.length >= 5, 'progress lines for heartbeats');
  const { metrics } = parseSummary(run.stdout);
  assert.ok(metrics.val_bpb < 4, `val_bpb ${metrics.val_bpb} after ${BUDGET_SECONDS}s`);
  assert.ok(metrics.training_seconds >= BUDGET_SECONDS * 0.9 && metrics.training_seconds < BUDGET_SECONDS + 5, `trained ${metrics.training_seconds}s`);
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
