// Reading what a training command prints: progress lines (for heartbeats) and the closing summary
// block (for the result), in the original autoresearch's format.
import type { Heartbeat } from '../workflows/types';

const PROGRESS = /step\s+(\d+)\s*\(\s*([\d.]+)%\)(?:.*?loss:\s*([-+\w.]+))?/;
const SUMMARY_LINE = /^([A-Za-z_]\w*):\s+(\S+)\s*$/;

/** Parses `step 00012 (4.0%) | loss: 3.21 ...`; the original separates these lines with \r. */
export function parseProgress(line: string): Omit<Heartbeat, 'elapsed'> | null {
  const m = PROGRESS.exec(line);
  if (!m) return null;
  const loss = m[3] === undefined ? undefined : Number(m[3]);
  const lossIfFinite = loss !== undefined && Number.isFinite(loss) ? { loss } : {};
  return { step: Number(m[1]), percent: Number(m[2]), ...lossIfFinite };
}

export interface Summary {
  metrics: Record<string, number>; // finite numbers only, so they survive JSON
  nonFinite: string[]; // keys whose value was nan or inf
}

/** The `key: value` lines after the last `---` line of the output. */
export function parseSummary(output: string): Summary {
  const lines = output.split(/\r?\n|\r/);
  const start = lines.map((l) => l.trim()).lastIndexOf('---');
  const summary: Summary = { metrics: {}, nonFinite: [] };
  if (start < 0) return summary;
  for (const line of lines.slice(start + 1)) {
    const m = SUMMARY_LINE.exec(line.trim());
    if (!m) continue;
    const value = Number(m[2]);
    if (Number.isFinite(value)) summary.metrics[m[1]] = value;
    else if (/^[-+]?(nan|inf(inity)?)$/i.test(m[2])) summary.nonFinite.push(m[1]);
  }
  return summary;
}
