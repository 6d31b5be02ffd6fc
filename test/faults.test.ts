// Never lose a night: real processes killed with SIGKILL at each step — the control worker while
// proposing, committing and recording, the GPU worker mid-training, the server, then everything at
// once (a reboot) — and started again. Each run must complete with exactly one row, one record and
// one ref per experiment, its branch on the best kept commit, and no training outliving its worker.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRecords, resultsDir } from '../activities/results';
import { askSampler, searchSpace } from '../activities/sampler';
import { findHyperparameters, formatValue, knobValues } from '../activities/sweep';
import { fetchStatus } from '../scripts/status';
import { startDevServer, type DevServer } from '../scripts/server';
import { workflowIdFor, type StatusView } from '../workflows/types';
import { CLI, ROOT, cli, gitIn, makeRepo, waitFor } from './helpers';
import { SEARCH_TRAIN } from './search-fixture';

const running: ChildProcess[] = [];
const lost: string[] = []; // one line per fault, printed at the end: what it cost
let server: DevServer | undefined;
let db: string;
let port: number;
let env: NodeJS.ProcessEnv;
let client: Client;

function freePort(): Promise<number> {
  return new Promise((done) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

async function startServer(): Promise<void> {
  server = await startDevServer({ db, port, uiPort: await freePort(), log: () => {} });
  client = new Client({ connection: await Connection.connect({ address: env.TEMPORAL_ADDRESS }) });
}

before(async () => {
  port = await freePort();
  db = join(await mkdtemp(join(tmpdir(), 'autoresearch-db-')), 'temporal.db');
  env = { TEMPORAL_ADDRESS: `127.0.0.1:${port}` };
  await startServer();
});
beforeEach(killDaemons);
after(async () => {
  killDaemons();
  await server?.stop();
  console.log(`work lost per fault:\n${lost.join('\n')}`);
});

/** Each test starts with none of the previous test's processes left polling the queues. */
function killDaemons(): void {
  for (const child of running.splice(0)) child.kill('SIGKILL');
}

function daemon(args: string[], extra: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env, ...extra }, stdio: 'ignore' });
  running.push(child);
  return child;
}

async function sigkill(...children: ChildProcess[]): Promise<number> {
  await Promise.all(
    children.map((child) => {
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGKILL');
      return exited;
    }),
  );
  return Date.now();
}

/** Processes whose working directory is a scratch directory of `tag`'s experiments. */
function trainingProcesses(tag: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`).includes(`autoresearch-${tag}-`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * A git in front of the real one: when its arguments match $SLOW_GIT_MATCH (a bash regex) it does
 * the work, then leaves $SLOW_GIT_MARKER and waits, so the test can kill the worker right after
 * that step's side effect and before the activity reports it: the hardest moment for a retry.
 */
async function slowGit(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slow-git-'));
  const real = spawn('sh', ['-c', 'command -v git']);
  const path = await new Promise<string>((done) => real.stdout.on('data', (d) => done(String(d).trim())));
  writeFileSync(
    join(dir, 'git'),
    `#!/usr/bin/env bash\n${path} "$@"\nstatus=$?\nif [[ -n "$SLOW_GIT_MATCH" && "$*" =~ $SLOW_GIT_MATCH ]]; then touch "$SLOW_GIT_MARKER"; sleep 120; fi\nexit $status\n`,
  );
  chmodSync(join(dir, 'git'), 0o755);
  return dir;
}

const status = (tag: string) => fetchStatus(client, tag);
const result = (tag: string) => waitFor(`${tag} to complete`, () => client.workflow.getHandle(workflowIdFor(tag)).result() as Promise<StatusView>, 300_000);

async function assertConsistent(repo: string, tag: string, experiments: number): Promise<void> {
  const records = (await readFile(join(resultsDir(repo, tag), 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => r.id).sort(), Array.from({ length: experiments }, (_, n) => `${tag}-${n}`).sort(), 'one record per experiment');
  const rows = (await readFile(join(resultsDir(repo, tag), 'results.tsv'), 'utf8')).trim().split('\n').slice(1);
  assert.equal(rows.length, experiments, 'one row per experiment');
  // A duplicate would be a second ref, row or commit for one experiment id.
  const refs = gitIn(repo, 'for-each-ref', '--format=%(refname)', `refs/autoresearch/${tag}/${tag}-*`).split('\n');
  assert.deepEqual(refs.sort(), records.filter((r) => r.commit).map((r) => `refs/autoresearch/${tag}/${r.id}`).sort(), 'one ref per committed experiment');
  const trailers = gitIn(repo, 'log', '--all', '--format=%(trailers:key=Experiment-Id,valueonly)').split('\n').filter(Boolean);
  assert.equal(new Set(trailers).size, trailers.length, `no two commits carry one Experiment-Id: ${trailers.join(', ')}`);
  for (const row of rows) assert.equal(rows.filter((r) => r === row).length, 1, `row written once: ${row}`);
  const best = records.filter((r) => r.status === 'keep').reduce((a, b) => (b.valBpb < a.valBpb ? b : a));
  assert.equal(gitIn(repo, 'rev-parse', `autoresearch/${tag}`), best.commit, 'the branch is on the best kept commit');
  assert.deepEqual(trainingProcesses(tag), [], 'no training outlives its worker');
}

// The score is a function of the file: the further LR moves from 0.1 (in doublings), the better. The sweep never
// repeats a configuration, so most candidates beat their parent and recording moves the branch; a rerun of the
// best scores as the best did (no noise), so a rerun bridging a killed proposer changes no decision.
const IMPROVING = `LR = 0.1  # learning rate
import math
print("step 00001 (100.0%) | loss: 1.0")
print("---")
print(f"val_bpb:          {2 - abs(math.log2(LR / 0.1)) / 10:.6f}")
`;

test('the control worker SIGKILLed while proposing, committing and recording: each step is redone once, nothing duplicated', async () => {
  const tag = 'control-kills';
  const repo = await makeRepo({ 'train.py': IMPROVING });
  const marker = join(await mkdtemp(join(tmpdir(), 'marker-')), 'in-step');
  const gitDir = await slowGit();
  const slowAt = (match: string) => ({ PATH: `${gitDir}:${process.env.PATH}`, SLOW_GIT_MATCH: match, SLOW_GIT_MARKER: marker });
  const steps = [
    ['proposing', ' for-each-ref '], // the sweep lists the candidates tried so far
    ['committing', ` update-ref refs/autoresearch/${tag}/${tag}-[1-9] `], // an experiment's ref is written
    ['recording', ' update-ref refs/heads/autoresearch/[^ ]+ [0-9a-f]+ [0-9a-f]*[1-9a-f]'], // a keep moves the branch (not its creation)
  ] as const;
  let control = daemon(['worker'], slowAt(steps[0][1]));
  daemon(['gpu-worker', '--repo', repo, '--slots', '1']);
  assert.equal((await cli(['start', '--repo', repo, '--tag', tag, '--max-experiments', '4', '--timeout', '30s', '--budget', '1', '--command', 'python3 train.py', '--proposer', 'sweep'], env)).code, 0);
  for (const [i, [phase]] of steps.entries()) {
    await waitFor(`the worker inside ${phase}`, async () => existsSync(marker), 120_000, 100);
    const done = (await status(tag)).experimentsDone;
    const killedAt = await sigkill(control);
    rmSync(marker);
    const last = i + 1 === steps.length;
    control = daemon(['worker'], last ? {} : slowAt(steps[i + 1][1]));
    // Redone means the run got past the killed step: into the next slowed one, or a finished experiment.
    await waitFor(`the ${phase} step redone`, async () => (last ? (await status(tag)).experimentsDone > done : existsSync(marker)), 120_000, 100);
    lost.push(`  control worker killed while ${phase}: no experiment lost, the step redone ${Math.round((Date.now() - killedAt) / 1000)}s after the kill`);
  }
  const view = await result(tag);
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, 4);
  const records = await readRecords(repo, tag);
  assert.ok(records.some((r) => r.n > 0 && r.status === 'keep'), 'a candidate was kept');
  await assertConsistent(repo, tag, 4);
});

test('the control worker SIGKILLed mid-night under --proposer tpe: the restarted sampler is told the same history, and the night completes', async () => {
  const tag = 'tpe-kill';
  const repo = await makeRepo({ 'train.py': SEARCH_TRAIN });
  const experiments = 8;
  let control = daemon(['worker']);
  daemon(['gpu-worker', '--repo', repo, '--slots', '1']);
  const start = ['start', '--repo', repo, '--tag', tag, '--proposer', 'tpe', '--seed', '5', '--max-experiments', String(experiments),
    '--timeout', '30s', '--budget', '1', '--command', 'python3 train.py', '--ahead', '0', '--rerun-grace', '60s',
    '--baseline-runs', '2', '--false-keep', '0', '--verify-runs', '0'];
  assert.equal((await cli(start, env)).code, 0);
  await waitFor('three experiments', async () => (await status(tag)).experimentsDone >= 3, 120_000, 100);
  const killedAt = await sigkill(control);
  const before = (await readRecords(repo, tag)).length;
  control = daemon(['worker']);
  const view = await result(tag);
  lost.push(`  control worker killed mid-night under tpe: nothing lost, the night completed ${Math.round((Date.now() - killedAt) / 1000)}s after the kill`);
  assert.equal(view.state, 'completed');
  await assertConsistent(repo, tag, experiments);
  // Every trial, those the restarted worker proposed included, is what the sampler answers to the rows
  // recorded before it (the last one or two may still have been in writing when it was asked): it keeps nothing.
  const records = await readRecords(repo, tag);
  const knobsAt = (commit: string) => knobValues(gitIn(repo, 'show', `${commit}:train.py`));
  const space = searchSpace(findHyperparameters(SEARCH_TRAIN), undefined);
  const told = records.map((r) => ({ params: knobsAt(r.commit!), value: r.valBpb }));
  for (const r of records.slice(1)) {
    assert.equal(r.proposer, 'tpe');
    const answers = [];
    for (let known = r.n; known >= Math.max(0, r.n - 2); known--) {
      answers.push(await askSampler({ sampler: 'tpe', seed: 5 * 1_000_003 + r.n, space, trials: told.slice(0, known) }));
    }
    const trained = knobsAt(r.commit!);
    const same = (a: Record<string, number>) => Object.keys(a).every((k) => Number(formatValue(a[k], k === 'WIDTH')) === trained[k]);
    assert.ok(answers.some(same), `${r.id} (${r.n >= before ? 'after' : 'before'} the restart): trained ${JSON.stringify(trained)}, the sampler answers ${JSON.stringify(answers)}`);
  }
});

test('the GPU worker SIGKILLed mid-training takes its training with it and the attempt is retried; the server SIGKILLed and restarted on its SQLite file goes on', async () => {
  const tag = 'gpu-kill';
  const repo = join(await mkdtemp(join(tmpdir(), 'autoresearch-faults-')), 'repo');
  assert.equal((await cli(['init', '--target', 'tiny', repo], env, 180_000)).code, 0);
  const control = daemon(['worker']);
  let gpu = daemon(['gpu-worker', '--repo', repo]);
  assert.equal((await cli(['start', '--repo', repo, '--tag', tag, '--max-experiments', '4', '--timeout', '40s', '--budget', '3', '--proposer', 'sweep'], env)).code, 0);
  const training = async (n: number) => (await status(tag)).inFlight.find((l) => l.id === `${tag}-${n}` && l.phase === 'training' && l.heartbeat?.step !== undefined);

  await waitFor('experiment 1 training', () => training(1), 120_000);
  assert.ok(trainingProcesses(tag).length > 0, 'a training process is running');
  let killedAt = await sigkill(gpu);
  await waitFor('the orphaned training to die', async () => trainingProcesses(tag).length === 0, 5_000, 50);
  lost.push(`  GPU worker killed mid-training: its training died within ${Date.now() - killedAt} ms`);
  gpu = daemon(['gpu-worker', '--repo', repo]);
  await waitFor('experiment 1 retried', async () => trainingProcesses(tag).length > 0, 120_000, 100);
  lost.push(`  GPU worker killed mid-training: one training lost, retried after ${Math.round((Date.now() - killedAt) / 1000)}s (heartbeat timeout 30s)`);

  await waitFor('experiment 2 training', () => training(2), 120_000);
  killedAt = await sigkill(server!.child);
  await startServer();
  await waitFor('progress after the server restart', async () => (await status(tag)).experimentsDone >= 3, 120_000);
  lost.push(`  server SIGKILLed and restarted on its SQLite file: nothing lost, the next experiment recorded ${Math.round((Date.now() - killedAt) / 1000)}s after the kill`);

  const view = await result(tag);
  assert.equal(view.state, 'completed');
  await assertConsistent(repo, tag, 4);
  await sigkill(control, gpu);
});

test('a reboot — server, control worker and GPU worker all killed mid-training — is survived by starting the three again', async () => {
  const tag = 'reboot';
  const repo = join(await mkdtemp(join(tmpdir(), 'autoresearch-faults-')), 'repo');
  assert.equal((await cli(['init', '--target', 'tiny', repo], env, 180_000)).code, 0);
  let control = daemon(['worker']);
  let gpu = daemon(['gpu-worker', '--repo', repo]);
  assert.equal((await cli(['start', '--repo', repo, '--tag', tag, '--max-experiments', '3', '--timeout', '40s', '--budget', '3', '--proposer', 'sweep'], env)).code, 0);
  await waitFor('experiment 1 training', async () => (await status(tag)).inFlight.some((l) => l.id === `${tag}-1` && l.heartbeat?.step !== undefined), 120_000);
  const killedAt = await sigkill(control, gpu, server!.child);
  await waitFor('no training left', async () => trainingProcesses(tag).length === 0, 5_000, 50);
  await startServer();
  control = daemon(['worker']);
  gpu = daemon(['gpu-worker', '--repo', repo]);
  await waitFor('experiment 1 training again', async () => trainingProcesses(tag).length > 0, 120_000, 100);
  lost.push(`  reboot (everything SIGKILLed): one training lost, training again ${Math.round((Date.now() - killedAt) / 1000)}s after the kill`);
  const view = await result(tag);
  assert.equal(view.state, 'completed');
  await assertConsistent(repo, tag, 3);
  await sigkill(control, gpu);
});
