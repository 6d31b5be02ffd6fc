// A live terminal view of a run, redrawn from one StatusView: state, best, counts, a progress bar
// per experiment in flight (fed by its training heartbeat) and the last results.tsv rows. Plain
// ASCII, no colours, no escape codes: the caller decides whether to clear the screen first.
import { formatScore, TSV_HEADER, tsvRow } from '../activities/results';
import type { Heartbeat, InFlight, Noise, StatusView } from '../workflows/types';

export const DEFAULT_WATCH_WIDTH = 80;
const MIN_WIDTH = 40;
const RECENT_ROWS = 8;

const STATE_LINE: Record<StatusView['state'], string> = {
  running: 'running',
  paused: 'paused (nothing new starts; resume to go on)',
  stopping: 'stopping (finishing the experiments in flight)',
  completed: 'completed',
  stopped: 'stopped',
  failed: 'failed',
};

function clip(line: string, width: number): string {
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 3))}...`;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** `[#####...............]`: `cells` characters between the brackets, filled in proportion. */
export function bar(percent: number | undefined, cells: number): string {
  const p = percent === undefined || !Number.isFinite(percent) ? 0 : Math.min(100, Math.max(0, percent));
  const filled = Math.round((p / 100) * cells);
  return `[${'#'.repeat(filled)}${'.'.repeat(cells - filled)}]`;
}

function heartbeatText(hb: Heartbeat): string {
  const parts = [hb.percent === undefined ? '   ?  ' : `${hb.percent.toFixed(1).padStart(5)}%`];
  if (hb.step !== undefined) parts.push(`step ${hb.step}`);
  if (hb.loss !== undefined) parts.push(`loss ${hb.loss.toFixed(4)}`);
  parts.push(duration(hb.elapsed));
  return parts.join('  ');
}

function laneLines(lane: InFlight, width: number): string[] {
  const head = clip(`  ${lane.id.padEnd(12)} ${lane.phase.padEnd(10)} ${lane.description || '-'}`, width);
  const cells = Math.max(10, Math.min(40, width - 48)); // room for `  40.0%  step 12345  loss 3.2100  12m34s`
  const hb = lane.heartbeat;
  if (lane.phase === 'proposing' && hb) return [head, clip(`    proposing: ${hb.tokens ?? 0} tokens, ${duration(hb.elapsed)}`, width)];
  if (lane.phase === 'queued') return [head, clip('    queued: proposed and committed, waiting for a free slot', width)];
  if (hb) return [head, clip(`    ${bar(hb.percent, cells)} ${heartbeatText(hb)}`, width)];
  const waiting = lane.phase === 'training' ? 'training: waiting for the first heartbeat' : `${lane.phase}...`;
  return [head, clip(`    ${waiting}`, width)];
}

function clock(ms: number): string {
  const at = new Date(ms);
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** `label` then `text`, word-wrapped to `width` under the text's first column: said in full, not cut. */
function wrapped(label: string, text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && label.length + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines.map((l, i) => clip(`${i === 0 ? label : ' '.repeat(label.length)}${l}`, width));
}

/** Said right under the state, so a frozen figure is never mistaken for a live one. */
function staleLines(stale: NonNullable<StatusView['stale']>, width: number, now: number): string[] {
  const since = Date.parse(stale.since);
  return wrapped('stale:        ', `since ${clock(since)} (${duration((now - since) / 1000)} ago): ${stale.why}`, width);
}

export function renderWatch(view: StatusView, width = DEFAULT_WATCH_WIDTH, now = Date.now()): string {
  const w = Math.max(MIN_WIDTH, Math.floor(width));
  const best = view.best ? `${formatScore(view.best.valBpb)} (${view.best.commit.slice(0, 7)})` : '-';
  const lines = [
    clip(`autoresearch ${view.tag}  (${view.workflowId})`, w),
    clip(`state:        ${STATE_LINE[view.state]}${view.reason ? ` (${view.reason})` : ''}`, w),
    ...(view.stale ? staleLines(view.stale, w, now) : []),
    clip(`best val_bpb: ${best}`, w),
    clip(`experiments:  ${view.experimentsDone} done, ${view.experimentsKept} kept${view.tokensUsed ? `, ${view.tokensUsed} tokens` : ''}`, w),
    ...(view.noise ? [clip(`noise:        ${noiseLine(view.noise)}`, w)] : []),
    ...(view.verdict ? wrapped('verdict:      ', view.verdict, w) : []),
    ...(view.warnings ?? []).flatMap((warning) => wrapped('warning:      ', warning, w)),
    '',
  ];
  if (view.inFlight.length > 0) {
    lines.push(`in flight (${view.inFlight.length}):`);
    for (const lane of view.inFlight) lines.push(...laneLines(lane, w));
  } else {
    lines.push(`in flight:    none`);
  }
  lines.push('');
  const recent = view.recent.slice(-RECENT_ROWS);
  if (recent.length > 0) {
    lines.push(`last ${recent.length} of ${view.experimentsDone}:`);
    for (const row of alignTsv([TSV_HEADER, ...recent.map(tsvRow)].join('\n')).split('\n')) lines.push(clip(`  ${row}`, w));
  } else {
    lines.push('no results yet');
  }
  return lines.join('\n');
}

/** Tab-separated rows as aligned columns (the last column left ragged). */
export function alignTsv(text: string): string {
  const rows = text.split('\n').filter(Boolean).map((line) => line.split('\t'));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n');
}

/** σ with its interval, and what the night's false-keep rate means so far: one line for status, watch and the demo. */
export function noiseLine(noise: Noise): string {
  const sigma = `σ ${formatScore(noise.sigma)} val_bpb between runs of one commit (${noise.runs} trainings`;
  if (noise.dof === undefined || noise.low === undefined || noise.high === undefined) return `${sigma})`;
  const interval = `95% ${formatScore(noise.low)}–${Number.isFinite(noise.high) ? formatScore(noise.high) : '∞'}, ${noise.dof} dof)`;
  const keeps = noise.falseKeep === undefined ? '' :
    `; false keeps expected: ${(noise.expectedFalseKeeps ?? 0).toFixed(2)} (--false-keep ${noise.falseKeep})`;
  return `${sigma}, ${interval}${keeps}`;
}
