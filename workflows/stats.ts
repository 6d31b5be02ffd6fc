// Means, 95% intervals and p-values for the morning's questions (verify, ablate, compare, sensitivity), and the
// quantiles the decisions use.
// Pure: the workflows call it. Quantiles come from stdlib's distributions, at any (fractional) degrees of freedom.
import chisquareQuantile from '@stdlib/stats-base-dists-chisquare-quantile';
import fCdf from '@stdlib/stats-base-dists-f-cdf';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import tCdf from '@stdlib/stats-base-dists-t-cdf';
import tQuantile from '@stdlib/stats-base-dists-t-quantile';

/** Student's t at 0.975: the 95% interval's multiplier for `dof` degrees of freedom (Welch's are fractional). */
export function t975(dof: number): number {
  if (!(dof > 0)) return Infinity;
  return Number.isFinite(dof) ? tQuantile(0.975, dof) : normalQuantile(0.975, 0, 1);
}

/** The normal score with the same tail as Student's t at `t` with `dof` degrees of freedom. */
export function tAsZ(t: number, dof: number): number {
  return Number.isFinite(dof) ? normalQuantile(tCdf(t, dof), 0, 1) : t;
}

/** The upper-tail normal probability of z: the false-keep rate a z margin with known σ would give. */
export function upperTail(z: number): number {
  return 1 - normalCdf(z, 0, 1);
}

/** z such that upperTail(z) = p. */
export function zFor(p: number): number {
  return normalQuantile(1 - p, 0, 1);
}

/** σ's 95% interval from a pooled estimate with `dof` degrees of freedom (chi-square). */
export function sigmaInterval(sigma: number, dof: number): { low: number; high: number } {
  if (dof < 1) return { low: 0, high: Infinity };
  return { low: sigma * Math.sqrt(dof / chisquareQuantile(0.975, dof)), high: sigma * Math.sqrt(dof / chisquareQuantile(0.025, dof)) };
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

/** b − a, its standard error and Welch's degrees of freedom; null with fewer than two runs on a side. */
function welch(a: number[], b: number[]): { mean: number; se: number; dof: number } | null {
  if (a.length < 2 || b.length < 2) return null;
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  const dof =
    se === 0 ? a.length + b.length - 2 : (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return { mean: estimate(b).mean - estimate(a).mean, se, dof };
}

/** b − a with Welch's 95% interval: how much b's runs differ from a's. */
export function difference(a: number[], b: number[]): Estimate & { low: number; high: number } {
  const w = welch(a, b);
  if (w === null) {
    const mean = estimate(b).mean - estimate(a).mean;
    return { mean, halfWidth: Infinity, n: Math.min(a.length, b.length), low: -Infinity, high: Infinity };
  }
  const halfWidth = t975(w.dof) * w.se;
  return { mean: w.mean, halfWidth, n: Math.min(a.length, b.length), low: w.mean - halfWidth, high: w.mean + halfWidth };
}

/** Welch's two-sided p that a and b have the same mean (1 with fewer than two runs on a side). */
export function welchP(a: number[], b: number[]): number {
  const w = welch(a, b);
  if (w === null) return 1;
  if (w.se === 0) return w.mean === 0 ? 1 : 0;
  return 2 * (1 - tCdf(Math.abs(w.mean) / w.se, w.dof));
}

/**
 * One-way ANOVA over groups of runs (those with none left out): p that every group has the same mean, and
 * how far the means' spread stands above what noise alone gives them (√F: about 1 when nothing differs).
 */
export function oneWay(groups: number[][]): { p: number; aboveNoise: number } {
  const scored = groups.filter((g) => g.length > 0);
  const total = scored.reduce((s, g) => s + g.length, 0);
  const dfBetween = scored.length - 1;
  const dfWithin = total - scored.length;
  if (dfBetween < 1 || dfWithin < 1) return { p: 1, aboveNoise: 0 };
  const grand = scored.flat().reduce((a, b) => a + b, 0) / total;
  const means = scored.map((g) => g.reduce((a, b) => a + b, 0) / g.length);
  const between = scored.reduce((s, g, i) => s + g.length * (means[i] - grand) ** 2, 0) / dfBetween;
  const within = scored.reduce((s, g, i) => s + g.reduce((t, x) => t + (x - means[i]) ** 2, 0), 0) / dfWithin;
  if (within === 0) return between === 0 ? { p: 1, aboveNoise: 0 } : { p: 0, aboveNoise: Infinity };
  const f = between / within;
  return { p: 1 - fCdf(f, dfBetween, dfWithin), aboveNoise: Math.sqrt(f) };
}

/** Holm's step-down adjustment: each p scaled for the number of hypotheses still standing, kept monotone. */
export function holm(ps: number[]): number[] {
  const order = ps.map((p, i) => ({ p, i })).sort((x, y) => x.p - y.p);
  const adjusted = new Array<number>(ps.length);
  let running = 0;
  order.forEach(({ p, i }, k) => {
    running = Math.max(running, Math.min(1, (ps.length - k) * p));
    adjusted[i] = running;
  });
  return adjusted;
}
