// The night survives its faults: the GPU worker, the control worker and the server are SIGKILLed
// mid-run, as separate processes on a non-default port, and started again; the run completes with
// exactly one row, record and ref per experiment, and no training outlives its worker.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchStatus } from '../scripts/status';
import { startDevServer, type DevServer } from '../scripts/server';
import { workflowIdFor, type StatusView } from '../workflows/types';
import { CLI, ROOT, cli, gitIn, waitFor } from './helpers';

const TAG = 'faults';
const running: ChildProcess[] = [];
let server: DevServer | undefined;
after(async () => {
  for (const child of running) child.kill('SIGKILL');
  await server?.stop();
});

function freePort(): Promise<number> {
  return new Promise((done) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

function daemon(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore' });
  running.push(child);
  return child;
}

async function sigkill(child: ChildProcess): Promise<void> {
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGKILL');
  await exited;
}

/** Processes whose working directory is a scratch directory of this run's experiments. */
function trainingProcesses(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`).includes(`autoresearch-${TAG}-`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

test('SIGKILLed workers and server are restarted and the run completes, consistent, losing at most one training', async () => {
  const port = await freePort();
  const db = join(await mkdtemp(join(tmpdir(), 'autoresearch-db-')), 'temporal.db');
  const startServer = async () => (server = await startDevServer({ db, port, uiPort: await freePort(), log: () => {} }));
  await startServer();
  const env = { TEMPORAL_ADDRESS: `127.0.0.1:${port}` };
  const repo = join(await mkdtemp(join(tmpdir(), 'autoresearch-faults-')), 'repo');
  const init = await cli(['init', '--target', 'tiny', repo], env, 180_000);
  assert.equal(init.code, 0, init.stderr);

  let control = daemon(['worker'], env);
  let gpu = daemon(['gpu-worker', '--repo', repo], env);
  const started = await cli(['start', '--repo', repo, '--tag', TAG, '--max-experiments', '4', '--timeout', '40s', '--budget', '4'], env);
  assert.equal(started.code, 0, started.stderr);

  const client = () => Connection.connect({ address: env.TEMPORAL_ADDRESS }).then((connection) => new Client({ connection }));
  let c = await client();
  const training = (view: StatusView, n: number) =>
    view.inFlight.find((lane) => lane.id === `${TAG}-${n}` && lane.phase === 'training' && lane.heartbeat?.step !== undefined);

  // 1. The GPU worker dies mid-training: its training dies with it, and the attempt is retried.
  await waitFor('experiment 1 training', async () => training(await fetchStatus(c, TAG), 1), 120_000);
  assert.ok(trainingProcesses().length > 0, 'a training process is running');
  await sigkill(gpu);
  await waitFor('the orphaned training to die', async () => trainingProcesses().length === 0, 5_000, 100);
  gpu = daemon(['gpu-worker', '--repo', repo], env);

  // 2. The control worker dies while experiment 2 is in flight.
  await waitFor('experiment 2 in flight', async () => (await fetchStatus(c, TAG)).inFlight.some((l) => l.id === `${TAG}-2`), 180_000);
  await sigkill(control);
  control = daemon(['worker'], env);

  // 3. The server dies and comes back on the same SQLite file.
  await waitFor('experiment 3 training', async () => training(await fetchStatus(c, TAG), 3), 180_000);
  await server!.stop();
  server!.child.kill('SIGKILL');
  await startServer();
  c = await client();

  const view: StatusView = await waitFor('the run to complete', () => c.workflow.getHandle(workflowIdFor(TAG)).result(), 240_000);
  assert.equal(view.state, 'completed');
  assert.equal(view.experimentsDone, 4);

  const records = (await readFile(join(repo, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => r.id).sort(), [0, 1, 2, 3].map((n) => `${TAG}-${n}`));
  const rows = (await readFile(join(repo, 'results.tsv'), 'utf8')).trim().split('\n').slice(1);
  assert.equal(rows.length, 4);
  const refs = gitIn(repo, 'for-each-ref', '--format=%(refname)', `refs/autoresearch/${TAG}/`).split('\n');
  assert.equal(refs.length, 4);
  const kept = records.filter((r) => r.status === 'keep');
  const best = kept.reduce((a, b) => (b.valBpb < a.valBpb ? b : a));
  assert.equal(gitIn(repo, 'rev-parse', `autoresearch/${TAG}`), best.commit);
  assert.equal(trainingProcesses().length, 0);
  for (const r of records) assert.ok(r.valBpb === null || r.valBpb < 8, `${r.id} learned something`);
});
