// The shapes shared by the workflow, the activities, the GPU worker and the CLI.
// Pure types and constants only: the workflow bundle imports this file.

export const CONTROL_QUEUE = 'autoresearch'; // task queue of the control worker (git, proposals, results)
export const GPU_QUEUE_PREFIX = 'gpu-'; // training slots poll `gpu-<repo id>`: a training only reaches a worker holding its repo
export const WORKFLOW_ID_PREFIX = 'autoresearch-';
export const BRANCH_PREFIX = 'autoresearch/';
export const CANDIDATE_REF_PREFIX = 'refs/autoresearch/';
export const DEFAULT_TIMEOUT_MS = 5 * 60_000; // hard limit for one training command
export const STARTUP_ALLOWANCE_MS = 60_000; // part of the timeout kept for start-up and evaluation
export const CONFIG_FILE = 'autoresearch.json'; // per-repo defaults (command, editable, timeout, budget)
export const PROGRAM_FILE = 'program.md';
export const RESULTS_TSV = 'results.tsv';
export const RESULTS_JSONL = 'results.jsonl';
export const NO_COMMIT = '0000000'; // the commit column of an experiment that never got a commit

export type ProposerKind = 'sweep' | 'llm' | 'tpe' | 'cmaes' | 'mixed' | 'agent';
export type ExperimentStatus = 'keep' | 'discard' | 'crash';
export type Phase = 'proposing' | 'queued' | 'committing' | 'training' | 'deciding';
export type RunState = 'running' | 'paused' | 'stopping' | 'completed' | 'stopped' | 'failed';

/** Everything a run needs to know, fixed at `start`. */
export interface RunConfig {
  tag: string;
  repo: string; // path of the research repo on the control worker's host
  proposer: ProposerKind;
  editable: string[]; // the only paths a proposer may change
  command: string; // training command, run in the scratch directory
  timeoutMs: number; // hard limit for one training command
  budgetSeconds: number; // AUTORESEARCH_TIME_BUDGET handed to the command
  parallel: number; // lanes: experiments in flight at once
  maxExperiments?: number; // the baseline counts as one
  untilMs?: number; // epoch ms: start nothing that could not finish before it
  seed: number;
  minImprovement: number; // a candidate is kept if val_bpb < best - minImprovement
  model?: string; // the llm proposer's model
  llmTimeoutMs?: number; // per chat-completions call
  maxTokensTotal?: number; // the llm proposer's spend for the night: no call starts past it
  ahead?: number; // proposals prepared ahead of the slots (default: enough to keep every lane fed)
  rerunGraceMs?: number; // a free slot waits this long for a late proposal before a rerun of the best (default: 1 s or 2% of a training)
  maxProposerFailures?: number; // proposer failures in a row that halt the run (default 5)
  experimentsPerHistory?: number; // continue-as-new after this many experiments (default 100)
  temperature?: number; // the llm proposer's sampling temperature (recorded with each experiment)
  maxTokensPerCall?: number; // max_tokens of each chat-completions call
  agent?: string; // the agent proposer's shell command, run in a box in a checkout of the best
  agentEnv?: string[]; // names of the control worker's variables the agent gets (e.g. ANTHROPIC_API_KEY); values never travel
  agentTimeoutMs?: number; // one agent run's limit (default 10 min)
  agentNetwork?: 'egress' | 'host'; // the agent's box reaches the network (to reach its model): never the host's loopback, or all of the host's
  agentNetworkAllow?: string[]; // with 'egress': CIDRs it may reach too (a model served on the LAN)
  baselineRuns?: number; // the baseline is trained this many times, on different seeds, to measure the noise (CLI default 5)
  confirmZ?: number; // studies before --false-keep: a gain under confirmZ·σ is confirmed by another run (0: never confirm)
  falseKeep?: number; // the rate of keeps a change that does nothing may get (default 0.01; 0: plain keep-if-better)
  verifyRuns?: number; // at the end, the baseline and the best are each trained this many times more (the verdict)
}

/** Fixed facts about the run, established once by the first activity. */
export interface RunSetup {
  baseCommit: string;
  harnessDigest: string;
  gpuQueue: string; // gpuQueueFor(the repo's root commit)
}

export interface Best {
  experimentId: string;
  commit: string;
  valBpb: number;
}

/** The training activity's input: small, self-contained, no paths of the control host. */
export interface TrainingInput {
  experimentId: string;
  seed: number; // AUTORESEARCH_SEED in the training's environment: repeats of one commit differ only by it
  commit: string;
  files: Record<string, string>; // full content of the editable files
  harnessDigest: string;
  command: string;
  budgetSeconds: number;
  timeoutMs: number;
}

export interface TrainingResult {
  exitCode: number | null;
  timedOut: boolean;
  metrics: Record<string, number>; // every numeric `key: value` of the summary block
  seconds: number; // wall clock of the command
  logTail: string; // bounded
  problem?: string; // set when the command could not be judged (harness mismatch, missing command…)
  worker: string;
  sandboxed: boolean; // false only on a GPU worker started with --no-sandbox: status and the memo say so
}

export interface Heartbeat {
  step?: number;
  percent?: number;
  loss?: number;
  tokens?: number; // a proposal: tokens streamed so far
  elapsed: number; // seconds since the command (or the proposal) started
}

/** One search/replace in an editable file; an empty search with the whole file as replace rewrites it. */
export interface Edit {
  path: string;
  search: string;
  replace: string;
}

/**
 * A proposer's answer. `edits` are kept so a proposal can be re-applied on a newer best (rebased);
 * `change` is what really changed, computed from the files (e.g. `LEARNING_RATE 0.006 -> 0.03`).
 */
export type Proposal =
  | {
      ok: true;
      description: string;
      files: Record<string, string>;
      edits: Edit[];
      change: string;
      tokens: number;
      fixes?: string;
      temperature?: number;
      by?: ProposerKind; // mixed: which of its proposers made it (llm or tpe)
      dropped?: string; // the agent: its changes outside the editable files, not taken (named in the row's reason)
    }
  | { ok: false; reason: string; tokens: number; final?: boolean }; // final: no later proposal can succeed either

/** One experiment as written to results.jsonl; results.tsv holds five of its fields. */
export interface ExperimentRecord {
  id: string;
  n: number;
  parent: string | null;
  commit: string | null;
  description: string;
  status: ExperimentStatus;
  reason: string;
  valBpb: number | null;
  memoryGb: number;
  metrics: Record<string, number>;
  proposer: ProposerKind | 'baseline';
  tokens: number;
  fixes?: string; // the crashed experiment this one repairs
  change?: string; // what really changed, computed from the files
  temperature?: number; // the llm proposer's sampling temperature
  seed?: number; // AUTORESEARCH_SEED of its (first) training
  runs?: RunScore[]; // every training of it: the baseline's repeats, a confirmation; valBpb is their mean
  confirmed?: boolean; // kept after a confirmation run
  nearMiss?: boolean; // discarded though its mean beat its parent over more than one run: a lead for a later night
  sigma?: number; // the run's noise estimate (σ of val_bpb) when this was decided
  startedAt: string;
  finishedAt: string;
  trainingSeconds: number;
  logTail?: string;
}

/** A commit the morning's questions train again: `verify`'s baseline and best, `ablate`'s best without one change, a ref to `compare`, the best with one knob moved. */
export interface Arm {
  name: string;
  commit: string;
  files: Record<string, string>;
  change?: string; // ablate: the experiment whose change this arm takes out
  problem?: string; // ablate: why that change could not be taken out
  knob?: { name: string; value: string }; // sensitivity: the knob this arm moves, and to what
}

/** An interval: mean with the bounds of its 95% interval. */
export interface Interval {
  mean: number;
  low: number;
  high: number;
  n: number;
}

/** `verify`: the night's gain, from the baseline and the best trained again side by side. */
export interface Verdict {
  tag: string;
  baseline: Interval & { commit: string };
  best: Interval & { commit: string };
  gain: Interval; // best − baseline: negative is better
  line: string; // e.g. baseline 2.1116 ± 0.0021 → best 2.0540 ± 0.0018 (n=3): −0.0576 [−0.061, −0.054]
  crashes: number;
}

/** `ablate`: what each kept change is worth, from the best trained without it. */
export interface Ablation {
  tag: string;
  best: Interval & { commit: string };
  changes: { name: string; change: string; commit: string; contribution: Interval | null; problem?: string }[];
}

/** `sensitivity`: the best trained with each knob moved along a grid; knobs most sensitive first. */
export interface Sensitivity {
  tag: string;
  runs: number;
  best: Interval & { commit: string };
  knobs: {
    knob: string;
    value: string; // the best's own
    points: (Interval & { value: string; commit: string; crashes: number })[]; // the grid, the best's own value among it
    bestValue: string; // the value with the lowest mean
    spread: number; // highest mean − lowest
    aboveNoise: number; // the means' spread over what noise alone gives them (≈ 1 for a knob that does nothing)
    p: number; // one-way ANOVA: that every value scores the same
    pHolm: number; // adjusted over the knobs (Holm)
    sensitive: boolean; // pHolm < 0.05
    leads: string[]; // values that beat the best beyond its 95% band: worth a night of their own
  }[];
  line: string; // e.g. `LEARNING_RATE sensitive (best 0.012, p=1e-6); WEIGHT_DECAY not (p=0.61)`
}

/** `compare`: refs of the research repo trained side by side on the same fresh seeds, ranked. */
export interface Comparison {
  tag: string;
  runs: number; // trainings asked of each ref
  refs: (Interval & { ref: string; commit: string; crashes: number; rank: number })[]; // in the order given
  pairs: {
    a: string; // the ref with the lower mean
    b: string;
    difference: Interval; // b − a: positive, a scored lower (better)
    p: number; // Welch's two-sided p
    pHolm: number; // p adjusted for all the pairs (Holm)
    real: boolean; // pHolm < 0.05: a is better than b
  }[];
  line: string; // e.g. `1. exp-b; 2. main, exp-a (cannot be told apart)`
}

/** One training of an experiment. */
export interface RunScore {
  seed: number;
  valBpb: number | null;
  seconds: number;
  worker: string;
  metrics: Record<string, number>; // every numeric key of its summary
}

export interface InFlight {
  id: string;
  phase: Phase;
  description: string;
  heartbeat: Heartbeat | null;
}

/** The answer of `status --json`, and of the workflow's status query (heartbeat filled by the CLI). */
export interface Noise {
  sigma: number;
  runs: number;
  dof?: number; // degrees of freedom of σ's estimate (studies before the sequential rule do not say)
  low?: number; // σ's 95% interval
  high?: number;
  falseKeep?: number; // the rate a change that does nothing may be kept at (--false-keep)
  expectedFalseKeeps?: number; // that rate times the candidates judged so far
}

export interface StatusView {
  tag: string;
  workflowId: string;
  state: RunState;
  experimentsDone: number;
  experimentsKept: number;
  best: { commit: string; valBpb: number } | null;
  inFlight: InFlight[];
  tokensUsed: number;
  reason?: string; // why the run ended or is stopping
  recent: ExperimentRecord[]; // last few, newest last, without log tails
  warnings?: string[]; // e.g. a GPU worker that trains without the sandbox
  noise?: Noise; // σ of val_bpb between runs of one commit, from `runs` trainings
  verdict?: string; // the night's gain with its 95% interval, once verified
  stale?: { since: string; why: string }; // the CLI could not query the run: figures are from that time
}

export function workflowIdFor(tag: string): string {
  return WORKFLOW_ID_PREFIX + tag;
}

/**
 * A study's own workflows are `autoresearch-<tag>/…`: a tag never holds `/`, so no tag's ids collide with another's
 * (`nov27-3`'s study and experiment 3 of `nov27` once shared `autoresearch-nov27-3`).
 */
const TAG_END = '/';

/** `verify`, `ablate`, `compare` and `sensitivity` run as workflows of their own beside the study: `autoresearch-<tag>/verify`. */
export function morningWorkflowId(tag: string, question: 'verify' | 'ablate' | 'compare' | 'sensitivity'): string {
  return `${WORKFLOW_ID_PREFIX}${tag}${TAG_END}${question}`;
}

/** The training activity's id (its repeats add `-<run>`): what `status` looks for among the pending activities. */
export function trainingActivityId(experimentId: string, run = 0): string {
  return run === 0 ? `${experimentId}-train` : `${experimentId}-train-${run}`;
}

/** The propose activity's id: its heartbeat (tokens streamed, seconds) is what `status` shows while proposing. */
export function proposalActivityId(tag: string, key: number): string {
  return `${tag}-proposal-${key}`;
}

export function experimentId(tag: string, n: number): string {
  return `${tag}-${n}`;
}

/** Each experiment is a child workflow with its own page in the Web UI (`autoresearch-<tag>/<n>`); its training runs there. */
export function experimentWorkflowId(experimentId: string): string {
  return WORKFLOW_ID_PREFIX + experimentId.replace(/-(\d+)$/, `${TAG_END}$1`);
}

/** The experiment id an experiment's workflow id stands for (either form). */
export function experimentIdOfWorkflow(workflowId: string): string {
  return workflowId.slice(WORKFLOW_ID_PREFIX.length).replace(new RegExp(`${TAG_END}(\\d+)$`), '-$1');
}

/** The ids of studies started before the state machine, whose experiments and morning workflows still run by them. */
export function legacyWorkflowId(experimentId: string): string {
  return WORKFLOW_ID_PREFIX + experimentId;
}

/** The task queue of the GPU workers holding one research repo (any clone: the root commit names it). */
export function gpuQueueFor(rootCommit: string): string {
  return GPU_QUEUE_PREFIX + rootCommit.slice(0, 12);
}
