// Reading a run: `status` (one object, or a live view) and `results` (the results table).
import { WorkflowNotFoundError, defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { badLineWarning, readRecordsChecked, resultsDir, TSV_HEADER, tsvRow } from '../activities/results';
import { statusQuery } from '../workflows';
import { BEST_VAL_BPB, EXPERIMENT_STATUS, EXPERIMENTS_DONE, EXPERIMENTS_KEPT, RESEARCH_TAG } from '../workflows/search-attributes';
import {
  experimentIdOfWorkflow,
  experimentWorkflowId,
  legacyWorkflowId,
  proposalActivityId,
  trainingActivityId,
  workflowIdFor,
  type Heartbeat,
  type InFlight,
  type Phase,
  type RunState,
  type StatusView,
} from '../workflows/types';
import { parseTag } from './args';
import { UserError } from './errors';
import { alignTsv, DEFAULT_WATCH_WIDTH, renderWatch } from './watch';

const QUERY_DEADLINE_MS = 5_000; // a run with no control worker cannot answer its query
// gRPC status codes of a query nobody answered in time: the deadline passed (4), or the call was cut at it (1).
const UNANSWERED_CODES = new Set([1, 4]);
// A lane is stale after three missed heartbeats: a training beats every 5 s, a proposal every 10 s.
const STALE_AFTER_MS: Partial<Record<Phase, number>> = { training: 15_000, proposing: 30_000 };

const CLOSED_STATE: Record<string, RunState> = { TERMINATED: 'stopped', CANCELLED: 'stopped', FAILED: 'failed', TIMED_OUT: 'failed' };
const STARTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

type Description = Awaited<ReturnType<WorkflowHandle['describe']>>;
type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

/** What the server knows of one pending activity: its last heartbeat and whether a worker holds it. */
export interface Beat {
  heartbeat: Heartbeat | null;
  at: number | undefined; // epoch ms of the last heartbeat
  scheduledAt: number | undefined;
  started: boolean;
  attempt: number;
}

function beatOf(pending: PendingActivity): Beat {
  const payload = pending.heartbeatDetails?.payloads?.[0];
  return {
    heartbeat: payload ? defaultPayloadConverter.fromPayload<Heartbeat>(payload) : null,
    at: optionalTsToMs(pending.lastHeartbeatTime),
    scheduledAt: optionalTsToMs(pending.scheduledTime),
    started: pending.state === STARTED,
    attempt: pending.attempt ?? 1,
  };
}

function beatsOf(description: Description): Map<string, Beat> {
  return new Map((description.raw.pendingActivities ?? []).filter((p) => p.activityId).map((p) => [p.activityId!, beatOf(p)]));
}

async function describeOrNull(client: Client, workflowId: string): Promise<Description | null> {
  return client.workflow.getHandle(workflowId).describe().catch(() => null);
}

/**
 * A lane's heartbeat: a proposal's is on the study's own pending activity; a training's on its
 * experiment's workflow (one child workflow per experiment), or on the study itself in runs started
 * before experiments had workflows of their own.
 */
async function laneBeat(client: Client, lane: InFlight, own: Map<string, Beat>): Promise<Beat | undefined> {
  if (lane.phase === 'proposing') return own.get(lane.id);
  if (lane.phase !== 'training') return undefined;
  const id = trainingActivityId(lane.id);
  if (own.has(id)) return own.get(id);
  const child = (await describeOrNull(client, experimentWorkflowId(lane.id))) ?? (await describeOrNull(client, legacyWorkflowId(lane.id)));
  return child ? trainingBeat(beatsOf(child), lane.id) : undefined;
}

/** The beat of an experiment's training: its first, or a repeat (the baseline's repeats, a confirmation run). */
function trainingBeat(beats: Map<string, Beat>, experimentId: string): Beat | undefined {
  const first = trainingActivityId(experimentId);
  return beats.get(first) ?? [...beats.entries()].find(([id]) => id.startsWith(`${first}-`))?.[1];
}

/**
 * A lane whose worker has gone quiet, or whose activity waits for a worker: the view is stale since
 * then. A retried attempt keeps the previous attempt's heartbeat, so its bar is frozen from the start.
 */
export function staleLane(lane: InFlight, beat: Beat, now: number): StatusView['stale'] | null {
  const limit = STALE_AFTER_MS[lane.phase];
  if (limit === undefined) return null;
  const worker = lane.phase === 'proposing' ? 'control worker' : 'GPU worker';
  const iso = (ms: number) => new Date(ms).toISOString();
  if (!beat.started && beat.attempt > 1) {
    const since = beat.at ?? beat.scheduledAt ?? now;
    const why = `${lane.id} is waiting for a ${worker} (attempt ${beat.attempt}; the progress shown is the last attempt's)`;
    return { since: iso(since), why };
  }
  if (!beat.started && beat.scheduledAt !== undefined && now - beat.scheduledAt > limit) {
    return { since: iso(beat.scheduledAt), why: `${lane.id} is waiting for a ${worker}: is one running?` };
  }
  if (beat.started && beat.at !== undefined && now - beat.at > limit) {
    return { since: iso(beat.at), why: `no heartbeat from ${lane.id} since then: is its ${worker} still running?` };
  }
  return null;
}

/** Adds each lane's last heartbeat to the view, and marks the view stale when one is old. */
async function withHeartbeats(client: Client, view: StatusView, description: Description, now: number): Promise<StatusView> {
  const own = beatsOf(description);
  const beats = await Promise.all(view.inFlight.map((lane) => laneBeat(client, lane, own)));
  const stale = view.inFlight
    .map((lane, i) => (beats[i] ? staleLane(lane, beats[i]!, now) : null))
    .filter((s): s is NonNullable<StatusView['stale']> => s !== null)
    .sort((a, b) => a.since.localeCompare(b.since))[0];
  const inFlight = view.inFlight.map((lane, i) => ({ ...lane, heartbeat: beats[i]?.heartbeat ?? lane.heartbeat ?? null }));
  return { ...view, inFlight, ...(stale ? { stale } : {}) };
}

/** The time of the study's last history event: when it last did anything. */
async function lastEventTime(client: Client, workflowId: string): Promise<string> {
  const { history } = await client.workflowService.getWorkflowExecutionHistoryReverse({
    namespace: client.options.namespace,
    execution: { workflowId },
    maximumPageSize: 1,
  });
  const ms = optionalTsToMs(history?.events?.[0]?.eventTime);
  return new Date(ms ?? Date.now()).toISOString();
}

/**
 * With no control worker to answer the query, the lanes the server can still see: proposals pending
 * on the study, and the experiments' own workflows still running (found by their ResearchTag).
 */
async function lanesFromServer(client: Client, tag: string, description: Description): Promise<InFlight[]> {
  const own = beatsOf(description);
  const proposalIds = new RegExp(`^${proposalActivityId(tag, 0).replace(/0$/, '').replace(/[.]/g, '\\.')}\\d+$`);
  const proposals = [...own.entries()]
    .filter(([id]) => proposalIds.test(id))
    .map(([id, beat]): InFlight => ({ id, phase: 'proposing', description: '', heartbeat: beat.heartbeat }));
  const trainings: InFlight[] = [];
  const query = `${RESEARCH_TAG.name} = "${tag}" AND ExecutionStatus = "Running"`;
  for await (const run of client.workflow.list({ query })) {
    if (run.workflowId === workflowIdFor(tag)) continue;
    const id = experimentIdOfWorkflow(run.workflowId);
    const child = await describeOrNull(client, run.workflowId);
    const summary = (await child?.staticSummary().catch(() => undefined)) ?? '';
    const phase = run.typedSearchAttributes.get(EXPERIMENT_STATUS) === 'deciding' ? 'deciding' : 'training';
    const heartbeat = child ? (trainingBeat(beatsOf(child), id)?.heartbeat ?? null) : null;
    trainings.push({ id, phase, description: summary.replace(`${id}: `, ''), heartbeat });
  }
  return [...trainings.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true })), ...proposals];
}

/** Why the run did not answer its status query: no worker took it in time, or the query itself failed. */
function unanswered(err: unknown): string {
  const cause = (err as Error).cause as (Error & { code?: number }) | undefined;
  if (cause?.code !== undefined && UNANSWERED_CODES.has(cause.code)) {
    return `no control worker answered within ${QUERY_DEADLINE_MS / 1000}s (is \`npx autoresearch worker\` running?)`;
  }
  return `the run did not answer its status query (${(err as Error).message.split('\n')[0]})`;
}

export async function fetchStatus(client: Client, tag: string, now = Date.now()): Promise<StatusView> {
  const workflowId = workflowIdFor(parseTag(tag));
  const handle = client.workflow.getHandle(workflowId);
  let description: Description;
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
  const memo = description.memo ?? {};
  const bestCommit = (memo.bestCommit as string | null) ?? null;
  const warnings = Array.isArray(memo.warnings) ? (memo.warnings as string[]) : [];
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
    ...(warnings.length ? { warnings } : {}),
  };
  if (status !== 'RUNNING') {
    const failure = status === 'FAILED' ? await handle.result().then(() => '', (err: Error) => (err.cause as Error | undefined)?.message ?? err.message) : '';
    return { ...fallback, reason: failure || status.toLowerCase() };
  }
  let view: StatusView;
  try {
    view = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(statusQuery));
  } catch (err) {
    // Best effort: a server without visibility queries still gets the counts and the stale mark.
    const [since, inFlight] = await Promise.all([
      lastEventTime(client, workflowId).catch(() => new Date(now).toISOString()),
      lanesFromServer(client, tag, description).catch(() => []),
    ]);
    return { ...fallback, inFlight, stale: { since, why: `${unanswered(err)}: counts are from the last finished experiment` } };
  }
  return withHeartbeats(client, view, description, now);
}

/** `status --json`: the documented object; `reason`, `warnings` and `stale` only when there is something to say. */
export function statusJson(view: StatusView): string {
  const { tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight, reason, warnings, noise, verdict, stale } = view;
  const extra = {
    ...(reason ? { reason } : {}),
    ...(warnings?.length ? { warnings } : {}),
    ...(noise ? { noise } : {}),
    ...(verdict ? { verdict } : {}),
    ...(stale ? { stale } : {}),
  };
  return JSON.stringify({ tag, workflowId, state, experimentsDone, experimentsKept, best, inFlight, ...extra });
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

/** The research repo of a run, from its memo (written at start), unless the user names it: no server needed then. */
export async function repoOf(connect: () => Promise<Client>, tag: string, repo?: string): Promise<string> {
  if (repo) return repo;
  let memo: Record<string, unknown> | undefined;
  try {
    memo = (await (await connect()).workflow.getHandle(workflowIdFor(parseTag(tag))).describe()).memo;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new UserError(`no run with tag ${tag}: name its research repo with --repo PATH`);
    }
    throw err;
  }
  if (typeof memo?.repo !== 'string' || memo.repo === '') {
    throw new UserError(`run ${tag} has no research repo in its memo: name it with --repo PATH`);
  }
  return memo.repo;
}

/** The run's results.tsv as an aligned table, from its records; each results.jsonl line that is not one, a warning. */
export async function resultsTable(repo: string, tag: string, warn: (line: string) => void = console.error): Promise<string> {
  const { records, bad } = await readRecordsChecked(repo, parseTag(tag));
  for (const line of bad) warn(badLineWarning(repo, tag, line));
  if (records.length === 0) throw new UserError(`no results for ${tag} in ${resultsDir(repo, tag)} yet`);
  return alignTsv([TSV_HEADER, ...records.map(tsvRow)].join('\n'));
}
