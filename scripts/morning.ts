// `verify TAG` and `ablate TAG`: the morning's questions, each started as a workflow beside the study
// (`autoresearch-<tag>.verify`, `autoresearch-<tag>.ablate`) and awaited, so a restart loses nothing.
import { WorkflowNotFoundError, defaultPayloadConverter, type Client } from '@temporalio/client';
import { ablateWorkflow, verifyWorkflow } from '../workflows';
import type { MorningInput } from '../workflows/morning';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import {
  CONTROL_QUEUE,
  morningWorkflowId,
  workflowIdFor,
  type Ablation,
  type RunConfig,
  type Verdict,
} from '../workflows/types';
import { parseTag } from './args';
import { UserError } from './errors';

export const DEFAULT_MORNING_RUNS = 3; // trainings per arm: enough for an interval, cheap next to a night

/** The study's configuration, as its latest run was started with it (continue-as-new carries it along). */
async function studyConfig(client: Client, tag: string): Promise<RunConfig> {
  const handle = client.workflow.getHandle(workflowIdFor(parseTag(tag)));
  let status: string;
  try {
    status = (await handle.describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UserError(`no run with tag ${tag}`);
    throw err;
  }
  if (status === 'RUNNING')
    throw new UserError(`run ${tag} is still running: ask once it has ended (or stop it first)`);
  const started = (await handle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) throw new UserError(`run ${tag}: its history holds no configuration`);
  return defaultPayloadConverter.fromPayload<RunConfig>(payload);
}

const ASK = {
  verify: { workflow: verifyWorkflow, what: 'baseline and best' },
  ablate: { workflow: ablateWorkflow, what: 'the best without each kept change' },
} as const;

/** Starts `question` beside the study and waits for its answer (a second call for a tag asks again). */
async function ask(client: Client, tag: string, question: keyof typeof ASK, runs: number): Promise<unknown> {
  const config = await studyConfig(client, tag);
  return client.workflow.execute<(input: MorningInput) => Promise<unknown>>(ASK[question].workflow, {
    workflowId: morningWorkflowId(config.tag, question),
    taskQueue: CONTROL_QUEUE,
    args: [{ config, runs }],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.${question}` }],
    staticSummary: `${question} ${config.tag}: ${ASK[question].what}, ${runs} runs each`,
  });
}

export const verifyRun = (client: Client, tag: string, runs: number): Promise<Verdict> =>
  ask(client, tag, 'verify', runs) as Promise<Verdict>;
export const ablateRun = (client: Client, tag: string, runs: number): Promise<Ablation> =>
  ask(client, tag, 'ablate', runs) as Promise<Ablation>;

/** The ablation as a person reads it: one line per kept change. */
export function ablationLines(ablation: Ablation): string[] {
  return ablation.changes.map((c) => {
    if (!c.contribution) return `${c.name}: ${c.problem ?? 'not measured'}`;
    const { mean, low, high } = c.contribution;
    const sign = (x: number) => (x < 0 ? `−${Math.abs(x).toFixed(4)}` : `+${x.toFixed(4)}`);
    return `${c.name}: ${sign(mean)} [${sign(low)}, ${sign(high)}] val_bpb when taken out`;
  });
}
