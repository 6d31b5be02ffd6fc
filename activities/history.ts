// What the LLM proposer is told about the night so far, within a budget: the baseline and the best,
// the most recent rows, and every distinct idea tried with its outcome, so it does not re-propose
// what already failed however long the study has run.
import type { ExperimentRecord } from '../workflows/types';

export const HISTORY_BUDGET_CHARS = 16_000; // about 4k tokens
const RECENT_ROWS = 8;

const score = (r: ExperimentRecord) => (r.valBpb === null ? '-' : r.valBpb.toFixed(6));
const line = (r: ExperimentRecord) => `${r.id}\t${score(r)}\t${r.status}\t${r.description}${r.status === 'crash' ? ` (${r.reason})` : ''}`;
const normalize = (description: string) => description.toLowerCase().replace(/\s+/g, ' ').trim();

export function compactHistory(records: ExperimentRecord[], budget = HISTORY_BUDGET_CHARS): string {
  if (records.length === 0) return 'No experiments yet.';
  const baseline = records.find((r) => r.n === 0);
  const kept = records.filter((r) => r.status === 'keep');
  const best = kept.reduce<ExperimentRecord | undefined>((a, b) => (a && a.valBpb! <= b.valBpb! ? a : b), undefined);
  const head = [
    `${records.length} experiments so far: ${kept.length} kept, ${records.filter((r) => r.status === 'discard').length} discarded, ${records.filter((r) => r.status === 'crash').length} crashed.`,
    baseline ? `baseline: val_bpb ${score(baseline)}` : '',
    best ? `best: val_bpb ${score(best)} (${best.id}: ${best.description})` : '',
    '',
    'Most recent (id, val_bpb, status, description):',
    ...records.slice(-RECENT_ROWS).map(line),
    '',
    'Every distinct idea tried, newest first, with its outcome:',
  ];
  // Newest first, so when the budget runs out it is the oldest ideas that are summarized away.
  const seen = new Set<string>();
  const ideas: string[] = [];
  for (const r of [...records].reverse()) {
    const key = normalize(r.description);
    if (r.n === 0 || seen.has(key)) continue;
    seen.add(key);
    ideas.push(`- ${r.description.replace(/\s+/g, ' ')}: ${r.status}${r.valBpb === null ? ` (${r.reason})` : ` ${score(r)}`}`);
  }
  const out = head.filter((l, i) => l !== '' || i > 2);
  let size = out.join('\n').length;
  let included = 0;
  for (const idea of ideas) {
    if (size + idea.length + 80 > budget) break;
    out.push(idea);
    size += idea.length + 1;
    included++;
  }
  if (included < ideas.length) out.push(`- … and ${ideas.length - included} older ideas, omitted for length`);
  return out.join('\n');
}
