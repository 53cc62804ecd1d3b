import { useCallback, useEffect, useState } from 'react';
import type { Question } from '../client/types';
import { ApiError } from '../client/errors';
import { useRill, useStreamEvents } from './context';

/** Most upvoted first, then oldest first (the API's order), with one question replaced or added. */
export function upsertQuestion(list: Question[], q: Question): Question[] {
  const next = list.filter((x) => x.id !== q.id);
  next.push(q);
  next.sort((a, b) => b.upvotes - a.upvotes || (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  return next;
}

/** Q&A: questions are asked over the socket, listed, upvoted and answered over REST. */
export function useStreamQuestions(streamId: string | null | undefined) {
  const { api } = useRill();
  const client = useStreamEvents(streamId);
  const [questions, setQuestions] = useState<Question[]>([]);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(async () => {
    if (!streamId) return;
    try {
      const r = await api.listQuestions(streamId);
      setQuestions(r.items);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api, streamId]);

  useEffect(() => {
    void reload();
  }, [reload]);

  useEffect(() => {
    if (!client) return;
    const offs = [
      client.on('stream:question', (e) => setQuestions((cur) => upsertQuestion(cur, e.data.question))),
      client.onError((e) => setError(e.message)),
    ];
    return () => offs.forEach((o) => o());
  }, [client]);

  const ask = useCallback(
    (content: string) => {
      const text = content.trim();
      if (!text) return;
      setError(null);
      client?.send({ action: 'question', content: text });
    },
    [client],
  );

  const run = useCallback(
    async (f: () => Promise<Question>) => {
      setError(null);
      try {
        const q = await f();
        setQuestions((cur) => upsertQuestion(cur, q));
      } catch (e) {
        setError(e instanceof ApiError ? e.message : String(e));
      }
    },
    [],
  );

  const upvote = useCallback((qid: string) => streamId && run(() => api.upvoteQuestion(streamId, qid)), [api, run, streamId]);
  const answer = useCallback((qid: string) => streamId && run(() => api.answerQuestion(streamId, qid)), [api, run, streamId]);

  return { questions, ask, upvote, answer, error, reload };
}
