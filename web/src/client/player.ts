import Hls, { type HlsConfig, type Level } from 'hls.js';
import { levelForQuality, levelLabel, type ViewerQuality } from './quality';
import { bypassPlaylistCache, withGrant } from './playlist';
import { QoeTracker, type QoeReport } from './qoe';

/**
 * hls.js settings for plain short-segment HLS (1 s fMP4 segments, PDT on each, no LL-HLS parts):
 * stay ~1 s behind the live edge, catch up by playing up to 1.5x when drifting, jump back when more
 * than 5 s behind, keep the forward buffer short so that ABR and catch-up react quickly.
 */
export const LOW_LATENCY_CONFIG: Partial<HlsConfig> = {
  lowLatencyMode: true,
  liveSyncDuration: 0.9,
  liveMaxLatencyDuration: 5,
  maxLiveSyncPlaybackRate: 1.5,
  liveSyncOnStallIncrease: 0.25,
  xhrSetup: bypassPlaylistCache,
  maxBufferLength: 4,
  backBufferLength: 10,
  liveDurationInfinity: true,
  manifestLoadingMaxRetry: 6,
  levelLoadingMaxRetry: 6,
  fragLoadingMaxRetry: 6,
};

/** Conservative settings: three segments behind the edge. */
export const STANDARD_CONFIG: Partial<HlsConfig> = {
  lowLatencyMode: false,
  liveSyncDurationCount: 3,
  maxBufferLength: 10,
  backBufferLength: 30,
};

export interface PlayerLevel {
  index: number;
  height: number;
  width: number;
  bitrate: number;
  label: string;
}

export interface PlayerStats {
  levels: PlayerLevel[];
  /** Level playing now (-1 before any is loaded). */
  currentLevel: number;
  /** true when ABR chooses. */
  autoLevel: boolean;
  bandwidthEstimate: number;
  bufferLength: number;
  /** hls.js' own estimate (seconds behind the live edge of the playlist). */
  hlsLatency: number | null;
  /** Date.now() - playingDate (glass-to-glass when the origin stamps PDT at capture), ms. */
  latencyMs: number | null;
  stalls: number;
  waitingEvents: number;
  playing: boolean;
  ended: boolean;
  currentTime: number;
}

export type PlayerListener = (s: PlayerStats) => void;

/** Wraps hls.js on a <video>: ABR levels, quality choice, latency and stall stats. */
export class HlsPlayer {
  hls: Hls | null = null;
  readonly video: HTMLVideoElement;
  private lowLatency: boolean;
  private stalls = 0;
  private waitingEvents = 0;
  private hasPlayed = false;
  private bufferingSince: number | null = null;
  private bufferingMs = 0;
  private listeners = new Set<PlayerListener>();
  private detach: (() => void) | null = null;
  private wantQuality: ViewerQuality = 'auto';
  /** The members-only grant added to every media request (replaced when renewed). */
  private grantQuery: string | null = null;
  onFatalError: ((detail: string) => void) | null = null;
  /** What the viewer experienced, for the `heartbeat` frame (survives a reload of the source). */
  readonly qoe = new QoeTracker();

  constructor(video: HTMLVideoElement, opts: { lowLatency?: boolean } = {}) {
    this.video = video;
    this.lowLatency = opts.lowLatency ?? true;
  }

  static isSupported(): boolean {
    return Hls.isSupported();
  }

  /** Replaces the grant (members-only streams) for the requests from now on. */
  setGrant(query: string | null): void {
    this.grantQuery = query;
  }

  load(manifestUrl: string, grantQuery: string | null = null): void {
    this.destroyHls();
    this.grantQuery = grantQuery;
    // window.__rillHlsConfig (if a test or benchmark sets it) overrides the defaults;
    // window.__rillHlsStock replaces them (benchmarks against stock hls.js settings).
    const g = globalThis as { __rillHlsConfig?: Partial<HlsConfig>; __rillHlsStock?: Partial<HlsConfig> };
    const defaults = g.__rillHlsStock ?? (this.lowLatency ? LOW_LATENCY_CONFIG : STANDARD_CONFIG);
    const config: Partial<HlsConfig> = { ...defaults, ...(g.__rillHlsConfig ?? {}) };
    const inner = config.xhrSetup;
    config.xhrSetup = (xhr, url) => {
      // Members-only media: the grant on every request (the playlists' relative URIs do
      // not carry it); read per request so a renewed grant applies at once.
      const signed = withGrant(url, this.grantQuery);
      if (signed !== url) xhr.open('GET', signed, true);
      return inner?.(xhr, signed);
    };
    const hls = new Hls(config);
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) this.stalls++;
      if (data.fatal) {
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          this.qoe.fatalError(String(data.details));
          this.onFatalError?.(String(data.details));
        }
      }
      this.emit();
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      this.applyQuality();
      this.emit();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = hls.levels[data.level];
      if (level) this.qoe.switched(level.bitrate);
      this.emit();
    });
    hls.on(Hls.Events.FRAG_CHANGED, () => this.emit());
    hls.attachMedia(this.video);
    hls.loadSource(manifestUrl);
    const v = this.video;
    const onWaiting = () => {
      this.qoe.waiting(Date.now());
      if (this.hasPlayed) {
        this.waitingEvents++;
        this.bufferingSince ??= Date.now();
      }
      this.emit();
    };
    const onPlaying = () => {
      this.qoe.playing(Date.now());
      this.hasPlayed = true;
      if (this.bufferingSince !== null) this.bufferingMs += Date.now() - this.bufferingSince;
      this.bufferingSince = null;
      this.emit();
    };
    const onTick = () => this.emit();
    v.addEventListener('waiting', onWaiting);
    v.addEventListener('playing', onPlaying);
    v.addEventListener('pause', onTick);
    v.addEventListener('ended', onTick);
    this.detach = () => {
      v.removeEventListener('waiting', onWaiting);
      v.removeEventListener('playing', onPlaying);
      v.removeEventListener('pause', onTick);
      v.removeEventListener('ended', onTick);
    };
  }

  setLowLatency(on: boolean) {
    this.lowLatency = on;
  }

  subscribe(l: PlayerListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit() {
    if (this.listeners.size === 0) return;
    const s = this.stats();
    for (const l of this.listeners) l(s);
  }

  levels(): PlayerLevel[] {
    return (this.hls?.levels ?? []).map((l: Level, index) => ({
      index,
      height: l.height,
      width: l.width,
      bitrate: l.bitrate,
      label: levelLabel(l),
    }));
  }

  /** '1080p' | '720p' | '480p' | '360p' | 'auto'. */
  setQuality(q: ViewerQuality): void {
    this.wantQuality = q;
    this.applyQuality();
    this.emit();
  }

  get quality(): ViewerQuality {
    return this.wantQuality;
  }

  private applyQuality() {
    const hls = this.hls;
    if (!hls || hls.levels.length === 0) return;
    const idx = levelForQuality(hls.levels, this.wantQuality);
    // currentLevel switches now (flushes the buffer); -1 gives control back to ABR.
    hls.currentLevel = idx;
  }

  /** The playback report since the previous call (for the `heartbeat` frame). */
  takeReport(now = Date.now()): QoeReport {
    const st = this.stats();
    const quality = st.currentLevel >= 0 ? (st.levels[st.currentLevel]?.label ?? 'auto') : 'auto';
    const dropped = typeof this.video.getVideoPlaybackQuality === 'function' ? this.video.getVideoPlaybackQuality().droppedVideoFrames : 0;
    return this.qoe.take(now, {
      quality,
      latencyMs: this.latencyMs(now),
      bandwidthBps: st.bandwidthEstimate > 0 ? st.bandwidthEstimate : null,
      droppedTotal: dropped,
    });
  }

  latencyMs(now = Date.now()): number | null {
    const d = this.hls?.playingDate;
    return d ? now - d.getTime() : null;
  }

  stats(): PlayerStats {
    const hls = this.hls;
    const v = this.video;
    let bufferLength = 0;
    const b = v.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= v.currentTime + 0.1 && b.end(i) >= v.currentTime) bufferLength = b.end(i) - v.currentTime;
    }
    const lat = hls?.latency;
    return {
      levels: this.levels(),
      currentLevel: hls?.currentLevel ?? -1,
      autoLevel: hls?.autoLevelEnabled ?? true,
      bandwidthEstimate: hls?.bandwidthEstimate ?? 0,
      bufferLength,
      hlsLatency: typeof lat === 'number' && Number.isFinite(lat) && lat > 0 ? lat : null,
      latencyMs: this.latencyMs(),
      stalls: this.stalls,
      waitingEvents: this.waitingEvents,
      playing: !v.paused && !v.ended && v.readyState > 2,
      ended: v.ended,
      currentTime: v.currentTime,
    };
  }

  play(): Promise<void> {
    this.qoe.playRequested(Date.now());
    return this.video.play().catch(() => {
      // Autoplay with sound refused: retry muted.
      this.video.muted = true;
      return this.video.play().catch(() => undefined);
    });
  }

  pause(): void {
    this.video.pause();
  }

  private destroyHls() {
    this.detach?.();
    this.detach = null;
    this.hls?.destroy();
    this.hls = null;
  }

  destroy(): void {
    this.destroyHls();
    this.listeners.clear();
  }
}
