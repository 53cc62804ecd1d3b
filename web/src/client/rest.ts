import { ApiError, errorFromResponse } from './errors';
import type {
  AnalyticsCsvView, AnalyticsViews, BanState, Channel, ChannelAnalytics, ChatMessage, Notification, ChatPage, HlsManifest, IngestCredentials, MemberPage, MemberRole, Membership, NewChannel, ModeratorState, MetricsPage, NewReaction, NewStream, Page, Question, Reaction,
  Stream, StreamPage, StreamPatch, StreamWithIngestCredentials, StreamAnalytics, StreamWithIngestUrls, ThumbnailUpload, Viewers,
} from './types';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RillApiOptions {
  /** Base URL of the gateway ('' = same origin). */
  baseUrl?: string;
  /** Returns the current bearer token, if signed in. */
  getToken?: () => string | null | undefined;
  fetch?: FetchLike;
}

export type ListKind = 'live' | 'scheduled' | 'past';

type Query = Record<string, string | number | undefined | null>;

export const MAX_THUMBNAIL_BYTES = 2 * 1024 * 1024;
export const THUMBNAIL_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;

/**
 * Headers for the presigned PUT. `x-amzn-trace-id` (added by the AWS SDK's recursion detection
 * when the presigning function runs under a trace) is not signed and not allowed by the bucket's
 * CORS rules, so a browser preflight would fail: it is left out. Headers a browser sets itself
 * (content-length, host) are dropped too.
 */
export function uploadHeaders(h: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    const lk = k.toLowerCase();
    if (lk === 'x-amzn-trace-id' || lk === 'content-length' || lk === 'host') continue;
    out[k] = v;
  }
  return out;
}

/** Typed client for the Rill REST API (functions/api/openapi.json). */
export class RillApi {
  private readonly baseUrl: string;
  private readonly getToken: () => string | null | undefined;
  private readonly fetchImpl: FetchLike;

  constructor(opts: RillApiOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? '').replace(/\/$/, '');
    this.getToken = opts.getToken ?? (() => null);
    this.fetchImpl = opts.fetch ?? ((i, init) => globalThis.fetch(i, init));
  }

  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const res = await this.send(method, path, body, query, 'application/json');
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'bad_response', 'response is not JSON');
    }
  }

  /** Sends with the bearer token; a non-2xx answer is thrown as an ApiError (body read). */
  private async send(method: string, path: string, body: unknown, query: Query | undefined, accept: string): Promise<Response> {
    let url = this.baseUrl + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
      const s = q.toString();
      if (s) url += '?' + s;
    }
    const headers: Record<string, string> = { Accept: accept };
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, 'network_error', `network error: ${(e as Error)?.message ?? String(e)}`);
    }
    if (!res.ok) throw errorFromResponse(res.status, await res.text());
    return res;
  }

  private s(id: string): string {
    return `/api/streams/${encodeURIComponent(id)}`;
  }

  // Streams
  createStream(input: NewStream) { return this.request<StreamWithIngestCredentials>('POST', '/api/streams/create', input); }
  startStream(id: string) { return this.request<Stream>('POST', `${this.s(id)}/start`); }
  endStream(id: string) { return this.request<Stream>('POST', `${this.s(id)}/end`); }
  cancelStream(id: string) { return this.request<Stream>('POST', `${this.s(id)}/cancel`); }
  updateStream(id: string, patch: StreamPatch) { return this.request<Stream>('PATCH', this.s(id), patch); }
  rotateKey(id: string) { return this.request<IngestCredentials>('POST', `${this.s(id)}/key`); }
  getStream(id: string) { return this.request<Stream>('GET', this.s(id)); }
  getStreamWithIngest(id: string) { return this.request<StreamWithIngestUrls>('GET', this.s(id), undefined, { ingest: 'true' }); }
  listStreams(kind: ListKind, channelId: string, opts: { limit?: number; cursor?: string } = {}) {
    return this.request<StreamPage>('GET', `/api/streams/${kind}`, undefined, { channelId, ...opts });
  }
  listLive(channelId: string) { return this.listStreams('live', channelId); }
  listScheduled(channelId: string) { return this.listStreams('scheduled', channelId); }
  listPast(channelId: string) { return this.listStreams('past', channelId); }
  getHls(id: string) { return this.request<HlsManifest>('GET', `${this.s(id)}/hls`); }
  getViewers(id: string) { return this.request<Viewers>('GET', `${this.s(id)}/viewers`); }

  // Chat
  listChat(id: string, opts: { limit?: number; cursor?: string } = {}) { return this.request<ChatPage>('GET', `${this.s(id)}/chat`, undefined, opts); }
  sendChat(id: string, content: string) { return this.request<ChatMessage>('POST', `${this.s(id)}/chat`, { content }); }
  deleteChat(id: string, msgId: string) { return this.request<ChatMessage>('DELETE', `${this.s(id)}/chat/${encodeURIComponent(msgId)}`); }
  pinChat(id: string, msgId: string) { return this.request<ChatMessage>('POST', `${this.s(id)}/chat/${encodeURIComponent(msgId)}/pin`); }

  // Reactions, metrics, questions
  sendReaction(id: string, r: NewReaction) { return this.request<Reaction>('POST', `${this.s(id)}/reactions`, r); }
  getMetrics(id: string, opts: { from?: string; to?: string; limit?: number } = {}) {
    return this.request<MetricsPage>('GET', `${this.s(id)}/metrics`, undefined, opts);
  }
  listQuestions(id: string) { return this.request<{ items: Question[] }>('GET', `${this.s(id)}/questions`); }
  upvoteQuestion(id: string, qid: string) { return this.request<Question>('POST', `${this.s(id)}/questions/${encodeURIComponent(qid)}/upvote`); }
  answerQuestion(id: string, qid: string) { return this.request<Question>('POST', `${this.s(id)}/questions/${encodeURIComponent(qid)}/answer`); }

  // Analytics (owner and moderators): summary and per-minute series, per-view rows, CSV.
  streamAnalytics(id: string, range: { from?: string; to?: string } = {}) {
    return this.request<StreamAnalytics>('GET', `${this.s(id)}/analytics`, undefined, { from: range.from, to: range.to });
  }
  streamViews(id: string, range: { from?: string; to?: string } = {}) {
    return this.request<AnalyticsViews>('GET', `${this.s(id)}/analytics`, undefined, { view: 'sessions', from: range.from, to: range.to });
  }
  /** The CSV as a Blob (fetched with the token, which a plain link could not carry). */
  async analyticsCsv(id: string, view: AnalyticsCsvView, range: { from?: string; to?: string } = {}): Promise<Blob> {
    const res = await this.send('GET', `${this.s(id)}/analytics`, undefined, {
      format: 'csv', view: view === 'sessions' ? 'sessions' : undefined, from: range.from, to: range.to,
    }, 'text/csv');
    try {
      return await res.blob();
    } catch (e) {
      throw new ApiError(0, 'network_error', `network error: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  // Moderation
  ban(id: string, userId: string) { return this.request<BanState>('PUT', `${this.s(id)}/bans/${encodeURIComponent(userId)}`); }
  unban(id: string, userId: string) { return this.request<BanState>('DELETE', `${this.s(id)}/bans/${encodeURIComponent(userId)}`); }
  listModerators(id: string) { return this.request<{ items: string[] }>('GET', `${this.s(id)}/moderators`); }
  addModerator(id: string, userId: string) { return this.request<ModeratorState>('PUT', `${this.s(id)}/moderators/${encodeURIComponent(userId)}`); }
  removeModerator(id: string, userId: string) { return this.request<ModeratorState>('DELETE', `${this.s(id)}/moderators/${encodeURIComponent(userId)}`); }

  // The caller's notifications
  listNotifications(opts: { unread?: boolean; limit?: number; cursor?: string } = {}) {
    return this.request<Page<Notification>>('GET', '/api/me/notifications', undefined, {
      unread: opts.unread ? 'true' : undefined, limit: opts.limit, cursor: opts.cursor,
    });
  }
  /** Marks them read; answers how many were found in the caller's list. */
  markNotificationsRead(ids: string[]) {
    return this.request<{ read: number }>('POST', '/api/me/notifications/read', { ids });
  }

  // Channels and roles
  private c(channelId: string) { return `/api/channels/${encodeURIComponent(channelId)}`; }
  createChannel(input: NewChannel) { return this.request<Channel>('POST', '/api/channels', input); }
  getChannel(channelId: string) { return this.request<Channel>('GET', this.c(channelId)); }
  listMembers(channelId: string, opts: { limit?: number; cursor?: string } = {}) {
    return this.request<MemberPage>('GET', `${this.c(channelId)}/members`, undefined, opts);
  }
  /** The owner grants a role; a user may set `follower` on themselves (following). */
  setMembership(channelId: string, userId: string, role: MemberRole) {
    return this.request<Membership>('PUT', `${this.c(channelId)}/members/${encodeURIComponent(userId)}`, { role });
  }
  /** The owner revokes a role; a user may remove their own (leaving). */
  removeMembership(channelId: string, userId: string) {
    return this.request<Membership>('DELETE', `${this.c(channelId)}/members/${encodeURIComponent(userId)}`);
  }
  /** Per-stream rows and totals over [from, to] (owner and moderators; default: the last 30 days). */
  channelAnalytics(channelId: string, range: { from?: string; to?: string } = {}) {
    return this.request<ChannelAnalytics>('GET', `${this.c(channelId)}/analytics`, undefined, { from: range.from, to: range.to });
  }

  // Thumbnail: presign, PUT the bytes, then PATCH thumbnailUrl.
  requestThumbnailUpload(id: string, contentType: string, contentLength: number) {
    return this.request<ThumbnailUpload>('POST', `${this.s(id)}/thumbnail`, { contentType, contentLength });
  }

  async uploadThumbnail(id: string, file: Blob): Promise<Stream> {
    const type = file.type;
    if (!(THUMBNAIL_TYPES as readonly string[]).includes(type)) {
      throw new ApiError(0, 'unsupported_media_type', `thumbnail must be JPEG, PNG or WebP (got ${type || 'unknown'})`);
    }
    if (file.size > MAX_THUMBNAIL_BYTES) {
      throw new ApiError(0, 'payload_too_large', 'thumbnail must be at most 2 MiB');
    }
    let up: ThumbnailUpload;
    try {
      up = await this.requestThumbnailUpload(id, type, file.size);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405) && e.code !== 'not_owner') {
        throw new ApiError(e.status, e.code, `thumbnail upload is not available on this server (${e.message})`);
      }
      throw e;
    }
    let put: Response;
    try {
      put = await this.fetchImpl(up.uploadUrl, { method: up.method ?? 'PUT', headers: uploadHeaders(up.headers), body: file });
    } catch (e) {
      throw new ApiError(0, 'network_error', `thumbnail upload failed: ${(e as Error)?.message ?? String(e)}`);
    }
    if (!put.ok) throw new ApiError(put.status, 'upload_failed', `thumbnail upload failed: HTTP ${put.status}`);
    return this.updateStream(id, { thumbnailUrl: up.thumbnailUrl });
  }
}

export type { Page };
