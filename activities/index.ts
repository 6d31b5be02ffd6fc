// The control worker's activities: everything the research loop does to the research repo.
// Each is safe to run twice: Temporal retries an activity whose worker died mid-way.
import { ApplicationFailure } from '@temporalio/common';
import { BRANCH_PREFIX, CANDIDATE_REF_PREFIX, experimentId, type ExperimentRecord, type Proposal, type RunConfig, type RunSetup } from '../workflows/types';
import { blobIdsAt, commitFiles, compareAndSwapRef, readFileAt, refsUnder, resolve, treeEntries } from './git';
import { harnessDigest } from './harness';
import { RepoError, branchOf, checkRepo } from './repo';
import { proposeWithLlm } from './llm';
import { appendRecord, readRecords } from './results';
import { findHyperparameters, proposeSweep } from './sweep';

export interface ProposeInput {
  config: RunConfig;
  experimentId: string;
  n: number;
  parent: string; // the best commit
  crashed?: { experimentId: string; commit: string }; // the llm proposer may fix it instead
}

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
}

const candidateRef = (tag: string, id: string) => `${CANDIDATE_REF_PREFIX}${tag}/${id}`;
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
    return { baseCommit: base, harnessDigest: harnessDigest(await treeEntries(config.repo, base), config.editable) };
  });
}

export async function readEditable(config: RunConfig, commit: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const path of config.editable) files[path] = await readFileAt(config.repo, commit, path);
  return files;
}

export async function propose(input: ProposeInput): Promise<Proposal> {
  return input.config.proposer === 'llm' ? proposeByLlm(input) : proposeBySweep(input);
}

async function proposeByLlm({ config, parent, crashed }: ProposeInput): Promise<Proposal> {
  const records = await readRecords(config.repo);
  const crashedRecord = crashed && records.find((r) => r.id === crashed.experimentId);
  return proposeWithLlm({
    config,
    best: { commit: parent, files: await readEditable(config, parent) },
    crashed: crashedRecord && { record: crashedRecord, files: await readEditable(config, crashed!.commit) },
    records,
  });
}

async function proposeBySweep({ config, n, parent }: ProposeInput): Promise<Proposal> {
  const files = await readEditable(config, parent);
  const path = config.editable.find((p) => findHyperparameters(files[p]).length > 0);
  if (!path) return { ok: false, reason: 'no UPPER_CASE = number hyperparameters in the editable files', tokens: 0 };
  const candidates = await refsUnder(config.repo, `${CANDIDATE_REF_PREFIX}${config.tag}/`);
  const tried = new Set(await blobIdsAt(config.repo, candidates, path));
  const change = proposeSweep(files[path], config.seed, n, tried);
  if (!change) return { ok: false, reason: 'sweep exhausted: every single-parameter step from the best was tried', tokens: 0 };
  return { ok: true, description: change.description, files: { ...files, [path]: change.content }, tokens: 0 };
}

export async function commitCandidate({ config, experimentId, parent, description, files }: CommitInput): Promise<string> {
  const ref = candidateRef(config.tag, experimentId);
  const existing = await resolve(config.repo, ref);
  if (existing) return existing; // a retry after the ref was written: same candidate, no duplicate
  const message = `${description}\n\nExperiment-Id: ${experimentId}\n`;
  const commit = await commitFiles(config.repo, parent, files, message);
  await compareAndSwapRef(config.repo, ref, commit, null);
  return (await resolve(config.repo, ref))!;
}

/** The row first, then the branch: a failed move never loses the experiment's row. */
export async function recordExperiment({ config, record, move }: RecordInput): Promise<void> {
  await appendRecord(config.repo, record);
  if (move && !(await compareAndSwapRef(config.repo, branchRef(config.tag), move.to, move.from))) {
    const found = await resolve(config.repo, branchRef(config.tag));
    throw ApplicationFailure.nonRetryable(
      `branch ${BRANCH_PREFIX}${config.tag} was moved outside the run (expected ${move.from.slice(0, 7)}, found ${found?.slice(0, 7)}); every candidate is still at refs/autoresearch/${config.tag}/`,
      'RepoError',
    );
  }
}

export const controlActivities = { prepareRun, readEditable, propose, commitCandidate, recordExperiment };
export type ControlActivities = typeof controlActivities;
