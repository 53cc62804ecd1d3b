import { useCallback, useEffect, useRef, useState } from 'react';
import type { NewStream, QualityPreset, QualitySample, Stream } from '../client/types';
import { ApiError } from '../client/errors';
import { WhipPublisher, type PublisherState } from '../client/whip';
import { elapsedSeconds } from '../client/format';
import { useNow, useRill, useStreamEvents, useViewerCount } from './context';

const KEY_PREFIX = 'rill.streamKey.';

export interface StoredIngest {
  streamKey: string;
  whipUrl: string;
}

/** The stream key is shown once (create/rotate): keep it for this tab, per stream. */
export function saveIngest(streamId: string, v: StoredIngest, storage: Storage = sessionStorage): void {
  try {
    storage.setItem(KEY_PREFIX + streamId, JSON.stringify(v));
  } catch {
    /* storage off */
  }
}

export function loadIngest(streamId: string, storage: Storage = sessionStorage): StoredIngest | null {
  try {
    const raw = storage.getItem(KEY_PREFIX + streamId);
    if (!raw) return null;
    const v = JSON.parse(raw) as StoredIngest;
    return typeof v.streamKey === 'string' && typeof v.whipUrl === 'string' ? v : null;
  } catch {
    return null;
  }
}

export interface UseLiveStreamOptions {
  streamId?: string | null;
  onStreamStarted?: (s: Stream) => void;
  onStreamEnded?: (s: Stream) => void;
}

export function useLiveStream(options: UseLiveStreamOptions = {}) {
  const { api } = useRill();
  const [streamId, setStreamId] = useState<string | null>(options.streamId ?? null);
  const [stream, setStream] = useState<Stream | null>(null);
  const [isStarting, setIsStarting] = useState(false);
  const [publisherState, setPublisherState] = useState<PublisherState>('idle');
  const [localStream, setLocalStream] = useState<MediaStream | null>(null);
  const [videoEnabled, setVideoEnabled] = useState(true);
  const [audioEnabled, setAudioEnabled] = useState(true);
  const [health, setHealth] = useState<QualitySample | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [hasKey, setHasKey] = useState(false);
  const publisherRef = useRef<WhipPublisher | null>(null);
  const cbs = useRef(options);
  cbs.current = options;

  useEffect(() => {
    if (options.streamId !== undefined) setStreamId(options.streamId ?? null);
  }, [options.streamId]);

  const client = useStreamEvents(streamId);
  const viewerCount = useViewerCount(streamId, client);

  const publisher = useCallback((): WhipPublisher => {
    if (!publisherRef.current) {
      const p = new WhipPublisher();
      p.onState(setPublisherState);
      publisherRef.current = p;
    }
    return publisherRef.current;
  }, []);

  // Load the stream and keep it fresh.
  const refresh = useCallback(async () => {
    if (!streamId) return;
    try {
      const s = await api.getStream(streamId);
      setStream(s);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api, streamId]);

  useEffect(() => {
    if (!streamId) return;
    setHasKey(!!loadIngest(streamId));
    void refresh();
    const t = setInterval(refresh, 5000);
    return () => clearInterval(t);
  }, [streamId, refresh]);

  // Latest quality sample.
  useEffect(() => {
    if (!streamId) return;
    let alive = true;
    api
      .getMetrics(streamId, { limit: 720 })
      .then((m) => alive && m.items.length && setHealth(m.items[m.items.length - 1]))
      .catch(() => undefined);
    return () => {
      alive = false;
    };
  }, [api, streamId]);

  useEffect(() => {
    if (!client) return;
    const offs = [
      client.on('stream:start', (e) => {
        setStream(e.data.stream);
        cbs.current.onStreamStarted?.(e.data.stream);
      }),
      client.on('stream:end', (e) => {
        setStream(e.data.stream);
        cbs.current.onStreamEnded?.(e.data.stream);
      }),
      client.on('stream:quality-update', (e) => setHealth(e.data)),
    ];
    return () => offs.forEach((o) => o());
  }, [client]);

  // Status transitions seen through polling also fire the callbacks once.
  const lastStatus = useRef<string | null>(null);
  useEffect(() => {
    if (!stream) return;
    const prev = lastStatus.current;
    lastStatus.current = stream.status;
    if (prev && prev !== stream.status) {
      if (stream.status === 'live') cbs.current.onStreamStarted?.(stream);
      if (stream.status === 'ended') cbs.current.onStreamEnded?.(stream);
    }
  }, [stream]);

  const createStream = useCallback(
    async (input: NewStream) => {
      const created = await api.createStream(input);
      const { ingest, ...s } = created;
      saveIngest(s.id, { streamKey: ingest.streamKey, whipUrl: ingest.whipUrl });
      setHasKey(true);
      setStream(s);
      setStreamId(s.id);
      return created;
    },
    [api],
  );

  const rotateKey = useCallback(async () => {
    if (!streamId) throw new Error('no stream');
    const r = await api.rotateKey(streamId);
    saveIngest(streamId, { streamKey: r.streamKey, whipUrl: r.whipUrl });
    setHasKey(true);
    return r;
  }, [api, streamId]);

  const startPreview = useCallback(
    async (opts: { quality?: QualityPreset; cameraId?: string | null; microphoneId?: string | null } = {}) => {
      const m = await publisher().preview(opts);
      setLocalStream(m);
      setVideoEnabled(true);
      setAudioEnabled(true);
      return m;
    },
    [publisher],
  );

  const startBroadcast = useCallback(
    async (quality: QualityPreset = '720p') => {
      if (!streamId) throw new Error('no stream');
      setIsStarting(true);
      setError(null);
      try {
        const ingest = loadIngest(streamId);
        if (!ingest) throw new Error('No stream key in this tab: rotate the key to get a new one.');
        const p = publisher();
        if (!p.stream || p.quality !== quality) setLocalStream(await p.preview({ quality }));
        p.quality = quality;
        // A scheduled stream is opened for ingest first.
        if (stream?.status === 'scheduled') setStream(await api.startStream(streamId));
        await p.start(ingest.whipUrl, ingest.streamKey);
        setLocalStream(p.stream);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
        throw e;
      } finally {
        setIsStarting(false);
      }
    },
    [api, publisher, stream?.status, streamId],
  );

  const stopBroadcast = useCallback(async () => {
    await publisherRef.current?.stop();
  }, []);

  const endStream = useCallback(async () => {
    if (!streamId) return;
    // Hang up (DELETE on the WHIP resource) and release the camera and microphone.
    await publisherRef.current?.dispose();
    setLocalStream(null);
    try {
      setStream(await api.endStream(streamId));
    } catch (e) {
      if (e instanceof ApiError && e.code === 'invalid_transition') await refresh();
      else throw e;
    }
  }, [api, refresh, streamId]);

  const toggleVideo = useCallback(() => {
    const p = publisherRef.current;
    if (!p) return;
    p.setVideoEnabled(!p.videoEnabled);
    setVideoEnabled(p.videoEnabled);
  }, []);

  const toggleAudio = useCallback(() => {
    const p = publisherRef.current;
    if (!p) return;
    p.setAudioEnabled(!p.audioEnabled);
    setAudioEnabled(p.audioEnabled);
  }, []);

  const switchCamera = useCallback(async (id: string) => {
    await publisher().switchCamera(id);
    setLocalStream(publisher().stream);
  }, [publisher]);
  const switchMicrophone = useCallback(async (id: string) => {
    await publisher().switchMicrophone(id);
    setLocalStream(publisher().stream);
  }, [publisher]);
  const setQuality = useCallback((q: QualityPreset) => publisher().setQuality(q), [publisher]);

  // Release camera and session on unmount.
  useEffect(
    () => () => {
      void publisherRef.current?.dispose();
    },
    [],
  );

  const isBroadcasting = publisherState === 'publishing' || publisherState === 'connecting';

  // What this browser is sending (WebRTC stats), next to the node's samples.
  const [sending, setSending] = useState<{ fps: number; width: number; height: number; kbps: number } | null>(null);
  useEffect(() => {
    if (publisherState !== 'publishing') {
      setSending(null);
      return;
    }
    let last: { bytes: number; at: number } | null = null;
    const t = setInterval(async () => {
      const st = await publisherRef.current?.outboundStats();
      if (!st || st.bytesSent === undefined) return;
      const now = performance.now();
      if (last) {
        const kbps = ((st.bytesSent - last.bytes) * 8) / (now - last.at);
        setSending({ fps: st.fps ?? 0, width: st.width ?? 0, height: st.height ?? 0, kbps });
      }
      last = { bytes: st.bytesSent, at: now };
    }, 2000);
    return () => clearInterval(t);
  }, [publisherState]);
  const now = useNow(stream?.status === 'live');
  const duration = stream?.status === 'live' ? elapsedSeconds(stream.startedAt, now) : 0;

  return {
    streamId,
    stream,
    isStarting,
    isBroadcasting,
    publisherState,
    localStream,
    viewerCount,
    duration,
    health,
    sending,
    error,
    hasKey,
    videoEnabled,
    audioEnabled,
    createStream,
    rotateKey,
    startPreview,
    startBroadcast,
    stopBroadcast,
    endStream,
    toggleVideo,
    toggleAudio,
    switchCamera,
    switchMicrophone,
    setQuality,
    refresh,
    events: client,
  };
}
