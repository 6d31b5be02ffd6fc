// What the box costs one training: the same short command through the real training activity, boxed
// and with --no-sandbox, interleaved so the machine's load falls on both alike. `npm run bench -- box`.
import { MockActivityEnvironment } from '@temporalio/testing';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gitBlobId, harnessDigest, isHarnessPath } from '../../activities/harness';
import { buildSyscallFilter } from '../../gpu-worker/sandbox';
import { workerScratch } from '../../gpu-worker/scratch';
import { createTrainingActivities, type Slot } from '../../gpu-worker/training';
import type { TrainingInput, TrainingResult } from '../../workflows/types';
import { gitIn, makeRepo } from '../helpers';

const RUNS = 12; // of each kind
const COMMAND = "printf -- '---\\nval_bpb:          1.000000\\n'"; // no interpreter: a shim on PATH would cost more than the box

function inputFor(checkout: string, n: number): TrainingInput {
  const tracked = gitIn(checkout, 'ls-files').split('\n').filter(Boolean);
  const entries = tracked.filter((p) => isHarnessPath(p, ['train.py'])).map((path) => ({ path, blob: gitBlobId(readFileSync(join(checkout, path))) }));
  return {
    experimentId: `box-bench-${n}`, seed: n, commit: gitIn(checkout, 'rev-parse', 'HEAD'),
    files: { 'train.py': readFileSync(join(checkout, 'train.py'), 'utf8') }, harnessDigest: harnessDigest(entries, ['train.py']),
    command: COMMAND, budgetSeconds: 1, timeoutMs: 60_000,
  };
}

async function timed(slot: Slot, input: TrainingInput): Promise<number> {
  const started = process.hrtime.bigint();
  const result = (await new MockActivityEnvironment().run(createTrainingActivities([slot]).train, input)) as TrainingResult;
  if (result.metrics.val_bpb !== 1) throw new Error(`the bench training failed: ${result.problem ?? result.logTail}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function printBoxOverhead(): Promise<void> {
  const checkout = await makeRepo({ 'train.py': 'print("train")\n', 'prepare.py': 'EVAL_BYTES = 1024\n' });
  const filter = join(await workerScratch(), 'syscalls.bpf'); // as a worker starts: the box with its syscall filter
  const problem = await buildSyscallFilter(filter);
  if (problem) console.log(`(no syscall filter: ${problem})`);
  const boxed: Slot = { name: 'bench-slot0', checkout, syscallFilter: problem ? undefined : filter };
  const open: Slot = { name: 'bench-slot0', checkout, sandbox: false };
  const egress: Slot = { ...boxed, network: 'egress' }; // gpu-worker --network: slirp4netns and its routes too
  const times = { boxed: [] as number[], open: [] as number[], egress: [] as number[] };
  await timed(boxed, inputFor(checkout, 0)); // warm: git, python and bwrap in the page cache
  await timed(egress, inputFor(checkout, 0));
  for (let n = 1; n <= RUNS; n++) {
    times.boxed.push(await timed(boxed, inputFor(checkout, n)));
    times.open.push(await timed(open, inputFor(checkout, n)));
    times.egress.push(await timed(egress, inputFor(checkout, n)));
  }
  const [b, o, e] = [median(times.boxed), median(times.open), median(times.egress)];
  console.log(`box_overhead_per_training_s: ${(b - o).toFixed(3)} (median boxed ${b.toFixed(3)} s, --no-sandbox ${o.toFixed(3)} s, ${RUNS} each)`);
  console.log(`egress_overhead_per_training_s: ${(e - b).toFixed(3)} (median boxed with --network ${e.toFixed(3)} s, without ${b.toFixed(3)} s)`);
}
