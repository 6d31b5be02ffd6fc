// A deterministic simulator of whole nights around the study's state machine (workflows/study.ts): no
// server, virtual time. It plays the shell's part — proposer, git, children, signals, timers, continue-as-new —
// with commits modelled as knob maps, injects faults at chosen moments, and checks the invariants after
// every step. A night is a plain value (Night), so fast-check can generate and shrink it.
import fc from 'fast-check';
import { step, newStudy, outstanding, type Answer, type Command, type Study } from '../workflows/study';
import type { ExperimentRecord, RunConfig, TrainingResult } from '../workflows/types';

export const KNOBS = ['ALPHA', 'BETA', 'GAMMA', 'DELTA'];
const CRASH_VALUE = 9; // a knob set to this crashes the training
const MAX_EVENTS = 20_000;

export type Fault =
  | 'terminate' // a child terminated by hand (as from the Web UI)
  | 'fail' // a child's workflow fails
  | 'timeout' // a child's workflow times out
  | 'workerDies' // a training reports a dead worker
  | 'proposerFails'
  | 'proposerRefuses'
  | 'startFails'
  | 'historyFull'
  | 'pause' // resumed a while later
  | 'stop'
  | 'stopCancel';

export interface Night {
  parallel: number;
  historySize: number;
  ahead: number | null;
  maxExperiments: number;
  baselineRuns: number;
  proposer: 'llm' | 'sweep';
  tokenBudget: number | null;
  untilMs: number | null;
  verify: boolean;
  thinkMs: number;
  trainMs: number;
  noise: number; // σ of a training's score
  crashRate: number; // the share of proposals that crash their training (a repair's chance)
  faults: { atEvent: number; fault: Fault }[];
  rolls: number[]; // 0–999, used in turn for every random choice (durations, knobs, answers)
}

const FAULTS: Fault[] = ['terminate', 'fail', 'timeout', 'workerDies', 'proposerFails', 'proposerRefuses', 'startFails', 'historyFull', 'pause', 'stop', 'stopCancel'];

/** Nights as the test draws them (and shrinks them): every size, budget and fault the issue names. */
export const nightArbitrary: fc.Arbitrary<Night> = fc.record({
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
  crashRate: fc.constantFrom(0.025, 0.3),
  faults: fc.array(fc.record({ atEvent: fc.integer({ min: 1, max: 300 }), fault: fc.constantFrom(...FAULTS) }), { maxLength: 6 }),
  rolls: fc.array(fc.nat(999), { maxLength: 64 }),
});

export interface Outcome {
  rows: ExperimentRecord[];
  study: Study;
  continuedAsNew: number;
  tip: string;
  events: number;
  trees: Map<string, Record<string, number>>;
}

type Tree = Record<string, number>;

interface Child {
  n: number;
  commit: string;
  tree: Tree;
  alive: boolean;
  decided: boolean;
  seeds: number[]; // by run
  reported: Set<number>; // runs reported
  closedHow: string | null;
}

export function configOf(night: Night): RunConfig {
  return {
    tag: 'sim',
    repo: '/nowhere',
    proposer: night.proposer,
    editable: ['train.py'],
    command: 'train',
    timeoutMs: night.trainMs * 3,
    budgetSeconds: night.trainMs / 1000,
    parallel: night.parallel,
    maxExperiments: night.maxExperiments,
    untilMs: night.untilMs ?? undefined,
    seed: 1,
    minImprovement: 0,
    maxTokensTotal: night.tokenBudget ?? undefined,
    ahead: night.ahead ?? undefined,
    experimentsPerHistory: night.historySize,
    baselineRuns: night.baselineRuns,
    confirmZ: 2,
    verifyRuns: night.verify ? 2 : undefined,
  };
}

/** Plays one night to its end; throws an AssertionError-like Error naming the first broken invariant. */
export function simulate(night: Night): Outcome {
  const config = configOf(night);
  let roll = 0;
  const rand = (n: number) => (night.rolls.length ? night.rolls[roll++ % night.rolls.length] : 500) % n;
  const jitter = (ms: number) => Math.round(ms * (0.5 + rand(1000) / 1000));

  const trees = new Map<string, Tree>([['c0', Object.fromEntries(KNOBS.map((k) => [k, 0]))]]);
  const parents = new Map<string, string>();
  const intents = new Map<string, { base: string; change: Tree }>(); // a proposal commit: the change it means
  let commits = 0;
  const commit = (tree: Tree, parent: string) => {
    const id = `c${++commits}`;
    trees.set(id, tree);
    parents.set(id, parent);
    return id;
  };

  const queue: { at: number; seq: number; run: () => void }[] = [];
  let seq = 0;
  let now = 0;
  const later = (ms: number, run: () => void) => queue.push({ at: now + ms, seq: seq++, run });

  let study = newStudy();
  let tip = 'c0';
  let finished = false;
  let continuedAsNew = 0;
  let events = 0;
  let wakeSeq = -1; // only the latest timer fires: the shell replaces its timer
  const rows: ExperimentRecord[] = [];
  const children = new Map<number, Child>();
  const watched = new Set<number>();
  const pending = new Set<string>(); // the simulator's own count of unanswered commands
  const faultsAt = new Map<number, Fault[]>();
  for (const f of night.faults) faultsAt.set(f.atEvent, [...(faultsAt.get(f.atEvent) ?? []), f.fault]);
  let nextProposal: 'fail' | 'refuse' | null = null;
  let nextStartFails = false;
  let nextTrainingDies = false;

  const deliver = (event: Answer) => {
    if (finished) return;
    events++;
    const full = faultsAt.get(events)?.includes('historyFull') ?? false;
    const result = step(config, study, { ...event, at: now, historyFull: full });
    study = result.state;
    for (const c of result.commands) execute(c);
    checkAlways(config, study, rows);
    for (const f of faultsAt.get(events) ?? []) inject(f);
  };

  const answer = (key: string, ms: number, event: Answer) => {
    pending.add(key);
    later(ms, () => {
      pending.delete(key);
      deliver(event);
    });
  };

  const scoreOf = (tree: Tree, seed: number) =>
    1 - KNOBS.reduce((sum, k) => sum + gain(k, tree[k]), 0) + night.noise * (((seed * 7919) % 1000) / 500 - 1);

  const report = (child: Child, run: number, result: TrainingResult) => {
    if (!child.alive || child.reported.has(run)) return;
    child.reported.add(run);
    deliver({ type: 'trained', n: child.n, run, commit: child.commit, result });
  };

  const train = (child: Child, run: number) => {
    const seed = child.seeds[run];
    later(jitter(night.trainMs), () => {
      if (!child.alive || child.reported.has(run)) return;
      const dies = nextTrainingDies;
      nextTrainingDies = false;
      const crashes = KNOBS.some((k) => child.tree[k] === CRASH_VALUE);
      const result: TrainingResult = dies
        ? problem('training failed: the GPU worker died')
        : crashes
          ? { ...problem(''), problem: undefined, exitCode: 1, seconds: night.trainMs / 1000, logTail: 'Traceback: boom' }
          : {
              exitCode: 0,
              timedOut: false,
              metrics: { val_bpb: scoreOf(child.tree, seed) },
              seconds: night.trainMs / 1000,
              logTail: '',
              worker: 'sim-0',
              sandboxed: true,
            };
      report(child, run, result);
    });
  };

  const close = (child: Child, how: string) => {
    if (!child.alive) return;
    child.alive = false;
    child.closedHow = how;
    if (watched.has(child.n)) later(1, () => deliver({ type: 'closed', n: child.n, how }));
  };

  function execute(c: Command): void {
    switch (c.type) {
      case 'propose': {
        const key = `proposal ${c.key}`;
        const failing = nextProposal;
        nextProposal = null;
        const tokens = Math.min(c.allowance ?? Infinity, 200 + rand(2000));
        pending.add(key);
        later(night.proposer === 'sweep' ? 1 : jitter(night.thinkMs), () => {
          if (!pending.delete(key)) return; // cancelled: answered already
          if (failing) {
            deliver({ type: 'proposalFailed', key: c.key, reason: 'garbage answer', tokens, refused: failing === 'refuse' });
            return;
          }
          const repair = c.crashed && rand(2) === 0 ? c.crashed : null;
          const from = repair ? repair.commit! : c.base;
          const base = repair ? repair.parent! : c.base;
          const knob = repair ? KNOBS.find((k) => trees.get(from)![k] === CRASH_VALUE)! : KNOBS[rand(KNOBS.length)];
          const value = repair ? 1 : rand(1000) < night.crashRate * 1000 ? CRASH_VALUE : [1, 2, 3][rand(3)];
          const tree = { ...trees.get(from)!, [knob]: value };
          const id = commit(tree, from);
          intents.set(id, { base, change: diff(trees.get(base)!, tree) });
          const fixes = repair?.id;
          deliver({ type: 'proposed', key: c.key, commit: id, description: `${knob} = ${value}`, tokens: night.proposer === 'sweep' ? 0 : tokens, fixes });
        });
        return;
      }
      case 'cancelProposal': {
        const key = `proposal ${c.key}`;
        if (pending.delete(key)) later(1, () => deliver({ type: 'proposalFailed', key: c.key, reason: 'cancelled', tokens: 0, cancelled: true }));
        return;
      }
      case 'merge': {
        const [base, ours, theirs] = [trees.get(c.base)!, trees.get(c.onto)!, trees.get(c.commit)!];
        const mine = diff(base, theirs);
        const conflict = Object.keys(mine).some((k) => ours[k] !== base[k] && ours[k] !== theirs[k]);
        if (conflict) {
          answer(`merge ${c.key}`, 5, { type: 'mergeFailed', key: c.key, reason: 'conflict in train.py' });
          return;
        }
        const id = commit({ ...ours, ...mine }, c.onto);
        intents.set(id, { base: c.onto, change: mine });
        answer(`merge ${c.key}`, 5, { type: 'merged', key: c.key, onto: c.onto, commit: id });
        return;
      }
      case 'start': {
        const x = c.experiment;
        const key = `start ${x.n}`;
        if (nextStartFails) {
          nextStartFails = false;
          answer(key, 2, { type: 'startFailed', n: x.n, problem: 'the server said no' });
          return;
        }
        const tree = trees.get(x.tree!)!;
        if (x.proposal) {
          // What trains is its parent plus the change it was proposed as: nothing more, nothing less.
          const intent = intents.get(x.tree!)!;
          must(intent.base === x.parent, `experiment ${x.n} trains ${x.tree}, made on ${intent.base}, launched on ${x.parent}`);
          must(same(tree, { ...trees.get(x.parent!)!, ...intent.change }), `experiment ${x.n} is not its parent plus its change`);
        }
        const own = x.commit ?? commit(tree, x.parent!);
        const child: Child = { n: x.n, commit: own, tree, alive: true, decided: false, seeds: [...x.seeds], reported: new Set(), closedHow: null };
        children.set(x.n, child);
        answer(key, 2, { type: 'started', n: x.n });
        x.seeds.forEach((_, run) => later(3, () => train(child, run)));
        return;
      }
      case 'watch': {
        watched.add(c.n);
        const child = children.get(c.n);
        if (child && !child.alive) later(1, () => deliver({ type: 'closed', n: c.n, how: child.closedHow! }));
        return;
      }
      case 'signal': {
        const child = children.get(c.n)!;
        const key = `${c.signal.kind} signal ${c.n}`;
        const ok = child.alive;
        answer(key, 1, { type: 'signalled', n: c.n, kind: c.signal.kind, ok });
        if (!ok) return;
        if (c.signal.kind === 'repeat' && !child.seeds.includes(c.signal.seed)) {
          child.seeds.push(c.signal.seed); // idempotent by seed, as the experiment workflow is
          train(child, child.seeds.length - 1);
        }
        if (c.signal.kind === 'decided') {
          child.decided = true;
          later(2, () => close(child, 'completed'));
        }
        if (c.signal.kind === 'cancel') {
          child.seeds.forEach((_, run) => later(2, () => report(child, run, problem('cancelled'))));
        }
        return;
      }
      case 'record': {
        must(!rows.some((r) => r.n === c.row.n), `experiment ${c.row.n} has two rows`);
        rows.push(c.row);
        if (c.move) {
          must(c.move.from === tip, `the branch moved from ${c.move.from}, but its tip is ${tip}`);
          must(parents.get(c.move.to) === tip, `keep ${c.move.to} is not a child of the tip ${tip}: not a fast-forward`);
          tip = c.move.to;
        }
        answer(`row ${c.row.n}`, 2, { type: 'recorded', n: c.row.n });
        return;
      }
      case 'wake': {
        const mine = seq;
        wakeSeq = mine;
        queue.push({ at: Math.max(now, c.at), seq: seq++, run: () => wakeSeq === mine && deliver({ type: 'wake' }) });
        return;
      }
      case 'verify':
        answer('verify', night.trainMs * 2, { type: 'verified' });
        return;
      case 'note':
        return;
      case 'continueAsNew':
        must(pending.size === 0, `continued as new with ${[...pending].join(', ')} unanswered`);
        continuedAsNew++;
        watched.clear(); // the old run's watches and timer end with it
        wakeSeq = -1;
        later(0, () => deliver({ type: 'resumed' }));
        return;
      case 'finish':
        finished = true;
        return;
    }
  }

  function inject(f: Fault): void {
    const alive = [...children.values()].filter((c) => c.alive && !c.decided);
    const victim = alive.length ? alive[rand(alive.length)] : null;
    switch (f) {
      case 'terminate':
        if (victim) close(victim, 'was terminated by hand');
        return;
      case 'fail':
        if (victim) close(victim, 'failed: the workflow task failed');
        return;
      case 'timeout':
        if (victim) close(victim, 'timed out');
        return;
      case 'workerDies':
        nextTrainingDies = true;
        return;
      case 'proposerFails':
        nextProposal = 'fail';
        return;
      case 'proposerRefuses':
        nextProposal = 'refuse';
        return;
      case 'startFails':
        nextStartFails = true;
        return;
      case 'historyFull':
        return; // given to the event itself
      case 'pause':
        later(0, () => deliver({ type: 'pause' }));
        later(night.trainMs, () => deliver({ type: 'resume' }));
        return;
      case 'stop':
        later(0, () => deliver({ type: 'stop', reason: 'stopped by request', cancel: false }));
        return;
      case 'stopCancel':
        later(0, () => deliver({ type: 'stop', reason: 'stopped by request', cancel: true }));
        return;
    }
  }

  deliver({ type: 'prepared', baseCommit: 'c0' });
  while (!finished) {
    must(events < MAX_EVENTS, `the night did not end after ${MAX_EVENTS} events`);
    queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const next = queue.shift();
    must(next !== undefined, `the night is stuck: nothing left to happen, and ${outstanding(study).join(', ') || 'nothing'} outstanding; ${study.experiments.length} experiments unrecorded`);
    now = next!.at;
    next!.run();
  }
  checkAtEnd(config, study, rows, children);
  return { rows, study, continuedAsNew, tip, events, trees };
}

function checkAlways(config: RunConfig, s: Study, rows: ExperimentRecord[]): void {
  if (config.maxTokensTotal !== undefined)
    must(s.tokensUsed <= config.maxTokensTotal, `spent ${s.tokensUsed} tokens of a budget of ${config.maxTokensTotal}`);
  must(s.experimentsDone === rows.length, `status counts ${s.experimentsDone} done, with ${rows.length} rows`);
}

function checkAtEnd(config: RunConfig, s: Study, rows: ExperimentRecord[], children: Map<number, Child>): void {
  must(outstanding(s).length === 0, `finished with ${outstanding(s).join(', ')} outstanding`);
  const numbers = rows.map((r) => r.n).sort((a, b) => a - b);
  must(numbers.length === s.nextNumber && numbers.every((n, i) => n === i), `rows for ${numbers.join(',')} of ${s.nextNumber} experiments`);
  must(s.experimentsKept === rows.filter((r) => r.status === 'keep').length, 'status counts another number of keeps than the rows');
  if (config.maxExperiments !== undefined) must(rows.length <= config.maxExperiments, `${rows.length} rows, over --max-experiments`);
  for (const c of children.values()) must(!c.alive || c.decided, `experiment ${c.n}'s workflow still waits for a decision`);
}

function gain(knob: string, value: number): number {
  if (value === CRASH_VALUE || value === 0) return 0;
  return ((KNOBS.indexOf(knob) * 3 + value * 7) % 5) * 0.004 - 0.006;
}

function diff(from: Tree, to: Tree): Tree {
  return Object.fromEntries(Object.entries(to).filter(([k, v]) => from[k] !== v));
}

function same(a: Tree, b: Tree): boolean {
  return KNOBS.every((k) => a[k] === b[k]);
}

function problem(text: string): TrainingResult {
  return { exitCode: null, timedOut: false, metrics: {}, seconds: 0, logTail: '', problem: text, worker: '', sandboxed: true };
}

function must(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(what);
}
