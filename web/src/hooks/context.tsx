import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { RillApi } from '../client/rest';
import { bootstrapToken, decodeToken, storeToken, type TokenClaims } from '../client/auth';
import { EventsClient, EventsRegistry, defaultSocketBase } from '../client/events';
import {
  OidcError,
  beginSignIn,
  completeSignIn,
  loadConfig,
  loadSession,
  logoutUrl,
  redirectUriFor,
  refreshDelay,
  refreshSession,
  saveSession,
  type OidcConfig,
  type OidcSession,
} from '../client/oidc';

export interface RillContextValue {
  api: RillApi;
  token: string | null;
  claims: TokenClaims | null;
  setToken: (t: string | null) => void;
  events: EventsRegistry;
  /** The OpenID provider from /config.json; null: development sign-in (a pasted token). */
  oidc: OidcConfig | null;
  signIn: () => void;
  signOut: () => void;
  /** Why the last sign-in or renewal failed, if it did. */
  authError: string | null;
}

/** Retry a renewal that failed for network reasons after this long. */
const RENEW_RETRY_MS = 30_000;

const Ctx = createContext<RillContextValue | null>(null);

export function RillProvider({ children, baseUrl = '', wsBase }: { children: ReactNode; baseUrl?: string; wsBase?: string }) {
  const [token, setTokenState] = useState<string | null>(() => bootstrapToken());
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const api = useMemo(() => new RillApi({ baseUrl, getToken: () => tokenRef.current }), [baseUrl]);
  const events = useMemo(
    () => new EventsRegistry((streamId, tok, getToken) => new EventsClient({ url: wsBase ?? defaultSocketBase(), streamId, token: tok, getToken })),
    [wsBase],
  );
  const setToken = useCallback((t: string | null) => {
    const clean = t?.trim() || null;
    storeToken(clean);
    setTokenState(clean);
  }, []);
  const claims = useMemo(() => decodeToken(token), [token]);
  const [oidc, setOidc] = useState<OidcConfig | null>(null);
  const [authError, setAuthError] = useState<string | null>(null);

  // With a provider configured: finish a sign-in the address carries, then keep the
  // session renewed a minute before it expires (a refused renewal signs out).
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const schedule = (cfg: OidcConfig, s: OidcSession, afterRenewal: boolean) => {
      clearTimeout(timer);
      timer = setTimeout(() => renew(cfg), refreshDelay(s, Date.now(), afterRenewal));
    };
    const renew = async (cfg: OidcConfig) => {
      const current = loadSession();
      if (!current?.refreshToken) return;
      try {
        const next = await refreshSession(cfg, current.refreshToken);
        if (!alive) return;
        saveSession(next);
        setToken(next.idToken);
        schedule(cfg, next, true);
      } catch (e) {
        if (!alive) return;
        if (e instanceof OidcError && e.refused) {
          saveSession(null);
          setToken(null);
          setAuthError(`signed out: ${e.message}`);
        } else {
          clearTimeout(timer);
          timer = setTimeout(() => renew(cfg), RENEW_RETRY_MS);
        }
      }
    };
    loadConfig().then(async (cfg) => {
      if (!alive || !cfg) return;
      setOidc(cfg);
      try {
        const fresh = await completeSignIn(cfg);
        if (!alive) return;
        if (fresh) setToken(fresh.idToken);
        const session = fresh ?? loadSession();
        if (session) schedule(cfg, session, false);
      } catch (e) {
        if (alive) setAuthError(`sign-in failed: ${(e as Error).message}`);
      }
    });
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [setToken]);

  const signIn = useCallback(() => {
    if (oidc) void beginSignIn(oidc).catch((e) => setAuthError(`sign-in failed: ${(e as Error).message}`));
  }, [oidc]);
  const signOut = useCallback(() => {
    saveSession(null);
    setToken(null);
    const out = oidc && logoutUrl(oidc, redirectUriFor(window.location));
    if (out) window.location.assign(out);
  }, [oidc, setToken]);

  const value = useMemo(
    () => ({ api, token, claims, setToken, events, oidc, signIn, signOut, authError }),
    [api, token, claims, setToken, events, oidc, signIn, signOut, authError],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useRill(): RillContextValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useRill must be used inside <RillProvider>');
  return v;
}

/** The shared realtime connection of a stream (null without a stream id). */
export function useStreamEvents(streamId: string | null | undefined): EventsClient | null {
  const { events, token, claims } = useRill();
  const [client, setClient] = useState<EventsClient | null>(null);
  // A renewed token for the same user keeps the socket (the token matters only at
  // $connect; reconnects read the current one); another user gets another socket.
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const who = claims?.sub ?? (token ? 'unverified' : '');
  useEffect(() => {
    if (!streamId) {
      setClient(null);
      return;
    }
    const c = events.acquire(streamId, tokenRef.current, who, () => tokenRef.current);
    setClient(c);
    return () => {
      events.release(c);
    };
  }, [events, streamId, who]);
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
