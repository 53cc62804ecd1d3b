import type { QualityPreset } from './types';

export const QUALITY_PRESETS: readonly QualityPreset[] = ['1080p', '720p', '480p', '360p'];

/** Ladder presets (DESIGN.md): capture size, frame rate and the top-rung bitrate. */
export const PRESET_SPECS: Record<QualityPreset, { width: number; height: number; frameRate: number; kbps: number }> = {
  '1080p': { width: 1920, height: 1080, frameRate: 30, kbps: 3000 },
  '720p': { width: 1280, height: 720, frameRate: 30, kbps: 1500 },
  '480p': { width: 854, height: 480, frameRate: 24, kbps: 800 },
  '360p': { width: 640, height: 360, frameRate: 24, kbps: 400 },
};

export function isQualityPreset(v: unknown): v is QualityPreset {
  return typeof v === 'string' && (QUALITY_PRESETS as readonly string[]).includes(v);
}

/** getUserMedia video constraints for a preset, optionally pinned to one camera. */
export function captureConstraints(preset: QualityPreset, deviceId?: string | null): MediaTrackConstraints {
  const p = PRESET_SPECS[preset];
  const c: MediaTrackConstraints = {
    width: { ideal: p.width },
    height: { ideal: p.height },
    frameRate: { ideal: p.frameRate, max: p.frameRate },
  };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

/** Sender bitrate cap (bps) for a preset, lowered by the stream's `maxBitrateKbps` if set. */
export function senderMaxBitrate(preset: QualityPreset, maxBitrateKbps?: number | null): number {
  const k = PRESET_SPECS[preset].kbps;
  const cap = maxBitrateKbps && maxBitrateKbps > 0 ? Math.min(k, maxBitrateKbps) : k;
  return cap * 1000;
}

export type ViewerQuality = QualityPreset | 'auto';

export interface LevelLike {
  height: number;
  width?: number;
  bitrate?: number;
}

/**
 * hls.js level index for a viewer choice: 'auto' -> -1; a preset -> the level whose height
 * matches, else the highest level not above it, else the lowest level.
 */
export function levelForQuality(levels: readonly LevelLike[], q: ViewerQuality): number {
  if (q === 'auto' || levels.length === 0) return -1;
  const target = PRESET_SPECS[q].height;
  let best = -1;
  for (let i = 0; i < levels.length; i++) {
    const h = levels[i].height;
    if (h === target) return i;
    if (h <= target && (best === -1 || h > levels[best].height)) best = i;
  }
  if (best !== -1) return best;
  let lowest = 0;
  for (let i = 1; i < levels.length; i++) if (levels[i].height < levels[lowest].height) lowest = i;
  return lowest;
}

/** The label shown for a level ('720p'), from its height. */
export function levelLabel(level: LevelLike | undefined): string {
  return level && level.height ? `${level.height}p` : 'audio';
}

/**
 * What the broadcaster's health panel says about the ingest node's overload governor
 * (`governorLevel` of a quality sample): nothing at full quality, else that the node
 * reduced quality to stay live. Unknown or absurd levels are clamped to 0-5.
 */
export function governorNotice(level: number | null | undefined): string | null {
  const l = Math.min(5, Math.max(0, Math.round(Number(level) || 0)));
  if (l === 0) return null;
  return `Reduced quality to stay live (the ingest node is short of CPU; level ${l} of 5).`;
}
