// `verify TAG` and `ablate TAG`: the morning's questions, each started as a workflow beside the study
// (`autoresearch-<tag>.verify`, `autoresearch-<tag>.ablate`) and awaited, so a restart loses nothing.
import { WorkflowNotFoundError, defaultPayloadConverter, type Client } from '@temporalio/client';
import { ablateWorkflow, verifyWorkflow } from '../workflows';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import { CONTROL_QUEUE, morningWorkflowId, workflowIdFor, type Ablation, type RunConfig, type Verdict } from '../workflows/types';
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
  if (status === 'RUNNING') throw new UserError(`run ${tag} is still running: ask once it has ended (or stop it first)`);
  const started = (await handle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
  const payload = started?.input?.payloads?.[0];
  if (!payload) throw new UserError(`run ${tag}: its history holds no configuration`);
  return defaultPayloadConverter.fromPayload<RunConfig>(payload);
}

export async function verifyRun(client: Client, tag: string, runs: number): Promise<Verdict> {
  const config = await studyConfig(client, tag);
  return client.workflow.execute(verifyWorkflow, {
    workflowId: morningWorkflowId(config.tag, 'verify'),
    taskQueue: CONTROL_QUEUE,
    args: [{ config, runs }],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.verify` }],
    staticSummary: `verify ${config.tag}: baseline and best, ${runs} runs each`,
  });
}

export async function ablateRun(client: Client, tag: string, runs: number): Promise<Ablation> {
  const config = await studyConfig(client, tag);
  return client.workflow.execute(ablateWorkflow, {
    workflowId: morningWorkflowId(config.tag, 'ablate'),
    taskQueue: CONTROL_QUEUE,
    args: [{ config, runs }],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.ablate` }],
    staticSummary: `ablate ${config.tag}: the best without each kept change, ${runs} runs each`,
  });
}

/** The ablation as a person reads it: one line per kept change. */
export function ablationLines(ablation: Ablation): string[] {
  return ablation.changes.map((c) => {
    if (!c.contribution) return `${c.name}: ${c.problem ?? 'not measured'}`;
    const { mean, low, high } = c.contribution;
    const sign = (x: number) => (x < 0 ? `−${Math.abs(x).toFixed(4)}` : `+${x.toFixed(4)}`);
    return `${c.name}: ${sign(mean)} [${sign(low)}, ${sign(high)}] val_bpb when taken out`;
  });
}
