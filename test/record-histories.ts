// Records the histories that test/replay.test.ts replays against the current workflow code, so a
// change that would break running studies fails `npm test`. Run by hand when the workflow changes
// in a compatible way (with patching where needed), into a new folder of test/fixtures/histories named for the commit it records;
// folders already there are never re-recorded (they are the studies a deploy must not break):
//   node --import tsx test/record-histories.ts <short commit>
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker } from '../gpu-worker/worker';
import { pauseSignal, resumeSignal, statusQuery, stopSignal } from '../workflows';
import { startRun } from '../scripts/runs';
import { experimentWorkflowId, morningWorkflowId, workflowIdFor, type RunConfig, type StatusView } from '../workflows/types';
import { answer, fakeOpenAI } from './fake-openai';
import { BEHAVIOUR_SCRIPT, devServer, makeRepo, waitFor } from './helpers';

const OUT = join(__dirname, 'fixtures', 'histories', process.argv[2] ?? '');

async function main(): Promise<void> {
  if (!process.argv[2] || existsSync(OUT)) throw new Error('usage: record-histories.ts <short commit> (a folder that is not there yet)');
  await mkdir(OUT);
  const env = await devServer();
  const fake = await fakeOpenAI('sk-recording');

  async function record(name: string, files: Record<string, string>, extra: Partial<RunConfig>, steer?: (tag: string) => Promise<void>) {
    const repo = await makeRepo(files);
    const config: RunConfig = {
      tag: name, repo, proposer: 'sweep', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 4_000,
      budgetSeconds: 1, parallel: 1, seed: 1, minImprovement: 0, ...extra,
    };
    await startRun(async () => env.client, config);
    const workers: Worker[] = [await createControlWorker(env.nativeConnection, 'default'), await createGpuWorker(env.nativeConnection, 'default', { checkout: repo, slots: 2 })];
    const finished = env.client.workflow.getHandle(workflowIdFor(name)).result().catch(() => undefined);
    await Promise.all([...workers.map((w) => w.runUntil(finished)), steer?.(name)]);
    // Every run of the chain, oldest first: a long study's first run ends in continue-as-new.
    const executions = await collect(env.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(name)}"` }));
    const runs = executions.sort((a, b) => a.startTime.getTime() - b.startTime.getTime()).map((e) => e.runId);
    for (const [i, runId] of runs.entries()) {
      await save(runs.length === 1 ? name : `${name}-${i + 1}`, workflowIdFor(name), runId);
    }
  }

  async function save(file: string, workflowId: string, runId?: string) {
    const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    await writeFile(join(OUT, `${file}.json`), historyToJSON(history));
    console.log(`${file}.json: ${history.events?.length} events`);
  }

  await record('decisions', { 'train.py': BEHAVIOUR_SCRIPT }, { maxExperiments: 7 });
  await save('experiment', experimentWorkflowId('decisions-2')); // one experiment's own workflow

  const crashesAt3 = 'LR = 0.1  # lr\nimport os, time\ntime.sleep(0.5)\nassert not os.environ["AUTORESEARCH_EXPERIMENT_ID"].endswith("-3"), "experiment 3 crashes"\nprint("---")\nprint(f"val_bpb: {1 + LR:.6f}")\n';
  await record('paused-stopped', { 'train.py': crashesAt3 }, { parallel: 2 }, async (tag) => {
    const handle = env.client.workflow.getHandle(workflowIdFor(tag));
    const done = async () => ((await handle.query(statusQuery)) as { experimentsDone: number }).experimentsDone;
    await waitFor('2 done', async () => (await done()) >= 2);
    await handle.signal(pauseSignal);
    await new Promise((r) => setTimeout(r, 1500));
    await handle.signal(resumeSignal);
    await waitFor('5 done', async () => (await done()) >= 5);
    const training = async () => ((await handle.query(statusQuery)) as StatusView).inFlight.some((l) => l.phase === 'training');
    await waitFor('a training in flight', training, 60_000, 20);
    await handle.signal(stopSignal, { cancelInFlight: true });
  });

  const SCORE = `python3 -c "import hashlib; h = hashlib.md5(open('train.py', 'rb').read()).hexdigest(); print('---'); print('val_bpb:', 1 + int(h[:6], 16) / 1e8)"`;
  const knobs = ['A', 'B', 'C', 'D', 'E', 'F'].map((k, i) => `${k} = ${i + 2}  # knob ${k}`).join('\n') + '\n';
  await record('continued', { 'train.py': knobs }, { command: SCORE, maxExperiments: 18, parallel: 2, experimentsPerHistory: 5 });

  // Seeded noise: the baseline's repeats measure σ, a near-tie is confirmed, and the run ends with its verdict.
  const noisy = `A = 1  # a small gain when moved\nB = 1  # a small gain when moved\nimport os, random\nnoise = random.Random(int(os.environ["AUTORESEARCH_SEED"])).gauss(0, 0.001)\nprint("---")\nprint(f"val_bpb: {1 - 0.0015 * (A != 1) - 0.0015 * (B != 1) + noise:.6f}")\n`;
  await record('noise', { 'train.py': noisy }, { maxExperiments: 8, parallel: 2, baselineRuns: 3, verifyRuns: 2 });
  await save('verify', morningWorkflowId('noise', 'verify'));

  fake.script.push(
    { content: 'not json at all' }, { content: 'still not' }, { content: 'nope' }, // a proposer failure
    { content: answer('break it', [{ path: 'train.py', search: 'LR = 0.1', replace: 'LR = 0.1\nraise SystemExit(3)' }]) },
    { content: answer('repair it', [{ path: 'train.py', search: 'raise SystemExit(3)', replace: 'LR = 0.05' }], 'crashed') },
  );
  fake.fallback = () => ({ content: answer('halve LR again', [{ path: 'train.py', search: 'LR = 0.05', replace: 'LR = 0.025' }]) });
  await record('llm', { 'train.py': 'LR = 0.1  # lr\nprint("---")\nprint(f"val_bpb: {1 + LR:.6f}")\n' }, { proposer: 'llm', model: 'recorded', maxExperiments: 5 });

  // A coding agent in its box: it halves LR and leaves a file outside the editable ones, which is dropped and named.
  const agent = `python3 -c "import re; s = open('train.py').read(); lr = float(re.search(r'LR = ([0-9.e-]+)', s).group(1)); open('train.py', 'w').write(s.replace('LR = %r' % lr, 'LR = %r' % (lr / 2))); open('notes.txt', 'w').write('tried it')"`;
  await record('agent', { 'train.py': 'LR = 0.1  # lr\nprint("---")\nprint(f"val_bpb: {1 + LR:.6f}")\n' }, { proposer: 'agent', agent, maxExperiments: 4 });

  await fake.close();
  await env.teardown();
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
