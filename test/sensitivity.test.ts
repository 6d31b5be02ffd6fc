// `sensitivity` through the CLI, on a fixture whose truth is known: val_bpb is a parabola in log2(LR) with its
// floor at LR = 0.02, and DECAY and USE_BIAS do nothing; every training adds noise of σ = 0.001 drawn from its
// seed and its code.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resultsDir } from '../activities/results';
import { startRun } from '../scripts/runs';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import { morningWorkflowId, workflowIdFor, type Sensitivity } from '../workflows/types';
import { cli, closeDevServer, devServer, gitIn, makeRepo, runWorkers, studyConfig } from './helpers';

const TRAIN = `LR = 0.01  # learning rate: best at 0.02
DECAY = 0.5  # does nothing
USE_BIAS = True  # does nothing
import hashlib, math, os, random
code = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
noise = random.Random(f"{os.environ['AUTORESEARCH_SEED']}-{code}").gauss(0, 0.001)
print("---")
print(f"val_bpb:          {1.0 + 0.01 * math.log2(LR / 0.02) ** 2 + noise:.6f}")
`;

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

test('sensitivity ranks the knob that matters first, finds its optimum, and calls the others not sensitive', async () => {
  const repo = await makeRepo({ 'train.py': TRAIN });
  const config = studyConfig(repo, 'knobs', { maxExperiments: 1, baselineRuns: 1, verifyRuns: 0, timeoutMs: 20_000 });
  await startRun(async () => env.client, config);
  const studied = env.client.workflow.getHandle(workflowIdFor('knobs')).result();
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, studied);

  const server = { TEMPORAL_ADDRESS: env.address };
  const asked = cli(['sensitivity', 'knobs', '--runs', '3'], server, 180_000);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, asked);
  const { code, stdout, stderr } = await asked;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^LR: sensitive: spread 0\.\d{4}, \d+\.\d× the noise, p=.* \(Holm\); best at 0\.02$/m);
  assert.match(stdout, /^DECAY: not sensitive: /m);
  assert.match(stdout, /^USE_BIAS: not sensitive: /m);
  assert.match(stdout, /^ +0\.01 {2}1\.01\d{2} ± 0\.\d{4} \(n=3\) {2}\(the best\)$/m);
  assert.match(stdout, /^ +0\.02 {2}(0\.99|1\.00)\d{2} ± 0\.\d{4} \(n=3\) {2}lead: beats the best beyond the noise$/m);

  const answer: Sensitivity = JSON.parse(await readFile(join(resultsDir(repo, 'knobs'), 'sensitivity.json'), 'utf8'));
  assert.equal(answer.knobs[0].knob, 'LR', 'the most sensitive knob first');
  assert.deepEqual(answer.knobs.map((k) => [k.knob, k.sensitive]).sort(), [['DECAY', false], ['LR', true], ['USE_BIAS', false]]);
  const lr = answer.knobs[0];
  assert.deepEqual(lr.points.map((p) => p.value), ['0.0025', '0.005', '0.01', '0.02', '0.04']);
  assert.equal(lr.bestValue, '0.02', 'the optimum in its bracket');
  assert.deepEqual(lr.leads, ['0.02']);
  for (const p of lr.points) {
    const truth = 1 + 0.01 * Math.log2(Number(p.value) / 0.02) ** 2;
    assert.ok(p.low <= truth && truth <= p.high, `LR = ${p.value}: ${truth} in [${p.low}, ${p.high}]`);
  }
  const decay = answer.knobs.find((k) => k.knob === 'DECAY')!;
  assert.deepEqual(decay.points.map((p) => p.value), ['0.125', '0.25', '0.5'], 'a fraction stays below 1');
  assert.ok(decay.aboveNoise < lr.aboveNoise / 5, `${decay.aboveNoise} vs ${lr.aboveNoise}`);
  assert.deepEqual(answer.knobs.find((k) => k.knob === 'USE_BIAS')!.points.map((p) => p.value), ['False', 'True']);
  // Each moved value is a commit of its own, kept under a ref, so a lead can be checked out.
  const lead = lr.points.find((p) => p.value === '0.02')!;
  assert.equal(gitIn(repo, 'rev-parse', 'refs/autoresearch/knobs/sensitivity/LR-0.02'), lead.commit);
  assert.match(gitIn(repo, 'show', `${lead.commit}:train.py`), /^LR = 0\.02 {2}# learning rate/);
  const described = await env.client.workflow.getHandle(morningWorkflowId('knobs', 'sensitivity')).describe();
  assert.equal(described.typedSearchAttributes.get(RESEARCH_TAG), 'knobs.sensitivity');

  // The report: a table per knob, leads named, and a panel per knob, most sensitive first.
  const report = await cli(['report', 'knobs', '--repo', repo], server);
  assert.equal(report.code, 0, report.stderr);
  const dir = join(resultsDir(repo, 'knobs'), 'report');
  const summary = await readFile(join(dir, 'summary.md'), 'utf8');
  assert.match(summary, /^- sensitivity: LR sensitive \(best 0\.02, p=.*\); .*chart: sensitivity\.svg/m);
  assert.match(summary, /^- leads for the next night: LR = 0\.02$/m);
  assert.match(summary, /^\| 0\.02 \| (0\.99|1\.00)\d+ \| 0\.\d+ \| 3 \| lead \|$/m);
  const svg = await readFile(join(dir, 'sensitivity.svg'), 'utf8');
  const panels = [...svg.matchAll(/>(LR|DECAY|USE_BIAS): (not )?sensitive: spread/g)].map((m) => m[1]);
  assert.deepEqual(panels, answer.knobs.map((k) => k.knob), 'one panel per knob, in the order of sensitivity');
  assert.match(svg, /aria-label="LR = 0\.02: val_bpb (0\.99|1\.00)\d+ \(n=3\), lead"/);

  // --knobs narrows it; a knob that is not there is one line.
  const one = cli(['sensitivity', 'knobs', '--knobs', 'USE_BIAS', '--runs', '2', '--json'], server, 120_000);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, one);
  const narrowed = await one;
  assert.equal(narrowed.code, 0, narrowed.stderr);
  assert.deepEqual((JSON.parse(narrowed.stdout) as Sensitivity).knobs.map((k) => k.knob), ['USE_BIAS']);
  const missing = cli(['sensitivity', 'knobs', '--knobs', 'MOMENTUM'], server);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 1 }, missing);
  const refused = await missing;
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /^autoresearch: sensitivity: no knob MOMENTUM in train\.py \(knobs: LR, DECAY, USE_BIAS\)$/m);
});
