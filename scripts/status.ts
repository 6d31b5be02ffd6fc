// Reading a run: `status` (one object, or a live view) and `results` (the results table).
import { WorkflowNotFoundError, defaultPayloadConverter, type Client } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { statusQuery } from '../workflows';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT } from '../workflows/search-attributes';
import { RESULTS_TSV, trainingActivityId, workflowIdFor, type Heartbeat, type RunState, type StatusView } from '../workflows/types';
import { parseTag } from './args';
import { UserError } from './errors';
import { alignTsv, DEFAULT_WATCH_WIDTH, renderWatch } from './watch';

const QUERY_DEADLINE_MS = 5_000; // a run with no control worker cannot answer its query

const CLOSED_STATE: Record<string, RunState> = { TERMINATED: 'stopped', CANCELLED: 'stopped', FAILED: 'failed', TIMED_OUT: 'failed' };

export async function fetchStatus(client: Client, tag: string): Promise<StatusView> {
  const workflowId = workflowIdFor(parseTag(tag));
  const handle = client.workflow.getHandle(workflowId);
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UserError(`no run with tag ${tag}`);
    throw err;
  }
  const status = description.status.name;
  if (status === 'COMPLETED') return handle.result();
  // Written by the workflow after every experiment: what we can say without a worker.
  const sa = description.typedSearchAttributes;
  const best = sa.get(BEST_VAL_BPB);
  const bestCommit = (description.memo?.bestCommit as string | null) ?? null;
  const fallback: StatusView = {
    tag,
    workflowId,
    state: CLOSED_STATE[status] ?? 'running',
    experimentsDone: sa.get(EXPERIMENTS_DONE) ?? 0,
    experimentsKept: sa.get(EXPERIMENTS_KEPT) ?? 0,
    best: best !== undefined && bestCommit ? { commit: bestCommit, valBpb: best } : null,
    inFlight: [],
    tokensUsed: 0,
    recent: [],
  };
  if (status !== 'RUNNING') {
    const failure = status === 'FAILED' ? await handle.result().then(() => '', (err: Error) => (err.cause as Error | undefined)?.message ?? err.message) : '';
    return { ...fallback, reason: failure || status.toLowerCase() };
  }
  let view: StatusView;
  try {
    view = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(statusQuery));
  } catch {
    return { ...fallback, reason: 'no control worker answered: counts are from the last finished experiment' };
  }
  // Heartbeats live on the server's pending activities, not in the workflow's state.
  const heartbeats = new Map<string, Heartbeat>();
  for (const pending of description.raw.pendingActivities ?? []) {
    const payload = pending.heartbeatDetails?.payloads?.[0];
    if (pending.activityId && payload) heartbeats.set(pending.activityId, defaultPayloadConverter.fromPayload(payload));
  }
  return { ...view, inFlight: view.inFlight.map((lane) => ({ ...lane, heartbeat: heartbeats.get(trainingActivityId(lane.id)) ?? null })) };
}

/** `status --json`: exactly the documented object, so scripts can rely on its shape. */
export function statusJson(view: StatusView): string {
  const { tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight } = view;
  return JSON.stringify({ tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight });
}

/** `status --watch`: redraws on a terminal; elsewhere (a log file, a pipe) prints each change once. */
export async function watchStatus(client: Client, tag: string, everyMs = 2_000): Promise<void> {
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const view = await fetchStatus(client, tag);
    const text = renderWatch(view, process.stdout.columns ?? DEFAULT_WATCH_WIDTH);
    if (text !== last) {
      process.stdout.write(tty ? `\x1b[2J\x1b[H${text}\n` : `${text}\n\n`);
      last = text;
    }
    if (!['running', 'paused', 'stopping'].includes(view.state)) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The research repo of a run, from its memo (written at start), unless the user names it. */
export async function repoOf(client: Client, tag: string, repo?: string): Promise<string> {
  if (repo) return repo;
  try {
    const { memo } = await client.workflow.getHandle(workflowIdFor(parseTag(tag))).describe();
    return memo?.repo as string;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UserError(`no run with tag ${tag}`);
    throw err;
  }
}

/** results.tsv as an aligned table. */
export async function resultsTable(repo: string): Promise<string> {
  const text = await readFile(join(repo, RESULTS_TSV), 'utf8').catch(() => {
    throw new UserError(`no ${RESULTS_TSV} in ${repo} yet`);
  });
  return alignTsv(text);
}
