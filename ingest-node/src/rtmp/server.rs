//! Tokio glue around [`Session`]: the RTMP listener, one task per connection, the
//! authorisation callback, the media sink, timeouts and graceful shutdown.
//!
//! Flow per connection: handshake (must finish within
//! [`ServerConfig::handshake_timeout`] of the accept) → `publish(key)` → the
//! [`Authoriser`] decides (bounded by [`ServerConfig::authorise_timeout`]; a timeout is
//! a refusal) → on accept, every [`MediaEvent`] goes to the returned [`PublishSink`] in
//! order. The sink is a bounded channel: when it is full the connection stops reading, so
//! TCP pushes back on the publisher instead of us buffering.
//!
//! [`MediaEvent`]: crate::media::MediaEvent
//! [`MediaEvent::End`]: crate::media::MediaEvent::End
//!
//! Invariants (those of [`crate::publish`], and):
//! - A sink that was handed out always receives exactly one [`MediaEvent::End`], last,
//!   however the connection ends (unpublish, EOF, protocol error, timeout, shutdown) — as
//!   long as the receiver is alive and accepts it within [`ServerConfig::end_timeout`].
//! - A refused publish produces no event at all.
//! - The stream key is never logged: refusals are logged with the peer address and the
//!   first segment of the app name only.
//! - Shutdown (`true` on the watch channel, or its sender dropped) stops accepting,
//!   interrupts every connection, delivers End, and `run` returns once all tasks are done.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::Instrument;

use super::session::{Session, SessionConfig, SessionEvent, loggable_app};
use crate::publish::{Authoriser, PublishRequest, PublishSink, Refusal, StreamKey};

/// Timeouts and limits of the listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// From accept to the end of the handshake.
    pub handshake_timeout: Duration,
    /// Longest silence from the publisher (no bytes at all) before the session ends; also
    /// the longest a write to it may take.
    pub idle_timeout: Duration,
    /// Longest the authoriser may take; past it the publish is refused as unavailable.
    pub authorise_timeout: Duration,
    /// Longest we wait to hand End to a full sink when a connection ends.
    pub end_timeout: Duration,
    /// Concurrent connections; more are closed on accept.
    pub max_connections: usize,
    pub session: SessionConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            authorise_timeout: Duration::from_secs(10),
            end_timeout: Duration::from_secs(5),
            max_connections: 1000,
            session: SessionConfig::default(),
        }
    }
}

/// The RTMP listener. See the module docs.
pub struct RtmpServer {
    listener: TcpListener,
    authoriser: Arc<dyn Authoriser>,
    config: ServerConfig,
}

impl fmt::Debug for RtmpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RtmpServer {
    /// Binds the listener (port 0 picks a free port) and returns the bound address.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        authoriser: Arc<dyn Authoriser>,
    ) -> io::Result<(RtmpServer, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((
            RtmpServer {
                listener,
                authoriser,
                config: ServerConfig::default(),
            },
            local,
        ))
    }

    pub fn with_config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Accepts connections until `shutdown` turns `true` (or its sender is dropped), then
    /// ends every session and returns when all of them are done.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let RtmpServer {
            listener,
            authoriser,
            config,
        } = self;
        let config = Arc::new(config);
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let mut tasks = JoinSet::new();
        tracing::info!(addr = ?listener.local_addr().ok(), "rtmp ingest listening");
        loop {
            tokio::select! {
                () = wait_shutdown(&mut shutdown) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            tracing::warn!(%peer, "rtmp connection limit reached; closing");
                            continue;
                        };
                        let span = tracing::info_span!("rtmp", %peer);
                        let task = connection(
                            stream,
                            peer,
                            authoriser.clone(),
                            config.clone(),
                            shutdown.clone(),
                        );
                        tasks.spawn(
                            async move {
                                task.await;
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "rtmp accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => log_join(done),
            }
        }
        drop(listener);
        tracing::info!(sessions = tasks.len(), "rtmp ingest shutting down");
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "rtmp connection task failed");
    }
}

/// Resolves when shutdown is requested; a dropped sender counts as a request.
async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Why a connection ended (for the log line).
#[derive(Debug)]
enum Ended {
    /// The publisher unpublished, was refused, or the session closed itself.
    Closed,
    Eof,
    HandshakeTimeout,
    IdleTimeout,
    WriteTimeout,
    Io(io::Error),
    Protocol(super::session::SessionError),
    /// The sink's receiver is gone: the pipeline stopped wanting this stream.
    SinkClosed,
    Shutdown,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    sink: Option<PublishSink>,
    authoriser: Arc<dyn Authoriser>,
    config: Arc<ServerConfig>,
    delivered: u64,
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    authoriser: Arc<dyn Authoriser>,
    config: Arc<ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut session_config = config.session.clone();
    let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    session_config.seed ^= n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(peer.port());
    let mut conn = Conn {
        stream,
        peer,
        session: Session::new(session_config),
        sink: None,
        authoriser,
        config,
        delivered: 0,
    };
    let ended = conn.serve(&mut shutdown).await;
    conn.close(&ended).await;
    match &ended {
        Ended::Protocol(e) => tracing::warn!(error = %e, "rtmp session failed"),
        Ended::Io(e) => tracing::debug!(error = %e, "rtmp connection failed"),
        other => tracing::debug!(reason = ?other, "rtmp connection ended"),
    }
    if conn.sink.is_some() {
        tracing::info!(
            stream = conn.sink.as_ref().and_then(|s| s.label.as_deref()),
            events = conn.delivered,
            reason = ?ended,
            "rtmp publish ended"
        );
    }
}

impl Conn {
    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let handshake_deadline = Instant::now() + self.config.handshake_timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = self.flush().await {
                return e;
            }
            if let Err(e) = self.deliver(shutdown).await {
                return e;
            }
            if let Err(e) = self.flush().await {
                return e;
            }
            if self.session.is_closed() {
                return Ended::Closed;
            }
            let deadline = if self.session.is_handshake_done() {
                Instant::now() + self.config.idle_timeout
            } else {
                handshake_deadline
            };
            let read = tokio::select! {
                r = timeout_at(deadline, self.stream.read(&mut buf)) => r,
                () = wait_shutdown(shutdown) => return Ended::Shutdown,
            };
            let n = match read {
                Err(_) if self.session.is_handshake_done() => return Ended::IdleTimeout,
                Err(_) => return Ended::HandshakeTimeout,
                Ok(Err(e)) => return Ended::Io(e),
                Ok(Ok(0)) => return Ended::Eof,
                Ok(Ok(n)) => n,
            };
            if let Err(e) = self.session.handle_input(&buf[..n]) {
                // Media parsed before the bad bytes still goes out (close() delivers it).
                return Ended::Protocol(e);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Ended> {
        while let Some(bytes) = self.session.poll_output() {
            match timeout(self.config.idle_timeout, self.stream.write_all(&bytes)).await {
                Err(_) => return Err(Ended::WriteTimeout),
                Ok(Err(e)) => return Err(Ended::Io(e)),
                Ok(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Hands session events to the authoriser and the sink, waiting on a full sink.
    async fn deliver(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), Ended> {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::PublishRequested { app, stream_key } => {
                    self.authorise(app, stream_key, shutdown).await?;
                    // Publish.Start (or the refusal) goes out before any media is handed on.
                    self.flush().await?;
                }
                SessionEvent::Media(media) => {
                    let Some(sink) = &self.sink else { continue };
                    tokio::select! {
                        sent = sink.events.send(media) => {
                            sent.map_err(|_| Ended::SinkClosed)?;
                            self.delivered += 1;
                        }
                        () = wait_shutdown(shutdown) => return Err(Ended::Shutdown),
                    }
                }
            }
        }
        Ok(())
    }

    async fn authorise(
        &mut self,
        app: String,
        stream_key: StreamKey,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Ended> {
        let log_app = loggable_app(&app).to_owned();
        let request = PublishRequest::rtmp(app, stream_key, self.peer);
        let decision = tokio::select! {
            d = timeout(self.config.authorise_timeout, self.authoriser.authorise(request)) => d,
            () = wait_shutdown(shutdown) => return Err(Ended::Shutdown),
        };
        match decision {
            Ok(Ok(sink)) => {
                tracing::info!(app = %log_app, stream = sink.label.as_deref(), "rtmp publish accepted");
                self.sink = Some(sink);
                self.session.accept_publish().map_err(Ended::Protocol)?;
            }
            Ok(Err(refusal)) => {
                tracing::warn!(peer = %self.peer, app = %log_app, ?refusal, "rtmp stream key refused");
                self.session.reject_publish(&refusal);
            }
            Err(_) => {
                tracing::warn!(peer = %self.peer, app = %log_app, "rtmp authorisation timed out");
                self.session.reject_publish(&Refusal::Unavailable);
            }
        }
        Ok(())
    }

    /// Ends the connection: End to the sink, last words to the client, FIN.
    async fn close(&mut self, ended: &Ended) {
        self.session.finish();
        if let Some(sink) = &self.sink {
            while let Some(ev) = self.session.poll_event() {
                let SessionEvent::Media(media) = ev else {
                    continue;
                };
                match timeout(self.config.end_timeout, sink.events.send(media)).await {
                    Ok(Ok(())) => self.delivered += 1,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::warn!("rtmp sink did not take End in time");
                        break;
                    }
                }
            }
        }
        if !matches!(ended, Ended::Closed) {
            // Peer gone, silent or misbehaving, or we are shutting down: nothing to say.
            return;
        }
        // Refused or unpublished: send what is pending (an error onStatus), then half-close
        // and give the client a moment to read it. Closing with unread input would reset the
        // connection, and the publisher might never see why it was refused.
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(bytes) = self.session.poll_output() {
                self.stream.write_all(&bytes).await?;
            }
            self.stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while self.stream.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::super::testing::Client;
    use super::*;
    use crate::media::MediaEvent;
    use crate::publish::Protocol;

    fn refuse_all() -> Arc<dyn Authoriser> {
        Arc::new(|_req: PublishRequest| async { Err::<PublishSink, _>(Refusal::BadKey) })
    }

    /// Accepts every publish into a channel of `capacity` events.
    fn accept_into(capacity: usize) -> (Arc<dyn Authoriser>, mpsc::Receiver<MediaEvent>) {
        let (tx_media, rx_media) = mpsc::channel(capacity);
        let auth: Arc<dyn Authoriser> = Arc::new(move |_req: PublishRequest| {
            let tx = tx_media.clone();
            async move { Ok(PublishSink::new(tx)) }
        });
        (auth, rx_media)
    }

    /// A client that completed the handshake and asked to publish `live/{key}`.
    async fn publishing(addr: SocketAddr, key: &str) -> (TcpStream, Client) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut c = Client::new();
        s.write_all(&c.handshake()).await.unwrap();
        s.write_all(&c.connect_and_publish("live", key))
            .await
            .unwrap();
        (s, c)
    }

    async fn start(
        config: ServerConfig,
        auth: Arc<dyn Authoriser>,
    ) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (server, addr) = RtmpServer::bind("127.0.0.1:0", auth).await.unwrap();
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(server.with_config(config).run(rx));
        (addr, tx, handle)
    }

    /// Reads until EOF/reset, returning how long that took.
    async fn time_to_close(stream: &mut TcpStream) -> Duration {
        let t = Instant::now();
        let mut buf = [0u8; 8192];
        loop {
            match timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("server kept the connection open"),
            }
        }
    }

    #[tokio::test]
    async fn silent_connection_is_closed_after_the_handshake_timeout() {
        let config = ServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        };
        let (addr, _tx, _h) = start(config, refuse_all()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Half a C1 and then nothing: a slowloris handshake.
        s.write_all(&[3; 700]).await.unwrap();
        let took = time_to_close(&mut s).await;
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn idle_session_is_closed_after_the_idle_timeout() {
        let config = ServerConfig {
            idle_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        };
        let (addr, _tx, _h) = start(config, refuse_all()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let c = Client::new();
        s.write_all(&c.handshake()).await.unwrap();
        let took = time_to_close(&mut s).await;
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn refused_key_gets_bad_name_and_the_key_reaches_the_authoriser_intact() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let auth: Arc<dyn Authoriser> = Arc::new(move |req: PublishRequest| {
            seen2.lock().unwrap().push((
                req.protocol,
                req.app.clone(),
                req.stream_key.expose().to_owned(),
            ));
            async { Err::<PublishSink, _>(Refusal::BadKey) }
        });
        let (addr, _tx, _h) = start(ServerConfig::default(), auth).await;
        let (mut s, mut c) = publishing(addr, "wrong").await;
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        c.read(&all);
        assert!(
            c.statuses()
                .contains(&"NetStream.Publish.BadName".to_owned()),
            "{:?}",
            c.received
        );
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(Protocol::Rtmp, Some("live".to_owned()), "wrong".to_owned())]
        );
    }

    #[tokio::test]
    async fn shutdown_ends_an_accepted_publish_with_end_and_run_returns() {
        let (auth, mut rx_media) = accept_into(16);
        let (addr, tx, handle) = start(ServerConfig::default(), auth).await;
        let (mut s, c) = publishing(addr, "k").await;
        s.write_all(&c.video(0, &super::super::flv::tests::video_seq_header()))
            .await
            .unwrap();
        let first = timeout(Duration::from_secs(5), rx_media.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(first, MediaEvent::VideoConfig { .. }));
        tx.send(true).unwrap();
        let end = timeout(Duration::from_secs(5), rx_media.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, MediaEvent::End);
        timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        // Nothing accepts anymore.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn full_sink_holds_the_connection_without_losing_events() {
        let (auth, mut rx_media) = accept_into(1);
        let (addr, _tx, _h) = start(ServerConfig::default(), auth).await;
        let (mut s, c) = publishing(addr, "k").await;
        let mut wire = c.video(0, &super::super::flv::tests::video_seq_header());
        for i in 0..200u32 {
            wire.extend(c.video(
                i * 33,
                &super::super::flv::tests::video_frame(i == 0, 0, &[0x41; 2000]),
            ));
        }
        wire.extend(c.command("deleteStream", 9.0, 0, vec![]));
        let writer = tokio::spawn(async move {
            s.write_all(&wire).await.unwrap();
            s
        });
        // Nobody reads for a while: the channel holds one event, the rest waits upstream.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        while let Some(ev) = timeout(Duration::from_secs(5), rx_media.recv())
            .await
            .unwrap()
        {
            let end = ev == MediaEvent::End;
            got.push(ev);
            if end {
                break;
            }
        }
        assert_eq!(got.len(), 202, "config + 200 frames + End");
        let dts: Vec<i64> = got
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Video { dts_ms, .. } => Some(*dts_ms),
                _ => None,
            })
            .collect();
        assert!(dts.windows(2).all(|w| w[0] < w[1]));
        drop(writer.await.unwrap());
    }
}
