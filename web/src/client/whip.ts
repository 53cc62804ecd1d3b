import { captureConstraints, senderMaxBitrate } from './quality';
import type { QualityPreset } from './types';

export class WhipError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'WhipError';
  }
}

export interface MediaDevicesInfo {
  cameras: MediaDeviceInfo[];
  microphones: MediaDeviceInfo[];
}

export async function listDevices(): Promise<MediaDevicesInfo> {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput'),
    microphones: all.filter((d) => d.kind === 'audioinput'),
  };
}

/** H.264 first (packetization-mode=1, then constrained baseline), others after. */
export function orderCodecsH264First<T extends { mimeType: string; sdpFmtpLine?: string }>(codecs: readonly T[]): T[] {
  const isH264 = (c: T) => c.mimeType.toLowerCase() === 'video/h264';
  const rank = (c: T) => {
    const f = c.sdpFmtpLine ?? '';
    return (f.includes('packetization-mode=1') ? 2 : 0) + (f.includes('profile-level-id=42e01f') ? 1 : 0);
  };
  const h264 = codecs.filter(isH264).sort((a, b) => rank(b) - rank(a));
  return [...h264, ...codecs.filter((c) => !isH264(c))];
}

export interface WhipPublisherOptions {
  quality?: QualityPreset;
  cameraId?: string | null;
  microphoneId?: string | null;
  maxBitrateKbps?: number | null;
  iceGatheringTimeoutMs?: number;
  fetch?: typeof fetch;
}

export type PublisherState = 'idle' | 'previewing' | 'connecting' | 'publishing' | 'stopped' | 'failed';

/**
 * WHIP (RFC 9725) publisher: camera + microphone capture, H.264 + Opus sendonly, one
 * non-trickle offer POSTed with the stream key; DELETE on the resource when stopping.
 */
export class WhipPublisher {
  stream: MediaStream | null = null;
  pc: RTCPeerConnection | null = null;
  resourceUrl: string | null = null;
  state: PublisherState = 'idle';
  quality: QualityPreset;
  private opts: WhipPublisherOptions;
  private whipUrl: string | null = null;
  private streamKey: string | null = null;
  private listeners = new Set<(s: PublisherState) => void>();

  constructor(opts: WhipPublisherOptions = {}) {
    this.opts = opts;
    this.quality = opts.quality ?? '720p';
  }

  onState(h: (s: PublisherState) => void): () => void {
    this.listeners.add(h);
    return () => this.listeners.delete(h);
  }

  private setState(s: PublisherState) {
    this.state = s;
    for (const h of this.listeners) h(s);
  }

  /** Opens the camera and microphone (or re-opens them with a new preset/devices). */
  async preview(changes: Partial<Pick<WhipPublisherOptions, 'quality' | 'cameraId' | 'microphoneId'>> = {}): Promise<MediaStream> {
    Object.assign(this.opts, changes);
    if (changes.quality) this.quality = changes.quality;
    const media = await navigator.mediaDevices.getUserMedia({
      video: captureConstraints(this.quality, this.opts.cameraId),
      audio: this.opts.microphoneId ? { deviceId: { exact: this.opts.microphoneId } } : true,
    });
    const old = this.stream;
    this.stream = media;
    if (this.pc) await this.replaceTracks(media);
    if (old) for (const t of old.getTracks()) t.stop();
    if (this.state === 'idle' || this.state === 'stopped' || this.state === 'failed') this.setState('previewing');
    return media;
  }

  /** Switches camera: new track replaces the old one on the live sender (no renegotiation). */
  async switchCamera(deviceId: string): Promise<void> {
    this.opts.cameraId = deviceId;
    await this.switchTrack('video', { video: captureConstraints(this.quality, deviceId) });
  }

  async switchMicrophone(deviceId: string): Promise<void> {
    this.opts.microphoneId = deviceId;
    await this.switchTrack('audio', { audio: { deviceId: { exact: deviceId } } });
  }

  /** Changes the capture preset (re-applies constraints; the sender bitrate cap follows). */
  async setQuality(q: QualityPreset): Promise<void> {
    this.quality = q;
    const track = this.stream?.getVideoTracks()[0];
    if (track) {
      try {
        await track.applyConstraints(captureConstraints(q, this.opts.cameraId));
      } catch {
        await this.switchTrack('video', { video: captureConstraints(q, this.opts.cameraId) });
      }
    }
    await this.applyBitrate();
  }

  private async switchTrack(kind: 'audio' | 'video', constraints: MediaStreamConstraints) {
    const media = await navigator.mediaDevices.getUserMedia(constraints);
    const fresh = kind === 'video' ? media.getVideoTracks()[0] : media.getAudioTracks()[0];
    if (!fresh) throw new Error(`no ${kind} track`);
    if (!this.stream) this.stream = new MediaStream();
    const old = kind === 'video' ? this.stream.getVideoTracks()[0] : this.stream.getAudioTracks()[0];
    if (old) fresh.enabled = old.enabled;
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === kind || (!s.track && old === undefined));
    if (sender) await sender.replaceTrack(fresh);
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    this.stream.addTrack(fresh);
  }

  private async replaceTracks(media: MediaStream) {
    for (const sender of this.pc?.getSenders() ?? []) {
      const kind = sender.track?.kind;
      const fresh = kind === 'audio' ? media.getAudioTracks()[0] : kind === 'video' ? media.getVideoTracks()[0] : undefined;
      if (fresh) await sender.replaceTrack(fresh);
    }
  }

  setVideoEnabled(on: boolean) {
    for (const t of this.stream?.getVideoTracks() ?? []) t.enabled = on;
  }

  setAudioEnabled(on: boolean) {
    for (const t of this.stream?.getAudioTracks() ?? []) t.enabled = on;
  }

  get videoEnabled(): boolean {
    return this.stream?.getVideoTracks().some((t) => t.enabled) ?? false;
  }

  get audioEnabled(): boolean {
    return this.stream?.getAudioTracks().some((t) => t.enabled) ?? false;
  }

  /** Publishes to `whipUrl` with the stream key. */
  async start(whipUrl: string, streamKey: string): Promise<void> {
    if (this.pc) throw new Error('already publishing');
    if (!this.stream) await this.preview();
    const media = this.stream!;
    this.whipUrl = whipUrl;
    this.streamKey = streamKey;
    this.setState('connecting');
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    try {
      for (const track of media.getTracks()) {
        const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        if (track.kind === 'video' && typeof RTCRtpSender.getCapabilities === 'function') {
          const caps = RTCRtpSender.getCapabilities('video')?.codecs ?? [];
          const ordered = orderCodecsH264First(caps);
          if (ordered.length && 'setCodecPreferences' in tr) tr.setCodecPreferences(ordered);
        }
      }
      pc.addEventListener('connectionstatechange', () => {
        if (pc !== this.pc) return;
        if (pc.connectionState === 'connected') this.setState('publishing');
        else if (pc.connectionState === 'failed') this.setState('failed');
      });
      await this.applyBitrate();
      await pc.setLocalDescription(await pc.createOffer());
      await waitIceGathering(pc, this.opts.iceGatheringTimeoutMs ?? 2000);
      const f = this.opts.fetch ?? fetch;
      const res = await f(whipUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${streamKey}` },
        body: pc.localDescription!.sdp,
      });
      const text = await res.text();
      if (res.status !== 201 && res.status !== 200) {
        throw new WhipError(res.status, `WHIP ${res.status}: ${text.slice(0, 200) || res.statusText}`);
      }
      const loc = res.headers.get('Location');
      this.resourceUrl = loc ? new URL(loc, whipUrl).href : null;
      await pc.setRemoteDescription({ type: 'answer', sdp: text });
      await this.applyBitrate();
    } catch (e) {
      pc.close();
      this.pc = null;
      this.setState('failed');
      throw e;
    }
  }

  private async applyBitrate() {
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === 'video');
    if (!sender) return;
    const p = sender.getParameters() as RTCRtpSendParameters & { degradationPreference?: string };
    if (!p.encodings || p.encodings.length === 0) return;
    p.encodings[0].maxBitrate = senderMaxBitrate(this.quality, this.opts.maxBitrateKbps);
    // The node plans its ladder from the first keyframe's size: keep the chosen resolution and
    // let the frame rate give way while the bandwidth estimate ramps up (the default,
    // 'balanced', starts a camera at a fraction of its size).
    p.degradationPreference = 'maintain-resolution';
    try {
      await sender.setParameters(p);
    } catch {
      /* not fatal */
    }
  }

  /** Outbound video stats (for the local health display). */
  async outboundStats(): Promise<{ fps?: number; width?: number; height?: number; bytesSent?: number } | null> {
    if (!this.pc) return null;
    let out: { fps?: number; width?: number; height?: number; bytesSent?: number } | null = null;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out = { fps: s.framesPerSecond, width: s.frameWidth, height: s.frameHeight, bytesSent: s.bytesSent };
      }
    });
    return out;
  }

  /** Ends the WHIP session (DELETE on the resource) and keeps the preview running. */
  async stop(): Promise<void> {
    const pc = this.pc;
    this.pc = null;
    const resource = this.resourceUrl;
    this.resourceUrl = null;
    // DELETE first: closing the peer connection first sends a DTLS close that already ends
    // the session on the node, and the DELETE then finds nothing (404).
    if (resource && this.streamKey) {
      const f = this.opts.fetch ?? fetch;
      try {
        await f(resource, { method: 'DELETE', headers: { Authorization: `Bearer ${this.streamKey}` } });
      } catch {
        /* the node ends it after its reconnect window anyway */
      }
    }
    if (pc) pc.close();
    this.setState(this.stream ? 'previewing' : 'stopped');
  }

  /** Stops publishing and releases the camera and microphone. */
  async dispose(): Promise<void> {
    await this.stop();
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    this.setState('stopped');
  }

  get target(): { whipUrl: string | null } {
    return { whipUrl: this.whipUrl };
  }
}

function waitIceGathering(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(t);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}
