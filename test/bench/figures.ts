// The bench's figures, computed from the trainings' own clocks (train_start/train_end, epoch
// seconds): what a GPU did, not what the orchestrator believes it asked for.

const CLOCK_SLACK_S = 0.05; // one host's clock, read by two processes: a start may precede the previous end by this

export interface Training {
  start: number; // epoch seconds, printed by the training itself
  end: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function span(trainings: Training[]): { from: number; to: number } {
  return { from: Math.min(...trainings.map((t) => t.start)), to: Math.max(...trainings.map((t) => t.end)) };
}

/** Σ training seconds / (slots × (last end − first start)): 1.0 means no slot ever waited. */
export function busyFraction(trainings: Training[], slots: number): number {
  const { from, to } = span(trainings);
  const busy = trainings.reduce((sum, t) => sum + (t.end - t.start), 0);
  return busy / (slots * (to - from));
}

/** Trainings per slot-hour over the same window; the limit is 3600 / T. */
export function perSlotHour(trainings: Training[], slots: number): number {
  const { from, to } = span(trainings);
  return trainings.length / (slots * ((to - from) / 3600));
}

/** The busy fraction inside [from, to] only: what a continue-as-new boundary would dent. */
export function busyWithin(trainings: Training[], slots: number, from: number, to: number): number {
  const busy = trainings.reduce((sum, t) => sum + Math.max(0, Math.min(t.end, to) - Math.max(t.start, from)), 0);
  return busy / (slots * (to - from));
}

export interface SlotGaps {
  gaps: number[]; // seconds a slot sat idle between one training's end and its next start
  maxPerSlot: number[];
}

/**
 * The trainings do not know their slot, so slots are reconstructed: each training, in start order,
 * takes the slot freed most recently before it started (a fresh slot only when none is free). That
 * pairs every end with the start that could first have used the freed GPU, so a gap is the
 * orchestration's delay, not an artefact of which GPU a worker happened to pick.
 */
export function slotGaps(trainings: Training[], slots: number): SlotGaps {
  const lastEnd: (number | null)[] = Array(slots).fill(null);
  const result: SlotGaps = { gaps: [], maxPerSlot: Array(slots).fill(0) };
  for (const t of [...trainings].sort((a, b) => a.start - b.start)) {
    let slot = -1;
    for (const [i, end] of lastEnd.entries()) {
      if (end !== null && end <= t.start + CLOCK_SLACK_S && (slot < 0 || end > lastEnd[slot]!)) slot = i;
    }
    if (slot < 0) slot = lastEnd.indexOf(null);
    if (slot < 0) slot = lastEnd.indexOf(Math.min(...(lastEnd as number[]))); // more overlap than slots: clock skew
    if (lastEnd[slot] !== null) {
      const gap = Math.max(0, t.start - lastEnd[slot]!);
      result.gaps.push(gap);
      result.maxPerSlot[slot] = Math.max(result.maxPerSlot[slot], gap);
    }
    lastEnd[slot] = t.end;
  }
  return result;
}
