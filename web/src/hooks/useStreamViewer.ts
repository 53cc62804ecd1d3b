import { useCallback, useEffect, useRef, useState } from 'react';
import type { MediaAccess, Stream } from '../client/types';
import { withGrant } from '../client/playlist';
import { ApiError } from '../client/errors';
import type { HlsPlayer, PlayerStats } from '../client/player';
import type { ViewerQuality } from '../client/quality';
import { useRill, useStreamEvents, useViewerCount } from './context';

export interface UseStreamViewerOptions {
  streamId: string;
  autoStart?: boolean;
  lowLatencyMode?: boolean;
}

declare global {
  interface Window {
    __rillPlayer?: HlsPlayer;
  }
}

/** Playable once media may exist: preparing (manifest may appear), live, ended (VOD). */
/**
 * How often a watching player reports its playback (10 s, as the analytics issue asks; the
 * cost model in the README was measured with it: scripts/cost-counts.json). Reports also go
 * out at once when playback starts and after a fatal error.
 */
export const HEARTBEAT_MS = 10_000;

export const mayHaveMedia = (s: Pick<Stream, 'status' | 'startedAt'> | null) =>
  !!s && (s.status === 'preparing' || s.status === 'live' || (s.status === 'ended' && !!s.startedAt));

export function useStreamViewer({ streamId, autoStart = true, lowLatencyMode = true }: UseStreamViewerOptions) {
  const { api } = useRill();
  const client = useStreamEvents(streamId);
  const viewerCount = useViewerCount(streamId, client);
  const clientRef = useRef(client);
  clientRef.current = client;
  const videoRef = useRef<HTMLVideoElement | null>(null);
  const playerRef = useRef<HlsPlayer | null>(null);
  const [stream, setStream] = useState<Stream | null>(null);
  const [isLoading, setIsLoading] = useState(true);
  const [stats, setStats] = useState<PlayerStats | null>(null);
  const [currentQuality, setCurrentQuality] = useState<ViewerQuality>('auto');
  const [manifestUrl, setManifestUrl] = useState<string | null>(null);
  const accessRef = useRef<MediaAccess | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);

  // Stream state: REST then events; slow poll while not yet live.
  useEffect(() => {
    let alive = true;
    const load = () =>
      api
        .getStream(streamId)
        .then((s) => alive && setStream(s))
        .catch((e) => alive && setError(e instanceof ApiError ? e.message : String(e)));
    void load();
    // Events carry start/end; polling is the fallback (fast until live, slow while live).
    const status = stream?.status;
    const every = status === 'live' ? 15_000 : status === 'ended' || status === 'cancelled' ? 0 : 3000;
    const t = every ? setInterval(load, every) : undefined;
    return () => {
      alive = false;
      if (t) clearInterval(t);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, streamId, stream?.status]);

  useEffect(() => {
    if (!client) return;
    const offs = [
      client.on('stream:start', (e) => setStream(e.data.stream)),
      client.on('stream:end', (e) => setStream(e.data.stream)),
    ];
    return () => offs.forEach((o) => o());
  }, [client]);

  // Manifest: retry until it exists (409 not_playable / 404 while preparing).
  const playable = mayHaveMedia(stream);
  useEffect(() => {
    if (!playable || manifestUrl) return;
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tryLoad = async () => {
      try {
        const m = await api.getHls(streamId);
        // Wait for the playlist object itself (the stream turns live once segments exist).
        const head = await fetch(withGrant(m.manifestUrl, m.access?.query), { method: 'GET', cache: 'no-store' });
        if (!head.ok) throw new Error(`manifest HTTP ${head.status}`);
        if (alive) {
          accessRef.current = m.access ?? null;
          setManifestUrl(m.manifestUrl);
        }
      } catch {
        if (alive) timer = setTimeout(tryLoad, 1000);
      } finally {
        if (alive) setIsLoading(false);
      }
    };
    void tryLoad();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [api, streamId, playable, manifestUrl]);

  // Members-only: renew the grant five minutes before it expires (it lasts an hour), so
  // a long watch never hits a 403.
  useEffect(() => {
    if (!manifestUrl) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let alive = true;
    const schedule = () => {
      const access = accessRef.current;
      if (!access) return;
      const wait = Math.max(10_000, Date.parse(access.expiresAt) - Date.now() - 5 * 60_000);
      timer = setTimeout(() => {
        api
          .getHls(streamId)
          .then((m) => {
            if (!alive) return;
            accessRef.current = m.access ?? null;
            playerRef.current?.setGrant(m.access?.query ?? null);
          })
          .catch(() => undefined)
          .finally(() => alive && schedule());
      }, wait);
    };
    schedule();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [api, streamId, manifestUrl]);

  useEffect(() => {
    if (stream && !mayHaveMedia(stream)) setIsLoading(false);
  }, [stream]);

  // Player lifecycle.
  useEffect(() => {
    const video = videoRef.current;
    if (!manifestUrl || !video) return;
    let cleanup: (() => void) | null = null;
    let cancelled = false;
    // hls.js is loaded on demand: pages without a player stay small.
    void import('../client/player').then(({ HlsPlayer }) => {
      if (cancelled) return;
      const p = new HlsPlayer(video, { lowLatency: lowLatencyMode });
      playerRef.current = p;
      window.__rillPlayer = p;
      const off = p.subscribe(setStats);
      let retry: ReturnType<typeof setTimeout> | undefined;
      p.onFatalError = (detail) => {
        setError(`playback error: ${detail}; retrying`);
        retry = setTimeout(() => setAttempt((a) => a + 1), 2000);
      };
      p.load(manifestUrl, accessRef.current?.query ?? null);
      p.setQuality(currentQuality);
      if (autoStart) void p.play();
      const tick = setInterval(() => setStats(p.stats()), 1000);
      // Quality-of-experience report for analytics (client/qoe.ts): every HEARTBEAT_MS, at once
      // when playback starts and after a fatal error, so exits before video start and
      // failures are counted even when the viewer leaves right after.
      const report = () => clientRef.current?.send({ action: 'heartbeat', ...p.takeReport() });
      const heartbeat = setInterval(report, HEARTBEAT_MS);
      let startReported = false;
      const offStart = p.subscribe(() => {
        if (!startReported && p.qoe.started) {
          startReported = true;
          report();
        }
      });
      const fatal = p.onFatalError;
      p.onFatalError = (detail) => {
        report();
        fatal?.(detail);
      };
      cleanup = () => {
        clearInterval(tick);
        clearInterval(heartbeat);
        offStart();
        if (retry) clearTimeout(retry);
        off();
        p.destroy();
        if (window.__rillPlayer === p) delete window.__rillPlayer;
        playerRef.current = null;
      };
    });
    return () => {
      cancelled = true;
      cleanup?.();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [manifestUrl, lowLatencyMode, autoStart, attempt]);

  const play = useCallback(() => playerRef.current?.play(), []);
  const pause = useCallback(() => playerRef.current?.pause(), []);
  const setQuality = useCallback((q: ViewerQuality) => {
    setCurrentQuality(q);
    playerRef.current?.setQuality(q);
  }, []);

  return {
    stream,
    isLoading,
    isPlaying: !!stats?.playing,
    isEnded: stream?.status === 'ended',
    currentQuality,
    viewerCount,
    videoRef,
    play,
    pause,
    setQuality,
    stats,
    error,
    events: client,
  };
}
