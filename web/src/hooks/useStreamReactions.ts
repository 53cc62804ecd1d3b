import { useCallback, useEffect, useRef, useState } from 'react';
import { addBatch, emptyOverlay, expire, reactionNotice, type FloatingReaction, type OverlayState } from '../client/reactions';
import type { ReactionBatch } from '../client/events';
import type { Emoji } from '../client/types';
import { useStreamEvents } from './context';

export interface UseStreamReactionsOptions {
  onNewReaction?: (batch: ReactionBatch) => void;
}

export function useStreamReactions(streamId: string | null | undefined, options: UseStreamReactionsOptions = {}) {
  const client = useStreamEvents(streamId);
  const [overlay, setOverlay] = useState<OverlayState>(emptyOverlay);
  const cb = useRef(options.onNewReaction);
  cb.current = options.onNewReaction;

  useEffect(() => {
    if (!client) return;
    return client.on('stream:reaction', (e) => {
      setOverlay((s) => addBatch(s, e.data, Date.now()));
      cb.current?.(e.data);
    });
  }, [client]);

  // A refused reaction (too late, reactions off, not live) is said, not silently dropped.
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    if (!client) return;
    return client.onError((e) => {
      const text = reactionNotice(e.code);
      if (text) setNotice(text);
    });
  }, [client]);
  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => setNotice(null), 4000);
    return () => clearTimeout(t);
  }, [notice]);

  const hasItems = overlay.items.length > 0;
  useEffect(() => {
    if (!hasItems) return;
    const t = setInterval(() => setOverlay((s) => expire(s, Date.now())), 250);
    return () => clearInterval(t);
  }, [hasItems]);

  /** Sends over the socket (queued while reconnecting); position in percent of the player. */
  const sendReaction = useCallback(
    (emoji: Emoji, positionX?: number, positionY?: number) => {
      client?.send({
        action: 'react',
        emoji,
        positionX: positionX ?? Math.round(10 + Math.random() * 80),
        positionY: positionY ?? Math.round(70 + Math.random() * 20),
      });
    },
    [client],
  );

  const recentReactions: FloatingReaction[] = overlay.items;
  return { recentReactions, sendReaction, total: overlay.total, counts: overlay.counts, notice };
}
