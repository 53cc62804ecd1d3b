import { useCallback, useEffect, useRef, useState } from 'react';
import { useRill } from './context';
import type { StreamAnalytics } from '../client/types';
import { isFinalError, isLive, rangeFrom } from '../app/analytics';

export interface StreamAnalyticsState {
  data: StreamAnalytics | null;
  /** The last request's failure (the previous data stays shown). */
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * `GET /api/streams/{id}/analytics`, loaded when enabled and refreshed every `refreshMs`
 * while the stream is live (the interval is cleared when it ends, on a refusal, on unmount;
 * the numbers of an ended stream no longer change).
 * `lastMinutes`: only the last N minutes (null: the stream's whole life).
 */
export function useStreamAnalytics(
  streamId: string | null | undefined,
  opts: { refreshMs: number; enabled?: boolean; lastMinutes?: number | null },
): StreamAnalyticsState {
  const { api, token } = useRill();
  const enabled = opts.enabled ?? true;
  const lastMinutes = opts.lastMinutes ?? null;
  const [data, setData] = useState<StreamAnalytics | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const inFlight = useRef(false);
  const alive = useRef(true);

  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);

  // Each request has a number; only the newest one's answer is kept (a range change while a
  // refresh is on its way wins). The interval skips a tick while a request is open.
  const seq = useRef(0);
  const load = useCallback(async () => {
    if (!streamId) return;
    const n = ++seq.current;
    inFlight.current = true;
    setLoading(true);
    try {
      const a = await api.streamAnalytics(streamId, { from: rangeFrom(lastMinutes) });
      if (!alive.current || n !== seq.current) return;
      setData(a);
      setError(null);
    } catch (e) {
      if (!alive.current || n !== seq.current) return;
      setError(e);
      if (isFinalError(e)) setData(null);
    } finally {
      if (n === seq.current) {
        inFlight.current = false;
        if (alive.current) setLoading(false);
      }
    }
  }, [api, streamId, lastMinutes]);

  // First load, and again when the range, the stream, the user or a reload asks.
  useEffect(() => {
    if (enabled) void load();
  }, [enabled, load, token, tick]);

  // Poll while live, and until a first answer arrives after a passing failure (a 503, the
  // network); never after a refusal or a 404.
  const poll = enabled && !isFinalError(error) && (isLive(data?.status) || (data === null && error !== null));
  useEffect(() => {
    if (!poll) return;
    const t = setInterval(() => {
      if (!inFlight.current) void load();
    }, opts.refreshMs);
    return () => clearInterval(t);
  }, [poll, load, opts.refreshMs]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, loading, reload };
}
