// Reading a training command's output: progress lines for heartbeats, the summary block for the result.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseProgress, parseSummary } from '../gpu-worker/summary';

const PROGRESS_LINE = 'step 00012 (4.0%) | loss: 3.210000 | lrm: 1.00 | dt: 320ms | tok/sec: 1,234 | mfu: 40.1% | epoch: 1 | remaining: 100s';

const SUMMARY = [
  '---',
  'val_bpb:          0.997900',
  'training_seconds: 300.1',
  'total_seconds:    325.9',
  'peak_vram_mb:     45060.2',
  'mfu_percent:      39.80',
  'total_tokens_M:   499.6',
  'num_steps:        953',
  'num_params_M:     50.3',
  'depth:            8',
].join('\n');

describe('parseProgress', () => {
  test('reads step, percent and loss from the original autoresearch progress line', () => {
    assert.deepEqual(parseProgress(PROGRESS_LINE), { step: 12, percent: 4, loss: 3.21 });
  });

  test('reads a progress line wrapped in the carriage returns and padding the original prints', () => {
    assert.deepEqual(parseProgress(`\r${PROGRESS_LINE}    `), { step: 12, percent: 4, loss: 3.21 });
    assert.deepEqual(parseProgress('step 00953 (100.0%) | loss: 2.000001 | dt: 1ms'), { step: 953, percent: 100, loss: 2.000001 });
  });

  test('a progress line without a loss has step and percent but no loss key', () => {
    const parsed = parseProgress('step 00012 (4.0%) | lrm: 1.00 | dt: 320ms');
    assert.deepEqual(parsed, { step: 12, percent: 4 });
    assert.ok(parsed && !('loss' in parsed));
  });

  test('a non-finite loss is left out rather than reported as NaN', () => {
    const parsed = parseProgress('step 00040 (13.3%) | loss: nan | lrm: 1.00');
    assert.deepEqual(parsed, { step: 40, percent: 13.3 });
  });

  test('lines that are not progress lines give null', () => {
    for (const line of ['', 'Loading data...', '---', 'val_bpb: 0.9979', 'loss: 3.2', 'step twelve (4%)', 'num_steps: 953']) {
      assert.equal(parseProgress(line), null, JSON.stringify(line));
    }
  });
});

describe('parseSummary', () => {
  test('reads every numeric key: value line after the --- line', () => {
    const output = `step 00953 (100.0%) | loss: 2.1\r\nEvaluating...\n${SUMMARY}\n`;
    assert.deepEqual(parseSummary(output), {
      metrics: {
        val_bpb: 0.9979,
        training_seconds: 300.1,
        total_seconds: 325.9,
        peak_vram_mb: 45060.2,
        mfu_percent: 39.8,
        total_tokens_M: 499.6,
        num_steps: 953,
        num_params_M: 50.3,
        depth: 8,
      },
      nonFinite: [],
    });
  });

  test('only the block after the LAST --- counts', () => {
    const output = ['---', 'val_bpb: 5.0', 'old_only: 1', 'some log', '---', 'val_bpb: 0.9', 'steps: 10'].join('\n');
    assert.deepEqual(parseSummary(output), { metrics: { val_bpb: 0.9, steps: 10 }, nonFinite: [] });
  });

  test('nan and inf values are listed in nonFinite, not in metrics', () => {
    const output = ['---', 'val_bpb: nan', 'train_loss: inf', 'grad_norm: -inf', 'other: NaN', 'big: Infinity', 'ok: 1.5'].join('\n');
    const summary = parseSummary(output);
    assert.deepEqual(summary.metrics, { ok: 1.5 });
    assert.deepEqual(summary.nonFinite, ['val_bpb', 'train_loss', 'grad_norm', 'other', 'big']);
    // Everything that reaches metrics survives a JSON round trip unchanged.
    assert.deepEqual(JSON.parse(JSON.stringify(summary.metrics)), summary.metrics);
  });

  test('non-numeric values are ignored entirely', () => {
    const output = ['---', 'device: cuda', 'model: gpt-small', 'val_bpb: 1.25', 'note: two words', 'empty:'].join('\n');
    assert.deepEqual(parseSummary(output), { metrics: { val_bpb: 1.25 }, nonFinite: [] });
  });

  test('handles \\r and \\r\\n line endings', () => {
    const cr = ['step 1 (50.0%) | loss: 3', '---', 'val_bpb: 0.5', 'num_steps: 2', ''].join('\r');
    assert.deepEqual(parseSummary(cr), { metrics: { val_bpb: 0.5, num_steps: 2 }, nonFinite: [] });
    const crlf = ['log', '---', 'val_bpb: 0.75', 'peak_vram_mb: 10.5', ''].join('\r\n');
    assert.deepEqual(parseSummary(crlf), { metrics: { val_bpb: 0.75, peak_vram_mb: 10.5 }, nonFinite: [] });
  });

  test('a --- line with surrounding spaces still starts the block', () => {
    assert.deepEqual(parseSummary('log\n  ---  \nval_bpb: 1.0\n'), { metrics: { val_bpb: 1 }, nonFinite: [] });
  });

  test('output without a --- line gives empty metrics', () => {
    assert.deepEqual(parseSummary('val_bpb: 0.9979\nnum_steps: 953\n'), { metrics: {}, nonFinite: [] });
    assert.deepEqual(parseSummary(''), { metrics: {}, nonFinite: [] });
    assert.deepEqual(parseSummary('Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory'), { metrics: {}, nonFinite: [] });
  });
});
