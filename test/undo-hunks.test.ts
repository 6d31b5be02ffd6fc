// ablate takes one kept change out of the best by undoing its diff's hunks: only whole lines may match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { undoHunks } from '../activities/morning';

const diff = (before: string, after: string) => `@@ -1 +1 @@\n-${before}\n+${after}\n`;

test('a change to X = 8 is undone on its own line, not inside MAX = 8', () => {
  const best = 'MAX = 8\nX = 8\n';
  assert.equal(undoHunks(best, diff('X = 4', 'X = 8')), 'MAX = 8\nX = 4\n');
});

test('a change whose line occurs only inside a longer name cannot be undone by search (the merge is tried instead)', () => {
  assert.equal(undoHunks('MAX = 8\n', diff('X = 4', 'X = 8')), null);
});

test('a line that occurs twice is ambiguous: not undone by search', () => {
  assert.equal(undoHunks('X = 8\nX = 8\n', diff('X = 4', 'X = 8')), null);
});
