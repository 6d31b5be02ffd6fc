// The study's state machine through thousands of simulated nights (test/study-sim.ts): random orderings,
// durations and faults, every invariant checked after every step. A failure prints the one line that
// replays it, shrunk by fast-check to its shortest form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newStudy, step, type Answer, type Event } from '../workflows/study';
import type { RunConfig } from '../workflows/types';
import { nightArbitrary, simulate, type Night } from './study-sim';

const NIGHTS = Number(process.env.SIM_NIGHTS ?? 10_000);


function replayLine(details: fc.RunDetails<[Night]>): string {
  return `SIM_SEED=${details.seed} SIM_PATH=${details.counterexamplePath} SIM_NIGHTS=1 node --import tsx --test test/study.test.ts`;
}

test(`${NIGHTS} simulated nights keep every invariant`, () => {
  const replay = process.env.SIM_SEED === undefined ? {} : { seed: Number(process.env.SIM_SEED), path: process.env.SIM_PATH };
  const details = fc.check(
    fc.property(nightArbitrary, (n) => void simulate(n)),
    { numRuns: NIGHTS, ...replay },
  );
  if (details.failed) {
    const [shrunk] = details.counterexample!;
    assert.fail(`${String((details.errorInstance as Error)?.message ?? details.errorInstance)}\nnight: ${JSON.stringify(shrunk)}\nreplay: ${replayLine(details)}`);
  }
});

test('the continue-as-new input stays under 256 KB with 64 slots training, a full queue and long descriptions', () => {
  const config: RunConfig = {
    tag: 'big', repo: '/r', proposer: 'llm', editable: ['train.py'], command: 'python3 train.py', timeoutMs: 60_000,
    budgetSeconds: 30, parallel: 64, seed: 1, minImprovement: 0, baselineRuns: 3, experimentsPerHistory: 300,
  };
  const sha = (i: number) => i.toString(16).padStart(40, 'a');
  const long = (what: string, i: number) => `${what} ${i}: ${'x'.repeat(200)}`.slice(0, 200);
  const metrics = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`metric_${i}`, i / 7]));
  const setup = { baseCommit: sha(0), harnessDigest: sha(1), gpuQueue: 'gpu-abc' };
  let study = newStudy();
  let commits = 0;
  // Answers in time order: a training takes 30 s, a proposal 20 s, every other answer 50 ms.
  const queue: Event[] = [{ type: 'prepared', baseCommit: sha(0), at: 0 }];
  const later = (ms: number, at: number, e: Answer) => queue.push({ ...e, at: at + ms });
  let largest = 0;
  let carried = 0;
  while (queue.length > 0) {
    queue.sort((a, b) => a.at - b.at);
    const event = queue.shift()!;
    const next = step(config, study, event);
    study = next.state;
    const at = event.at;
    for (const c of next.commands) {
      if (c.type === 'propose') later(20_000, at, { type: 'proposed', key: c.key, commit: sha(++commits), description: long('proposal', c.key), change: long('change', c.key), tokens: 900 });
      if (c.type === 'merge') later(50, at, { type: 'merged', key: c.key, onto: c.onto, commit: sha(++commits) });
      if (c.type === 'start') {
        later(50, at, { type: 'started', n: c.experiment.n });
        // Each scores a little better than the one before, so keeps pile up; every fifth crashes with a long log.
        const crash = c.experiment.n % 5 === 4;
        const result = {
          exitCode: crash ? 1 : 0, timedOut: false, seconds: 30, worker: 'gpu-host-slot-12', sandboxed: true, logTail: crash ? 'y'.repeat(4_000) : '',
          metrics: crash ? {} : { ...metrics, val_bpb: 2 - c.experiment.n / 1_000 },
        };
        c.experiment.seeds.forEach((_, run) => later(30_000, at, { type: 'trained', n: c.experiment.n, run, commit: c.experiment.commit ?? sha(++commits), result }));
      }
      if (c.type === 'signal') later(50, at, { type: 'signalled', n: c.n, kind: c.signal.kind, ok: true });
      if (c.type === 'signal' && c.signal.kind === 'repeat') {
        const x = study.experiments.find((y) => y.n === c.n)!;
        later(30_000, at, { type: 'trained', n: c.n, run: x.seeds.length - 1, commit: x.commit, result: x.results[0]! });
      }
      if (c.type === 'record') later(50, at, { type: 'recorded', n: c.row.n });
      if (c.type === 'wake') queue.push({ type: 'wake', at: c.at });
      if (c.type === 'continueAsNew') {
        largest = Math.max(largest, Buffer.byteLength(JSON.stringify({ setup, study })));
        carried++;
        queue.push({ type: 'resumed', at });
        for (const x of study.experiments) if (x.child === 'running') later(1, at, { type: 'wake' });
      }
    }
    if (study.nextNumber >= 1_500) break;
  }
  assert.ok(carried >= 3, `${carried} continue-as-new`);
  assert.ok(study.experimentsKept >= 10, `${study.experimentsKept} keeps`);
  assert.ok(largest < 256 * 1024, `the carried state reached ${Math.round(largest / 1024)} KB`);
  console.log(`${carried} continue-as-new over ${study.nextNumber} experiments and ${study.experimentsKept} keeps: the largest carried input ${Math.round(largest / 1024)} KB`);
});
