// Reading a run: `status` (one object, or a live view) and `results` (the results table).
import { WorkflowNotFoundError, defaultPayloadConverter, type Client } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { statusQuery } from '../workflows';
import { BEST_VAL_BPB, EXPERIMENTS_DONE, EXPERIMENTS_KEPT } from '../workflows/search-attributes';
import { RESULTS_TSV, workflowIdFor, type Heartbeat, type RunState, type StatusView } from '../workflows/types';
import { parseTag } from './args';
import { UserError } from './errors';

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
    if (pending.activityId && payload) heartbeats.set(pending.activityId.replace(/-train$/, ''), defaultPayloadConverter.fromPayload(payload));
  }
  return { ...view, inFlight: view.inFlight.map((lane) => ({ ...lane, heartbeat: heartbeats.get(lane.id) ?? null })) };
}

/** `status --json`: exactly the documented object, so scripts can rely on its shape. */
export function statusJson(view: StatusView): string {
  const { tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight } = view;
  return JSON.stringify({ tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight });
}

function progressOf(heartbeat: Heartbeat | null): string {
  if (!heartbeat) return '';
  const parts = [];
  if (heartbeat.step !== undefined) parts.push(`step ${heartbeat.step}`);
  if (heartbeat.percent !== undefined) parts.push(`${heartbeat.percent.toFixed(1)}%`);
  if (heartbeat.loss !== undefined) parts.push(`loss ${heartbeat.loss.toFixed(4)}`);
  parts.push(`${heartbeat.elapsed}s`);
  return parts.join(' ');
}

export function formatStatus(view: StatusView): string {
  const lines = [
    `tag:          ${view.tag}`,
    `workflow:     ${view.workflowId}`,
    `state:        ${view.state}${view.reason ? ` (${view.reason})` : ''}`,
    `experiments:  ${view.experimentsDone} done, ${view.experimentsKept} kept`,
    `best:         ${view.best ? `${view.best.valBpb.toFixed(6)} (${view.best.commit.slice(0, 7)})` : '-'}`,
  ];
  for (const lane of view.inFlight) {
    lines.push(`in flight:    ${lane.id} ${lane.phase} ${progressOf(lane.heartbeat)} ${lane.description ? `· ${lane.description}` : ''}`.trimEnd());
  }
  return lines.join('\n');
}

export async function watchStatus(client: Client, tag: string, everyMs = 2_000): Promise<void> {
  const tty = process.stdout.isTTY;
  let last = '';
  for (;;) {
    const view = await fetchStatus(client, tag);
    const text = formatStatus(view);
    if (text !== last) {
      process.stdout.write(tty ? `\x1b[2J\x1b[H${text}\n` : `${text}\n\n`);
      last = text;
    }
    if (!['running', 'paused', 'stopping'].includes(view.state)) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** results.tsv as an aligned table; the repo comes from the run's memo unless given. */
export async function resultsTable(client: Client, tag: string, repo?: string): Promise<string> {
  if (!repo) {
    try {
      const { memo } = await client.workflow.getHandle(workflowIdFor(parseTag(tag))).describe();
      repo = memo?.repo as string;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new UserError(`no run with tag ${tag}`);
      throw err;
    }
  }
  const text = await readFile(join(repo, RESULTS_TSV), 'utf8').catch(() => {
    throw new UserError(`no ${RESULTS_TSV} in ${repo} yet`);
  });
  return alignTsv(text);
}

export function alignTsv(text: string): string {
  const rows = text.split('\n').filter(Boolean).map((line) => line.split('\t'));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}
