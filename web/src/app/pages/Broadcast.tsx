import { useEffect, useRef, useState } from 'react';
import { useRill } from '../../hooks/context';
import { useLiveStream } from '../../hooks/useLiveStream';
import { useStreamChat } from '../../hooks/useStreamChat';
import { useStreamReactions } from '../../hooks/useStreamReactions';
import { listDevices } from '../../client/whip';
import { QUALITY_PRESETS, governorNotice, isQualityPreset } from '../../client/quality';
import { formatBitrate, formatDuration } from '../../client/format';
import type { QualityPreset } from '../../client/types';
import { ChatPanel, ErrorText, NewStreamForm, QuestionsPanel, ReactionOverlay, StatusBadge, defaultChannel } from '../components';
import { useStreamQuestions } from '../../hooks/useStreamQuestions';
import { Link } from '../router';
import { AnalyticsLink, LiveAnalyticsPanel } from '../analyticsViews';

export function BroadcastNewPage() {
  return (
    <div className="page">
      <h2>Go live</h2>
      <NewStreamForm channelId={defaultChannel()} />
    </div>
  );
}

export function BroadcastPage({ id }: { id: string }) {
  const { claims } = useRill();
  const live = useLiveStream({ streamId: id });
  const chat = useStreamChat(id);
  const reactions = useStreamReactions(id);
  const qa = useStreamQuestions(id);
  const videoRef = useRef<HTMLVideoElement>(null);
  const [cameras, setCameras] = useState<MediaDeviceInfo[]>([]);
  const [mics, setMics] = useState<MediaDeviceInfo[]>([]);
  const [camera, setCamera] = useState('');
  const [mic, setMic] = useState('');
  const [quality, setQuality] = useState<QualityPreset>('720p');
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const s = live.stream;

  useEffect(() => {
    if (s && isQualityPreset(s.settings.quality)) setQuality((q) => (q === '720p' ? s.settings.quality : q));
    // only on first load of settings
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [s?.id]);

  // Preview and devices (labels need a granted permission, so after the first capture).
  useEffect(() => {
    let alive = true;
    live
      .startPreview({ quality })
      .then(() => listDevices())
      .then((d) => {
        if (!alive) return;
        setCameras(d.cameras);
        setMics(d.microphones);
      })
      .catch((e) => alive && setActionError(e));
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    if (videoRef.current && live.localStream && videoRef.current.srcObject !== live.localStream) {
      videoRef.current.srcObject = live.localStream;
    }
  }, [live.localStream]);

  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setActionError(null);
    try {
      await f();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };

  const isOwner = !!claims && !!s && claims.sub === s.ownerId;
  const status = s?.status;
  const over = status === 'ended' || status === 'cancelled';
  const h = live.health;

  return (
    <div className="page broadcast" data-testid="broadcast-page" data-stream-id={id}>
      <div className="head">
        <h2 data-testid="stream-title">{s?.title ?? '…'}</h2>
        <StatusBadge status={status} />
        <span className="pill" data-testid="viewer-count" data-count={live.viewerCount}>👁 {live.viewerCount}</span>
        <span className="pill" data-testid="duration">⏲ {formatDuration(live.duration)}</span>
        <span className="pill" data-testid="publisher-state" data-state={live.publisherState}>{live.publisherState}</span>
        <Link to={`/watch/${id}`}>viewer page</Link> · <Link to={`/settings/${id}`}>settings</Link>
        {isOwner && (
          <>
            {' '}· <AnalyticsLink id={id} testid="analytics-link">analytics ↗</AnalyticsLink>
          </>
        )}
      </div>
      {claims && s && !isOwner && <p className="error">You are not the owner of this stream.</p>}
      {over && (
        <div className="banner" data-testid="ended-banner">
          This stream has {status}. <Link to={`/watch/${id}`}>Watch the recording</Link>
        </div>
      )}
      <div className="grid">
        <div>
          <div className="player">
            <video ref={videoRef} data-testid="preview-video" autoPlay muted playsInline />
            <ReactionOverlay items={reactions.recentReactions} total={reactions.total} />
            {!live.videoEnabled && <div className="player-msg">Camera off</div>}
          </div>
          <div className="controls">
            <label className="inline">
              Camera
              <select
                data-testid="camera-select"
                value={camera}
                onChange={(e) => {
                  setCamera(e.target.value);
                  void run(() => live.switchCamera(e.target.value));
                }}
              >
                <option value="">Default</option>
                {cameras.map((c, i) => (
                  <option key={c.deviceId || i} value={c.deviceId}>{c.label || `Camera ${i + 1}`}</option>
                ))}
              </select>
            </label>
            <label className="inline">
              Microphone
              <select
                data-testid="mic-select"
                value={mic}
                onChange={(e) => {
                  setMic(e.target.value);
                  void run(() => live.switchMicrophone(e.target.value));
                }}
              >
                <option value="">Default</option>
                {mics.map((m, i) => (
                  <option key={m.deviceId || i} value={m.deviceId}>{m.label || `Microphone ${i + 1}`}</option>
                ))}
              </select>
            </label>
            <label className="inline">
              Quality
              <select
                data-testid="quality-preset"
                value={quality}
                onChange={(e) => {
                  const q = e.target.value as QualityPreset;
                  setQuality(q);
                  void run(() => live.setQuality(q));
                }}
              >
                {QUALITY_PRESETS.map((q) => (
                  <option key={q} value={q}>{q}</option>
                ))}
              </select>
            </label>
          </div>
          <div className="controls">
            <button data-testid="toggle-video" onClick={live.toggleVideo} className={live.videoEnabled ? '' : 'off'}>
              {live.videoEnabled ? '📷 Camera on' : '📷 Camera off'}
            </button>
            <button data-testid="toggle-audio" onClick={live.toggleAudio} className={live.audioEnabled ? '' : 'off'}>
              {live.audioEnabled ? '🎙 Mic on' : '🎙 Muted'}
            </button>
            {!live.isBroadcasting ? (
              <button
                className="primary"
                data-testid="go-live"
                disabled={busy || live.isStarting || over || !live.hasKey || !isOwner}
                onClick={() => run(() => live.startBroadcast(quality))}
              >
                {live.isStarting ? 'Connecting…' : 'Go Live'}
              </button>
            ) : (
              <button data-testid="stop-broadcast" disabled={busy} onClick={() => run(live.stopBroadcast)}>
                Disconnect
              </button>
            )}
            <button
              className="danger"
              data-testid="end-stream"
              disabled={busy || over || !isOwner}
              onClick={() => run(live.endStream)}
            >
              End Stream
            </button>
          </div>
          {!live.hasKey && isOwner && !over && (
            <div className="banner" data-testid="no-key">
              This tab has no stream key for this stream (it is shown only once).{' '}
              <button data-testid="rotate-key" disabled={busy} onClick={() => run(live.rotateKey)}>
                Rotate key
              </button>
            </div>
          )}
          <section className="card health" data-testid="health">
            <h3>Stream health</h3>
            {h ? (
              <p>
                <b data-testid="health-score">{h.health ?? '–'}</b>/100 · {formatBitrate(h.inputKbps)} · {Number(h.fps ?? 0).toFixed(0)} fps · {h.width ?? '?'}×{h.height ?? '?'}
                {h.rttMs != null && ` · RTT ${Math.round(h.rttMs)} ms`}
                {h.packetLoss != null && ` · loss ${(h.packetLoss * 100).toFixed(1)}%`}
              </p>
            ) : (
              <p className="muted">No samples yet (the ingest node reports every 5 s once live).</p>
            )}
            {h && governorNotice(h.governorLevel) && (
              <p className="warning" data-testid="governor">
                {governorNotice(h.governorLevel)}
              </p>
            )}
            {live.sending && (
              <p className="muted" data-testid="sending-stats">
                Sending {live.sending.width}×{live.sending.height} · {live.sending.fps.toFixed(0)} fps · {formatBitrate(live.sending.kbps)}
              </p>
            )}
          </section>
          {isOwner && status === 'live' && <LiveAnalyticsPanel id={id} enabled />}
          <p className="muted" data-testid="reaction-total">reactions: {reactions.total}</p>
          <ErrorText error={actionError ?? live.error} testid="action-error" />
          <QuestionsPanel
            questions={qa.questions}
            canAsk={false}
            canAnswer={isOwner}
            error={qa.error}
            onAsk={qa.ask}
            onUpvote={qa.upvote}
            onAnswer={qa.answer}
          />
        </div>
        <ChatPanel
          messages={chat.messages}
          isSending={chat.isSending}
          canSend={!!claims}
          canModerate={isOwner}
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
