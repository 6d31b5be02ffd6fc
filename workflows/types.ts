// The shapes shared by the workflow, the activities, the GPU worker and the CLI.
// Pure types and constants only: the workflow bundle imports this file.

export const CONTROL_QUEUE = 'autoresearch'; // task queue of the control worker (git, proposals, results)
export const GPU_QUEUE = 'gpu'; // task queue of the training slots
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

export type ProposerKind = 'sweep' | 'llm';
export type ExperimentStatus = 'keep' | 'discard' | 'crash';
export type Phase = 'proposing' | 'committing' | 'training' | 'deciding';
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
  maxTokensTotal?: number; // the llm proposer's spend for the night: no proposal starts past it
}

/** Fixed facts about the run, established once by the first activity. */
export interface RunSetup {
  baseCommit: string;
  harnessDigest: string;
}

export interface Best {
  experimentId: string;
  commit: string;
  valBpb: number;
}

/** The training activity's input: small, self-contained, no paths of the control host. */
export interface TrainingInput {
  experimentId: string;
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
}

export interface Heartbeat {
  step?: number;
  percent?: number;
  loss?: number;
  elapsed: number; // seconds since the command started
}

export type Proposal =
  | { ok: true; description: string; files: Record<string, string>; tokens: number; fixes?: string }
  | { ok: false; reason: string; tokens: number };

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
  startedAt: string;
  finishedAt: string;
  trainingSeconds: number;
  logTail?: string;
}

export interface InFlight {
  id: string;
  phase: Phase;
  description: string;
  heartbeat: Heartbeat | null;
}

/** The answer of `status --json`, and of the workflow's status query (heartbeat filled by the CLI). */
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
}

export function workflowIdFor(tag: string): string {
  return WORKFLOW_ID_PREFIX + tag;
}

/** The training activity's id: what `status` looks for among the server's pending activities. */
export function trainingActivityId(experimentId: string): string {
  return `${experimentId}-train`;
}

export function experimentId(tag: string, n: number): string {
  return `${tag}-${n}`;
}
