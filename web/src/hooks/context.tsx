import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { RillApi } from '../client/rest';
import { bootstrapToken, decodeToken, storeToken, type TokenClaims } from '../client/auth';
import { EventsClient, EventsRegistry, defaultSocketBase } from '../client/events';

export interface RillContextValue {
  api: RillApi;
  token: string | null;
  claims: TokenClaims | null;
  setToken: (t: string | null) => void;
  events: EventsRegistry;
}

const Ctx = createContext<RillContextValue | null>(null);

export function RillProvider({ children, baseUrl = '', wsBase }: { children: ReactNode; baseUrl?: string; wsBase?: string }) {
  const [token, setTokenState] = useState<string | null>(() => bootstrapToken());
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const api = useMemo(() => new RillApi({ baseUrl, getToken: () => tokenRef.current }), [baseUrl]);
  const events = useMemo(
    () => new EventsRegistry((streamId, tok) => new EventsClient({ url: wsBase ?? defaultSocketBase(), streamId, token: tok })),
    [wsBase],
  );
  const setToken = useCallback((t: string | null) => {
    const clean = t?.trim() || null;
    storeToken(clean);
    setTokenState(clean);
  }, []);
  const claims = useMemo(() => decodeToken(token), [token]);
  const value = useMemo(() => ({ api, token, claims, setToken, events }), [api, token, claims, setToken, events]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useRill(): RillContextValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useRill must be used inside <RillProvider>');
  return v;
}

/** The shared realtime connection of a stream (null without a stream id). */
export function useStreamEvents(streamId: string | null | undefined): EventsClient | null {
  const { events, token } = useRill();
  const [client, setClient] = useState<EventsClient | null>(null);
  useEffect(() => {
    if (!streamId) {
      setClient(null);
      return;
    }
    const c = events.acquire(streamId, token);
    setClient(c);
    return () => {
      events.release(c);
    };
  }, [events, streamId, token]);
  return client;
}

/** Viewers now: GET /viewers, then `stream:viewer-count` / `stream:viewer-joined` events and a slow poll. */
export function useViewerCount(streamId: string | null | undefined, client: EventsClient | null, initial = 0): number {
  const { api } = useRill();
  const [count, setCount] = useState(initial);
  useEffect(() => {
    if (!streamId) return;
    let alive = true;
    const load = () =>
      api.getViewers(streamId).then((v) => alive && setCount(v.count)).catch(() => undefined);
    load();
    const t = setInterval(load, 10_000);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, [api, streamId]);
  useEffect(() => {
    if (!client) return;
    const a = client.on('stream:viewer-count', (e) => setCount(e.data.count));
    const b = client.on('stream:viewer-joined', (e) => {
      if (typeof e.data.count === 'number') setCount(e.data.count);
    });
    return () => {
      a();
      b();
    };
  }, [client]);
  return count;
}

/** Re-renders every `ms` while `on`; returns Date.now(). */
export function useNow(on: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [on, ms]);
  return now;
}
