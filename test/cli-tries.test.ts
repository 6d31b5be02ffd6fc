// The two tries that opened the state-machine issue, run as a user runs them: `worker` and `gpu-worker` as
// their own processes, the study started and read through the CLI, the experiment terminated by hand as
// the Web UI does it (the same API call).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readRecords } from '../activities/results';
import { experimentWorkflowId, workflowIdFor, type StatusView } from '../workflows/types';
import { answer, fakeOpenAI, type FakeOpenAI, type Recorded } from './fake-openai';
import { cli, devServer, endProcess, gitIn, makeRepo, serve, waitFor, type Running } from './helpers';

let env: TestWorkflowEnvironment;
let fake: FakeOpenAI;
const processes: Running[] = [];
before(async () => {
  env = await devServer();
  fake = await fakeOpenAI('sk-tries'); // the workers' processes inherit its OPENAI_BASE_URL
});
after(async () => {
  await Promise.all(processes.map(endProcess));
  await fake.close();
  await env?.teardown();
});

/** Both workers for `repo`, as their own processes, until the file's end. */
function workers(repo: string, slots: number): Running[] {
  const server = { TEMPORAL_ADDRESS: env.address };
  const started = [serve(['worker'], server), serve(['gpu-worker', '--repo', repo, '--slots', String(slots)], server)];
  processes.push(...started);
  return started;
}

async function status(tag: string): Promise<StatusView> {
  const out = await cli(['status', tag, '--json'], { TEMPORAL_ADDRESS: env.address });
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout) as StatusView;
}

async function start(args: string[]): Promise<void> {
  const out = await cli(['start', '--timeout', '1m', '--budget', '1', '--command', 'python3 train.py', ...args], { TEMPORAL_ADDRESS: env.address });
  assert.equal(out.code, 0, out.stderr);
}

async function completed(tag: string, workers: Running[]): Promise<StatusView> {
  return waitFor('the study to end', async () => {
    const view = await status(tag);
    return view.state !== 'running' && view.state !== 'stopping' && view;
  }, 240_000, 1_000).catch((err: Error) => assert.fail(`${err.message}\n${workers.map((w) => w.output()).join('\n')}`));
}

test('a noisy study with --parallel 2 --history-size 3 --baseline-runs 2 ends; the experiment terminated by hand after the first continue-as-new is a crash row', async () => {
  // Knobs that do nothing, scored with seeded noise: near-ties to confirm, and 3 s trainings to terminate one of.
  const noisy = 'A = 1\nB = 1\nC = 1\nD = 1\nimport os, random, time\ntime.sleep(3)\nprint("---")\n' +
    'print(f"val_bpb: {1 + random.Random(int(os.environ[\'AUTORESEARCH_SEED\'])).gauss(0, 0.01):.6f}")\n';
  const repo = await makeRepo({ 'train.py': noisy });
  const running = workers(repo, 2);
  await start(['--repo', repo, '--tag', 'try-noisy', '--proposer', 'sweep', '--parallel', '2', '--history-size', '3', '--baseline-runs', '2', '--max-experiments', '10']);

  const handle = env.client.workflow.getHandle(workflowIdFor('try-noisy'));
  const firstRun = (await handle.describe()).runId;
  const victim = await waitFor('an experiment training after the first continue-as-new', async () => {
    if ((await handle.describe()).runId === firstRun) return null;
    return (await status('try-noisy')).inFlight.find((x) => x.phase === 'training')?.id;
  }, 120_000);
  await env.client.workflow.getHandle(experimentWorkflowId(victim)).terminate('by hand, from the Web UI');

  const view = await completed('try-noisy', running);
  assert.equal(view.state, 'completed', view.reason);
  assert.equal(view.inFlight.length, 0, 'nothing is left training');
  const records = await readRecords(repo, 'try-noisy');
  assert.deepEqual(records.map((r) => r.n).sort((a, b) => a - b), Array.from({ length: 10 }, (_, n) => n), 'every experiment has one row');
  assert.equal(view.experimentsDone, records.length, 'status counts what the results hold');
  const row = records.find((r) => r.id === victim)!;
  assert.equal(row.status, 'crash');
  assert.match(row.reason, /terminated by hand/);
  const table = await cli(['results', 'try-noisy', '--repo', repo], { TEMPORAL_ADDRESS: env.address });
  const escaped = row.description.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(table.stdout, new RegExp(`^\\S+ +\\S+ +\\S+ +crash +${escaped}$`, 'm'), `results shows the crash:\n${table.stdout}`);
});

test('a whole-file rewrite made on the baseline while ALPHA\'s keep trained lands on the new best: the tip holds both changes', async () => {
  const TRAIN = 'ALPHA = 0.5  # one knob\n\nBETA = 0.5  # another\nimport time\ntime.sleep(2)\nprint("---")\n' +
    'print(f"val_bpb: {1 - 0.1 * (ALPHA == 0.25) - 0.1 * (BETA == 0.25):.6f}")\n';
  const shown = (request: Recorded) => /# The best version[\s\S]*?```python\n([\s\S]*?)\n```/.exec(request.body.messages.map((m) => m.content).join('\n'))![1];
  fake.requests.length = 0;
  fake.script.length = 0;
  fake.script.push(
    { content: answer('halve ALPHA', [{ path: 'train.py', search: 'ALPHA = 0.5', replace: 'ALPHA = 0.25' }]) },
    // Asked while ALPHA's change trains: the version it is shown is the baseline, and it rewrites the file whole.
    (request) => ({ content: answer('halve BETA', [{ path: 'train.py', search: '', replace: `${shown(request).replace('BETA = 0.5', 'BETA = 0.25')}\n` }]) }),
  );
  fake.fallback = () => ({ content: answer('reword a comment', [{ path: 'train.py', search: '# another', replace: '# the other knob' }]) });
  const repo = await makeRepo({ 'train.py': TRAIN });
  const running = workers(repo, 1);
  await start(['--repo', repo, '--tag', 'try-rewrite', '--proposer', 'llm', '--model', 'test-model', '--parallel', '1', '--ahead', '1',
    '--baseline-runs', '1', '--min-improvement', '0', '--max-experiments', '4']);

  const view = await completed('try-rewrite', running);
  assert.equal(view.state, 'completed', view.reason);
  assert.ok(shown(fake.requests[1]).includes('ALPHA = 0.5'), 'the rewrite was made on the baseline');
  const records = await readRecords(repo, 'try-rewrite');
  const byDescription = (d: string) => records.find((r) => r.description === d)!;
  assert.equal(byDescription('halve ALPHA').status, 'keep');
  assert.equal(byDescription('halve BETA').status, 'keep', byDescription('halve BETA').reason);
  assert.ok(Math.abs(byDescription('halve BETA').valBpb! - 0.8) < 1e-9, 'it trained with both changes');
  const tip = gitIn(repo, 'show', 'autoresearch/try-rewrite:train.py');
  assert.match(tip, /^ALPHA = 0\.25 {2}# one knob$/m);
  assert.match(tip, /^BETA = 0\.25 {2}# another$/m);
});
