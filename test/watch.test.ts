// The live view: what a person watching a run sees, from one status view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tsvRow } from '../activities/results';
import { bar, noiseLine, renderWatch } from '../scripts/watch';
import type { ExperimentRecord, StatusView } from '../workflows/types';

const record = (n: number, status: ExperimentRecord['status'], valBpb: number | null, description: string): ExperimentRecord => ({
  id: `nov27-${n}`, n, parent: null, commit: `${n}abcdef0123456789abcdef`, description, status, reason: '', valBpb,
  memoryGb: valBpb === null ? 0 : 1.5, metrics: {}, proposer: n === 0 ? 'baseline' : 'sweep', tokens: 0,
  startedAt: '2025-11-27T22:00:00.000Z', finishedAt: '2025-11-27T22:05:00.000Z', trainingSeconds: 300,
});

const RECENT = [
  record(0, 'keep', 1.2, 'baseline'),
  record(1, 'keep', 1.15, 'LEARNING_RATE 0.003 -> 0.0015'),
  record(2, 'discard', 1.18, 'BETA1 0.9 -> 0.95'),
  record(3, 'crash', null, 'CUDA out of memory'),
];

const running: StatusView = {
  tag: 'nov27',
  workflowId: 'autoresearch-nov27',
  state: 'running',
  experimentsDone: 4,
  experimentsKept: 2,
  best: { commit: '1abcdef0123456789abcdef', valBpb: 1.15 },
  inFlight: [
    { id: 'nov27-4', phase: 'training', description: 'WARMUP 100 -> 50', heartbeat: { step: 120, percent: 40, loss: 3.21, elapsed: 96 } },
    { id: 'nov27-5', phase: 'proposing', description: '', heartbeat: null },
  ],
  tokensUsed: 1234,
  recent: RECENT,
};

const lineWith = (text: string, needle: string) => text.split('\n').find((l) => l.includes(needle));

test('a running view: state, best, counts, a bar per lane from its heartbeat, the last rows', () => {
  const text = renderWatch(running, 80);
  assert.match(text, /^autoresearch nov27 {2}\(autoresearch-nov27\)$/m);
  assert.match(text, /^state: +running$/m);
  assert.match(text, /^best val_bpb: 1\.150000 \(1abcdef\)$/m);
  assert.match(text, /^experiments: +4 done, 2 kept, 1234 tokens$/m);
  assert.match(text, /^in flight \(2\):$/m);

  // lane 1: its heading, then a bar 40% full with step, loss and elapsed time
  assert.match(text, /^ {2}nov27-4 +training +WARMUP 100 -> 50$/m);
  const barLine = text.split('\n')[text.split('\n').findIndex((l) => l.includes('nov27-4')) + 1];
  const inside = barLine.match(/\[([#.]+)\]/)![1];
  const fill = inside.split('').filter((c) => c === '#').length / inside.length;
  assert.ok(Math.abs(fill - 0.4) < 0.05, `bar ${inside} is ${Math.round(fill * 100)}% full`);
  assert.match(barLine, / 40\.0% {2}step 120 {2}loss 3\.2100 {2}1m36s$/);

  // lane 2: no heartbeat, so no bar: its phase
  const lane2 = text.split('\n').findIndex((l) => l.includes('nov27-5'));
  assert.match(text.split('\n')[lane2], /nov27-5 +proposing +-$/);
  assert.equal(text.split('\n')[lane2 + 1], '    proposing...');
  assert.doesNotMatch(text.split('\n')[lane2 + 1], /\[/);

  // the results.tsv columns, in order, one row per recent record
  assert.match(text, /^last 4 of 4:$/m);
  assert.match(lineWith(text, 'commit')!, /^ {2}commit +val_bpb +memory_gb +status +description$/);
  for (const r of RECENT) {
    const cells = tsvRow(r).split('\t');
    assert.match(lineWith(text, cells[4])!, new RegExp(`^  ${cells.slice(0, 4).join(' +')} +${cells[4].replace(/[.*+?()[\]]/g, '\\$&')}$`));
  }
  assert.match(text, /^ {2}3abcdef +0\.000000 +0\.0 +crash +CUDA out of memory$/m);

  // plain ASCII, no escape codes, within the width
  assert.doesNotMatch(text, /[^\x20-\x7e\n]/);
  for (const line of text.split('\n')) assert.ok(line.length <= 80, `too wide: ${line}`);
});

test('the bar scales with the width and stays inside it', () => {
  assert.equal(bar(40, 10), '[####......]');
  assert.equal(bar(0, 5), '[.....]');
  assert.equal(bar(150, 5), '[#####]');
  assert.equal(bar(undefined, 4), '[....]');
  for (const width of [40, 60, 120]) {
    const text = renderWatch({ ...running, inFlight: [{ ...running.inFlight[0], description: 'x'.repeat(200) }] }, width);
    for (const line of text.split('\n')) assert.ok(line.length <= width, `width ${width}: ${line}`);
    assert.match(text, /\.\.\.$/m, 'long lines are cut with ...');
  }
  const wide = renderWatch(running, 120).match(/\[([#.]+)\]/)![1].length;
  const narrow = renderWatch(running, 60).match(/\[([#.]+)\]/)![1].length;
  assert.ok(wide > narrow);
});

test('a training lane before its first heartbeat says so', () => {
  const text = renderWatch({ ...running, inFlight: [{ id: 'nov27-4', phase: 'training', description: 'WARMUP 100 -> 50', heartbeat: null }] });
  assert.match(text, /^ {4}training: waiting for the first heartbeat$/m);
});

test('a paused view says nothing new starts, and shows what is still finishing', () => {
  const finishing = { ...running.inFlight[0], heartbeat: { step: 270, percent: 90, loss: 3.05, elapsed: 216 } };
  const text = renderWatch({ ...running, state: 'paused', inFlight: [finishing] });
  assert.match(text, /^state: +paused \(nothing new starts; resume to go on\)$/m);
  assert.match(text, /^in flight \(1\):$/m);
  assert.match(text, /\[#+\.{1,4}\] +90\.0% {2}step 270 {2}loss 3\.0500 {2}3m36s$/m);
  assert.match(text, /^last 4 of 4:$/m);
  const idle = renderWatch({ ...running, state: 'paused', inFlight: [] });
  assert.match(idle, /^in flight: +none$/m);
  assert.doesNotMatch(idle, /\[[#.]+\]/);
});

test('a completed view: the reason, the final best, no lanes', () => {
  const text = renderWatch({ ...running, state: 'completed', inFlight: [], reason: 'max experiments (4) reached', experimentsKept: 2 });
  assert.match(text, /^state: +completed \(max experiments \(4\) reached\)$/m);
  assert.match(text, /^best val_bpb: 1\.150000 \(1abcdef\)$/m);
  assert.match(text, /^in flight: +none$/m);
  assert.match(text, /baseline$/m);
});

test('a run with nothing recorded yet', () => {
  const text = renderWatch({ ...running, experimentsDone: 0, experimentsKept: 0, best: null, inFlight: [running.inFlight[1]], recent: [], tokensUsed: 0 });
  assert.match(text, /^best val_bpb: -$/m);
  assert.match(text, /^experiments: +0 done, 0 kept$/m);
  assert.match(text, /^no results yet$/m);
});

test('a proposing lane shows its tokens and time, a queued one that it waits for a slot', () => {
  const text = renderWatch({
    ...running,
    inFlight: [
      { id: 'nov27-proposal-7', phase: 'proposing', description: '', heartbeat: { tokens: 812, elapsed: 95 } },
      { id: 'nov27-proposal-6', phase: 'queued', description: 'BETA2 0.99 -> 0.995', heartbeat: null },
    ],
  });
  const lines = text.split('\n');
  const proposing = lines.findIndex((l) => l.includes('nov27-proposal-7'));
  assert.equal(lines[proposing + 1], '    proposing: 812 tokens, 1m35s');
  const queued = lines.findIndex((l) => l.includes('nov27-proposal-6'));
  assert.match(lines[queued], /queued +BETA2 0\.99 -> 0\.995$/);
  assert.equal(lines[queued + 1], '    queued: proposed and committed, waiting for a free slot');
});

test('warnings are shown under the counts, in full', () => {
  const warning = 'gpu worker host-a trains without the sandbox (--no-sandbox): trainings can read this host and reach the network';
  const text = renderWatch({ ...running, warnings: [warning] }, 60);
  const lines = text.split('\n');
  const first = lines.findIndex((l) => l.startsWith('warning:'));
  assert.ok(first > lines.findIndex((l) => l.startsWith('experiments:')), 'after the counts');
  const said = lines.slice(first).filter((l, i) => i === 0 || l.startsWith(' '.repeat(14))).join(' ').replace(/ +/g, ' ');
  assert.ok(said.includes(warning), said);
  for (const line of lines) assert.ok(line.length <= 60, `too wide: ${line}`);
});

test('a stale view says so right under the state: since when, how long ago, and why', () => {
  const now = new Date(2026, 10, 27, 23, 4, 12).getTime();
  const since = new Date(2026, 10, 27, 23, 0, 0).toISOString();
  const why = 'no control worker answered within 5s (is `npx autoresearch worker` running?): counts are from the last finished experiment';
  const text = renderWatch({ ...running, stale: { since, why } }, 200, now);
  const lines = text.split('\n');
  assert.match(lines[1], /^state: +running$/);
  assert.equal(lines[2], `stale:        since 23:00:00 (4m12s ago): ${why}`);
  assert.doesNotMatch(renderWatch(running, 200, now), /stale/);
});

test('the noise line: σ with its 95% interval and degrees of freedom, and the false keeps the night can expect', () => {
  const noise = { sigma: 0.001, runs: 12, dof: 8, low: 0.000675, high: 0.001916, falseKeep: 0.01, expectedFalseKeeps: 0.37 };
  assert.equal(noiseLine(noise), 'σ 0.001000 val_bpb between runs of one commit (12 trainings, 95% 0.000675–0.001916, 8 dof); ' +
    'false keeps expected: 0.37 (--false-keep 0.01)');
  assert.equal(noiseLine({ sigma: 0.001, runs: 3 }), 'σ 0.001000 val_bpb between runs of one commit (3 trainings)', 'a study before the sequential rule');
});
