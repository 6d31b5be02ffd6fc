// Means and 95% intervals for the morning's questions (verify, ablate). Pure: the workflows call it.

// Student's t at 0.975 for 1..30 degrees of freedom; beyond that the normal 1.96 is close enough.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function t975(dof: number): number {
  return dof < 1 ? Infinity : (T975[Math.round(dof) - 1] ?? 1.96);
}

export interface Estimate {
  mean: number;
  halfWidth: number; // of the 95% interval; Infinity with fewer than two runs
  n: number;
}

function variance(xs: number[]): number {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1);
}

export function estimate(xs: number[]): Estimate {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, halfWidth: Infinity, n: xs.length };
  return { mean, halfWidth: t975(xs.length - 1) * Math.sqrt(variance(xs) / xs.length), n: xs.length };
}

/** b − a with Welch's 95% interval: how much b's runs differ from a's. */
export function difference(a: number[], b: number[]): Estimate & { low: number; high: number } {
  const mean = estimate(b).mean - estimate(a).mean;
  if (a.length < 2 || b.length < 2)
    return { mean, halfWidth: Infinity, n: Math.min(a.length, b.length), low: -Infinity, high: Infinity };
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  const dof =
    se === 0 ? a.length + b.length - 2 : (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const halfWidth = t975(dof) * se;
  return { mean, halfWidth, n: Math.min(a.length, b.length), low: mean - halfWidth, high: mean + halfWidth };
}
