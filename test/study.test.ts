// The study's state machine through thousands of simulated nights (test/study-sim.ts): random orderings,
// durations and faults, every invariant checked after every step. A failure prints the one line that
// replays it, shrunk by fast-check to its shortest form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { simulate, type Fault, type Night } from './study-sim';

const NIGHTS = Number(process.env.SIM_NIGHTS ?? 10_000);
const FAULTS: Fault[] = ['terminate', 'fail', 'timeout', 'workerDies', 'proposerFails', 'proposerRefuses', 'startFails', 'historyFull', 'pause', 'stop', 'stopCancel'];

const night: fc.Arbitrary<Night> = fc.record({
  parallel: fc.integer({ min: 1, max: 8 }),
  historySize: fc.integer({ min: 1, max: 5 }),
  ahead: fc.option(fc.integer({ min: 0, max: 4 })),
  maxExperiments: fc.integer({ min: 1, max: 14 }),
  baselineRuns: fc.integer({ min: 1, max: 3 }),
  proposer: fc.constantFrom('llm' as const, 'sweep' as const),
  tokenBudget: fc.option(fc.integer({ min: 0, max: 20_000 })),
  untilMs: fc.option(fc.integer({ min: 0, max: 400_000 })),
  verify: fc.boolean(),
  thinkMs: fc.integer({ min: 10, max: 20_000 }),
  trainMs: fc.integer({ min: 1_000, max: 40_000 }),
  noise: fc.constantFrom(0, 0.001, 0.004),
  faults: fc.array(fc.record({ atEvent: fc.integer({ min: 1, max: 300 }), fault: fc.constantFrom(...FAULTS) }), { maxLength: 6 }),
  rolls: fc.array(fc.nat(999), { maxLength: 64 }),
});

function replayLine(details: fc.RunDetails<[Night]>): string {
  return `SIM_SEED=${details.seed} SIM_PATH=${details.counterexamplePath} SIM_NIGHTS=1 node --import tsx --test test/study.test.ts`;
}

test(`${NIGHTS} simulated nights keep every invariant`, () => {
  const replay = process.env.SIM_SEED === undefined ? {} : { seed: Number(process.env.SIM_SEED), path: process.env.SIM_PATH };
  const details = fc.check(
    fc.property(night, (n) => void simulate(n)),
    { numRuns: NIGHTS, ...replay },
  );
  if (details.failed) {
    const [shrunk] = details.counterexample!;
    assert.fail(`${String((details.errorInstance as Error)?.message ?? details.errorInstance)}\nnight: ${JSON.stringify(shrunk)}\nreplay: ${replayLine(details)}`);
  }
});
