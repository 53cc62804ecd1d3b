// Types mirrored from functions/api/openapi.json (components.schemas).

export type StreamStatus = 'scheduled' | 'preparing' | 'live' | 'ended' | 'cancelled';
export type QualityPreset = '1080p' | '720p' | '480p' | '360p';
export type ChatMode = 'open' | 'followers' | 'subscribers';

export interface Settings {
  quality: QualityPreset;
  maxBitrateKbps: number | null;
  chatEnabled: boolean;
  reactionsEnabled: boolean;
  chatMode: ChatMode;
  slowModeSeconds: number;
  notifications: NotificationSettings;
}

/** Whom a stream's notifications reach among the channel's people, and when. */
export interface NotificationSettings {
  audience: 'followers' | 'subscribers' | 'nobody';
  atStart: boolean;
  /** Minutes before `scheduledAt` (stored; not sent yet). */
  reminders: number[];
}

export type SettingsPatch = Partial<Settings>;

export interface StreamStats {
  currentViewers: number;
  peakViewers: number;
  totalViews: number;
  messages: number;
  reactions: number;
}

export interface Stream {
  id: string;
  channelId: string;
  ownerId: string;
  title: string;
  description: string;
  thumbnailUrl: string | null;
  status: StreamStatus;
  scheduledAt: string | null;
  startedAt: string | null;
  endedAt: string | null;
  createdAt: string;
  updatedAt: string;
  settings: Settings;
  visibility: Visibility;
  stats: StreamStats;
  pinnedMessageId: string | null;
  version: number;
}

/** `public`; `unlisted` (plays by link, not listed); `members` (the channel's subscribers and up). */
export type Visibility = 'public' | 'unlisted' | 'members';

export interface IngestCredentials {
  streamKey: string;
  whipUrl: string;
  rtmpServerUrl: string;
  rtmpUrl: string;
}

export interface IngestUrls {
  whipUrl: string;
  rtmpServerUrl: string;
}

export type StreamWithIngestCredentials = Stream & { ingest: IngestCredentials };
export type StreamWithIngestUrls = Stream & { ingest: IngestUrls };

export interface NewStream {
  channelId: string;
  title: string;
  description?: string;
  scheduledAt?: string | null;
  settings?: SettingsPatch;
  thumbnailUrl?: string | null;
  visibility?: Visibility;
}

export interface StreamPatch {
  title?: string;
  description?: string;
  thumbnailUrl?: string | null;
  settings?: SettingsPatch;
  visibility?: Visibility;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
export type StreamPage = Page<Stream>;

export interface ChatMessage {
  id: string;
  streamId: string;
  authorId: string;
  authorName: string;
  content: string;
  createdAt: string;
  isPinned: boolean;
  deleted: boolean;
}
export type ChatPage = Page<ChatMessage>;

export const REACTION_EMOJI = ['❤️', '🔥', '👏', '😂', '😮', '😢', '🎉', '👍'] as const;
export type Emoji = (typeof REACTION_EMOJI)[number];

export interface Reaction {
  id: string;
  streamId: string;
  userId: string;
  emoji: Emoji;
  positionX: number | null;
  positionY: number | null;
  createdAt: string;
}

export interface NewReaction {
  emoji: Emoji;
  positionX?: number | null;
  positionY?: number | null;
}

export interface Viewers {
  count: number;
  peak: number;
}

export interface HlsManifest {
  manifestUrl: string;
  /** Members-only streams: the signed grant every media request must carry. */
  access?: MediaAccess;
}

export interface MediaAccess {
  /** `Policy=...&Signature=...&Key-Pair-Id=...&Hash-Algorithm=SHA256`. */
  query: string;
  /** ISO time the grant stops working; ask `GET /hls` again before. */
  expiresAt: string;
}

export interface Question {
  id: string;
  streamId: string;
  authorId: string;
  authorName: string;
  content: string;
  createdAt: string;
  upvotes: number;
  answered: boolean;
}

export interface QualitySample {
  streamId: string;
  at: string;
  inputKbps: number;
  fps: number;
  width: number;
  height: number;
  frames: number;
  droppedFrames: number;
  lateFrames: number;
  encoderSpeed: number;
  rttMs?: number | null;
  packetLoss?: number | null;
  health: number;
  viewers: number;
  protocol: 'rtmp' | 'webrtc';
  /** Overload governor level: 0 = full quality; higher = the node reduced quality to stay live. */
  governorLevel?: number;
  shedFrames?: number;
}

export interface MetricsPage {
  items: QualitySample[];
  from: string;
  to: string;
}

/** `POST /api/streams/{id}/thumbnail` (owner): a presigned upload. */
export interface ThumbnailUpload {
  uploadUrl: string;
  method?: 'PUT';
  headers: Record<string, string>;
  thumbnailUrl: string;
  expiresAt: string;
}

/** Every error code the REST API documents (`ErrorCode` in functions/api/openapi.json; a
 * test keeps the two equal), then the socket's own and the client's. */
export const API_ERROR_CODES = [
  'invalid_json', 'invalid_body', 'invalid_query', 'invalid_path', 'unauthorized', 'forbidden',
  'not_owner', 'not_moderator', 'not_operator', 'banned', 'chat_disabled', 'chat_restricted',
  'not_allowed', 'reactions_disabled', 'not_found', 'method_not_allowed', 'invalid_transition',
  'stream_over', 'conflict', 'already_exists', 'owner_role', 'not_scheduled', 'already_voted',
  'not_live', 'not_playable', 'visibility_locked', 'media_signing_unavailable', 'webhook_limit',
  'payload_too_large', 'unsupported_media_type', 'validation_failed', 'slow_mode',
  'rate_limited', 'internal', 'no_capacity', 'node_unreachable', 'storage_unavailable',
] as const;

export type ErrorCode =
  | (typeof API_ERROR_CODES)[number]
  // A reaction refused over the socket for waiting too long (WebSocket only).
  | 'reaction_late'
  // The client's own: no answer, or an answer that is not the API's.
  | 'network_error' | 'bad_response';

export interface BanState { userId: string; banned: boolean }
export interface ModeratorState { userId: string; moderator: boolean }
/** Roles the channel's owner grants, ranked (each includes those below). */
export type MemberRole = 'follower' | 'subscriber' | 'moderator' | 'broadcaster';
export const MEMBER_ROLES: readonly MemberRole[] = ['follower', 'subscriber', 'moderator', 'broadcaster'];
/** A user's role in a channel: a granted role, or `owner` (fixed at creation). */
export type ChannelRole = MemberRole | 'owner';
export interface Membership { channelId: string; userId: string; role: MemberRole | null }
export interface Channel {
  id: string;
  name: string;
  description: string;
  ownerId: string;
  streamCount: number;
  createdAt: string;
  /** The caller's role; null when they hold none or are not signed in. */
  yourRole: ChannelRole | null;
}
export interface NewChannel { id?: string; name: string; description?: string }
export type MemberPage = Page<{ userId: string; role: MemberRole }>;

/** One notification in the caller's list (GET /api/me/notifications). */
export interface Notification {
  id: string;
  type: 'stream:start' | 'stream:scheduled-reminder';
  streamId: string;
  channelId: string;
  title: string;
  minutesBefore?: number;
  createdAt: string;
  read: boolean;
}

const RANK: Record<ChannelRole, number> = { follower: 1, subscriber: 2, moderator: 3, broadcaster: 4, owner: 5 };
/** Does `role` include `at_least` (the ranks of rill_core::channel)? */
export function roleAtLeast(role: ChannelRole | null | undefined, atLeast: ChannelRole): boolean {
  return role != null && RANK[role] >= RANK[atLeast];
}

// Stream analytics (`GET /api/streams/{id}/analytics`; schemas Analytics, AnalyticsSummary,
// AnalyticsMinute, HistogramBin, ViewList in functions/api/openapi.json).

/** One histogram bin: inclusive upper bound (null: the open last bin) and count. */
export interface HistogramBin {
  upTo: number | null;
  count: number;
}

export interface AnalyticsSummary {
  /** Viewers now (0 unless live). */
  concurrentNow: number;
  peakViewers: number;
  peakAt: string | null;
  /** Counted viewer sockets (the owner's own page is not one). */
  views: number;
  uniqueViewers: number;
  viewerMinutes: number;
  avgWatchMs: number | null;
  medianWatchMs: number | null;
  startupP50Ms: number | null;
  startupP95Ms: number | null;
  exitsBeforeStartPercent: number | null;
  playbackFailurePercent: number | null;
  rebufferPercent: number | null;
  rebuffersPerMinute: number | null;
  switchesUpPerViewerMinute: number | null;
  switchesDownPerViewerMinute: number | null;
  /** Percent of reported watch time per rendition ('720p' -> 80.5). */
  renditionPercent: Record<string, number>;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  chatMessages: number;
  chatMessagesPerMinute: number;
  chatters: number;
  chattedPercent: number | null;
  /** Count per emoji. */
  reactions: Record<string, number>;
  reactionsPer100ViewerMinutes: Record<string, number>;
  countries: Record<string, number>;
  browsers: Record<string, number>;
  oses: Record<string, number>;
  devices: Record<string, number>;
  startupHistogram: HistogramBin[];
  latencyHistogram: HistogramBin[];
  bandwidthHistogram: HistogramBin[];
}

/** The ingest's health in one minute, from the node's 5 s samples. */
export interface IngestMinute {
  samples: number;
  inputKbps: number;
  fps: number;
  droppedFrames: number;
  lateFrames: number;
  encoderSpeedMin: number;
  governorLevelMax: number;
  healthMin: number;
}

export type CauseKind = 'ingest' | 'delivery' | 'viewerNetwork';

/** Why viewers' QoE dropped in a minute. */
export interface MinuteCause {
  kind: CauseKind;
  detail: string;
}

export interface AnalyticsMinute {
  minute: string;
  viewersMax: number;
  viewersAvg: number;
  viewerSeconds: number;
  viewsStarted: number;
  viewsEnded: number;
  playbackStarts: number;
  failures: number;
  startupP50Ms: number | null;
  rebufferPercent: number | null;
  rebuffers: number;
  switchesUp: number;
  switchesDown: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  chatMessages: number;
  chatters: number;
  reactions: number;
  ingest: IngestMinute | null;
  /** null (or absent, from an older server) when QoE did not drop. */
  cause?: MinuteCause | null;
}

export interface StreamAnalytics {
  streamId: string;
  status: StreamStatus;
  from: string;
  to: string;
  summary: AnalyticsSummary;
  /** Every minute of the range, oldest first (at most 1,440). */
  series: AnalyticsMinute[];
}

/** One view's playback report (kept 24 h). */
export interface ViewReport {
  started: boolean;
  startupMs: number | null;
  rebufferMs: number;
  rebuffers: number;
  switchesUp: number;
  switchesDown: number;
  droppedFrames: number;
  rendition: string | null;
  latencyMs: number | null;
  bandwidthKbps: number | null;
  fatalError: string | null;
}

export interface AnalyticsView {
  viewId: string;
  userId: string | null;
  startedAt: string;
  endedAt: string | null;
  watchMs: number;
  report: ViewReport | null;
}

export interface AnalyticsViews {
  items: AnalyticsView[];
  from: string;
  to: string;
}

/** The CSV downloads: the per-minute series or the per-view rows. */
export type AnalyticsCsvView = 'minutes' | 'sessions';

// Channel analytics (`GET /api/channels/{channelId}/analytics`; schemas ChannelAnalytics,
// ChannelAnalyticsStream in functions/api/openapi.json).

/** Totals over the range: unique viewers are distinct signed-in users plus anonymous views; the peak is the highest stream's. */
export interface ChannelAnalyticsTotals {
  streams: number; views: number; uniqueViewers: number; viewerMinutes: number;
  peakViewers: number; chatMessages: number; reactions: number; avgWatchMs: number | null;
}

/** One stream that was live within the range; `reactions` is over every emoji. */
export interface ChannelAnalyticsStream {
  streamId: string; title: string; status: StreamStatus; startedAt: string | null; endedAt: string | null;
  views: number; uniqueViewers: number; peakViewers: number; viewerMinutes: number; avgWatchMs: number | null;
  chatMessages: number; reactions: number; startupP50Ms: number | null; rebufferPercent: number | null;
}

/** `streams`: live ones, then ended ones, most recent first; `truncated`: more were live than counted (at most 50). */
export interface ChannelAnalytics {
  channelId: string; from: string; to: string; totals: ChannelAnalyticsTotals; streams: ChannelAnalyticsStream[]; truncated: boolean;
}
