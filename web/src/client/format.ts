/** 65 -> "1:05", 3725 -> "1:02:05". Negative or NaN -> "0:00". */
export function formatDuration(totalSeconds: number): string {
  const s = Number.isFinite(totalSeconds) && totalSeconds > 0 ? Math.floor(totalSeconds) : 0;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

/** Seconds since `startedAt` (ISO) at `nowMs`. */
export function elapsedSeconds(startedAt: string | null | undefined, nowMs = Date.now()): number {
  if (!startedAt) return 0;
  const t = Date.parse(startedAt);
  return Number.isFinite(t) ? Math.max(0, (nowMs - t) / 1000) : 0;
}

export function formatBitrate(kbps: number | null | undefined): string {
  if (kbps === null || kbps === undefined || !Number.isFinite(kbps)) return '–';
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbps` : `${Math.round(kbps)} kbps`;
}
