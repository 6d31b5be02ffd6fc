// `npm run bench`: does a GPU ever wait? Runs whole studies on a local dev server with the real
// workflow and workers, a training that sleeps T seconds (a GPU's work without the CPU) and a
// stand-in model that thinks L seconds, then prints, from the trainings' own clocks, each slot's busy
// fraction, experiments per slot-hour against the limit 3600 / T, and the idle gap between one
// training's end and the next start (the orchestration's overhead when L = 0), for proposals ahead of
// the slots (`ahead` left to the run) beside `--ahead 0`; then one run across continue-as-new
// boundaries, a model that only ever turns one knob (every keep conflicts with every queued proposal, so
// a free slot must train a rerun of the best rather than wait a think time), how long the CLI takes to
// answer, and how many nights a second the state machine's simulator plays.
//
//   npm run bench                   T = 30 s, L ∈ {0, 15} s, 1 and 4 slots, 6 experiments a slot (~40 min)
//   npm run bench -- --quick        T = 5 s, L ∈ {0, 3} s, 4 experiments a slot (~4 min)
//   npm run bench -- decisions      the decision rule alone (no server): its keep rate and trainings for true
//                                   gains of 0 to 5σ, 10,000 decisions each, and on a night's mix (~1 min)
//   npm run bench -- box            what the box costs one training: boxed vs --no-sandbox, interleaved (~30 s)
//   npm run bench -- search         sweep vs tpe vs cmaes: median gap to a known optimum after 20 and 50 trials (~5 min)
//   --train S          training seconds T
//   --think L,L        the model's think times, seconds
//   --slots N,N        slot counts to compare
//   --per-slot N       experiments per slot in each run (the baseline included)
//   --history-size N   the boundary run's continue-as-new interval, experiments (default 4)
//   --jobs N           runs side by side, each with its own repo and GPU queue (default 1: one after another, so no
//                      run's overhead is another's CPU; 2 halves the time on this 2-core machine)
//   --no-boundary      skip the continue-as-new run
//   --no-noise         skip the noisy run (what confirmation runs cost on a night keeping ~15-20%)
//   --no-one-knob      skip the one-knob runs (L = the largest think time, 1 and 4 slots as --slots)
//   --no-cli           skip the CLI latency figures
//   --only LABEL,…     run only these runs (labels as the progress lines name them: s1-l0-ahead-auto, one-knob-s4-l15)
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import type { Worker } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readRecords } from '../activities/results';
import { createControlWorker } from '../activities/worker';
import { createGpuWorker } from '../gpu-worker/worker';
import { startRun } from '../scripts/runs';
import { workflowIdFor, type RunConfig } from '../workflows/types';
import { printBoxOverhead } from './bench/box-overhead';
import { printSearch } from './bench/search';
import { cliLatency, type Latency } from './bench/cli-latency';
import { busyFraction, busyWithin, median, perSlotHour, slotGaps, type Training } from './bench/figures';
import { HARNESS_PY, MIN_IMPROVEMENT, NOISE_SIGMA, NOISY_HARNESS_PY, TRAIN_PY, programFor, thinkingModel } from './bench/stand-ins';
import { devServer, makeRepo } from './helpers';
import { nightArbitrary, simulate } from './study-sim';
import { CONTEXTS, EFFECTS, RULES, generator, nightMix, nights, rates } from './decision-sim';
import { DEFAULT_FALSE_KEEP } from '../workflows/decide';

const TIMEOUT_ALLOWANCE_S = 60; // a training's hard limit is T plus this: python start-up never times out
const CLI_RUNS = 5; // each command's median is over this many runs
const SIM_NIGHTS = 2_000;
const DECISIONS = 10_000;
const NIGHTS = 500;
const NAMESPACE = 'default';

interface Options {
  trainSeconds: number;
  thinkSeconds: number[];
  slots: number[];
  perSlot: number;
  historySize: number;
  jobs: number;
  boundary: boolean;
  noise: boolean;
  oneKnob: boolean;
  cli: boolean;
  only: string[] | null;
}

class UsageError extends Error {}

function numbers(flag: string, text: string, min: number, whole = false): number[] {
  const values = text.split(',').map(Number);
  if (values.some((v) => !Number.isFinite(v) || v < min || (whole && !Number.isInteger(v)))) {
    throw new UsageError(`--${flag}: "${text}" is not a list of ${whole ? 'whole numbers' : 'numbers'} ≥ ${min}`);
  }
  return values;
}

function count(flag: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(`--${flag}: "${text}" is not a whole number ≥ ${min}`);
  }
  return Number(text);
}

function options(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: 'boolean' }, train: { type: 'string' }, think: { type: 'string' }, slots: { type: 'string' },
        'per-slot': { type: 'string' }, 'history-size': { type: 'string' }, jobs: { type: 'string' },
        'no-boundary': { type: 'boolean' }, 'no-noise': { type: 'boolean' }, 'no-one-knob': { type: 'boolean' },
        'no-cli': { type: 'boolean' }, only: { type: 'string' },
      },
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message.split('. ')[0]); // parseArgs adds advice about positionals
  }
  const quick = parsed.quick ?? false;
  return {
    trainSeconds: parsed.train === undefined ? (quick ? 5 : 30) : numbers('train', parsed.train, 1)[0],
    thinkSeconds: parsed.think === undefined ? (quick ? [0, 3] : [0, 15]) : numbers('think', parsed.think, 0),
    slots: parsed.slots === undefined ? [1, 4] : numbers('slots', parsed.slots, 1, true),
    perSlot: count('per-slot', parsed['per-slot'], quick ? 4 : 6, 2),
    historySize: count('history-size', parsed['history-size'], 4),
    jobs: count('jobs', parsed.jobs, 1),
    boundary: !parsed['no-boundary'],
    noise: !parsed['no-noise'],
    oneKnob: !parsed['no-one-knob'],
    cli: !parsed['no-cli'],
    only: parsed.only === undefined ? null : parsed.only.split(','),
  };
}

interface Scenario {
  label: string; // also the run's tag
  slots: number;
  thinkSeconds: number;
  ahead: 'auto' | 0; // auto: the run's default, enough to keep every slot fed
  historySize?: number;
  noise?: boolean; // seeded noise, the baseline trained 3 times, near-ties confirmed: what confirmation costs
  oneKnob?: boolean; // the model turns knob A only
}

function scenarios(opts: Options): Scenario[] {
  const list: Scenario[] = [];
  for (const slots of opts.slots) {
    for (const thinkSeconds of opts.thinkSeconds) {
      for (const ahead of ['auto', 0] as const) {
        list.push({ label: `s${slots}-l${thinkSeconds}-ahead-${ahead}`, slots, thinkSeconds, ahead });
      }
    }
  }
  if (opts.noise) {
    const slots = Math.max(...opts.slots);
    list.push({ label: `noise-s${slots}`, slots, thinkSeconds: 0, ahead: 'auto', noise: true });
  }
  if (opts.oneKnob) {
    const thinkSeconds = Math.max(...opts.thinkSeconds);
    for (const slots of opts.slots) list.push({ label: `one-knob-s${slots}-l${thinkSeconds}`, slots, thinkSeconds, ahead: 'auto', oneKnob: true });
  }
  if (opts.boundary) {
    const slots = Math.max(...opts.slots);
    const thinkSeconds = Math.max(...opts.thinkSeconds);
    const label = `boundary-s${slots}-l${thinkSeconds}-every-${opts.historySize}`;
    list.push({ label, slots, thinkSeconds, ahead: 'auto', historySize: opts.historySize });
  }
  if (!opts.only) return list;
  const unknown = opts.only.filter((label) => !list.some((s) => s.label === label));
  if (unknown.length) throw new UsageError(`--only: no run is labelled ${unknown.join(', ')} (runs: ${list.map((s) => s.label).join(', ')})`);
  return list.filter((s) => opts.only!.includes(s.label));
}

interface Outcome {
  scenario: Scenario;
  trainings: Training[];
  confirmation: { extraSeconds: number; allSeconds: number; runs: number; trainings: number };
  candidates: number;
  keeps: number;
  crashes: number;
  reruns: number; // fresh-seed runs of the best a free slot trained while no proposal was ready
  wallSeconds: number;
  boundaries: number[]; // epoch seconds at which a run continued as new
  error?: string;
}

/**
 * A python3 outside HOME: the training's box hides HOME, and a version manager's shim there would
 * add its own start-up to every gap.
 */
function pythonExecutable(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && !resolve(dir).startsWith(homedir()) && existsSync(join(dir, 'python3'))) return join(dir, 'python3');
  }
  throw new UsageError('the bench needs a python3 on PATH outside HOME (the training\'s box hides HOME)');
}

type BaseConfig = Omit<RunConfig, 'timeoutMs' | 'budgetSeconds' | 'parallel'>;

type RepoShape = Pick<Scenario, 'label' | 'thinkSeconds' | 'slots' | 'noise' | 'oneKnob'>;

/** A fresh research repo (program.md names the run, so every repo has its own root commit and GPU queue). */
async function benchRun({ label, thinkSeconds, slots, noise, oneKnob }: RepoShape, python: string, repos: string[]): Promise<BaseConfig> {
  const harness = noise ? NOISY_HARNESS_PY : HARNESS_PY;
  const files = { 'train.py': TRAIN_PY, 'harness.py': harness, 'program.md': programFor(label, thinkSeconds, oneKnob) };
  const repo = await makeRepo(files);
  repos.push(repo);
  return {
    tag: label, repo, proposer: 'llm', model: 'bench', editable: ['train.py'], command: `${python} train.py`, seed: 1,
    // The baseline's repeats fill every slot while the first proposals are made (as a real run's do, to
    // measure the noise); without noise, nothing else is trained twice.
    ...(noise ? { minImprovement: 0, baselineRuns: 3, confirmZ: 2 } : { minImprovement: MIN_IMPROVEMENT, baselineRuns: slots, confirmZ: 0 }),
  };
}

async function continueAsNewTimes(env: TestWorkflowEnvironment, tag: string): Promise<number[]> {
  const times: number[] = [];
  for await (const run of env.client.workflow.list({ query: `WorkflowId = '${workflowIdFor(tag)}'` })) {
    if (run.status.name === 'CONTINUED_AS_NEW' && run.closeTime) times.push(run.closeTime.getTime() / 1000);
  }
  return times.sort((a, b) => a - b);
}

/** What the run left in its results: each training's own start and end, and the decisions. */
async function outcomeOf(env: TestWorkflowEnvironment, s: Scenario, repo: string): Promise<Omit<Outcome, 'wallSeconds'>> {
  const records = await readRecords(repo, s.label);
  // Every training of every experiment (the baseline's repeats, a confirmation), by its own clock.
  const trainings = records.flatMap((r) => (r.runs ?? []).map((run) => run.metrics)).flatMap((m) =>
    m.train_start && m.train_end ? [{ start: m.train_start, end: m.train_end }] : []);
  const candidates = records.filter((r) => r.n > 0);
  const runs = candidates.flatMap((r) => r.runs ?? []);
  const confirmation = {
    extraSeconds: candidates.flatMap((r) => (r.runs ?? []).slice(1)).reduce((sum, run) => sum + run.seconds, 0),
    allSeconds: records.flatMap((r) => r.runs ?? []).reduce((sum, run) => sum + run.seconds, 0),
    runs: runs.length - candidates.filter((r) => r.runs).length,
    trainings: records.flatMap((r) => r.runs ?? []).length,
  };
  return {
    scenario: s, trainings, confirmation, candidates: candidates.length, keeps: candidates.filter((r) => r.status === 'keep').length,
    crashes: records.filter((r) => r.status === 'crash').length,
    reruns: records.filter((r) => r.description.startsWith('rerun of the best')).length,
    boundaries: s.historySize ? await continueAsNewTimes(env, s.label) : [],
  };
}

async function runScenario(
  env: TestWorkflowEnvironment, s: Scenario, opts: Options, python: string, repos: string[],
): Promise<Outcome> {
  const base = await benchRun(s, python, repos);
  const config: RunConfig = {
    ...base, timeoutMs: (opts.trainSeconds + TIMEOUT_ALLOWANCE_S) * 1000, budgetSeconds: opts.trainSeconds,
    // The baseline is one experiment of `slots` trainings: every slot then trains perSlot times, so the last round
    // is whole (a short run's ragged tail is not the pipeline's; over a night of 100 a slot it is negligible).
    parallel: s.slots, maxExperiments: 1 + s.slots * (opts.perSlot - 1),
    ...(s.ahead === 0 ? { ahead: 0 } : {}), ...(s.historySize ? { experimentsPerHistory: s.historySize } : {}),
  };
  console.error(`[bench] ${s.label}: ${config.maxExperiments} experiments…`);
  const started = Date.now();
  const gpu = await createGpuWorker(env.nativeConnection, NAMESPACE, { checkout: base.repo, slots: s.slots });
  await startRun(async () => env.client, config);
  const finished = env.client.workflow.getHandle(workflowIdFor(s.label)).result();
  await gpu.runUntil(finished.catch(() => undefined));
  const error = await finished.then(
    () => undefined,
    (err: Error) => (err.cause as Error | undefined)?.message ?? err.message,
  );
  const wallSeconds = (Date.now() - started) / 1000;
  console.error(`[bench] ${s.label}: done in ${wallSeconds.toFixed(0)} s${error ? ` (failed: ${error})` : ''}`);
  return { ...(await outcomeOf(env, s, base.repo)), wallSeconds, error };
}

/** Runs `jobs` items at a time, in the order given. */
async function runAll<T, R>(items: T[], jobs: number, each: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await each(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, lane));
  return results;
}

const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

function key(s: Scenario): string {
  return `slots=${s.slots} think=${s.thinkSeconds}s ahead=${s.ahead}`;
}

interface Figures {
  busy: number;
  perSlotHour: number;
  medianGap: number;
  maxGap: number;
}

function figuresOf(o: Outcome): Figures | null {
  if (o.error || o.trainings.length < 2) return null;
  const { gaps } = slotGaps(o.trainings, o.scenario.slots);
  return {
    busy: busyFraction(o.trainings, o.scenario.slots), perSlotHour: perSlotHour(o.trainings, o.scenario.slots),
    medianGap: median(gaps), maxGap: Math.max(...gaps),
  };
}

const COLUMNS = [
  'slots', 'think_s', 'ahead', 'trained', 'keeps', 'crashes',
  'busy', 'exp/slot-h', 'limit', 'median_gap_s', 'max_gap_s', 'wall_s',
];

function row(o: Outcome, f: Figures | null, limit: number): string[] {
  const { scenario: s } = o;
  const head = [s.slots, s.thinkSeconds, s.ahead, o.trainings.length, `${o.keeps}/${o.candidates}`, o.crashes];
  if (!f) return [...head, `failed: ${o.error ?? 'too few trainings'}`].map(String);
  const tail = [
    fixed(f.busy, 3), fixed(f.perSlotHour, 1), fixed(limit, 1),
    fixed(f.medianGap, 2), fixed(f.maxGap, 2), fixed(o.wallSeconds, 0),
  ];
  return [...head, ...tail].map(String);
}

/** The side-by-side table, then the same figures as `key: value` lines to grep. */
function printTable(outcomes: Outcome[], opts: Options): void {
  const limit = 3600 / opts.trainSeconds;
  const figures = outcomes.map(figuresOf);
  const rows = outcomes.map((o, i) => row(o, figures[i], limit));
  const widths = COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const cells of [COLUMNS, ...rows]) {
    console.log(cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
  }
  console.log('');
  for (const [i, { scenario: s }] of outcomes.entries()) {
    const f = figures[i];
    if (!f) continue;
    console.log(`busy_fraction[${key(s)}]: ${fixed(f.busy, 3)}`);
    console.log(`experiments_per_slot_hour[${key(s)}]: ${fixed(f.perSlotHour, 1)} (limit ${fixed(limit, 1)})`);
    if (s.thinkSeconds === 0) console.log(`overhead_per_experiment_s[${key(s)}]: ${fixed(f.medianGap, 2)}`);
  }
}

/** The boundary run: the busy fraction within ±T of each continue-as-new, beside the run's own. */
function printBoundary(o: Outcome, opts: Options): void {
  const s = o.scenario;
  console.log(`\nboundary run: ${key(s)} history-size=${s.historySize}: ${o.trainings.length} trainings, ` +
    `${o.boundaries.length} continue-as-new`);
  if (o.error || o.trainings.length < 2) {
    console.log(`boundary_run: failed: ${o.error ?? 'too few trainings'}`);
    return;
  }
  const T = opts.trainSeconds;
  const near = o.boundaries.map((b) => fixed(busyWithin(o.trainings, s.slots, b - T, b + T), 3));
  console.log(`busy_fraction[boundary run]: ${fixed(busyFraction(o.trainings, s.slots), 3)}`);
  console.log(`busy_fraction_near_boundaries[±${T}s]: ${near.length ? near.join(' ') : 'no boundary crossed'}`);
  console.log(`max_gap_per_slot_s: ${slotGaps(o.trainings, s.slots).maxPerSlot.map((x) => fixed(x, 2)).join(' ')}`);
}

/** The noisy run: the extra training time confirmation runs cost, against all the night's training. */
function printNoise(o: Outcome): void {
  const c = o.confirmation;
  console.log(`\nnoisy run: ${key(o.scenario)}, σ ${NOISE_SIGMA}, baseline 3 runs, confirm-z 2: ` +
    `${o.keeps}/${o.candidates} kept (${fixed((100 * o.keeps) / Math.max(1, o.candidates), 0)}%)${o.error ? `, failed: ${o.error}` : ''}`);
  console.log(`confirmation_runs: ${c.runs} of ${c.trainings} trainings`);
  console.log(`confirmation_extra_training_fraction: ${fixed(c.extraSeconds / Math.max(1, c.allSeconds), 3)}`);
}

/** The one-knob runs: every keep drops every queued proposal, so only reruns of the best keep a slot from waiting. */
function printOneKnob(o: Outcome): void {
  const s = o.scenario;
  console.log(`\none-knob run: slots=${s.slots} think=${s.thinkSeconds}s: ${o.trainings.length} trainings, ` +
    `${o.keeps}/${o.candidates} kept, ${o.reruns} reruns of the best${o.error ? `, failed: ${o.error}` : ''}`);
  if (o.error || o.trainings.length < 2) return;
  console.log(`busy_fraction[one knob, slots=${s.slots}]: ${fixed(busyFraction(o.trainings, s.slots), 3)}`);
  console.log(`max_gap_per_slot_s[one knob, slots=${s.slots}]: ${slotGaps(o.trainings, s.slots).maxPerSlot.map((x) => fixed(x, 2)).join(' ')}`);
}

/** The state machine alone: simulated nights (the test's generator, a fixed seed) played per second of this CPU. */
function printSimulator(): void {
  const nights = fc.sample(nightArbitrary, { numRuns: SIM_NIGHTS, seed: 1 });
  let broken = 0;
  const started = performance.now();
  for (const night of nights) {
    try {
      simulate(night);
    } catch {
      broken++; // played up to the broken invariant: still counted, and said (an older state machine may break some)
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`\nsimulator_nights_per_s: ${fixed(SIM_NIGHTS / seconds, 0)} (${SIM_NIGHTS} nights in ${fixed(seconds, 1)} s` +
    `${broken ? `, ${broken} broke an invariant` : ''})`);
}

/** Against a run waiting for its baseline's slot (no GPU worker holds its repo): `status` queries a live run. */
async function printCli(env: TestWorkflowEnvironment, python: string, repos: string[]): Promise<void> {
  const config = await benchRun({ label: 'cli-probe', thinkSeconds: 0, slots: 1 }, python, repos);
  const probe = { ...config, timeoutMs: 60_000, budgetSeconds: 1, parallel: 1, maxExperiments: 2 };
  await startRun(async () => env.client, probe);
  const latencies: Latency[] = await cliLatency(env.address, config.tag, CLI_RUNS);
  await env.client.workflow.getHandle(workflowIdFor(config.tag)).terminate('bench: CLI latency measured');
  console.log('');
  for (const l of latencies) {
    const failed = l.failures ? ` (${l.failures} of ${CLI_RUNS} runs failed)` : '';
    console.log(`cli_median_s[${l.what}]: ${fixed(l.medianSeconds, 2)}${failed}`);
  }
}

/** `decisions`: the rule's operating characteristics at the default --false-keep beside the rule before it (test/decision-sim.ts). */
function printDecisions(): void {
  const rate = DEFAULT_FALSE_KEEP;
  console.log(`decisions at --false-keep ${rate}: ${DECISIONS} simulated decisions a cell (σ = 1); keep rate, trainings per decision in brackets`);
  console.log('the mix: 40% of changes do nothing, 45% hurt (exponential, mean 4σ), 15% help (mean 3σ)\n');
  const head = ['rule', 'context', ...EFFECTS.map((e) => `gain ${e}σ`), 'mix: kept', 'mix: extra trainings'];
  const rows = RULES.flatMap(({ name, rule }) => CONTEXTS.map((ctx, i) => {
    const cells = EFFECTS.map((e) => {
      const r = rates(e, ctx, rule(rate), DECISIONS, 1000 * i + e * 10);
      return `${fixed(r.keeps / r.decisions, 4)} (${fixed(r.runs / r.decisions, 2)})`;
    });
    const mix = rates(nightMix(generator(7 + i)), ctx, rule(rate), DECISIONS, 99 + i);
    return [name, ctx.label, ...cells, fixed(mix.keeps / mix.decisions, 3), fixed(mix.runs / mix.decisions - 1, 3)];
  }));
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const cells of [head, ...rows]) console.log(cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
  console.log('');
  for (const r of rows) {
    const at = (e: number) => r[2 + EFFECTS.indexOf(e)].split(' ')[0];
    console.log(`[${r[0]}; ${r[1]}] false_keep_rate: ${at(0)}  power_at_2sigma: ${at(2)}  extra_trainings_on_mix: ${r.at(-1)}`);
  }
  console.log(`\nnights of 80 experiments (baseline 5 runs, 77 changes that do nothing, one of 2σ, one of 5σ), ${NIGHTS} each:`);
  for (const { name, rule } of RULES) {
    const f = nights(rule(rate), NIGHTS, 5);
    const kept = (g: number) => fixed(f.realKept[g] / f.nights, 2);
    console.log(`[${name}] null_keeps_per_night: ${fixed(f.nullKeeps / f.nights, 2)}  2sigma_kept: ${kept(2)}  5sigma_kept: ${kept(5)}  ` +
      `extra_trainings: ${fixed(f.extraTrainings / f.candidates, 3)}`);
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'decisions') return printDecisions();
  if (process.argv[2] === 'box') return printBoxOverhead();
  if (process.argv[2] === 'search') return printSearch();
  const opts = options(process.argv.slice(2));
  const python = pythonExecutable();
  const list = scenarios(opts);
  // Longest first, so the slowest run does not start last.
  const estimate = (s: Scenario) => opts.perSlot * (opts.trainSeconds + (s.ahead === 0 ? s.thinkSeconds : 0));
  const order = [...list].sort((a, b) => estimate(b) - estimate(a));
  const env = await devServer(); // its banner goes to stdout: print ours after it
  console.log(`\nbench: T=${opts.trainSeconds}s L=${opts.thinkSeconds.join(',')}s slots=${opts.slots.join(',')} ` +
    `${opts.perSlot} experiments a slot, ${order.length} runs, ${opts.jobs} at a time`);
  const model = await thinkingModel();
  let control: Worker | undefined;
  let controlRunning: Promise<void> | undefined;
  const repos: string[] = [];
  try {
    console.error('[bench] bundling the workflow…');
    control = await createControlWorker(env.nativeConnection, NAMESPACE);
    controlRunning = control.run();
    const outcomes = await runAll(order, opts.jobs, (s) => runScenario(env, s, opts, python, repos));
    const byLabel = new Map(outcomes.map((o) => [o.scenario.label, o]));
    console.log('');
    const matrix = list.filter((s) => !s.historySize && !s.noise && !s.oneKnob);
    if (matrix.length) printTable(matrix.map((s) => byLabel.get(s.label)!), opts);
    for (const s of list.filter((x) => x.oneKnob)) printOneKnob(byLabel.get(s.label)!);
    for (const s of list.filter((x) => x.noise)) printNoise(byLabel.get(s.label)!);
    for (const s of list.filter((x) => x.historySize)) printBoundary(byLabel.get(s.label)!, opts);
    if (opts.cli) await printCli(env, python, repos);
    printSimulator();
    console.log(`\nmodel_calls: ${model.calls()}`);
    if (outcomes.some((o) => o.error)) process.exitCode = 1;
  } finally {
    control?.shutdown();
    await controlRunning;
    await model.close();
    await env.teardown();
    await Promise.all(repos.map((r) => rm(r, { recursive: true, force: true })));
  }
}

main().catch((err: Error) => {
  console.error(`bench: ${err.message}`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
