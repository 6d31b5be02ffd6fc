// `compare` through the CLI, on a fixture whose truth is known: the `wide` branch is worth 0.01, the `tidy`
// branch only rewrites a comment, and every training adds noise of σ = 0.002 drawn from its seed and its code
// (two versions of train.py on one seed do not share their noise, as real trainings would not).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resultsDir } from '../activities/results';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import { compareArms } from '../activities/morning';
import { morningWorkflowId, type Comparison, type RunConfig } from '../workflows/types';
import { cli, closeDevServer, devServer, gitIn, makeRepo, runWorkers } from './helpers';

const TRAIN = `WIDTH = 1  # the model's width
import hashlib, os, random
code = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
noise = random.Random(f"{os.environ['AUTORESEARCH_SEED']}-{code}").gauss(0, 0.002)
print("---")
print(f"val_bpb:          {1.0 - 0.01 * (WIDTH == 2) + noise:.6f}")
`;

let env: TestWorkflowEnvironment;
before(async () => (env = await devServer()));
after(() => closeDevServer(env));

async function branch(repo: string, name: string, path: string, content: string): Promise<void> {
  gitIn(repo, 'checkout', '--quiet', '-b', name, 'main');
  await writeFile(join(repo, path), content);
  gitIn(repo, 'commit', '--quiet', '-am', name);
  gitIn(repo, 'checkout', '--quiet', 'main');
}

async function fixture(): Promise<string> {
  const repo = await makeRepo({ 'train.py': TRAIN, 'prepare.py': '# the fixed harness\n' });
  await branch(repo, 'wide', 'train.py', TRAIN.replace('WIDTH = 1', 'WIDTH = 2'));
  await branch(repo, 'tidy', 'train.py', TRAIN.replace("# the model's width", '# width of the model'));
  await branch(repo, 'new-data', 'prepare.py', '# another harness\n');
  return repo;
}

const FLAGS = ['--command', 'python3 train.py', '--timeout', '20s', '--budget', '1', '--parallel', '2'];

test('compare ranks the better ref first and says the other two cannot be told apart', async () => {
  const repo = await fixture();
  const server = { TEMPORAL_ADDRESS: env.address };
  const asked = cli(['compare', '--repo', repo, 'main', 'wide', 'tidy', '--runs', '5', ...FLAGS], server, 180_000);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, asked);
  const { code, stdout, stderr } = await asked;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^ranking: 1\. wide; 2\. (main, tidy|tidy, main) \(cannot be told apart\)$/m);
  assert.match(stdout, /^wide {2}0\.99\d{2} ± 0\.\d{4} \(n=5\)$/m);
  assert.match(stdout, /^wide vs (main|tidy): .*\(Holm\): wide is better$/m);
  assert.match(stdout, /^(main vs tidy|tidy vs main): .*\(Holm\): cannot be told apart$/m);

  const comparison: Comparison = JSON.parse(await readFile(join(resultsDir(repo, 'compare'), 'comparison.json'), 'utf8'));
  assert.deepEqual(comparison.refs.map((r) => [r.ref, r.rank, r.n]), [['main', 2, 5], ['wide', 1, 5], ['tidy', 2, 5]]);
  assert.equal(comparison.refs[1].commit, gitIn(repo, 'rev-parse', 'wide'));
  for (const r of comparison.refs) {
    const truth = r.ref === 'wide' ? 0.99 : 1.0;
    assert.ok(r.low <= truth && truth <= r.high, `${r.ref}: ${truth} in [${r.low}, ${r.high}]`);
  }
  const verdicts = Object.fromEntries(comparison.pairs.map((p) => [[p.a, p.b].sort().join('|'), p]));
  assert.equal(verdicts['main|wide'].a, 'wide');
  assert.ok(verdicts['main|wide'].real && verdicts['tidy|wide'].real);
  assert.equal(verdicts['main|tidy'].real, false);
  assert.ok(verdicts['main|tidy'].pHolm >= verdicts['main|tidy'].p, 'Holm only ever raises a p');

  const described = await env.client.workflow.getHandle(morningWorkflowId('compare', 'compare')).describe();
  assert.equal(described.typedSearchAttributes.get(RESEARCH_TAG), 'compare.compare', 'its own page in the Web UI');

  // The report: a tag only compare has used gets the comparison alone, its table and its chart.
  const report = await cli(['report', 'compare', '--repo', repo], server);
  assert.equal(report.code, 0, report.stderr);
  const dir = join(resultsDir(repo, 'compare'), 'report');
  assert.match(report.stdout, new RegExp(`^chart: +${dir}/compare\\.svg$`, 'm'));
  const summary = await readFile(join(dir, 'summary.md'), 'utf8');
  assert.match(summary, /^- compare: 1\. wide; 2\. (main, tidy|tidy, main) \(cannot be told apart\); chart: compare\.svg/m);
  assert.match(summary, /^\| wide \| [0-9a-f]{7} \| 1 \| 0\.99\d+ \| 0\.\d+ \| 5 \| 0 \|$/m);
  assert.match(summary, /^\| wide \| main \| \+0\.0\d+ \| \[\+0\.\d+, \+0\.\d+\] \| .* \| real \|$/m);
  const svg = await readFile(join(dir, 'compare.svg'), 'utf8');
  for (const r of comparison.refs) assert.match(svg, new RegExp(`aria-label="${r.ref} val_bpb ${r.mean.toFixed(6)} \\(n=5\\), rank ${r.rank}"`));

  // --json prints what comparison.json holds.
  const again = cli(['compare', '--repo', repo, 'main', 'wide', '--tag', 'pair', '--runs', '2', '--json', ...FLAGS], server, 120_000);
  await runWorkers(env.nativeConnection, { checkout: repo, slots: 2 }, again);
  const json = await again;
  assert.equal(json.code, 0, json.stderr);
  const printed: Comparison = JSON.parse(json.stdout);
  assert.deepEqual(printed, JSON.parse(await readFile(join(resultsDir(repo, 'pair'), 'comparison.json'), 'utf8')));
  assert.deepEqual(printed.refs.map((r) => r.ref), ['main', 'wide']);
});

test('compare refuses, in one line, refs it cannot compare fairly', async () => {
  const repo = await fixture();
  const server = { TEMPORAL_ADDRESS: env.address };
  const cases: [string[], RegExp][] = [
    [['main'], /^autoresearch: compare: name at least two refs of /],
    [['main', 'nope'], /^autoresearch: compare: nope is not a branch, tag, commit or experiment \(TAG-N\) of /],
    [['main', 'night-7'], /^autoresearch: compare: night-7 is not a branch, tag, commit or experiment \(TAG-N\) of /],
    [['main', 'main'], /^autoresearch: compare: a ref is named twice \(main main\)/],
    [['main', 'new-data'], /^autoresearch: compare: new-data changes the harness against main \(files other than train\.py\): their scores cannot be compared/],
  ];
  for (const [refs, refused] of cases) {
    const { code, stderr } = await cli(['compare', '--repo', repo, ...refs, ...FLAGS], server);
    assert.equal(code, 2, `${refs.join(' ')}: ${stderr}`);
    assert.match(stderr, refused);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
  }
});

test("compare takes an experiment by its id: the commit of the night's own ref for it", async () => {
  const repo = await fixture();
  gitIn(repo, 'update-ref', 'refs/autoresearch/night/night-3', gitIn(repo, 'rev-parse', 'wide'));
  const config = { repo, editable: ['train.py'] } as RunConfig;
  const { arms } = await compareArms(config, ['main', 'night-3']);
  assert.deepEqual(arms.map((a) => [a.name, a.commit]), [['main', gitIn(repo, 'rev-parse', 'main')], ['night-3', gitIn(repo, 'rev-parse', 'wide')]]);
});
