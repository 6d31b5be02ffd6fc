// `verify TAG`, `ablate TAG`, `sensitivity TAG` and `compare REF...`: the morning's questions, each started as a
// workflow beside the study (`autoresearch-<tag>/verify`, `…/ablate`, …) and awaited, so a restart loses nothing.
import { ActivityFailure, ApplicationFailure, WorkflowFailedError, WorkflowNotFoundError, defaultPayloadConverter, type Client } from '@temporalio/client';
import type * as workflows from '../workflows';
import type { CompareInput, MorningInput, SensitivityInput } from '../workflows/morning';
import { RESEARCH_TAG } from '../workflows/search-attributes';
import {
  CONTROL_QUEUE,
  morningWorkflowId,
  workflowIdFor,
  type Ablation,
  type Comparison,
  type RunConfig,
  type Sensitivity,
  type Verdict,
} from '../workflows/types';
import { parseTag } from './args';
import { UserError } from './errors';

export const DEFAULT_MORNING_RUNS = 3; // trainings per arm: enough for an interval, cheap next to a night
export const DEFAULT_POINTS = 5; // per knob: ÷4, ÷2, its own value, ×2, ×4
export const DEFAULT_COMPARE_RUNS = 5; // per ref: with Holm over the pairs, three runs rarely tell anything apart

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
  verify: { workflow: 'verifyWorkflow', what: () => 'baseline and best' },
  ablate: { workflow: 'ablateWorkflow', what: () => 'the best without each kept change' },
  compare: { workflow: 'compareWorkflow', what: (input: Partial<CompareInput>) => input.refs!.join(' vs ') },
  sensitivity: {
    workflow: 'sensitivityWorkflow',
    what: (input: Partial<SensitivityInput>) => `the best along ${input.points} values of ${input.knobs?.join(', ') ?? 'every knob'}`,
  },
} as const satisfies Record<string, { workflow: keyof typeof workflows; what: (input: never) => string }>;

/** Starts `question` beside the study and waits for its answer (a second call for a tag asks again). */
async function ask(client: Client, question: keyof typeof ASK, input: MorningInput | CompareInput | SensitivityInput): Promise<unknown> {
  const { config, runs } = input;
  // By name (the workflows' exported names), as they take different inputs.
  const answer = client.workflow.execute(ASK[question].workflow, {
    workflowId: morningWorkflowId(config.tag, question),
    taskQueue: CONTROL_QUEUE,
    args: [input],
    typedSearchAttributes: [{ key: RESEARCH_TAG, value: `${config.tag}.${question}` }],
    staticSummary: `${question} ${config.tag}: ${ASK[question].what(input)}, ${runs} runs each`,
  });
  // A question the repo cannot answer (an unknown ref or knob) fails before any training: one line.
  return answer.catch((err: unknown) => {
    let cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    while (cause instanceof ActivityFailure) cause = cause.cause;
    if (cause instanceof ApplicationFailure && cause.type === 'RepoError') throw new UserError(cause.message);
    throw err;
  });
}

export const verifyRun = async (client: Client, tag: string, runs: number): Promise<Verdict> =>
  ask(client, 'verify', { config: await studyConfig(client, tag), runs }) as Promise<Verdict>;
export const ablateRun = async (client: Client, tag: string, runs: number): Promise<Ablation> =>
  ask(client, 'ablate', { config: await studyConfig(client, tag), runs }) as Promise<Ablation>;
export const sensitivityRun = async (
  client: Client,
  tag: string,
  question: Omit<SensitivityInput, 'config'>,
): Promise<Sensitivity> => ask(client, 'sensitivity', { config: await studyConfig(client, tag), ...question }) as Promise<Sensitivity>;

/** Per knob, most sensitive first: its verdict, then each value's interval (the best's own marked, leads named). */
export function sensitivityLines(s: Sensitivity): string[] {
  return s.knobs.flatMap((k) => [
    `${k.knob}: ${k.sensitive ? 'sensitive' : 'not sensitive'}: spread ${k.spread.toFixed(4)}, ${k.aboveNoise.toFixed(1)}× the noise, p=${k.pHolm.toPrecision(2)} (Holm); best at ${k.bestValue}`,
    ...k.points.map((p) => {
      const pm = Number.isFinite(p.high - p.low) ? ` ± ${((p.high - p.low) / 2).toFixed(4)}` : '';
      const mark = p.value === k.value ? '  (the best)' : k.leads.includes(p.value) ? '  lead: beats the best beyond the noise' : '';
      return `  ${p.value.padStart(10)}  ${p.n ? p.mean.toFixed(4) : 'no score'}${pm} (n=${p.n})${mark}`;
    }),
  ]);
}

/** `compare`: the refs checked here first (each resolves, one harness, one history), before any workflow or worker. */
export async function compareRun(client: Client, input: CompareInput): Promise<Comparison> {
  const { compareArms } = await import('../activities/morning');
  await compareArms(input.config, input.refs);
  return ask(client, 'compare', input) as Promise<Comparison>;
}

/** The comparison as a person reads it: each ref's interval, each pair's verdict, the ranking. */
export function comparisonLines(c: Comparison): string[] {
  const width = Math.max(...c.refs.map((r) => r.ref.length));
  const refs = c.refs.map((r) => {
    const pm = Number.isFinite(r.high - r.low) ? ` ± ${((r.high - r.low) / 2).toFixed(4)}` : '';
    const crashed = r.crashes ? `, ${r.crashes} crashed` : '';
    return `${r.ref.padEnd(width)}  ${r.n ? r.mean.toFixed(4) : 'no score'}${pm} (n=${r.n}${crashed})`;
  });
  const pairs = c.pairs.map((p) => {
    const d = p.difference;
    const verdict = p.real ? `${p.a} is better` : 'cannot be told apart';
    return `${p.a} vs ${p.b}: ${p.a} lower by ${d.mean.toFixed(4)} [${d.low.toFixed(4)}, ${d.high.toFixed(4)}], p=${p.pHolm.toPrecision(2)} (Holm): ${verdict}`;
  });
  return [...refs, ...pairs, `ranking: ${c.line}`];
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
