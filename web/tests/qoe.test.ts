import { describe, expect, it } from 'vitest';
import { QoeTracker } from '../src/client/qoe';

const sample = { quality: '720p', latencyMs: 2100.4, bandwidthBps: 5_400_000, droppedTotal: 0 };

describe('QoeTracker', () => {
  it('measures startup from the play request to the first frame, reported once', () => {
    const t = new QoeTracker();
    t.playRequested(1000);
    t.playRequested(1500);
    t.waiting(1200); // the initial load is not a rebuffer
    t.playing(1850);
    const first = t.take(2000, sample);
    expect(first).toMatchObject({ startupMs: 850, rebuffers: 0, buffering: 0, started: true, latencyMs: 2100, bandwidthKbps: 5400 });
    expect(t.take(3000, sample).startupMs).toBeUndefined();
  });

  it('counts rebuffers after the start and cuts an open stall at report time', () => {
    const t = new QoeTracker();
    t.playRequested(0);
    t.playing(100);
    t.waiting(1000);
    t.waiting(1100); // the same stall
    t.playing(1400);
    t.waiting(2000);
    const r = t.take(2500, sample);
    expect(r.rebuffers).toBe(2);
    expect(r.buffering).toBe(400 + 500);
    t.playing(2700);
    const next = t.take(3000, sample);
    expect(next.rebuffers).toBe(0);
    expect(next.buffering).toBe(200);
  });

  it('tells switches up from down and reports dropped frames per interval', () => {
    const t = new QoeTracker();
    t.switched(2_000_000);
    t.switched(5_000_000);
    t.switched(5_000_000);
    t.switched(1_000_000);
    const r = t.take(0, { ...sample, droppedTotal: 12 });
    expect([r.switchesUp, r.switchesDown, r.droppedFrames]).toEqual([1, 1, 12]);
    expect(t.take(1, { ...sample, droppedTotal: 15 }).droppedFrames).toBe(3);
  });

  it('never sends what the server refuses: negative latency, no bandwidth yet, a long error', () => {
    const t = new QoeTracker();
    t.fatalError('x'.repeat(100));
    const r = t.take(0, { quality: 'auto', latencyMs: -300, bandwidthBps: null, droppedTotal: 0 });
    expect(r.latencyMs).toBe(0);
    expect(r.bandwidthKbps).toBeUndefined();
    expect(r.fatalError).toHaveLength(64);
    expect(r.started).toBe(false);
    expect(t.take(1, sample).fatalError).toBeUndefined();
  });
});
