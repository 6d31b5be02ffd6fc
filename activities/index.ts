// The control worker's activities: everything the research loop does to the research repo.
// Those that write (commits, refs, rows) check what a previous attempt left, so a retry after a worker
// died mid-way neither duplicates nor contradicts it; proposing may call the LLM again (its tokens count).
import { ApplicationFailure } from '@temporalio/common';
import {
  BRANCH_PREFIX,
  CANDIDATE_REF_PREFIX,
  experimentId,
  gpuQueueFor,
  type Edit,
  type ExperimentRecord,
  type Proposal,
  type RunConfig,
  type RunSetup,
} from '../workflows/types';
import { proposeWithAgent } from './agent';
import { applyEdits, describeChange, InvalidAnswer, validateCandidate } from './edits';
import {
  blobIdsAt,
  commitFiles,
  compareAndSwapRef,
  deleteRefs,
  readFileAt,
  mergeTree,
  refsUnder,
  resolve,
  rootCommit,
  treeEntries,
  treeOf,
} from './git';
import { harnessDigest } from './harness';
import { ablationArms, compareArms, morningSetup, sensitivityArms, verifyArms, writeMorning, type MorningSetup } from './morning';
import { RepoError, branchOf, checkRepo } from './repo';
import { proposeWithLlm } from './llm';
import { appendRecord, readRecords } from './results';
import { proposeBySampler } from './sampler';
import { findHyperparameters, proposeSweep } from './sweep';
import { watchExperiment } from './watch';

export interface ProposeInput {
  config: RunConfig;
  key: number; // the proposal's number in the run (proposals get experiment numbers only when they train)
  parent: string; // the best commit
  crashed?: ExperimentRecord; // the last crash, with its log tail: the llm proposer may fix it instead
  inFlight: string[]; // descriptions of what is training or queued now: not to be duplicated
  tokenAllowance?: number; // what this proposal may spend of the night's token budget
}

export interface CommitProposalInput {
  config: RunConfig;
  key: number;
  parent: string;
  description: string;
  files: Record<string, string>;
}

export interface RebaseInput {
  config: RunConfig;
  key: number;
  onto: string; // the new best
  description: string;
  edits: Edit[];
}

export interface MergeInput {
  config: RunConfig;
  key: number;
  base: string; // the version the proposal was made on
  onto: string; // the new best
  commit: string; // the proposal's commit on `base`
  description: string;
}

export type Merged = { ok: true; commit: string; change: string } | { ok: false; reason: string };
export type Rebased =
  { ok: true; commit: string; files: Record<string, string>; change: string } | { ok: false; reason: string };

export interface CommitInput {
  config: RunConfig;
  experimentId: string;
  parent: string;
  description: string;
  files: Record<string, string>;
}

export interface RecordInput {
  config: RunConfig;
  record: ExperimentRecord;
  move?: { from: string; to: string }; // a kept candidate moves the branch from the old best
  dropProposal?: number; // the key of the proposal this experiment trained: its refs go once the row is written
}

const candidateRef = (tag: string, id: string) => `${CANDIDATE_REF_PREFIX}${tag}/${id}`;
// A proposal's ref names its parent too: the same proposal rebased onto a new best is a new commit.
const proposalRef = (tag: string, key: number, parent: string) =>
  `${CANDIDATE_REF_PREFIX}${tag}/proposals/${key}-${parent.slice(0, 12)}`;
const branchRef = (tag: string) => `refs/heads/${BRANCH_PREFIX}${tag}`;

/** Deterministic problems are not retried: a retry would only fail the same way. */
async function userFacing<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof RepoError) throw ApplicationFailure.nonRetryable(err.message, 'RepoError');
    throw err;
  }
}

export async function prepareRun(config: RunConfig): Promise<RunSetup> {
  return userFacing(async () => {
    const { head } = await checkRepo(config.repo, config.editable);
    let base = await branchOf(config.repo, config.tag);
    if (base === null) {
      await compareAndSwapRef(config.repo, branchRef(config.tag), head, null);
      base = await branchOf(config.repo, config.tag);
      if (base === null) throw new RepoError(`could not create branch ${BRANCH_PREFIX}${config.tag} in ${config.repo}`);
    }
    // The baseline is experiment 0: its ref makes it one of the configurations the sweep never repeats.
    await compareAndSwapRef(config.repo, candidateRef(config.tag, experimentId(config.tag, 0)), base, null);
    const digest = harnessDigest(await treeEntries(config.repo, base), config.editable);
    return { baseCommit: base, harnessDigest: digest, gpuQueue: gpuQueueFor(await rootCommit(config.repo, base)) };
  });
}

export async function readEditable(config: RunConfig, commit: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const path of config.editable) files[path] = await readFileAt(config.repo, commit, path);
  return files;
}

const MIXED_EVERY = 4; // mixed: every 4th proposal is the sampler's…
const MIXED_AFTER_LOSSES = 3; // …and so is the next one after 3 code changes in a row (llm's or agent's) that were not kept

export async function propose(input: ProposeInput): Promise<Proposal> {
  const { config, key, parent } = input;
  if (config.proposer === 'sweep') return proposeBySweep(input);
  const records = await userFacing(() => readRecords(config.repo, config.tag)); // read once: every other proposer is told them
  if (config.proposer === 'llm') return proposeByLlm(input, records);
  if (config.proposer === 'agent') return proposeByAgent(input, records);
  const sampler = config.proposer === 'mixed' ? 'tpe' : config.proposer;
  if (config.proposer === 'mixed') {
    // The code changes are the agent's where one is given (--agent), else the llm's.
    const coder = config.agent ? 'agent' : 'llm';
    const code = records.filter((r) => r.proposer === coder).slice(-MIXED_AFTER_LOSSES);
    const lost = code.length === MIXED_AFTER_LOSSES && code.every((r) => r.status !== 'keep');
    if (key % MIXED_EVERY !== 0 && !lost) {
      const change = await (config.agent ? proposeByAgent(input, records) : proposeByLlm(input, records));
      return change.ok ? { ...change, by: coder } : change;
    }
  }
  const proposal = await userFacing(async () => proposeBySampler(config, sampler, key, await readEditable(config, parent), records));
  return config.proposer === 'mixed' && proposal.ok ? { ...proposal, by: sampler } : proposal;
}

async function proposeByLlm(
  { config, key, parent, crashed, inFlight, tokenAllowance }: ProposeInput,
  records: ExperimentRecord[],
): Promise<Proposal> {
  return proposeWithLlm({
    config,
    key,
    best: { commit: parent, files: await readEditable(config, parent) },
    crashed: crashed && { record: crashed, files: await readEditable(config, crashed.commit!) },
    records,
    inFlight,
    tokenAllowance,
  });
}

async function proposeByAgent({ config, key, parent, crashed, inFlight }: ProposeInput, records: ExperimentRecord[]): Promise<Proposal> {
  return proposeWithAgent({ config, key, best: { commit: parent, files: await readEditable(config, parent) }, records, inFlight, crashed });
}

async function proposeBySweep({ config, key, parent }: ProposeInput): Promise<Proposal> {
  const files = await readEditable(config, parent);
  const path = config.editable.find((p) => findHyperparameters(files[p]).length > 0);
  if (!path)
    return {
      ok: false,
      reason: 'no UPPER_CASE = number hyperparameters in the editable files',
      tokens: 0,
      final: true,
    };
  // Every candidate and queued proposal of the run: the sweep never repeats a configuration.
  const candidates = await refsUnder(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/`);
  const tried = new Set(await blobIdsAt(config.repo, candidates, path));
  const change = proposeSweep(files[path], config.seed, key, tried);
  if (!change)
    return {
      ok: false,
      reason: 'sweep exhausted: every single-parameter step from the best was tried',
      tokens: 0,
      final: true,
    };
  const after = { ...files, [path]: change.content };
  const edits = [{ path, ...change.edit }];
  return {
    ok: true,
    description: change.description,
    files: after,
    edits,
    change: describeChange(files, after),
    tokens: 0,
  };
}

/** Commits a validated proposal on its parent, under a ref of its own, so the sweep sees it as tried. */
export async function commitProposal({
  config,
  key,
  parent,
  description,
  files,
}: CommitProposalInput): Promise<string> {
  return commitOnce(
    config,
    proposalRef(config.tag, key, parent),
    parent,
    files,
    `${description}\n\nProposal: ${key}\n`,
  );
}

/** Re-applies a queued proposal's edits on the new best: the same search/replace, validated again. */
export async function rebaseProposal({ config, key, onto, description, edits }: RebaseInput): Promise<Rebased> {
  const before = await readEditable(config, onto);
  let files: Record<string, string>;
  try {
    files = applyEdits(before, edits, config.editable);
    await validateCandidate(before, files);
  } catch (err) {
    if (!(err instanceof InvalidAnswer)) throw err;
    // Dropped: its refs go, so the sweep may propose the same configuration again from the new best.
    await deleteRefs(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/proposals/${key}-*`);
    return { ok: false, reason: err.message.split('\n')[0] };
  }
  const commit = await commitOnce(
    config,
    proposalRef(config.tag, key, onto),
    onto,
    files,
    `${description}\n\nProposal: ${key}\n`,
  );
  return { ok: true, commit, files, change: describeChange(before, files) };
}

/**
 * Carries a queued proposal to the new best by git's three-way merge: base = the version it was made on,
 * ours = the new best, theirs = the proposal. Whole-file rewrites and repairs land the same way, so a keep
 * made meanwhile is never undone. A conflict, or a change the best already holds, drops the proposal.
 */
export async function mergeProposal({ config, key, base, onto, commit, description }: MergeInput): Promise<Merged> {
  const merged = await mergeTree(config.repo, base, onto, commit);
  const before = await readEditable(config, onto);
  let why: string | null = 'conflicts' in merged ? `it conflicts with the best in ${merged.conflicts.join(', ')}` : null;
  let files = before;
  if ('tree' in merged) {
    files = await readEditable(config, merged.tree);
    if (merged.tree === (await treeOf(config.repo, onto))) why = 'the best already holds its change';
    else
      why = await validateCandidate(before, files).then(
        () => null,
        (err) => {
          if (err instanceof InvalidAnswer) return err.message.split('\n')[0];
          throw err;
        },
      );
  }
  if (why !== null) {
    // Dropped: its refs go, so the sweep may propose the same configuration again from the new best.
    await deleteRefs(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/proposals/${key}-*`);
    return { ok: false, reason: why };
  }
  const merge = await commitOnce(config, proposalRef(config.tag, key, onto), onto, files, `${description}\n\nProposal: ${key}\n`);
  return { ok: true, commit: merge, change: describeChange(before, files) };
}

/**
 * A commit of `files` on `parent` at `ref`, made once. A retry finds the ref; a ref holding other content
 * (the repo was reset and the experiment ids reused) is refused by name rather than trained as if it were this.
 */
async function commitOnce(
  config: RunConfig,
  ref: string,
  parent: string,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  const commit = await commitFiles(config.repo, parent, files, message);
  const existing = await resolve(config.repo, ref);
  if (existing === null) {
    await compareAndSwapRef(config.repo, ref, commit, null);
    return (await resolve(config.repo, ref))!;
  }
  if (existing !== commit && (await treeOf(config.repo, existing)) !== (await treeOf(config.repo, commit))) {
    throw ApplicationFailure.nonRetryable(
      `${ref} already exists with other content (${existing.slice(0, 7)}): was the repo reset under a running tag? Start a new tag`,
      'RepoError',
    );
  }
  return existing;
}

export async function commitCandidate({
  config,
  experimentId,
  parent,
  description,
  files,
}: CommitInput): Promise<string> {
  return commitOnce(
    config,
    candidateRef(config.tag, experimentId),
    parent,
    files,
    `${description}\n\nExperiment-Id: ${experimentId}\n`,
  );
}

/** The row first, then the branch: a failed move never loses the experiment's row. */
export async function recordExperiment({ config, record, move, dropProposal }: RecordInput): Promise<void> {
  await userFacing(() => appendRecord(config.repo, config.tag, record));
  // A rerun of the best trains a commit it did not make: it gets a ref of its own too, as every row with a commit.
  if (record.commit) await compareAndSwapRef(config.repo, candidateRef(config.tag, record.id), record.commit, null);
  if (dropProposal !== undefined) await deleteRefs(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/proposals/${dropProposal}-*`);
  if (move && !(await compareAndSwapRef(config.repo, branchRef(config.tag), move.to, move.from))) {
    const found = await resolve(config.repo, branchRef(config.tag));
    throw ApplicationFailure.nonRetryable(
      `branch ${BRANCH_PREFIX}${config.tag} was moved outside the run (expected ${move.from.slice(0, 7)}, found ${found?.slice(0, 7)}); every candidate is still at refs/autoresearch/${config.tag}/`,
      'RepoError',
    );
  }
}

export const controlActivities = {
  prepareRun,
  readEditable,
  propose,
  commitProposal,
  rebaseProposal,
  mergeProposal,
  watchExperiment,
  commitCandidate,
  recordExperiment,
  morningSetup: (config: RunConfig) => userFacing(() => morningSetup(config)),
  verifyArms,
  ablationArms,
  compareArms: (config: RunConfig, refs: string[]) => userFacing(() => compareArms(config, refs)),
  sensitivityArms: (config: RunConfig, setup: MorningSetup, knobs: string[] | null, points: number) =>
    userFacing(() => sensitivityArms(config, setup, knobs, points)),
  writeMorning,
};
export type ControlActivities = typeof controlActivities;
