// The bench's figures on hand-made timelines whose answers can be read off by eye.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyFraction, busyWithin, median, perSlotHour, slotGaps } from './figures';

const at = (start: number, end: number) => ({ start, end });

test('a slot that trains back to back is fully busy and runs at the limit of 3600 / T an hour', () => {
  const trainings = [at(0, 30), at(30, 60), at(60, 90)];
  assert.equal(busyFraction(trainings, 1), 1);
  assert.equal(perSlotHour(trainings, 1), 3600 / 30);
  assert.deepEqual(slotGaps(trainings, 1).gaps, [0, 0]);
});

test('an idle second between trainings is the gap, and the busy fraction loses it', () => {
  const trainings = [at(0, 10), at(11, 21)];
  assert.equal(busyFraction(trainings, 1), 20 / 21);
  assert.deepEqual(slotGaps(trainings, 1), { gaps: [1], maxPerSlot: [1] });
});

test('a start is matched to the slot freed most recently before it, not to one that idled longer', () => {
  // Slot 0 frees at 10 and slot 1 at 12; the training starting at 12.5 took the GPU freed at 12.
  const trainings = [at(0, 10), at(0, 12), at(12.5, 20), at(13, 20)];
  const { gaps, maxPerSlot } = slotGaps(trainings, 2);
  assert.deepEqual(gaps, [0.5, 3]);
  assert.deepEqual(maxPerSlot, [3, 0.5]);
  assert.equal(median(gaps), 1.75);
});

test('slots that never trained yet count as idle from the first start but make no gap', () => {
  // The baseline trains alone on one of four slots, then four candidates start together.
  const trainings = [at(0, 10), at(10, 20), at(10, 20), at(10, 20), at(10, 20)];
  assert.deepEqual(slotGaps(trainings, 4).gaps, [0]);
  assert.equal(busyFraction(trainings, 4), 50 / 80);
});

test('a start a hair before the previous end (two processes reading one clock) still follows it on that slot', () => {
  assert.deepEqual(slotGaps([at(0, 10), at(9.99, 20)], 1).gaps, [0]);
});

test('the busy fraction near a moment counts only the training seconds inside the window', () => {
  const trainings = [at(0, 10), at(12, 22), at(0, 22)];
  assert.equal(busyWithin(trainings, 2, 5, 15), (5 + 3 + 10) / 20);
});
