// What the LLM proposer is told about the night so far, within a budget: the baseline and the best, the most recent
// experiments with what really changed (computed, not as the model claimed it), every distinct change tried with its
// outcome, and the proposer's failures apart, so the model neither re-proposes what failed nor mistakes its own words
// for what the code did.
import type { ExperimentRecord } from '../workflows/types';
import { divergedThreshold } from './results';

export const HISTORY_BUDGET_CHARS = 16_000; // about 4k tokens
const RECENT_ROWS = 8;
const FAILURES_SHOWN = 5; // proposer failures listed; older ones are counted
const EXPONENT_FROM = 1e6; // a val_bpb this large is shown as 2.2e33, never as a 34-digit number
const QUOTED_CHARS = 100;

/**
 * `2.176625`; `2.2e33` past a million; `diverged: 2.2e33` above `divergedAbove` (the report's rule, from results.ts),
 * so the model learns that the change blew the training up; `-` when nothing was scored.
 */
export function historyScore(valBpb: number | null, divergedAbove: number | null = null): string {
  if (valBpb === null) return '-';
  const text =
    Math.abs(valBpb) >= EXPONENT_FROM
      ? Number(valBpb.toPrecision(2)).toExponential().replace('e+', 'e')
      : valBpb.toFixed(6);
  return divergedAbove !== null && valBpb > divergedAbove ? `diverged: ${text}` : text;
}

/** An experiment that never got a commit: the proposer failed and nothing was trained. */
export const isProposerFailure = (r: ExperimentRecord) => r.n > 0 && r.commit === null;
const failureReason = (r: ExperimentRecord) => r.reason.replace(/^proposer failed: /, '');
const normalize = (text: string) => text.toLowerCase().replace(/\s+/g, ' ').trim();
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
const quoted = (text: string) =>
  JSON.stringify(text.length > QUOTED_CHARS ? `${oneLine(text).slice(0, QUOTED_CHARS)}…` : oneLine(text));

function outcome(r: ExperimentRecord, divergedAbove: number | null): string {
  if (r.valBpb === null) return `${r.status} (${r.reason})`;
  return `${r.status} ${historyScore(r.valBpb, divergedAbove)}`;
}

function row(r: ExperimentRecord, divergedAbove: number | null): string {
  const change = r.change ? ` [${r.change}]` : '';
  const reason = r.status === 'crash' && r.reason !== r.description ? ` (${r.reason})` : '';
  return `${r.id}\t${historyScore(r.valBpb, divergedAbove)}\t${r.status}\t${oneLine(r.description)}${change}${reason}`;
}

/** One line per distinct change (by what changed, not by its wording), newest first. */
function ideas(tried: ExperimentRecord[], divergedAbove: number | null): string[] {
  const groups = new Map<string, ExperimentRecord[]>();
  for (const r of [...tried].reverse()) {
    const key = r.change ? `change ${r.change}` : `description ${normalize(r.description)}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((group) => {
    const [newest] = group;
    const what = newest.change ? `${newest.change} (${quoted(newest.description)})` : quoted(newest.description);
    const times = group.length > 1 ? ` — tried ${group.length} times` : '';
    return `- ${what}: ${group.map((r) => outcome(r, divergedAbove)).join(', ')}${times}`;
  });
}

function failuresBlock(failures: ExperimentRecord[]): string[] {
  if (failures.length === 0) return [];
  const shown = failures.slice(-FAILURES_SHOWN);
  const older = failures.length - shown.length;
  return [
    '',
    'Proposer failures (no usable answer, nothing trained), newest last:',
    ...(older > 0 ? [`- … and ${older} earlier`] : []),
    ...shown.map((r) => `- ${r.id}: ${oneLine(failureReason(r))}`),
  ];
}

export function compactHistory(records: ExperimentRecord[], budget = HISTORY_BUDGET_CHARS): string {
  if (records.length === 0) return 'No experiments yet.';
  const baseline = records.find((r) => r.n === 0);
  const divergedAbove = divergedThreshold(records);
  const trained = records.filter((r) => !isProposerFailure(r));
  const failures = records.filter(isProposerFailure);
  const kept = trained.filter((r) => r.status === 'keep' && r.valBpb !== null);
  const best = kept.reduce<ExperimentRecord | undefined>((a, b) => (a && a.valBpb! <= b.valBpb! ? a : b), undefined);
  const count = (status: ExperimentRecord['status']) => trained.filter((r) => r.status === status).length;
  const head = [
    `${records.length} experiments so far: ${kept.length} kept, ${count('discard')} discarded, ` +
      `${count('crash')} crashed in training${failures.length ? `, ${failures.length} proposer failures` : ''}.`,
    ...(baseline ? [`baseline: val_bpb ${historyScore(baseline.valBpb)}`] : []),
    ...(best ? [`best: val_bpb ${historyScore(best.valBpb)} (${best.id}: ${oneLine(best.description)})`] : []),
    '',
    'Most recent (id, val_bpb, status, description [what really changed]):',
    ...trained.slice(-RECENT_ROWS).map((r) => row(r, divergedAbove)),
    ...failuresBlock(failures),
    '',
    'Every distinct change tried, newest first, with its outcome:',
  ];
  // Newest first, so when the budget runs out it is the oldest ideas that are summarized away.
  const all = ideas(
    trained.filter((r) => r.n !== 0),
    divergedAbove,
  );
  const out = [...head];
  let size = out.join('\n').length;
  let included = 0;
  for (const idea of all) {
    if (size + idea.length + 80 > budget) break;
    out.push(idea);
    size += idea.length + 1;
    included++;
  }
  if (included < all.length) out.push(`- … and ${all.length - included} older changes, omitted for length`);
  return out.join('\n');
}
