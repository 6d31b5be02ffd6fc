// A training whose score is a known bowl in two knobs, for the search proposers' test and bench: val_bpb
// = 1 + 0.02·log2(LR/LR*)² + 0.02·log2(WIDTH/WIDTH*)², the optimum between the sweep's ×2 grid points
// (LR* = 0.03·2^-2.5, WIDTH* = 4·2^1.5), plus seeded noise of σ = 0.0005 in the training (none in trueScore).
export const LR_STAR = 0.03 * 2 ** -2.5;
export const WIDTH_STAR = 4 * 2 ** 1.5;
export const OPTIMUM = 1;
const CURVATURE = 0.02;

export const SEARCH_TRAIN = `LR = 0.03  # learning rate
WIDTH = 4  # hidden units
import hashlib, math, os, random
code = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
noise = random.Random(f"{os.environ['AUTORESEARCH_SEED']}-{code}").gauss(0, 0.0005)
score = 1 + ${CURVATURE} * math.log2(LR / ${LR_STAR}) ** 2 + ${CURVATURE} * math.log2(WIDTH / ${WIDTH_STAR}) ** 2
print("---")
print(f"val_bpb:          {score + noise:.6f}")
`;

export function trueScore(knobs: Record<string, number>): number {
  return OPTIMUM + CURVATURE * Math.log2(knobs.LR / LR_STAR) ** 2 + CURVATURE * Math.log2(knobs.WIDTH / WIDTH_STAR) ** 2;
}
