import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/client/backoff';

describe('backoffDelay', () => {
  it('grows exponentially without jitter', () => {
    const d = [0, 1, 2, 3].map((a) => backoffDelay(a, { baseMs: 100, jitter: 0 }));
    expect(d).toEqual([100, 200, 400, 800]);
  });
  it('is capped at maxMs', () => {
    expect(backoffDelay(20, { baseMs: 500, maxMs: 30_000, jitter: 0 })).toBe(30_000);
  });
  it('keeps the jittered delay between (1-jitter)*exp and exp', () => {
    expect(backoffDelay(3, { baseMs: 100, jitter: 0.5 }, () => 0)).toBe(400);
    expect(backoffDelay(3, { baseMs: 100, jitter: 0.5 }, () => 0.999999)).toBe(800);
    expect(backoffDelay(3, { baseMs: 100, jitter: 0.5 }, () => 0.5)).toBe(600);
  });
  it('treats negative attempts as the first one', () => {
    expect(backoffDelay(-3, { baseMs: 250, jitter: 0 })).toBe(250);
  });
});
