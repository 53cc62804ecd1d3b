export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  factor?: number;
  /** 0..1: share of the delay that is randomised ("equal jitter" at 0.5). */
  jitter?: number;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential growth capped at maxMs,
 * with the top `jitter` share randomised so that many clients do not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseMs ?? 500;
  const max = opts.maxMs ?? 30_000;
  const factor = opts.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const exp = Math.min(max, base * Math.pow(factor, Math.max(0, attempt)));
  const fixed = exp * (1 - jitter);
  return Math.round(fixed + random() * exp * jitter);
}
