// The study's logic as a pure state machine: step(state, event) → { state, commands }.
// Every command issued and not yet answered lives in the state, so "may we continue as new" is a
// property of the state (outstanding() is empty), not a set of counters. The workflow (research.ts)
// only turns events into steps and commands into activities, children, signals and timers.
// No I/O, no clock, no randomness: the simulator (test/study.test.ts) drives it through random nights.
import { falseKeepOf, judgeRuns, judgeSequential, NO_NOISE, sigmaOf, untrained, withGroup, type Judgement, type Noise } from './decide';
import { sigmaInterval } from './stats';
import { experimentId, proposalActivityId, workflowIdFor, type ExperimentRecord, type Noise as NoiseView, type ProposerKind, type RunConfig, type RunState, type StatusView, type TrainingResult } from './types';

export const EXPERIMENTS_PER_HISTORY = 100; // continue-as-new after this many, keeping each history well under 10k events
export const RECENT_KEPT = 10; // rows carried for `status`; results.jsonl holds them all
export const REPAIRS_PER_CRASH = 2; // times one crashed experiment is shown to the llm proposer for repair
export const REPAIRS_IN_A_ROW = 2; // a repair that crashes may be repaired in turn, this many deep
export const PROPOSER_FAILURES_IN_A_ROW = 5; // then the proposer is broken, not unlucky: the study halts
export const CRASH_LOG_CHARS = 3_000; // of a crash's log tail handed to the llm proposer with it
export const MIN_TOKEN_ALLOWANCE = 1_000; // less than this left in the budget buys no useful proposal
export const MAX_AHEAD_PER_SLOT = 4; // a slow proposer is given more proposals in flight, up to this many per slot
const IDLE_GRACE_MS = 1_000; // a free slot with nothing ready waits this long (or 2% of a training) before a rerun
const IDLE_GRACE_SHARE = 0.02;
// Changes to these rules that alter commands bump RULES; the shell sets a study's rules from patched() (research.ts).
// 2: a free slot trains a rerun at once unless a proposal is due within the grace; a spent token budget ends the night at once.
// 3: decisions by the sequential rule at --false-keep (decide.ts judgeSequential), σ from unselected runs only.
export const RULES = 3;

/** A proposal being made: its answer is outstanding. */
export interface Asking {
  key: number;
  base: string; // the best it was asked on
  repairBase: string | null; // a repair's files are the crashed experiment's: its base is that one's parent
  allowance: number | null;
  since: number;
}

/** A committed proposal waiting for a slot. Ready to train when its base is the best; merged onto it otherwise. */
export interface Ready {
  key: number;
  base: string; // the version its change was made on: merge(base, best, commit) carries it to a newer best
  commit: string;
  description: string;
  tokens: number;
  change?: string;
  fixes?: string;
  temperature?: number;
  by?: ProposerKind; // mixed: which of its proposers made it
  dropped?: string; // the agent's changes outside the editable files, not taken: said in the row's reason
  merging: boolean; // a merge onto the best is outstanding
  requeued: boolean; // a winner trained on an overtaken parent: it goes first
}

/** An experiment with a number: a proposal in training, the baseline, a rerun of the best, or a failed proposal. */
export interface Experiment {
  n: number;
  parent: string | null; // the best it was launched on; null for the baseline and failed proposals
  tree: string | null; // the commit holding the files it trains; null for a failed proposal
  commit: string | null; // its own commit, once a training reports it
  description: string;
  proposal: Omit<Ready, 'merging' | 'requeued'> | null;
  tokens: number;
  rerun: boolean; // one more fresh-seed run of a kept commit
  seeds: number[];
  results: (TrainingResult | null)[];
  child: 'none' | 'starting' | 'running' | 'closed';
  startedAt: number;
}

/** A kept commit and the score of every training of it (reruns add to them): the bar for its children. */
export interface Kept {
  n: number;
  commit: string;
  runs: number[];
  deciding?: number; // the first runs, which decided its keep (selected for being low); reruns follow (rules 3)
}

export type Signal = { kind: 'repeat'; seed: number } | { kind: 'decided'; row: ExperimentRecord } | { kind: 'cancel' };

export interface Study {
  baseCommit: string; // '' until prepared
  nextNumber: number;
  nextKey: number;
  firstNumberHere: number; // of this run: continue-as-new after experimentsPerHistory more
  historyFull: boolean;
  closing: boolean; // past the boundary: no new proposals, continue as new once nothing is outstanding
  boundaryAt: number | null;
  kept: Kept[]; // every keep, oldest first: the last is the best
  baselineDone: boolean;
  experimentsDone: number;
  experimentsKept: number;
  tokensUsed: number;
  paused: boolean;
  stop: { reason: string; cancel: boolean } | null;
  halt: string | null;
  proposalsOver: string | null;
  proposerFailures: number;
  proposalMs: number; // running mean of a proposal's duration: sizes the pipeline
  trainingMs: number; // running mean of a training's duration
  noise: Noise; // pooled over every recorded group but the kept ones (see noiseNow)
  crash: { record: ExperimentRecord; shown: number; depth: number } | null; // the last crash, for repair
  asking: Asking[];
  ready: Ready[];
  experiments: Experiment[];
  toJudge: number[];
  recording: number | null;
  signals: { n: number; kind: Signal['kind'] }[]; // sent, not yet acknowledged
  verify: 'not asked' | 'running' | 'done';
  finished: boolean;
  wakeAt: number | null;
  idleSince: number | null; // a slot has been free with nothing ready since then
  rerunsInARow: number; // reruns of the best since a proposal last started: a dead proposer must not spend the night on them
  candidatesJudged?: number; // candidates decided by the noise rule: the expected false keeps are the rate times this (rules 3)
  rules?: number; // the rules this run follows (RULES): histories recorded before a change replay by the old ones
  recent: ExperimentRecord[];
  warnings: string[];
}

export type Answer =
  | { type: 'prepared'; baseCommit: string }
  | { type: 'resumed' } // the first event of a run that continued as new
  | { type: 'proposed'; key: number; commit: string; description: string; tokens: number; change?: string; fixes?: string; temperature?: number; by?: ProposerKind; dropped?: string }
  | { type: 'proposalFailed'; key: number; reason: string; tokens: number; final?: boolean; refused?: boolean; cancelled?: boolean }
  | { type: 'merged'; key: number; onto: string; commit: string; change?: string }
  | { type: 'mergeFailed'; key: number; reason: string }
  | { type: 'started'; n: number }
  | { type: 'startFailed'; n: number; problem: string }
  | { type: 'trained'; n: number; run: number; commit: string | null; result: TrainingResult }
  | { type: 'closed'; n: number; how: string } // its workflow ended (completed, or 'terminated by hand', 'failed: …')
  | { type: 'signalled'; n: number; kind: Signal['kind']; ok: boolean }
  | { type: 'recorded'; n: number; problem?: string }
  | { type: 'verified' }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop'; reason: string; cancel: boolean }
  | { type: 'wake' };

/** What happened, when (ms), and whether the server suggests continuing as new. */
export type Event = Answer & { at: number; historyFull?: boolean };

export type Command =
  | { type: 'propose'; key: number; base: string; allowance: number | null; crashed: ExperimentRecord | null; inFlight: string[] }
  | { type: 'cancelProposal'; key: number }
  | { type: 'merge'; key: number; base: string; onto: string; commit: string; description: string }
  | { type: 'start'; experiment: Experiment }
  | { type: 'watch'; n: number }
  | { type: 'signal'; n: number; signal: Signal }
  | { type: 'record'; row: ExperimentRecord; move: { from: string; to: string } | null; dropProposal: number | null }
  | { type: 'wake'; at: number }
  | { type: 'verify' }
  | { type: 'note'; text: string }
  | { type: 'continueAsNew' }
  | { type: 'finish'; failed: boolean; reason: string };

export function newStudy(): Study {
  return {
    baseCommit: '',
    nextNumber: 0,
    nextKey: 1,
    firstNumberHere: 0,
    historyFull: false,
    closing: false,
    boundaryAt: null,
    kept: [],
    baselineDone: false,
    experimentsDone: 0,
    experimentsKept: 0,
    tokensUsed: 0,
    paused: false,
    stop: null,
    halt: null,
    proposalsOver: null,
    proposerFailures: 0,
    proposalMs: 0,
    trainingMs: 0,
    noise: NO_NOISE,
    crash: null,
    asking: [],
    ready: [],
    experiments: [],
    toJudge: [],
    recording: null,
    signals: [],
    verify: 'not asked',
    finished: false,
    wakeAt: null,
    idleSince: null,
    rerunsInARow: 0,
    rules: RULES,
    recent: [],
    warnings: [],
  };
}

/** The one transition: the event applied, then whatever the new state calls for. Does not change `state`. */
export function step(config: RunConfig, state: Study, event: Event): { state: Study; commands: Command[] } {
  const s = copy(state);
  const out: Command[] = [];
  if (s.finished) return { state: s, commands: out };
  if (event.historyFull) s.historyFull = true;
  apply(config, s, event, out);
  plan(config, s, event.at, out);
  return { state: s, commands: out };
}

/** Commands issued and not yet answered. Watches and timers are not among them: a new run re-issues those. */
export function outstanding(s: Study): string[] {
  return [
    ...s.asking.map((a) => `proposal ${a.key}`),
    ...s.ready.filter((r) => r.merging).map((r) => `merge of proposal ${r.key}`),
    ...s.experiments.filter((e) => e.child === 'starting').map((e) => `start of experiment ${e.n}`),
    ...(s.recording === null ? [] : [`row of experiment ${s.recording}`]),
    ...s.signals.map((x) => `${x.kind} signal to experiment ${x.n}`),
    ...(s.verify === 'running' ? ['verify'] : []),
  ];
}

export function best(s: Study): Kept | null {
  return s.kept.at(-1) ?? null;
}

export function scoreOf(k: Kept): number {
  return k.runs.reduce((a, b) => a + b, 0) / k.runs.length;
}

/**
 * The noise now: every recorded group, the kept ones with their reruns. From rules 3 only unselected runs
 * count: the baseline's, a kept commit's reruns, and a candidate's runs after its first.
 */
export function noiseNow(s: Study): Noise {
  return s.kept.reduce((noise, k) => withGroup(noise, (s.rules ?? 1) >= 3 && k.n > 0 ? k.runs.slice(k.deciding ?? 0) : k.runs), s.noise);
}

/** Why no new experiment may start; once nothing is left in flight, why the study ends. */
export function whyEnding(config: RunConfig, s: Study, at: number): string | null {
  if (s.stop) return s.stop.reason;
  if (config.maxExperiments !== undefined && s.nextNumber >= config.maxExperiments)
    return `reached ${config.maxExperiments} experiments`;
  if (pastDeadline(config, at)) return `deadline ${new Date(config.untilMs!).toISOString()} reached`;
  if (s.proposalsOver && s.ready.length === 0 && s.asking.length === 0) return s.proposalsOver;
  return null;
}

/** A training started now could not finish by --until. */
function pastDeadline(config: RunConfig, at: number): boolean {
  return config.untilMs !== undefined && at + config.timeoutMs > config.untilMs;
}

export function isTraining(e: Experiment): boolean {
  return e.results.some((r) => r === null);
}

function noiseView(config: RunConfig, s: Study, sigma: number): NoiseView {
  const { runs, dof } = noiseNow(s);
  if ((s.rules ?? 1) < 3) return { sigma, runs };
  const rate = falseKeepOf(config);
  return { sigma, runs, dof, ...sigmaInterval(sigma, dof), falseKeep: rate, expectedFalseKeeps: rate * (s.candidatesJudged ?? 0) };
}

/** What `status` and the Web UI show: the study as a user reads it. `ended` once it has finished. */
export function viewOf(config: RunConfig, s: Study, ended: RunState | null): StatusView {
  const b = best(s);
  const sigma = sigmaOf(noiseNow(s));
  const lane = (id: string, phase: 'training' | 'deciding' | 'queued' | 'proposing', description: string) => ({ id, phase, description, heartbeat: null });
  return {
    tag: config.tag,
    workflowId: workflowIdFor(config.tag),
    state: ended ?? (s.stop ? 'stopping' : s.paused ? 'paused' : 'running'),
    experimentsDone: s.experimentsDone,
    experimentsKept: s.experimentsKept,
    best: b && { commit: b.commit, valBpb: scoreOf(b) },
    inFlight: [
      ...s.experiments.map((x) => lane(experimentId(config.tag, x.n), isTraining(x) ? 'training' : 'deciding', x.description)),
      ...s.ready.map((r) => lane(proposalActivityId(config.tag, r.key), 'queued', r.description)),
      ...s.asking.map((a) => lane(proposalActivityId(config.tag, a.key), 'proposing', '')),
    ],
    tokensUsed: s.tokensUsed,
    reason: s.stop?.reason ?? s.proposalsOver ?? undefined,
    recent: s.recent,
    warnings: s.warnings,
    noise: sigma === null ? undefined : noiseView(config, s, sigma),
  };
}

/** The Web UI's current details: the state, the counts, the best, σ, the pipeline, and what just happened. */
export function detailsOf(view: StatusView, now: string): string {
  const b = view.best ? `best val_bpb ${view.best.valBpb.toFixed(6)} (${view.best.commit.slice(0, 7)})` : 'no best yet';
  const sigma = view.noise ? ` · noise σ ${view.noise.sigma.toFixed(6)} (${view.noise.runs} runs)` : '';
  const count = (phase: string) => view.inFlight.filter((x) => x.phase === phase).length;
  const pipeline = `${count('training')} training, ${count('queued')} ready, ${count('proposing')} proposing`;
  const warn = view.warnings?.length ? `\n\n⚠ ${view.warnings.join('; ')}` : '';
  return `**${view.state}** · ${view.experimentsDone} done, ${view.experimentsKept} kept · ${b}${sigma} · ${pipeline}\n\nlast: ${now}${warn}`;
}

// ---- events ---------------------------------------------------------------------------------------

function apply(config: RunConfig, s: Study, e: Event, out: Command[]): void {
  switch (e.type) {
    case 'prepared':
      s.baseCommit = e.baseCommit;
      return;
    case 'resumed':
      s.firstNumberHere = s.nextNumber;
      s.historyFull = false;
      s.closing = false;
      s.boundaryAt = null;
      s.wakeAt = null;
      for (const x of s.experiments) if (x.child === 'running') out.push({ type: 'watch', n: x.n });
      return;
    case 'proposed': {
      const asked = take(s.asking, (a) => a.key === e.key);
      if (!asked) return;
      s.tokensUsed += e.tokens;
      s.proposalMs = mean(s.proposalMs, e.at - asked.since);
      s.proposerFailures = 0;
      const base = e.fixes && asked.repairBase ? asked.repairBase : asked.base;
      const { key, commit, description, tokens, change, fixes, temperature, by, dropped } = e;
      const optional = { ...(by ? { by } : {}), ...(dropped ? { dropped } : {}) };
      s.ready.push({ key, base, commit, description, tokens, change, fixes, temperature, ...optional, merging: false, requeued: false });
      return;
    }
    case 'proposalFailed': {
      const asked = take(s.asking, (a) => a.key === e.key);
      if (!asked) return;
      s.tokensUsed += e.tokens;
      if (e.cancelled) return;
      if (e.final) {
        s.proposalsOver ??= e.reason;
        return;
      }
      s.proposerFailures++;
      const limit = config.maxProposerFailures ?? PROPOSER_FAILURES_IN_A_ROW;
      if (e.refused) halt(s, e.reason, false, out);
      else if (s.proposerFailures >= limit) halt(s, `the proposer failed ${limit} times in a row (last: ${e.reason})`, false, out);
      if (config.maxExperiments !== undefined && s.nextNumber >= config.maxExperiments) return;
      const n = s.nextNumber++;
      s.experiments.push({
        ...blank(n, e.at),
        parent: asked.base,
        tokens: e.tokens,
        results: [untrained(`proposer failed: ${e.reason}`)],
      });
      s.toJudge.push(n);
      return;
    }
    case 'merged': {
      const r = s.ready.find((x) => x.key === e.key);
      if (r) Object.assign(r, { base: e.onto, commit: e.commit, merging: false, change: e.change ?? r.change });
      return;
    }
    case 'mergeFailed':
      take(s.ready, (x) => x.key === e.key);
      out.push({ type: 'note', text: `proposal ${e.key} does not merge onto the best (${e.reason}): proposing afresh` });
      return;
    case 'started':
      for (const x of s.experiments) if (x.n === e.n && x.child === 'starting') x.child = 'running';
      out.push({ type: 'watch', n: e.n });
      return;
    case 'startFailed':
      ended(s, e.n, `could not start its workflow: ${e.problem}`);
      return;
    case 'trained': {
      const x = s.experiments.find((y) => y.n === e.n);
      if (!x || x.results[e.run] !== null) return; // not in flight, or a duplicate delivery
      x.results[e.run] = e.result;
      x.commit ??= e.commit;
      if (e.result.seconds > 0) s.trainingMs = mean(s.trainingMs, e.result.seconds * 1000);
      if (!isTraining(x)) s.toJudge.push(x.n);
      return;
    }
    case 'closed':
      // Its signals stay outstanding: the shell still answers each (undelivered), and only then may it continue as new.
      ended(s, e.n, `its workflow ${e.how}`);
      return;
    case 'signalled': {
      const sent = take(s.signals, (x) => x.n === e.n && x.kind === e.kind);
      if (sent && !e.ok && sent.kind === 'repeat') ended(s, e.n, 'its workflow is gone');
      return;
    }
    case 'recorded': {
      const x = take(s.experiments, (y) => y.n === e.n);
      s.recording = null;
      if (e.problem) halt(s, e.problem, false, out);
      if (x?.child === 'running') send(s, x.n, { kind: 'decided', row: s.recent.at(-1)! }, out);
      return;
    }
    case 'verified':
      s.verify = 'done';
      return;
    case 'pause':
      s.paused = true;
      return;
    case 'resume':
      s.paused = false;
      return;
    case 'stop':
      stopStudy(s, e.reason, e.cancel, out);
      return;
    case 'wake':
      s.wakeAt = null;
      return;
  }
}

function blank(n: number, at: number): Experiment {
  return {
    n,
    parent: null,
    tree: null,
    commit: null,
    description: '',
    proposal: null,
    tokens: 0,
    rerun: false,
    seeds: [],
    results: [],
    child: 'none',
    startedAt: at,
  };
}

/** Its workflow is over (or never began): whatever did not report never will. */
function ended(s: Study, n: number, problem: string): void {
  const x = s.experiments.find((y) => y.n === n);
  if (!x) return;
  x.child = 'closed';
  if (!isTraining(x)) return;
  x.results = x.results.map((r) => r ?? untrained(problem));
  s.toJudge.push(n);
}

function stopStudy(s: Study, reason: string, cancel: boolean, out: Command[]): void {
  const already = s.stop?.cancel ?? false;
  s.stop ??= { reason, cancel };
  if (!cancel || already) return;
  s.stop.cancel = true;
  for (const a of s.asking) out.push({ type: 'cancelProposal', key: a.key });
  for (const x of s.experiments) if (x.child === 'running' && isTraining(x)) send(s, x.n, { kind: 'cancel' }, out);
}

/** A signal to an experiment's workflow, outstanding until the shell reports it delivered (or not). */
function send(s: Study, n: number, signal: Signal, out: Command[]): void {
  s.signals.push({ n, kind: signal.kind });
  out.push({ type: 'signal', n, signal });
}

/** The study cannot go on: nothing new starts, what is in flight finishes (or, with `cancel`, is cancelled). */
function halt(s: Study, reason: string, cancel: boolean, out: Command[]): void {
  s.halt ??= reason;
  stopStudy(s, reason, cancel, out);
}

// ---- the plan: what the state calls for now ---------------------------------------------------------

function plan(config: RunConfig, s: Study, at: number, out: Command[]): void {
  if (!s.baseCommit) return;
  recordNext(config, s, at, out);
  const bestCommit = best(s)?.commit ?? s.baseCommit;
  for (const r of s.ready)
    if (r.base !== bestCommit && !r.merging) {
      r.merging = true;
      out.push({ type: 'merge', key: r.key, base: r.base, onto: bestCommit, commit: r.commit, description: r.description });
    }
  const ending = whyEnding(config, s, at);
  if (s.nextNumber === 0 && ending === null) launchBaseline(config, s, at, out);
  fillSlots(config, s, at, out);
  for (let k = proposalsWanted(config, s, at); k > 0; k--) propose(config, s, at, out);
  // The token budget is found spent while planning proposals; then the night ends now, not on an event that never comes.
  if ((s.rules ?? 1) >= 2 && ending === null && whyEnding(config, s, at) !== null) return plan(config, s, at, out);

  const unanswered = outstanding(s).length > 0;
  if (ending === null && closingForBoundary(config, s) && !unanswered) {
    out.push({ type: 'continueAsNew' });
    return;
  }
  if (ending !== null && !unanswered && s.experiments.length === 0) {
    if (!s.halt && wantsVerify(config, s, ending)) {
      s.verify = 'running';
      out.push({ type: 'verify' });
      return;
    }
    s.finished = true;
    out.push({ type: 'finish', failed: s.halt !== null, reason: s.halt ?? ending });
    return;
  }
  const wake = nextWake(config, s, at, ending);
  if (wake !== null && wake !== s.wakeAt) {
    s.wakeAt = wake;
    out.push({ type: 'wake', at: wake });
  }
}

/** The morning verdict, when the study ended by itself with a keep to verify (a deadline or a stop is the user's). */
function wantsVerify(config: RunConfig, s: Study, ending: string): boolean {
  const b = best(s);
  return !!config.verifyRuns && s.verify === 'not asked' && !s.stop && !!b && b.commit !== s.baseCommit && !ending.startsWith('deadline');
}

/** The next moment the plan changes by itself: the launch cutoff of --until, or a free slot's grace ending. */
function nextWake(config: RunConfig, s: Study, at: number, ending: string | null): number | null {
  const times: number[] = [];
  if (ending === null && config.untilMs !== undefined) times.push(config.untilMs - config.timeoutMs + 1);
  if (s.idleSince !== null) times.push(rerunFrom(config, s));
  const later = times.filter((t) => t > at);
  return later.length ? Math.min(...later) : null;
}

/**
 * When a free slot with nothing ready trains a rerun: after the grace while a proposal is merging or due
 * within it (the first proposal's time is not known yet), else at once, so no slot waits a think time.
 */
function rerunFrom(config: RunConfig, s: Study): number {
  const idle = s.idleSince!;
  const graceEnd = idle + (config.rerunGraceMs ?? Math.max(IDLE_GRACE_MS, IDLE_GRACE_SHARE * s.trainingMs));
  if ((s.rules ?? 1) < 2 || s.proposalMs === 0 || s.ready.some((r) => r.merging)) return graceEnd;
  return s.asking.some((a) => a.since + s.proposalMs <= graceEnd) ? graceEnd : idle;
}

// ---- training --------------------------------------------------------------------------------------

/** Trainings in flight, each holding a slot; the baseline holds all of its slots until it is recorded. */
function slotsBusy(s: Study): number {
  return s.experiments.reduce(
    (sum, x) =>
      x.child === 'none' || x.child === 'closed'
        ? sum
        : sum + (x.n === 0 && !s.baselineDone ? x.seeds.length : x.results.filter((r) => r === null).length),
    0,
  );
}

function launchBaseline(config: RunConfig, s: Study, at: number, out: Command[]): void {
  const runs = Math.max(1, config.baselineRuns ?? 1);
  launch(config, s, at, { parent: null, tree: s.baseCommit, commit: s.baseCommit, description: 'baseline', runs }, out);
}

/** Every free slot gets a ready proposal, or after a grace with nothing ready, one more run of the best. */
function fillSlots(config: RunConfig, s: Study, at: number, out: Command[]): void {
  const bestCommit = best(s)?.commit ?? s.baseCommit;
  while (whyEnding(config, s, at) === null && !s.paused && slotsBusy(s) < config.parallel) {
    const i = s.ready.findIndex((r) => r.base === bestCommit && !r.merging);
    if (i >= 0) {
      const [r] = s.ready.splice(i, 1);
      const { merging: _m, requeued: _q, ...proposal } = r;
      launch(config, s, at, { parent: bestCommit, tree: r.commit, commit: null, description: r.description, proposal }, out);
      s.rerunsInARow = 0;
      continue;
    }
    // A rerun bridges a proposer that is late, one a slot; one that is gone must not turn the night into reruns.
    if (s.rerunsInARow >= config.parallel || s.asking.length + s.ready.length === 0) break;
    s.idleSince ??= at;
    if (at < rerunFrom(config, s)) return;
    s.rerunsInARow++;
    const description = `rerun of the best (${bestCommit.slice(0, 7)}) on a fresh seed`;
    launch(config, s, at, { parent: bestCommit, tree: bestCommit, commit: bestCommit, description, rerun: true }, out);
  }
  s.idleSince = null;
}

function limitOf(config: RunConfig): number {
  return config.maxExperiments ?? Infinity;
}

function launch(
  config: RunConfig,
  s: Study,
  at: number,
  what: {
    parent: string | null;
    tree: string;
    commit: string | null;
    description: string;
    proposal?: Experiment['proposal'];
    rerun?: boolean;
    runs?: number;
  },
  out: Command[],
): void {
  const n = s.nextNumber++;
  const seeds = Array.from({ length: what.runs ?? 1 }, (_, i) => seedOf(config, n, i));
  const x: Experiment = {
    ...blank(n, at),
    parent: what.parent,
    tree: what.tree,
    commit: what.commit,
    description: what.description,
    proposal: what.proposal ?? null,
    tokens: what.proposal?.tokens ?? 0,
    rerun: what.rerun ?? false,
    seeds,
    results: seeds.map(() => null),
    child: 'starting',
  };
  s.experiments.push(x);
  out.push({ type: 'start', experiment: copy(x) });
}

// ---- proposing -------------------------------------------------------------------------------------

/** Enough proposals in the pipeline to hand every slot that frees a ready candidate, never more than can still run. */
function proposalsWanted(config: RunConfig, s: Study, at: number): number {
  if (whyNoProposal(config, s, at) !== null) return 0;
  const freeSlots = Math.max(0, config.parallel - slotsBusy(s));
  const want = Math.min(ahead(config, s) + freeSlots, limitOf(config) - s.nextNumber);
  const have = s.ready.length + s.asking.length;
  // The sweep must see every earlier proposal's ref to never repeat one: one at a time.
  if (config.proposer === 'sweep') return s.asking.length > 0 ? 0 : Math.min(1, want - have);
  return want - have;
}

function whyNoProposal(config: RunConfig, s: Study, at: number): string | null {
  if (whyEnding(config, s, at) !== null || s.proposalsOver || s.paused) return 'not now';
  if (closingForBoundary(config, s)) return 'continuing as new';
  if (config.untilMs !== undefined && at + s.proposalMs + config.timeoutMs > config.untilMs) return 'too late';
  if (config.maxTokensTotal !== undefined && unreservedTokens(config, s)! < MIN_TOKEN_ALLOWANCE) {
    // Spent for good once no proposal in flight can hand back part of its allowance.
    if (s.asking.length === 0) s.proposalsOver = `token budget of ${config.maxTokensTotal} reached`;
    return 'budget';
  }
  return null;
}

/** --ahead, or as many as keep every slot fed while proposals take L and trainings T (P·L/T), and one a slot besides. */
function ahead(config: RunConfig, s: Study): number {
  if (config.ahead !== undefined) return config.ahead;
  const inFlight = s.trainingMs > 0 ? Math.ceil((config.parallel * s.proposalMs) / s.trainingMs) : 0;
  return Math.min(MAX_AHEAD_PER_SLOT * config.parallel, inFlight + config.parallel);
}

function boundaryReached(config: RunConfig, s: Study): boolean {
  const reached = s.historyFull || s.nextNumber - s.firstNumberHere >= (config.experimentsPerHistory ?? EXPERIMENTS_PER_HISTORY);
  if (reached) s.boundaryAt ??= s.nextNumber;
  return reached;
}

/** Past the boundary, proposing stops once a slot's worth is ready (or a round of slots has started since). */
function closingForBoundary(config: RunConfig, s: Study): boolean {
  if (!s.closing && boundaryReached(config, s))
    s.closing = s.paused || s.ready.length >= config.parallel || s.nextNumber - s.boundaryAt! >= config.parallel;
  return s.closing;
}

function unreservedTokens(config: RunConfig, s: Study): number | undefined {
  if (config.maxTokensTotal === undefined) return undefined;
  return config.maxTokensTotal - s.tokensUsed - s.asking.reduce((sum, a) => sum + (a.allowance ?? 0), 0);
}

function propose(config: RunConfig, s: Study, at: number, out: Command[]): void {
  const key = s.nextKey++;
  const base = best(s)?.commit ?? s.baseCommit;
  const left = unreservedTokens(config, s);
  const allowance = left === undefined ? null : Math.min(left, Math.max(MIN_TOKEN_ALLOWANCE, Math.floor(left / (ahead(config, s) + 1))));
  const crashed = repairable(config, s);
  s.asking.push({ key, base, repairBase: crashed?.parent ?? null, allowance, since: at });
  const inFlight = [...s.experiments.map((x) => x.description), ...s.ready.map((r) => r.description)].filter(Boolean);
  out.push({ type: 'propose', key, base, allowance, crashed, inFlight });
}

/** The last training crash, offered for repair a bounded number of times whatever happens in between. */
function repairable(config: RunConfig, s: Study): ExperimentRecord | null {
  const c = s.crash;
  if (config.proposer !== 'llm' || !c || c.shown >= REPAIRS_PER_CRASH || c.depth >= REPAIRS_IN_A_ROW) return null;
  c.shown++;
  return c.record;
}

// ---- deciding and recording, one at a time ------------------------------------------------------------

/** The baseline first: nothing can be judged before it has set the bar. */
function recordNext(config: RunConfig, s: Study, at: number, out: Command[]): void {
  while (s.recording === null) {
    // Not before its start is confirmed: the decision is signalled to its workflow.
    const judgeable = (m: number) => (s.baselineDone || m === 0) && s.experiments.find((y) => y.n === m)?.child !== 'starting';
    const n = s.toJudge.find(judgeable);
    const x = s.experiments.find((y) => y.n === n);
    if (!x) return;
    s.toJudge = s.toJudge.filter((m) => m !== n);
    if (!decide(config, s, x, at, out)) continue; // a confirmation: it trains once more
  }
}

/** Judges one experiment and issues its row; false when it is trained again instead (a near-tie). */
function decide(config: RunConfig, s: Study, x: Experiment, at: number, out: Command[]): boolean {
  const results = x.results as TrainingResult[];
  const stale = x.parent !== null && x.parent !== (best(s)?.commit ?? s.baseCommit);
  const ending = whyEnding(config, s, at);
  // A confirmation is another training of an experiment, not a new one: from rules 3 only stop and --until end them.
  const mayConfirm = (s.rules ?? 1) >= 3 ? !s.stop && !pastDeadline(config, at) : ending === null;
  let j = judge(config, s, x);
  let requeue = false;
  if (j.status === 'confirm' && !stale && mayConfirm && x.child === 'running') {
    const seed = seedOf(config, x.n, x.seeds.length);
    x.seeds.push(seed);
    x.results.push(null);
    send(s, x.n, { kind: 'repeat', seed }, out);
    out.push({ type: 'note', text: `experiment ${x.n} ${j.reason}` });
    return false;
  }
  if (j.status === 'confirm' && !stale) {
    j = { status: 'discard', reason: `${j.reason.replace(/: confirming$/, '')}; not confirmed: the study is ending`, valBpb: j.valBpb, nearMiss: true };
  } else if ((j.status === 'keep' || j.status === 'confirm') && stale && x.proposal) {
    // A win on a parent that was overtaken while it trained: merged onto the new best and trained again.
    requeue = ending === null;
    const again = requeue ? 'merged onto the new best to train again' : 'not trained again: the study is ending';
    j = { status: 'discard', reason: `beat its parent ${x.parent!.slice(0, 7)}, overtaken meanwhile: ${again}`, valBpb: j.valBpb };
  }
  if (requeue) s.ready.unshift({ ...x.proposal!, base: x.parent!, merging: false, requeued: true });

  const scored = results.map((r) => r.metrics.val_bpb).filter((v) => Number.isFinite(v));
  const previous = best(s);
  let move: { from: string; to: string } | null = null;
  if (x.rerun && j.status !== 'crash') {
    const k = s.kept.find((y) => y.commit === x.tree);
    if (k) k.runs.push(...scored);
    else s.noise = withGroup(s.noise, scored);
  } else if (j.status === 'keep') {
    s.kept.push({ n: x.n, commit: x.commit!, runs: scored, ...((s.rules ?? 1) >= 3 ? { deciding: scored.length } : {}) });
    s.experimentsKept++;
    if (previous) move = { from: previous.commit, to: x.commit! };
  } else if (j.status !== 'crash' && x.child !== 'none') s.noise = withGroup(s.noise, (s.rules ?? 1) >= 3 ? scored.slice(1) : scored);
  if (x.n === 0) s.baselineDone = true;
  if ((s.rules ?? 1) >= 3 && x.n > 0 && !x.rerun && j.status !== 'crash' && sigmaOf(noiseNow(s)) !== null)
    s.candidatesJudged = (s.candidatesJudged ?? 0) + 1;
  for (const r of results) noteSandbox(s, r);

  const row = rowOf(config, s, x, j, at);
  noteCrash(s, x, row);
  s.recording = x.n;
  s.experimentsDone++;
  s.recent = [...s.recent, { ...row, logTail: undefined }].slice(-RECENT_KEPT);
  // A proposal's ref goes once its experiment has a ref of its own (or it is dropped for good).
  const dropProposal = x.proposal && !requeue ? x.proposal.key : null;
  out.push({ type: 'record', row, move, dropProposal });
  if (x.n === 0 && j.status !== 'keep')
    halt(s, `the baseline did not score (${j.reason}); fix the research repo and start again`, true, out);
  return true;
}

/**
 * Keep-if-better with the noise model, against the experiment's own parent. The baseline is kept when any of
 * its runs scores (a failed run is a warning); a rerun is a sample of its commit, never a keep.
 */
function judge(config: RunConfig, s: Study, x: Experiment): Judgement {
  const results = x.results as TrainingResult[];
  if (x.n === 0) {
    const good = results.filter((r) => judgeRuns([r], null, 0, NO_NOISE).status !== 'crash');
    if (good.length === 0) return judgeRuns(results, null, config.minImprovement, NO_NOISE);
    if (good.length < results.length)
      s.warnings.push(`${results.length - good.length} of the baseline's ${results.length} runs failed; its score is the mean of the rest`);
    return judgeRuns(good, null, config.minImprovement, NO_NOISE);
  }
  const parent = s.kept.find((k) => k.commit === (x.parent ?? ''));
  if (!parent || !s.baselineDone)
    return { status: 'discard', reason: 'the baseline did not score: nothing to compare with', valBpb: null };
  const bar = { experimentId: `experiment ${parent.n}`, commit: parent.commit, valBpb: scoreOf(parent), runs: parent.runs.length };
  const j = (s.rules ?? 1) >= 3
    ? judgeSequential(results, bar, config.minImprovement, noiseNow(s), falseKeepOf(config))
    : judgeRuns(results, bar, config.minImprovement, noiseNow(s), config.confirmZ);
  if (!x.rerun || j.status === 'crash') return j;
  return { status: 'discard', reason: `a rerun of experiment ${parent.n}: a sample of its noise, not a candidate`, valBpb: j.valBpb };
}

function noteCrash(s: Study, x: Experiment, row: ExperimentRecord): void {
  if (row.status !== 'crash') s.crash = null;
  else if (x.commit && x.n > 0 && !x.rerun && !x.results.some((r) => r?.problem === 'cancelled')) {
    const depth = x.proposal?.fixes && x.proposal.fixes === s.crash?.record.id ? s.crash.depth + 1 : 0;
    s.crash = { record: { ...row, logTail: row.logTail?.slice(-CRASH_LOG_CHARS) }, shown: 0, depth };
  }
}

function noteSandbox(s: Study, result: TrainingResult): void {
  const warning = `training without the sandbox on ${result.worker} (gpu-worker --no-sandbox)`;
  if (result.sandboxed === false && !s.warnings.includes(warning)) s.warnings.push(warning);
}

/** The experiment's row: the mean of its runs, and every run in results.jsonl. */
function rowOf(config: RunConfig, s: Study, x: Experiment, j: Judgement, at: number): ExperimentRecord {
  const results = x.results as TrainingResult[];
  const p = x.proposal;
  const valBpb = j.valBpb;
  return {
    id: experimentId(config.tag, x.n),
    n: x.n,
    parent: x.parent,
    commit: x.commit,
    description: x.description || j.reason,
    status: j.status === 'confirm' ? 'discard' : j.status,
    reason: p?.dropped ? `${j.reason}; ${p.dropped}` : j.reason,
    valBpb,
    memoryGb: Math.max(...results.map((r) => r.metrics.peak_vram_mb ?? 0)) / 1024,
    metrics: { ...results[0].metrics, ...(valBpb === null ? {} : { val_bpb: valBpb }) },
    proposer: x.n === 0 ? 'baseline' : (p?.by ?? config.proposer),
    tokens: x.tokens,
    fixes: p?.fixes,
    change: p?.change,
    temperature: p?.temperature,
    seed: x.seeds[0],
    runs:
      x.child === 'none'
        ? undefined
        : results.map((r, i) => ({ seed: x.seeds[i], valBpb: r.metrics.val_bpb ?? null, seconds: r.seconds, worker: r.worker, metrics: r.metrics })),
    confirmed: j.status === 'keep' && x.n > 0 && results.length > 1 ? true : undefined,
    nearMiss: j.status === 'discard' && j.nearMiss && !x.rerun ? true : undefined,
    sigma: sigmaOf(noiseNow(s)) ?? undefined,
    startedAt: new Date(x.startedAt).toISOString(),
    finishedAt: new Date(at).toISOString(),
    trainingSeconds: results.reduce((sum, r) => sum + r.seconds, 0),
    logTail: j.status === 'crash' ? results.find((r) => r.logTail)?.logTail || undefined : undefined,
  };
}

// ---- small helpers ------------------------------------------------------------------------------------

/** AUTORESEARCH_SEED of training i of experiment n: fixed by the study's --seed, different for every training. */
export function seedOf(config: RunConfig, n: number, i: number): number {
  return config.seed * 1_000_000 + n * 16 + i;
}

/** An exponential running mean: recent durations count most, one odd value does not swing it. */
export function mean(previous: number, sample: number): number {
  return previous === 0 ? sample : previous * 0.7 + sample * 0.3;
}

function take<T>(xs: T[], match: (x: T) => boolean): T | undefined {
  const i = xs.findIndex(match);
  return i < 0 ? undefined : xs.splice(i, 1)[0];
}

/** A deep copy of plain data (NaN and Infinity kept, unlike a JSON round trip). */
function copy<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copy) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = copy(v);
  return out as T;
}
