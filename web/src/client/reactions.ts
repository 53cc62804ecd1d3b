import type { ReactionBatch } from './events';

/** One emoji floating over the player. */
export interface FloatingReaction {
  id: number;
  emoji: string;
  /** percent of width / height */
  x: number;
  y: number;
  bornAt: number;
}

export interface OverlayState {
  items: FloatingReaction[];
  /** Reactions counted from batches (the `total`s) since the page opened. */
  total: number;
  counts: Record<string, number>;
  nextId: number;
}

export const OVERLAY_TTL_MS = 3000;
export const OVERLAY_MAX_ITEMS = 40;

export function emptyOverlay(): OverlayState {
  return { items: [], total: 0, counts: {}, nextId: 1 };
}

const clampPct = (v: number) => Math.min(100, Math.max(0, v));

/**
 * Adds a coalesced `stream:reaction` batch: every sample floats (positions default to a random
 * x near the bottom); the totals and counts add up. Keeps at most OVERLAY_MAX_ITEMS (newest).
 */
export function addBatch(state: OverlayState, batch: ReactionBatch, now: number, random: () => number = Math.random): OverlayState {
  let nextId = state.nextId;
  const fresh: FloatingReaction[] = (batch.samples ?? []).map((s) => ({
    id: nextId++,
    emoji: s.emoji,
    x: clampPct(typeof s.positionX === 'number' ? s.positionX : 10 + random() * 80),
    y: clampPct(typeof s.positionY === 'number' ? s.positionY : 80 + random() * 15),
    bornAt: now,
  }));
  const counts = { ...state.counts };
  for (const [e, n] of Object.entries(batch.counts ?? {})) counts[e] = (counts[e] ?? 0) + (Number(n) || 0);
  const items = [...state.items, ...fresh].slice(-OVERLAY_MAX_ITEMS);
  return { items, total: state.total + (Number(batch.total) || fresh.length), counts, nextId };
}

/** Drops reactions older than the TTL. Returns the same object when nothing expired. */
export function expire(state: OverlayState, now: number, ttlMs = OVERLAY_TTL_MS): OverlayState {
  const items = state.items.filter((r) => now - r.bornAt < ttlMs);
  return items.length === state.items.length ? state : { ...state, items };
}

/**
 * What to tell a viewer whose reaction the socket refused (its error frame's `code`), or
 * null for codes that are not about reactions (chat refusals come on the same socket).
 */
export function reactionNotice(code: string): string | null {
  switch (code) {
    case 'reaction_late':
      return 'The stream is very busy: that reaction came too late to show.';
    case 'reactions_disabled':
      return 'Reactions are turned off for this stream.';
    case 'not_live':
      return 'Reactions open when the stream is live.';
    default:
      return null;
  }
}
