// The GPU side without a GPU: slots pinned one training per GPU, `--gpus all` from nvidia-smi,
// a repo laid out like the original autoresearch run unmodified, and the gpt target on CPU.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SCRATCH_ROOT } from '../gpu-worker/scratch';
import { gpuDevices } from '../gpu-worker/sandbox';
import { trainingEnv } from '../gpu-worker/training';
import { gpuIdentities, parseGpuIndexes, parseGpuInformation, parseGpuUuids, type GpuWorkerOptions } from '../gpu-worker/worker';
import { pythonEnv, targetPackages } from '../scripts/provision';
import { runConfigFrom, startRun } from '../scripts/runs';
import { readRecords, resultsDir } from '../activities/results';
import { fetchStatus } from '../scripts/status';
import { gpuQueueFor, workflowIdFor, type ExperimentRecord, type RunConfig, type StatusView } from '../workflows/types';
import { CLI, ROOT, closeDevServer, devServer, gitIn, makeRepo, runWorkers, waitFor } from './helpers';

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

async function study(repo: string, config: RunConfig, gpu: Omit<GpuWorkerOptions, 'checkout'>, during?: () => Promise<void>) {
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor(config.tag)).result() as Promise<StatusView>;
  await Promise.all([runWorkers(env.nativeConnection, { checkout: repo, ...gpu }, finished), during?.()]);
  const records: ExperimentRecord[] = await readRecords(repo, config.tag);
  return { view: await finished, records };
}

async function fakeNvidiaSmi(script: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fake-nvidia-smi-'));
  await writeFile(join(dir, 'nvidia-smi'), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  return dir;
}

describe('GPU slots', () => {
  test('nvidia-smi\'s index list is read as GPU indexes', () => {
    assert.deepEqual(parseGpuIndexes('0\n1\n 2 \n\n'), ['0', '1', '2']);
    assert.deepEqual(parseGpuIndexes('No devices were found\n'), []);
  });

  test("a slot's box gets its own /dev/nvidiaN (by the driver's minor, not nvidia-smi's index) and the control nodes, and CUDA picks it by UUID", async () => {
    const dev = await mkdtemp(join(tmpdir(), 'fake-dev-'));
    const nodes = ['nvidia0', 'nvidia1', 'nvidia10', 'nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset', 'nvidia-caps', 'dri', 'null'];
    for (const name of nodes) await writeFile(join(dev, name), '');
    const names = (minor?: number) => gpuDevices(dev, minor).map((p) => p.slice(dev.length + 1)).sort();
    assert.deepEqual(names(), nodes.filter((n) => n !== 'null').sort(), 'unknown minor: every GPU node, as before');
    assert.deepEqual(names(1), ['nvidia-caps', 'nvidia-modeset', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia1', 'nvidiactl']);

    const uuidA = 'GPU-1b2c3d4e-0000-1111-2222-333344445555';
    const uuidB = 'GPU-9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff';
    assert.deepEqual([...parseGpuUuids(`0, ${uuidB}\n1, ${uuidA}\n\n`)], [['0', uuidB], ['1', uuidA]]);
    const info = (uuid: string, minor: number) => `Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t\t ${uuid}\nDevice Minor: \t\t ${minor}\n`;
    assert.deepEqual(parseGpuInformation(info(uuidA, 10)), { uuid: uuidA, minor: 10 });
    assert.equal(parseGpuInformation('garbage'), null);

    // nvidia-smi's index 0 is the GPU whose node is /dev/nvidia1, and index 1's node is /dev/nvidia0.
    const proc = await mkdtemp(join(tmpdir(), 'fake-proc-gpus-'));
    for (const [bus, uuid, minor] of [['0000:1a:00.0', uuidA, 0], ['0000:88:00.0', uuidB, 1]] as const) {
      mkdirSync(join(proc, bus));
      await writeFile(join(proc, bus, 'information'), info(uuid, minor));
    }
    const smi = await fakeNvidiaSmi(`echo "0, ${uuidB}"; echo "1, ${uuidA}"`);
    const path = process.env.PATH;
    process.env.PATH = `${smi}:${path}`;
    try {
      const found = gpuIdentities(['0', '1', '7'], proc);
      assert.deepEqual(found.get('0'), { uuid: uuidB, minor: 1 });
      assert.deepEqual(found.get('1'), { uuid: uuidA, minor: 0 });
      assert.equal(found.has('7'), false, 'a GPU the driver does not list is left out');
      const env = trainingEnv({ name: 's0', checkout: '/x', cudaVisibleDevices: '0', gpu: found.get('0') }, { experimentId: 'e', budgetSeconds: 1, seed: 1 }, {});
      assert.equal(env.CUDA_VISIBLE_DEVICES, uuidB);
    } finally {
      process.env.PATH = path;
    }
  });

  test('gpu-worker --gpus all opens one slot per GPU nvidia-smi lists, on its repo\'s queue, sweeping dead workers\' scratch; with none it points to --slots', async () => {
    const two = await fakeNvidiaSmi('echo 0; echo 1');
    const repo = await makeRepo({ 'train.py': 'LR = 1  # x\n' });
    const dead = spawnSync('true').pid!; // a worker that is gone: its scratch is left over
    const leftover = join(SCRATCH_ROOT, `worker-${dead}-1`, 'exp-3-abc123');
    mkdirSync(leftover, { recursive: true });
    const child = spawn(process.execPath, [CLI, 'gpu-worker', '--repo', repo, '--gpus', 'all', '--network'], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${two}:${process.env.PATH}`, TEMPORAL_ADDRESS: env.address },
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await waitFor('the worker to start', async () => out.includes('first on PATH'), 60_000);
    child.kill('SIGTERM');
    const queue = gpuQueueFor(gitIn(repo, 'rev-list', '--max-parents=0', 'HEAD'));
    assert.match(out, new RegExp(`gpu worker: 2 slot\\(s\\) on task queue ${queue} at `));
    assert.match(out, /training commands run in a sandbox, with network access but not this host's loopback, with .* first on PATH/);
    assert.match(out, /removed the scratch directories of \d+ dead worker\(s\)/);
    assert.equal(existsSync(dirname(leftover)), false, 'the dead worker\'s scratch is gone');

    const none = await fakeNvidiaSmi('echo "NVIDIA-SMI has failed" >&2; exit 9');
    const failed = spawnSync(process.execPath, [CLI, 'gpu-worker', '--repo', repo, '--gpus', 'all'], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${none}:${process.env.PATH}`, TEMPORAL_ADDRESS: env.address },
      encoding: 'utf8',
    });
    assert.equal(failed.status, 2);
    assert.equal(failed.stderr.trim(), 'autoresearch: --gpus all: nvidia-smi lists no GPU on this host; train on CPU with --slots N');
  });

  test('each slot trains on its own GPU only: two trainings at once never share one', async () => {
    const locks = await mkdtemp(join(tmpdir(), 'gpu-locks-'));
    // Takes an exclusive lock named after its GPU for a second: a shared GPU would crash the second taker.
    const train = `LR = 0.1  # learning rate
import os, time
device = os.environ["CUDA_VISIBLE_DEVICES"]
lock = os.path.join("${locks}", device)
fd = os.open(lock, os.O_CREAT | os.O_EXCL)
time.sleep(1)
os.remove(lock)
print("---")
print(f"val_bpb:          {1 + LR:.6f}")
print(f"gpu:              {device}")
print(f"gpus_visible:     {len(device.split(','))}")
`;
    const repo = await makeRepo({ 'train.py': train });
    const config: RunConfig = {
      tag: 'pinned', repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 30_000,
      budgetSeconds: 1, parallel: 2, maxExperiments: 7, seed: 0, minImprovement: 0,
    };
    // Unboxed: the two trainings must share the lock directory, and a box shares nothing writable.
    const { view, records } = await study(repo, config, { slots: 0, gpus: ['3', '5'], sandbox: false });
    assert.equal(view.experimentsDone, 7);
    for (const r of records) assert.notEqual(r.status, 'crash', `${r.id}: ${r.reason} ${r.logTail ?? ''}`);
    assert.deepEqual([...new Set(records.map((r) => r.metrics.gpu))].sort(), [3, 5]);
    for (const r of records) assert.equal(r.metrics.gpus_visible, 1);
  });
});

test('a repo laid out like the original autoresearch runs unmodified: its \\r progress, summary and peak memory are read', async () => {
  const fixture = join(__dirname, 'fixtures', 'original-layout');
  const files = Object.fromEntries(readdirSync(fixture).map((f) => [f, readFileSync(join(fixture, f), 'utf8')]));
  const repo = await makeRepo(files);
  const { config } = await runConfigFrom({ repo, tag: 'original', command: 'python3 train.py', timeout: '10m', proposer: 'sweep', 'max-experiments': '3' });
  assert.equal(config.timeoutMs, 10 * 60_000, 'its program says: kill a run past 10 minutes');
  let progress: StatusView['inFlight'][number]['heartbeat'] = null;
  const watchProgress = () =>
    waitFor('a heartbeat parsed from \\r-separated progress', async () => {
      const lane = (await fetchStatus(env.client, 'original')).inFlight.find((l) => l.heartbeat?.step !== undefined);
      return (progress = lane?.heartbeat ?? null);
    }, 60_000, 200).then(() => undefined);
  const { view, records } = await study(repo, config, { slots: 1 }, watchProgress);
  assert.equal(view.state, 'completed');
  assert.ok(progress!.step! > 0 && progress!.percent! > 0 && progress!.loss! > 1, JSON.stringify(progress));
  const tsv = (await readFile(join(resultsDir(repo, 'original'), 'results.tsv'), 'utf8')).trim().split('\n').slice(1);
  assert.equal(tsv.length, 3);
  for (const [i, r] of records.entries()) {
    assert.notEqual(r.status, 'crash', r.reason);
    assert.equal(r.memoryGb.toFixed(1), '44.0');
    assert.equal(tsv[i].split('\t')[2], '44.0');
    assert.equal(r.metrics.mfu_percent, 39.8);
    assert.ok(r.metrics.depth >= 1, 'every summary key is kept as a metric');
    assert.ok(r.metrics.num_steps > 5);
  }
});

test('the gpt target trains on CPU with a tiny configuration, through the GPU check script', async () => {
  const bin = await pythonEnv((line) => console.error(line), targetPackages('gpt'));
  const check = spawnSync(join(bin, 'python'), [join(ROOT, 'gpu-worker', 'gpu-check.py'), '--tiny', '--budget', '4'], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(check.status, 0, check.stdout.slice(-2000) + check.stderr.slice(-2000));
  const report = Object.fromEntries([...check.stdout.matchAll(/^(\w+):\s+(.+)$/gm)].map((m) => [m[1], m[2].trim()]));
  assert.match(report.gpu, /cpu/);
  const valBpb = Number(report.val_bpb);
  assert.ok(Number.isFinite(valBpb) && valBpb < 6, `val_bpb ${report.val_bpb}`);
  assert.ok(Number(report.num_steps) > 5, `steps ${report.num_steps}`);
  assert.ok(Number(report.tokens_per_sec) > 0);
});
