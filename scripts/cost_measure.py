#!/usr/bin/env python3
"""Measuring the request counts behind Rill's cost model on the local stack
(`python3 scripts/cost-model.py --measure`; scripts/cost-model.py prices what this measures).

Standard library only. `measure()` starts its own local stack the way the end-to-end tests do
(tests/src/lib.rs `Stack`, `IngestNode`), with a counting proxy between each of the two AWS
callers and moto:

  moto (scripts/moto_server.py from $RILL_VENV) <- counting proxy "gateway" <- rill-gateway (+ functions)
                                                <- counting proxy "ingest"  <- rill-ingest

The proxies forward every S3 and DynamoDB request and count it by caller, service, operation
(the DynamoDB `X-Amz-Target`; the S3 method and object kind), bytes and items; the gateway's
`GET /_gateway/stats` gives Lambda invocations per function and the WebSocket counters
(PostToConnection calls, client messages). Binaries come from $CARGO_TARGET_DIR/debug.

The run: one stream published over RTMP by the ffmpeg CLI (1080p30 H.264 test pattern at
2.5 Mbit/s, a keyframe every second, AAC: the top rung is passed through, the three lower rungs
are encoded, every rendition gets 1 s segments and a playlist write per segment); N anonymous
viewer sockets plus one signed-in chatter; phases `connect`, `watch` (heartbeats every 10 s, as
the web app sends them), `chat` (the same plus a chat message every 2 s) and `disconnect`.
Chat costs are the chat phase minus the watch phase. The counts it returns are what
scripts/cost-counts.json stores.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

# How often a watching player reports (web/src/hooks/useStreamViewer.ts HEARTBEAT_MS).
HEARTBEAT_S = 10

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "rill-cost-model-secret-0123456789"


# ---------------------------------------------------------------- counting proxy


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, dict[str, int]] = {}

    def add(self, label: str, op: str, **fields: int) -> None:
        key = f"{label} {op}"
        with self.lock:
            entry = self.calls.setdefault(key, {"calls": 0})
            entry["calls"] += 1
            for k, v in fields.items():
                entry[k] = entry.get(k, 0) + v

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return json.loads(json.dumps(self.calls))


OBJECT_KIND = [
    (re.compile(r"/seg-\d+\.m4s$"), "segment"),
    (re.compile(r"\.m3u8$"), "playlist"),
    (re.compile(r"/init(-\d+)?\.mp4$"), "init"),
    (re.compile(r"\.jpg$"), "thumbnail"),
]


def item_kind(body: bytes) -> str:
    """The item's kind from its key: `NODE` for `NODE#{id}`, else the sort key's first word
    (`META`, `METRIC`, `LEASE`, `CONN`, `VIEWER`, `RATE`, ...)."""
    try:
        req = json.loads(body)
        key = req.get("Item") or req.get("Key") or {}
        pk = key.get("pk", {}).get("S", "")
        sk = key.get("sk", {}).get("S", "")
    except (ValueError, AttributeError):
        return "?"
    if pk.startswith("NODE#"):
        return "NODE"
    return sk.split("#", 1)[0] or "?"


def classify(method: str, path: str, headers, body: bytes, resp: bytes) -> tuple[str, dict]:
    target = headers.get("X-Amz-Target")
    if target:
        service, _, op = target.partition(".")
        service = "dynamodbstreams" if service.startswith("DynamoDBStreams") else "dynamodb"
        fields = {"req_bytes": len(body), "resp_bytes": len(resp)}
        if op in ("PutItem", "UpdateItem", "DeleteItem", "GetItem"):
            op = f"{op} {item_kind(body)}"
        if op == "TransactWriteItems":
            try:
                fields["items"] = len(json.loads(body).get("TransactItems", []))
            except ValueError:
                pass
        if op == "BatchGetItem":
            try:
                fields["items"] = sum(len(t.get("Keys", [])) for t in json.loads(body).get("RequestItems", {}).values())
            except ValueError:
                pass
        if op == "Query":
            try:
                fields["items"] = int(json.loads(resp).get("Count", 0))
            except ValueError:
                pass
        return f"{service} {op}", fields
    path_only = path.split("?", 1)[0]
    kind = "other"
    for pattern, name in OBJECT_KIND:
        if pattern.search(path_only):
            kind = name
            break
    fields = {"bytes": len(body)}
    rendition = None
    m = re.search(r"/live/[^/]+/([^/]+)/[^/]+$", path_only)
    if m and kind in ("segment", "playlist", "init"):
        rendition = m.group(1)
    op = f"s3 {method} {kind}" + (f" {rendition}" if rendition else "")
    return op, fields


def make_proxy(label: str, upstream_port: int, counter: Counter) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _read_body(self) -> tuple[bytes, bool]:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = bytearray()
                while True:
                    line = self.rfile.readline()
                    raw += line
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while True:
                            trailer = self.rfile.readline()
                            raw += trailer
                            if trailer in (b"\r\n", b"\n", b""):
                                break
                        return bytes(raw), True
                    raw += self.rfile.read(size + 2)
            n = int(self.headers.get("Content-Length") or 0)
            return (self.rfile.read(n) if n else b""), False

        def _forward(self) -> None:
            body, chunked = self._read_body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("expect", "connection")}
            up = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            try:
                if chunked:
                    up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in headers.items():
                        up.putheader(k, v)
                    up.endheaders(body)
                else:
                    up.request(self.command, self.path, body=body, headers=headers)
                res = up.getresponse()
                data = res.read()
            finally:
                up.close()
            op, fields = classify(self.command, self.path, self.headers, body, data)
            counter.add(label, op, **fields)
            self.send_response(res.status, res.reason)
            for k, v in res.getheaders():
                if k.lower() in ("transfer-encoding", "connection", "content-length", "date", "server"):
                    continue
                self.send_header(k, v)
            if self.command == "HEAD":
                self.send_header("Content-Length", res.getheader("Content-Length") or "0")
                self.end_headers()
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- tiny WebSocket client


class Socket:
    """A minimal RFC 6455 client: text frames out (masked), frames in counted."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("socket closed during handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head!r}")
        self.received: list[dict] = []
        self.lock = threading.Lock()
        self.sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _reader(self) -> None:
        try:
            while True:
                b0, b1 = self._recv_exact(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._recv_exact(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._recv_exact(8))[0]
                payload = self._recv_exact(n)
                if opcode == 1:
                    try:
                        msg = json.loads(payload)
                    except ValueError:
                        msg = {"type": "?"}
                    with self.lock:
                        self.received.append(msg)
                elif opcode == 9:
                    self._send(10, payload)
                elif opcode == 8:
                    return
        except (EOFError, OSError):
            return

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_json(self, obj: dict) -> None:
        self._send(1, json.dumps(obj).encode())

    def types(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for m in self.received:
                out[m.get("type", "?")] = out.get(m.get("type", "?"), 0) + 1
        return out

    def close(self) -> None:
        try:
            self._send(8, b"")
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the run


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub: str, name: str) -> str:
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = b64(json.dumps({"sub": sub, "name": name, "iat": now, "exp": now + 7200}).encode())
    sig = b64(hmac.new(JWT_SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def http_json(method: str, url: str, body=None, tok: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    with urllib.request.urlopen(req, timeout=30) as res:
        raw = res.read()
        return json.loads(raw) if raw else None


def diff(after: dict, before: dict) -> dict:
    out = {}
    for key, fields in after.items():
        prev = before.get(key, {})
        d = {k: v - prev.get(k, 0) for k, v in fields.items()}
        if any(d.values()):
            out[key] = d
    return out


def gateway_counts(base: str) -> dict:
    stats = http_json("GET", f"{base}/_gateway/stats")
    fns = {name: s["invocations"] for name, s in stats["functions"].items() if s["invocations"]}
    ws = stats.get("websocket", {})
    return {
        "invocations": fns,
        "websocket": {k: ws.get(k, 0) for k in ("connections", "messages", "posts", "posts_gone", "frames_sent")},
    }


def gateway_diff(after: dict, before: dict) -> dict:
    inv = {k: v - before["invocations"].get(k, 0) for k, v in after["invocations"].items()}
    ws = {k: v - before["websocket"].get(k, 0) for k, v in after["websocket"].items()}
    return {"invocations": {k: v for k, v in inv.items() if v}, "websocket": ws}


def measure(viewers: int, phase_seconds: int, log) -> dict:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    bins = target / "debug"
    venv = Path(os.environ.get("RILL_VENV", ROOT / ".venv"))
    for b in ("rill-gateway", "rill-ingest"):
        if not (bins / b).exists():
            raise SystemExit(f"{bins / b} is missing: cargo build --workspace --bins")
    # When the binaries were built (they are the ones this run starts).
    built = {b: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((bins / b).stat().st_mtime))
             for b in ("rill-ingest", "rill-gateway")}
    procs: list[subprocess.Popen] = []
    sockets: list[Socket] = []
    counter = Counter()
    try:
        moto_port = free_port()
        procs.append(
            subprocess.Popen(
                [str(venv / "bin/python"), str(ROOT / "scripts/moto_server.py"), "-H", "127.0.0.1", "-p", str(moto_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(moto_port)
        gw_proxy = make_proxy("gateway", moto_port, counter)
        in_proxy = make_proxy("ingest", moto_port, counter)
        suffix = hex(int(time.time()))[2:]
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
            TABLE_NAME=f"rill-cost-{suffix}",
            BUCKET_NAME=f"rill-cost-{suffix}",
            JWT_SECRET=JWT_SECRET,
            RUST_LOG="warn",
        )
        gw_env = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{gw_proxy.server_address[1]}")
        gw = subprocess.Popen(
            [str(bins / "rill-gateway"), "--port", "0", "--init-resources", "--template", str(ROOT / "infra/template.yaml"),
             "--functions-dir", str(bins)],
            env=gw_env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )
        procs.append(gw)
        base = gw.stdout.readline().strip().removeprefix("rill-gateway listening on ")
        threading.Thread(target=gw.stdout.read, daemon=True).start()
        log(f"gateway {base}, moto :{moto_port}")
        in_env = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{in_proxy.server_address[1]}",
                      RTMP_ADDR="127.0.0.1:0", INGEST_HTTP_ADDR="127.0.0.1:0", WEBRTC_UDP_ADDR="127.0.0.1:0",
                      HLS_BASE_URL=f"{base}/hls")
        node = subprocess.Popen([str(bins / "rill-ingest")], env=in_env, stdout=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        procs.append(node)
        rtmp = node.stdout.readline().split()[3]
        threading.Thread(target=node.stdout.read, daemon=True).start()
        log(f"ingest {rtmp}")

        owner, chatter = token("alice", "Alice"), token("bob", "Bob")
        created = http_json("POST", f"{base}/api/streams/create",
                            {"channelId": "cost-model", "title": "cost model"}, owner)
        sid, key = created["id"], created["ingest"]["streamKey"]
        seconds = 30 + 2 * phase_seconds + 20
        ffmpeg = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
             "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
             "-g", "30", "-c:a", "aac", "-f", "flv", f"{rtmp}/live/{key}"],
            stdin=subprocess.DEVNULL,
        )
        procs.append(ffmpeg)
        deadline = time.time() + 60
        while http_json("GET", f"{base}/api/streams/{sid}")["status"] != "live":
            if time.time() > deadline:
                raise RuntimeError("the stream did not go live within 60 s")
            time.sleep(0.5)
        log(f"stream {sid} live")
        host, port = base.removeprefix("http://").split(":")
        c0, cg0 = counter.snapshot(), gateway_counts(base)
        for _ in range(viewers):
            sockets.append(Socket(host, int(port), f"/ws?streamId={sid}"))
        chat_sock = Socket(host, int(port), f"/ws?streamId={sid}&token={chatter}")
        sockets.append(chat_sock)
        time.sleep(5)

        def run_phase(seconds: int, chat_every: float | None) -> int:
            start, sent, beats = time.time(), 0, 0
            next_beat = [start + HEARTBEAT_S * (i + 1) / len(sockets) for i in range(len(sockets))]
            next_chat = start
            while time.time() - start < seconds:
                now = time.time()
                for i, s in enumerate(sockets):
                    if now >= next_beat[i]:
                        s.send_json({"action": "heartbeat", "quality": "720p", "buffering": 0})
                        next_beat[i] += HEARTBEAT_S
                        beats += 1
                if chat_every and now >= next_chat:
                    chat_sock.send_json({"action": "chat", "content": f"message {sent}"})
                    sent += 1
                    next_chat += chat_every
                time.sleep(0.05)
            return sent

        s0, g0 = counter.snapshot(), gateway_counts(base)
        run_phase(phase_seconds, None)
        time.sleep(2)
        s1, g1 = counter.snapshot(), gateway_counts(base)
        sent = run_phase(phase_seconds, 2.0)
        time.sleep(2)
        s2, g2 = counter.snapshot(), gateway_counts(base)
        received = [s.types() for s in sockets]
        log(f"chat messages sent: {sent}")
        for s in sockets:
            s.close()
        sockets.clear()
        time.sleep(10)  # every $disconnect has run
        s3, g3 = counter.snapshot(), gateway_counts(base)
        # One media playlist as a viewer gets it, to price keep-all playlist reloads.
        with urllib.request.urlopen(f"{base}/hls/live/{sid}/720p/index.m3u8", timeout=30) as res:
            playlist = res.read()
        ffmpeg.terminate()
        http_json("POST", f"{base}/api/streams/{sid}/end", None, owner)
        return {
            "stream_id": sid,
            "binaries": built,
            "viewers": viewers,
            "sockets": viewers + 1,
            "phase_seconds": phase_seconds + 2,
            "chat_messages": sent,
            "connect": {"storage": diff(s0, c0), "gateway": gateway_diff(g0, cg0), "seconds": 5},
            "watch": {"storage": diff(s1, s0), "gateway": gateway_diff(g1, g0)},
            "chat": {"storage": diff(s2, s1), "gateway": gateway_diff(g2, g1)},
            "disconnect": {"storage": diff(s3, s2), "gateway": gateway_diff(g3, g2), "seconds": 10},
            "frames_received_per_socket": received[0],
            "playlist_sample": {
                "bytes": len(playlist),
                "segments": playlist.count(b"#EXTINF"),
                "gzip_bytes": len(gzip.compress(playlist, 6)),
            },
        }
    finally:
        for s in sockets:
            s.close()
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    p.kill()
