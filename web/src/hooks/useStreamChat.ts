import { useCallback, useEffect, useState } from 'react';
import type { ChatMessage } from '../client/types';
import { ApiError } from '../client/errors';
import { useRill, useStreamEvents } from './context';

/** Merges a message into an oldest-first list (dedupe by id, keep order by createdAt). */
export function mergeMessage(list: ChatMessage[], m: ChatMessage, max = 200): ChatMessage[] {
  if (m.deleted) return list.filter((x) => x.id !== m.id);
  const i = list.findIndex((x) => x.id === m.id);
  if (i >= 0) {
    const copy = list.slice();
    copy[i] = m;
    return copy;
  }
  const next = [...list, m];
  next.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1));
  return next.slice(-max);
}

export function useStreamChat(streamId: string | null | undefined) {
  const { api } = useRill();
  const client = useStreamEvents(streamId);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [pinnedId, setPinnedId] = useState<string | null>(null);
  const [isSending, setIsSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const reload = useCallback(async () => {
    if (!streamId) return;
    try {
      const page = await api.listChat(streamId, { limit: 50 });
      setMessages((cur) => page.items.reduce((acc, m) => mergeMessage(acc, m), cur));
      const pinned = page.items.find((m) => m.isPinned);
      if (pinned) setPinnedId(pinned.id);
    } catch (e) {
      if (e instanceof ApiError) setError(e);
    }
  }, [api, streamId]);

  useEffect(() => {
    setMessages([]);
    setPinnedId(null);
    void reload();
  }, [reload]);

  useEffect(() => {
    if (!client) return;
    const offs = [
      client.on('stream:chat-message', (e) => setMessages((cur) => mergeMessage(cur, e.data))),
      client.on('stream:chat-deleted', (e) => setMessages((cur) => cur.filter((m) => m.id !== e.data.messageId))),
      client.on('stream:chat-pinned', (e) => {
        setPinnedId(e.data.messageId);
        setMessages((cur) => cur.map((m) => ({ ...m, isPinned: m.id === e.data.messageId })));
      }),
      // After a reconnect, fetch what was missed.
      client.onStatus((s) => {
        if (s === 'open') void reload();
      }),
    ];
    return () => offs.forEach((off) => off());
  }, [client, reload]);

  const sendMessage = useCallback(
    async (content: string) => {
      if (!streamId) return;
      const text = content.trim();
      if (!text) return;
      setIsSending(true);
      setError(null);
      try {
        const m = await api.sendChat(streamId, text);
        setMessages((cur) => mergeMessage(cur, m));
      } catch (e) {
        setError(e instanceof ApiError ? e : new ApiError(0, 'network_error', String(e)));
        throw e;
      } finally {
        setIsSending(false);
      }
    },
    [api, streamId],
  );

  const pinMessage = useCallback(
    async (id: string) => {
      if (!streamId) return;
      try {
        await api.pinChat(streamId, id);
        setPinnedId(id);
        setMessages((cur) => cur.map((m) => ({ ...m, isPinned: m.id === id })));
      } catch (e) {
        if (e instanceof ApiError) setError(e);
      }
    },
    [api, streamId],
  );

  const deleteMessage = useCallback(
    async (id: string) => {
      if (!streamId) return;
      try {
        await api.deleteChat(streamId, id);
        setMessages((cur) => cur.filter((m) => m.id !== id));
      } catch (e) {
        if (e instanceof ApiError) setError(e);
      }
    },
    [api, streamId],
  );

  return { messages, isSending, sendMessage, pinMessage, deleteMessage, pinnedMessageId: pinnedId, error };
}
