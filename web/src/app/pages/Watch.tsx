import { useState } from 'react';
import { useRill } from '../../hooks/context';
import { useStreamViewer } from '../../hooks/useStreamViewer';
import { useStreamChat } from '../../hooks/useStreamChat';
import { useStreamReactions } from '../../hooks/useStreamReactions';
import { QUALITY_PRESETS, type ViewerQuality } from '../../client/quality';
import { ChatPanel, ErrorText, QuestionsPanel, ReactionBar, ReactionOverlay, StatusBadge } from '../components';
import { useStreamQuestions } from '../../hooks/useStreamQuestions';
import { Link } from '../router';

export function WatchPage({ id }: { id: string }) {
  const { claims } = useRill();
  const [lowLatency, setLowLatency] = useState(true);
  const v = useStreamViewer({ streamId: id, autoStart: true, lowLatencyMode: lowLatency });
  const chat = useStreamChat(id);
  const reactions = useStreamReactions(id);
  const qa = useStreamQuestions(id);
  const [volume, setVolume] = useState(1);
  const s = v.stream;
  const stats = v.stats;
  const latency = stats?.latencyMs != null ? (stats.latencyMs / 1000).toFixed(1) + ' s' : '–';
  const levels = stats?.levels ?? [];
  const available = QUALITY_PRESETS.filter((q) => levels.some((l) => l.height === parseInt(q, 10)));
  const current = stats && stats.currentLevel >= 0 ? levels[stats.currentLevel]?.label : null;
  return (
    <div className="page watch" data-testid="watch-page" data-stream-id={id}>
      <div className="head">
        <h2 data-testid="stream-title">{s?.title ?? '…'}</h2>
        <StatusBadge status={s?.status} />
        <span className="pill" data-testid="viewer-count" data-count={v.viewerCount}>👁 {v.viewerCount}</span>
        <span className="pill" data-testid="latency" title="Date.now() − playing PDT">⏱ {latency}</span>
        {claims && s && claims.sub === s.ownerId && (
          <Link to={`/analytics/${encodeURIComponent(id)}`} data-testid="analytics-link">analytics</Link>
        )}
      </div>
      {v.isEnded && (
        <div className="banner" data-testid="ended-banner">
          This stream has ended.{s?.startedAt ? ' Playing the recording.' : ''}
        </div>
      )}
      <div className="grid">
        <div>
          <div className="player">
            <video
              ref={v.videoRef}
              data-testid="player-video"
              playsInline
              muted
              controls={v.isEnded}
              onVolumeChange={(e) => setVolume(e.currentTarget.volume)}
            />
            <ReactionOverlay items={reactions.recentReactions} total={reactions.total} />
            {!v.isPlaying && !v.isEnded && (
              <div className="player-msg" data-testid="player-waiting">
                {v.isLoading ? 'Loading…' : s?.status === 'scheduled' ? 'Not started yet' : s?.status === 'cancelled' ? 'Cancelled' : 'Waiting for the stream…'}
              </div>
            )}
          </div>
          <div className="controls">
            <button data-testid="play-toggle" onClick={() => (v.isPlaying ? v.pause() : v.play())}>
              {v.isPlaying ? 'Pause' : 'Play'}
            </button>
            <label className="inline">
              🔊
              <input
                data-testid="volume"
                type="range"
                min={0}
                max={1}
                step={0.05}
                value={volume}
                onChange={(e) => {
                  const video = v.videoRef.current;
                  const vol = Number(e.target.value);
                  setVolume(vol);
                  if (video) {
                    video.volume = vol;
                    video.muted = vol === 0;
                  }
                }}
              />
            </label>
            <label className="inline">
              Quality
              <select data-testid="quality-select" value={v.currentQuality} onChange={(e) => v.setQuality(e.target.value as ViewerQuality)}>
                <option value="auto">Auto{current && v.currentQuality === 'auto' ? ` (${current})` : ''}</option>
                {available.map((q) => (
                  <option key={q} value={q}>{q}</option>
                ))}
              </select>
            </label>
            <label className="inline">
              <input type="checkbox" checked={lowLatency} onChange={(e) => setLowLatency(e.target.checked)} /> Low latency
            </label>
          </div>
          <div className="stats muted" data-testid="player-stats">
            level {current ?? '–'} · buffer {stats ? stats.bufferLength.toFixed(1) : '–'} s · bw{' '}
            {stats ? Math.round(stats.bandwidthEstimate / 1000) : '–'} kbps · hls latency{' '}
            {stats?.hlsLatency != null ? stats.hlsLatency.toFixed(1) : '–'} s · stalls {stats?.stalls ?? 0}
          </div>
          {s?.settings.reactionsEnabled !== false && (
            <ReactionBar onReact={(e) => reactions.sendReaction(e)} disabled={s?.status !== 'live'} />
          )}
          {reactions.notice && <p className="muted" data-testid="reaction-notice">{reactions.notice}</p>}
          <p className="muted" data-testid="reaction-total">reactions: {reactions.total}</p>
          {s?.description && <p>{s.description}</p>}
          <ErrorText error={v.error} />
          <QuestionsPanel
            questions={qa.questions}
            canAsk={!!claims && s?.status === 'live'}
            canAnswer={!!claims && claims.sub === s?.ownerId}
            error={qa.error}
            onAsk={qa.ask}
            onUpvote={qa.upvote}
            onAnswer={qa.answer}
          />
        </div>
        <ChatPanel
          messages={chat.messages}
          isSending={chat.isSending}
          canSend={!!claims && s?.settings.chatEnabled !== false}
          canModerate={!!claims && claims.sub === s?.ownerId}
          pinnedMessageId={chat.pinnedMessageId}
          error={chat.error}
          onSend={chat.sendMessage}
          onPin={chat.pinMessage}
          onDelete={chat.deleteMessage}
        />
      </div>
    </div>
  );
}
