/**
 * Quality-of-experience bookkeeping for the `heartbeat` frame (functions/core/src/qoe.rs):
 * what a viewer experienced since the previous report. Pure (times are passed in), so it
 * is unit-tested without a browser; `HlsPlayer` feeds it from hls.js and <video> events.
 *
 * Definitions follow Mux: startup time is play request -> first frame; a rebuffer is a
 * stall after playback started (the initial load is not one); a switch is up or down by
 * bitrate; latency is now - the program date-time of the frame shown.
 */

/** What one heartbeat reports (the frame's fields, camelCase as the server reads them). */
export interface QoeReport {
  quality: string;
  buffering: number;
  rebuffers: number;
  startupMs?: number;
  switchesUp: number;
  switchesDown: number;
  latencyMs?: number;
  bandwidthKbps?: number;
  droppedFrames: number;
  fatalError?: string;
  started: boolean;
}

/** Values read from the player at report time. */
export interface QoeSample {
  quality: string;
  latencyMs: number | null;
  bandwidthBps: number | null;
  /** The decoder's cumulative dropped-frame count (getVideoPlaybackQuality). */
  droppedTotal: number;
}

export class QoeTracker {
  private playRequestedAt: number | null = null;
  private startupMs: number | null = null;
  private startupReported = false;
  private rebufferSince: number | null = null;
  private rebufferMs = 0;
  private rebuffers = 0;
  private lastBitrate: number | null = null;
  private up = 0;
  private down = 0;
  private droppedBase = 0;
  private fatal: string | null = null;

  /** The viewer (or autoplay) asked to play; only the first request counts. */
  playRequested(now: number): void {
    this.playRequestedAt ??= now;
  }

  /** A frame is showing (`playing`): the first one ends startup, later ones end a rebuffer. */
  playing(now: number): void {
    if (this.startupMs === null) {
      this.startupMs = Math.max(0, now - (this.playRequestedAt ?? now));
      return;
    }
    if (this.rebufferSince !== null) {
      this.rebufferMs += now - this.rebufferSince;
      this.rebufferSince = null;
    }
  }

  /** Playback stalled (`waiting`): a rebuffer only once playback had started. */
  waiting(now: number): void {
    if (this.startupMs === null || this.rebufferSince !== null) return;
    this.rebufferSince = now;
    this.rebuffers++;
  }

  /** The rendition now playing has this bitrate. */
  switched(bitrate: number): void {
    if (this.lastBitrate !== null && bitrate !== this.lastBitrate) {
      if (bitrate > this.lastBitrate) this.up++;
      else this.down++;
    }
    this.lastBitrate = bitrate;
  }

  fatalError(code: string): void {
    this.fatal = code;
  }

  get started(): boolean {
    return this.startupMs !== null;
  }

  /** The report since the previous one (counts restart from zero; an open stall is cut at `now`). */
  take(now: number, s: QoeSample): QoeReport {
    let buffering = this.rebufferMs;
    if (this.rebufferSince !== null) {
      buffering += now - this.rebufferSince;
      this.rebufferSince = now;
    }
    const dropped = Math.max(0, s.droppedTotal - this.droppedBase);
    this.droppedBase = Math.max(this.droppedBase, s.droppedTotal);
    const r: QoeReport = {
      quality: s.quality,
      buffering: Math.round(buffering),
      rebuffers: this.rebuffers,
      switchesUp: this.up,
      switchesDown: this.down,
      droppedFrames: dropped,
      started: this.started,
    };
    // The startup time once, in the first report after it is known.
    if (this.startupMs !== null && !this.startupReported) {
      r.startupMs = Math.round(this.startupMs);
      this.startupReported = true;
    }
    // Integers >= 0 only: the server refuses anything else (a clock behind the origin's
    // would give a negative latency).
    if (s.latencyMs !== null && Number.isFinite(s.latencyMs)) r.latencyMs = Math.max(0, Math.round(s.latencyMs));
    if (s.bandwidthBps !== null && Number.isFinite(s.bandwidthBps) && s.bandwidthBps > 0) r.bandwidthKbps = Math.round(s.bandwidthBps / 1000);
    if (this.fatal) r.fatalError = this.fatal.slice(0, 64);
    this.rebufferMs = 0;
    this.rebuffers = 0;
    this.up = 0;
    this.down = 0;
    this.fatal = null;
    return r;
  }
}
