/**
 * SGD and Adam on a batch of independent parameter vectors (one row per task), in place.
 * Plain Float32Array maths: phi is tiny (d = 16..256), so this costs nothing next to the model.
 */
export type OptimizerKind = 'sgd' | 'adam';

export class BatchedOptimizer {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;

  constructor(
    readonly kind: OptimizerKind,
    /** The step size; may change between steps (a schedule keeps Adam's moments). */
    public learningRate: number,
    size: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = new Float32Array(kind === 'adam' ? size : 0);
    this.v = new Float32Array(kind === 'adam' ? size : 0);
  }

  /** params -= step(grad). */
  step(params: Float32Array, grad: Float32Array): void {
    const lr = this.learningRate;
    if (this.kind === 'sgd') {
      for (let i = 0; i < params.length; i++) params[i] = (params[i] as number) - lr * (grad[i] as number);
      return;
    }
    this.t++;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i] as number;
      const m = this.beta1 * (this.m[i] as number) + (1 - this.beta1) * g;
      const v = this.beta2 * (this.v[i] as number) + (1 - this.beta2) * g * g;
      this.m[i] = m;
      this.v[i] = v;
      params[i] = (params[i] as number) - (lr * (m / c1)) / (Math.sqrt(v / c2) + this.eps);
    }
  }
}

/** Projects phi onto the ball of radius r around center (the meta-test trust region). */
export function projectToBall(phi: Float32Array, center: Float32Array, radius: number): void {
  if (!Number.isFinite(radius)) return;
  let n2 = 0;
  for (let i = 0; i < phi.length; i++) n2 += ((phi[i] as number) - (center[i] as number)) ** 2;
  const n = Math.sqrt(n2);
  if (n <= radius) return;
  const s = radius / n;
  for (let i = 0; i < phi.length; i++)
    phi[i] = (center[i] as number) + ((phi[i] as number) - (center[i] as number)) * s;
}
