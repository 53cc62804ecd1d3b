#!/usr/bin/env python3
"""Rill's cost at scale: AWS list prices times request counts measured on the local stack.

    python3 scripts/cost-model.py                  # the README table, from scripts/cost-counts.json
    python3 scripts/cost-model.py --json           # the same numbers as JSON
    python3 scripts/cost-model.py --viewer-rung 1080p --chat-per-viewer-hour 30
    python3 scripts/cost-model.py --measure        # measure again (needs the built binaries,
                                                   # ffmpeg and the moto venv), write the counts,
                                                   # then print the table

Standard library only. This file is the model: the prices, the fleet's design figures, the
viewer assumptions, the measured counts turned into rates, the scenarios and the table.
`--measure` runs scripts/cost_measure.py (its docstring says how the local stack is driven
and counted: a counting proxy between each AWS caller and moto, the gateway's stats, one
stream published by ffmpeg, viewer sockets and a chatter) and writes what it returns to
scripts/cost-counts.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# cost_measure.py lives next to this script, which tests/deploy/test_cost_model.py also loads
# by path (then scripts/ is not on sys.path).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from cost_measure import measure  # noqa: E402


# ================================================================ prices
#
# AWS list prices, us-east-1 (N. Virginia), on-demand, no free tier, USD. Looked up on
# 2026-12-06 from copies of the public pricing pages and price transcriptions (this machine
# cannot reach aws.amazon.com); every figure not confirmed from a copy is marked ASSUMED.
PRICES = {
    # Fargate Linux/x86: $0.04048 per vCPU-hour, $0.004445 per GB-hour
    # (aws.amazon.com/fargate/pricing as transcribed by vantage.sh and wring.co, 2026).
    "fargate_vcpu_hour": 0.04048,
    "fargate_gb_hour": 0.004445,
    # Public IPv4 address: $0.005 per hour (since 2024-02; every Fargate task has one).
    "public_ipv4_hour": 0.005,
    # S3 Standard: PUT/COPY/POST/LIST $0.005 per 1,000; GET $0.0004 per 1,000; storage
    # $0.023 per GB-month (first 50 TB). (aws.amazon.com/s3/pricing; storage figure also
    # in a public cost-model repository's transcription.)
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "s3_gb_month": 0.023,
    # DynamoDB on demand, after the 2024-11-01 50 % cut: $0.625 per million write request
    # units, $0.125 per million read request units (airbyte.com transcription, 2025).
    # Reads of the table's stream by a Lambda trigger are free.
    "ddb_wru": 0.625 / 1e6,
    "ddb_rru": 0.125 / 1e6,
    # Lambda x86: $0.20 per million requests, $0.0000166667 per GB-second.
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000166667,
    # API Gateway WebSocket: $1.00 per million messages (first billion a month; $0.80
    # after), 32 KB increments, sent and received both count; $0.25 per million connection
    # minutes (aws.amazon.com/api-gateway/pricing, re:Post). HTTP API: $1.00 per million.
    "apigw_ws_message_tiers": [(1e9, 1.00 / 1e6), (float("inf"), 0.80 / 1e6)],
    "apigw_ws_connection_minute": 0.25 / 1e6,
    "apigw_http_request": 1.00 / 1e6,
    # CloudFront, North America/Europe data transfer out, per GB, tiers per month: first
    # 10 TB $0.085, next 40 TB $0.080, next 100 TB $0.060, next 350 TB $0.040, next 524 TB
    # $0.030, next 4 PB $0.025, over 5 PB $0.020 (public transcription of the pricing page).
    "cloudfront_gb_tiers": [(10_000, 0.085), (40_000, 0.080), (100_000, 0.060), (350_000, 0.040),
                            (524_000, 0.030), (4_000_000, 0.025), (float("inf"), 0.020)],
    # CloudFront HTTPS requests, North America: $0.0100 per 10,000. ASSUMED (not confirmed
    # from a copy of the page here).
    "cloudfront_https_request": 0.0100 / 10_000,
    # Network Load Balancer: $0.0225 per hour, $0.006 per NLCU-hour; for TCP one NLCU is
    # 800 new flows/s, 100,000 active flows or 1 GB processed per hour (clustercost.com,
    # awsnegotiations.com transcriptions, 2025-2026).
    "nlb_hour": 0.0225,
    "nlb_nlcu_hour": 0.006,
    # CloudWatch: custom metric $0.30 per metric-month (first 10,000); PutMetricData $0.01 per
    # 1,000 requests. ASSUMED (long-standing list prices, not confirmed from a copy here).
    "cw_metric_month": 0.30,
    "cw_put_request": 0.01 / 1000,
    # ECR storage $0.10 per GB-month (the ingest image, ~0.3 GB). ASSUMED.
    "ecr_gb_month": 0.10,
    # Amazon IVS Low-Latency Streaming. Input, STANDARD channel (transcoded ladder, up to
    # 1080p): $2.00 per hour. ASSUMED: the figure is the long-standing list price; the copy
    # of the pricing page found here lists channel types without the numbers. (Advanced HD
    # input $0.85/h is confirmed by a public transcription; BASIC $0.20/h passes the source
    # through without a ladder, so it is no like-for-like comparison.)
    "ivs_input_standard_hour": 2.00,
    # IVS video output, North America/Europe billing region, per viewer-hour by the
    # resolution delivered, monthly tiers: first 10,000 h, next 40,000, next 100,000, next
    # 350,000, over 500,000. HD (<= 720p): $0.072 / 0.066 / 0.060 / 0.056 / 0.048 and SD
    # (<= 480p) exactly half, from a public cost model's transcription of the pricing page.
    # Full HD (<= 1080p) at twice HD is ASSUMED.
    "ivs_output_tier_hours": [10_000, 40_000, 100_000, 350_000, float("inf")],
    "ivs_output_hd": [0.072, 0.066, 0.060, 0.056, 0.048],
    "ivs_output_sd_of_hd": 0.5,
    "ivs_output_fhd_of_hd": 2.0,
}
PRICES_AS_OF = "2026-12-06 (us-east-1 list prices; see the comments in PRICES for sources)"

HOURS_PER_MONTH = 730

# ================================================================ the fleet (not measured)
#
# The ingest fleet (registry, leases, the utilisation metric) is being built now; these are
# its design figures, not measurements.
FLEET = {
    "registry_writes_per_node_hour": 720,  # NODE#{id} rewritten every 5 s
    "lease_writes_per_stream_hour": 720,  # STREAM#{id}/LEASE taken once, renewed every 5 s
    "put_metric_data_per_node_hour": 60,  # one PutMetricData per node per minute
    "custom_metrics": 1,  # Rill/Ingest Utilisation, one service-level metric
    "task_vcpu": 4,  # Fargate task 4 vCPU / 8 GB (infra/template.yaml)
    "task_gb": 8,
    "ladder_cpu_s_per_media_s": 1.4,  # full 1080p ladder, x264 veryfast (measured, PITFALLS)
    "cpu_headroom": 0.85,  # capacity_for(cores) = max(1, floor(cores * 0.85 / 1.4))
    "target_utilisation": 0.6,  # target tracking on active / capacity
    "min_tasks": 1,
    "image_gb": 0.3,  # ASSUMED size of the ingest image in ECR
}

# ================================================================ viewer assumptions
ASSUMPTIONS = {
    # Every viewer plays one rung all hour (hls.js' ABR settles on one rung on a steady
    # link); its bytes per hour are the measured segment bytes of that rung plus audio.
    "viewer_rung": "720p",
    # hls.js with 1 s segments and a separate audio rendition: per second, one video and one
    # audio playlist reload and one segment of each (4 CDN requests per second).
    "cdn_requests_per_viewer_second": 4,
    # Origin fetches: playlists are cached 1 s (s-maxage=1) and segments are immutable; each
    # regional edge cache in front of S3 fetches each object once per TTL. PriceClass_100
    # (North America + Europe) has about 6 regional edge caches; no Origin Shield.
    "regional_edge_caches": 6,
    # Chat: each viewer sends one message every 10 minutes, and a stream's chat is capped at
    # one message a second (slow mode / rate limits on big channels).
    "chat_per_viewer_hour": 6,
    "chat_per_stream_hour_cap": 3600,
    # Analytics minute buckets (docs/architecture.md section 12): one UpdateItem per
    # stream-minute per events-presence batch. A small audience's heartbeats each arrive in
    # a batch of their own (measured: about one bucket write per heartbeat); a crowd's
    # share batches, at most 4 a second per shard: 14,400 per stream-hour. A busy minute's
    # bucket (counts by second, histograms, labels) is 1-2 KB: 2 WRU per write, ASSUMED.
    "analytics_bucket_writes_per_stream_hour_cap": 14_400,
    "analytics_bucket_wru": 2,
    # Each viewer opens one socket and loads the watch page once an hour: $connect,
    # $disconnect and two REST calls (GET /api/streams/{id}, /hls).
    "sessions_per_viewer_hour": 1,
    "rest_calls_per_session": 2,
    # Lambda billed duration, 128 MB functions: 15 ms for a route handler; events-fanout
    # 15 ms plus 64 PostToConnection in flight at ~10 ms each. ASSUMED (the local stack runs
    # debug builds, so its timings are not AWS's).
    "lambda_gb": 0.125,
    "lambda_handler_ms": 15,
    "lambda_post_ms": 10 / 64,
    # RTMP ingest through the NLB at the source bitrate (OBS 1080p30 at 6 Mbit/s).
    "ingest_mbps": 6.0,
    # Playlists are keep-all (EVENT while live), so every reload fetches every segment listed
    # so far: with 1 s segments a viewer reloads 2 playlists (video + audio) a second, and the
    # stream is on average half an hour old during the scenario's hour. The template sets
    # Compress: true on live/*.m3u8; that CloudFront compresses application/vnd.apple.mpegurl
    # is ASSUMED (its list of compressible types was not confirmed here).
    "playlist_reloads_per_viewer_second": 2,
    "segment_seconds": 1,
    "stream_age_avg_s": 1800,
    "playlists_compressed": True,
    # Recordings are kept (RecordingRetentionDays = 0): the hour's media costs S3 storage
    # every month it is kept; the table shows one month.
    "recording_months": 1,
}

SCENARIOS = [
    # name, streams, viewers per stream, hours
    ("A: 1 stream x 100 viewers, 1 h", 1, 100, 1),
    ("B: 1,000 streams, 10,000 viewers in all (10 each), 1 h", 1000, 10, 1),
    ("C: 1,000 streams x 10,000 viewers each (10 M), 1 h", 1000, 10_000, 1),
]


# ================================================================ measured counts -> rates


def ddb_units(storage: dict, label: str) -> tuple[float, float, float]:
    """(write request units, read request units, calls) of one caller in a measured delta.

    Writes: PutItem/UpdateItem/DeleteItem 1 WRU each (every item written is under 1 KB;
    the largest request measured is the quality sample's PutItem), TransactWriteItems 2 WRU
    per item. Reads: GetItem 1 RRU (strongly consistent, the ceiling for items under 4 KB),
    BatchGetItem 1 RRU per key, Query 1 RRU per started 4 KB of response (at least 0.5).
    DescribeTable and the stream's own reads (the trigger's, free on AWS) are not counted.
    """
    wru = rru = calls = 0.0
    for key, v in storage.items():
        who, service, op = key.split()[:3]
        if who != label or service != "dynamodb" or op == "DescribeTable":
            continue
        calls += v["calls"]
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            wru += v["calls"]
        elif op == "TransactWriteItems":
            wru += 2 * v.get("items", 0)
        elif op == "GetItem":
            rru += v["calls"]
        elif op == "BatchGetItem":
            rru += v.get("items", v["calls"])
        elif op == "Query":
            rru += max(0.5 * v["calls"], v.get("resp_bytes", 0) / 4096)
    return wru, rru, calls


def sub(a: dict, b: dict) -> dict:
    """Storage delta a - b (both already deltas of one phase each)."""
    out = {}
    for k in set(a) | set(b):
        fa, fb = a.get(k, {}), b.get(k, {})
        out[k] = {f: fa.get(f, 0) - fb.get(f, 0) for f in set(fa) | set(fb)}
    return out


def rates_from(counts: dict) -> dict:
    """Per-unit rates from the measured raw counts (see measure())."""
    t = counts["phase_seconds"]
    sockets = counts["sockets"]
    msgs = counts["chat_messages"]
    watch, chat = counts["watch"], counts["chat"]
    both: dict = {}
    for phase in (watch, chat):
        for k, v in phase["storage"].items():
            e = both.setdefault(k, {})
            for f, n in v.items():
                e[f] = e.get(f, 0) + n
    per_stream_hour = 3600 / (2 * t)

    def total(prefix: str, field: str = "calls") -> float:
        return sum(v.get(field, 0) for k, v in both.items() if k.startswith(prefix))

    r: dict = {}
    # -- the ingest node, per stream-hour (both phases: it does not care who watches)
    r["s3_puts_segment"] = total("ingest s3 PUT segment") * per_stream_hour
    r["s3_puts_playlist"] = total("ingest s3 PUT playlist") * per_stream_hour
    r["s3_puts_per_stream_hour"] = total("ingest s3 PUT") * per_stream_hour
    r["s3_puts_other"] = r["s3_puts_per_stream_hour"] - r["s3_puts_segment"] - r["s3_puts_playlist"]
    r["renditions"] = sorted({k.split()[-1] for k in both if k.startswith("ingest s3 PUT segment")},
                             key=lambda n: (n == "audio", -int(n.rstrip("p")) if n[:-1].isdigit() else 0))
    r["gb_per_hour"] = {n: both[f"ingest s3 PUT segment {n}"]["bytes"] * per_stream_hour / 1e9
                        for n in r["renditions"]}
    r["stored_gb_per_stream_hour"] = sum(r["gb_per_hour"].values())
    def writes(kind: str) -> float:
        return sum(v["calls"] for k, v in both.items()
                   if k.startswith("ingest dynamodb ") and k.split()[2] in ("PutItem", "UpdateItem")
                   and k.split()[-1] == kind) * per_stream_hour

    # The fleet's writes, when the measured node has the fleet (one node, one stream).
    r["sample_writes_per_stream_hour"] = writes("METRIC")
    r["lease_writes_per_stream_hour"] = writes("LEASE")
    r["registry_writes_per_node_hour"] = writes("NODE")
    wru, rru, calls = ddb_units(both, "ingest")
    r["ingest_wru_per_stream_hour"] = (wru * per_stream_hour - r["lease_writes_per_stream_hour"]
                                       - r["registry_writes_per_node_hour"])
    r["ingest_rru_per_stream_hour"] = rru * per_stream_hour
    r["ingest_ddb_calls_per_stream_hour"] = calls * per_stream_hour

    # -- viewers watching (watch phase): per viewer-minute, and per stream-hour
    socket_minutes = sockets * t / 60
    ws, inv = watch["gateway"]["websocket"], watch["gateway"]["invocations"]
    st = watch["storage"]
    q = st.get("gateway dynamodb Query", {"calls": 0, "items": 0, "resp_bytes": 0})
    r["fanout_queries_per_stream_hour"] = q["calls"] * 3600 / t
    r["conn_item_bytes"] = q.get("resp_bytes", 0) / max(1, q.get("items", 0))
    # Analytics bucket writes scale with batches, not viewers: counted apart (scenario()).
    buckets = st.get("gateway dynamodb UpdateItem MIN", {"calls": 0})
    r["analytics_bucket_writes_per_viewer_minute"] = buckets["calls"] / socket_minutes
    # The event feed's appends while watching (quality updates: events-fanout's
    # TransactWriteItems and its head reads) are per stream, not per viewer.
    per_stream = ("gateway dynamodb TransactWriteItems", "gateway dynamodb GetItem FEED")
    feed_wru, feed_rru, _ = ddb_units({k: v for k, v in st.items() if k in per_stream}, "gateway")
    r["feed_wru_per_stream_hour"] = feed_wru * 3600 / t
    r["feed_rru_per_stream_hour"] = feed_rru * 3600 / t
    no_query = {k: v for k, v in st.items()
                if not k.endswith(" Query") and k != "gateway dynamodb UpdateItem MIN"
                and k not in per_stream}
    wru, rru, _ = ddb_units(no_query, "gateway")
    r["viewer_wru_per_minute"] = wru / socket_minutes
    r["viewer_rru_per_minute"] = rru / socket_minutes
    r["posts_per_viewer_minute"] = ws["posts"] / socket_minutes
    r["client_msgs_per_viewer_minute"] = ws["messages"] / socket_minutes
    r["heartbeat_invocations_per_viewer_minute"] = inv.get("ws-heartbeat", 0) / socket_minutes
    r["fanout_invocations_per_stream_hour"] = inv.get("events-fanout", 0) * 3600 / t

    # -- one chat message: the chat phase minus the watch phase
    d = sub(chat["storage"], watch["storage"])
    ci, wi = chat["gateway"]["invocations"], watch["gateway"]["invocations"]
    r["chat_invocations"] = {k: (ci.get(k, 0) - wi.get(k, 0)) / msgs for k in set(ci) | set(wi)
                             if k != "ws-heartbeat" and ci.get(k, 0) - wi.get(k, 0) > 0}
    r["chat_posts_per_socket"] = (chat["gateway"]["websocket"]["posts"] - ws["posts"]) / msgs / sockets
    dq = d.get("gateway dynamodb Query", {})
    r["chat_queries"] = max(0.0, dq.get("calls", 0) / msgs)
    wru, rru, _ = ddb_units({k: v for k, v in d.items() if not k.endswith(" Query")}, "gateway")
    r["chat_wru"], r["chat_rru"] = max(0.0, wru / msgs), max(0.0, rru / msgs)
    per_op: dict = {}
    for k, v in d.items():
        who, service, op = k.split()[:3]
        if who == "gateway" and service == "dynamodb" and op != "DescribeTable":
            per_op[op] = per_op.get(op, 0) + v.get("calls", 0) / msgs
    r["chat_ddb_calls"] = {op: round(n, 2) for op, n in sorted(per_op.items()) if abs(n) > 0.05}

    # -- a viewer's session: $connect + $disconnect (the connect and disconnect phases)
    sess = {}
    for phase in ("connect", "disconnect"):
        for k, v in counts[phase]["storage"].items():
            if k.startswith("gateway dynamodb") and not k.endswith(" Query"):
                e = sess.setdefault(k, {})
                for f, n in v.items():
                    e[f] = e.get(f, 0) + n
    wru, rru, calls = ddb_units(sess, "gateway")
    r["session_wru"], r["session_rru"] = wru / sockets, rru / sockets
    r["session_ddb_calls"] = calls / sockets
    ci = counts["connect"]["gateway"]["invocations"]
    di = counts["disconnect"]["gateway"]["invocations"]
    r["session_invocations"] = (
        ci.get("ws-authorize", 0) + ci.get("ws-connect", 0) + di.get("ws-disconnect", 0)
    ) / sockets

    # -- a keep-all media playlist: bytes per listed segment, and how well it gzips
    ps = counts["playlist_sample"]
    r["playlist_bytes_per_segment"] = ps["bytes"] / ps["segments"]
    r["playlist_gzip_ratio"] = ps["gzip_bytes"] / ps["bytes"]
    return r


# ================================================================ the model


def tiered(units: float, tiers) -> float:
    cost, left = 0.0, units
    for size, rate in tiers:
        take = min(left, size)
        cost += take * rate
        left -= take
        if left <= 0:
            break
    return cost


def capacity_for(cores: float) -> int:
    return max(1, int(cores * FLEET["cpu_headroom"] / FLEET["ladder_cpu_s_per_media_s"]))


def tasks_for(streams: int) -> int:
    """Tasks the target tracking keeps: active / capacity at the target utilisation."""
    per_task = capacity_for(FLEET["task_vcpu"]) * FLEET["target_utilisation"]
    return max(FLEET["min_tasks"], math.ceil(streams / per_task))


def fleet_rate(r: dict, name: str) -> float:
    """The measured rate when the measured node had the fleet, else the design figure."""
    return r.get(name) or FLEET[name]


def scenario(r: dict, streams: int, vps: int, hours: float, a: dict) -> dict:
    p = PRICES
    viewers = streams * vps
    vh = viewers * hours  # viewer-hours
    sh = streams * hours  # stream-hours
    tasks = tasks_for(streams)
    task_hour = FLEET["task_vcpu"] * p["fargate_vcpu_hour"] + FLEET["task_gb"] * p["fargate_gb_hour"]
    lines: dict[str, float] = {}
    q: dict[str, float] = {}  # quantities, for the notes

    q["tasks"] = tasks
    q["vcpu_hours"] = tasks * FLEET["task_vcpu"] * hours
    lines["Ingest compute (Fargate + public IPv4)"] = tasks * hours * (task_hour + p["public_ipv4_hour"])

    # S3: ingest PUTs; origin GETs from the regional edge caches; storage of the recording.
    q["s3_puts"] = r["s3_puts_per_stream_hour"] * sh
    objects_per_s = 2 * 2  # (viewer rung + audio) x (playlist + segment)
    caches = min(a["regional_edge_caches"], vps)
    q["s3_gets"] = streams * caches * objects_per_s * 3600 * hours
    lines["S3 requests (PUT segments/playlists, origin GET)"] = q["s3_puts"] * p["s3_put"] + q["s3_gets"] * p["s3_get"]
    q["stored_gb"] = r["stored_gb_per_stream_hour"] * sh
    lines["S3 storage (the recordings, per month kept)"] = q["stored_gb"] * p["s3_gb_month"] * a["recording_months"]

    # Realtime and viewer activity.
    chat_msgs = min(vps * a["chat_per_viewer_hour"], a["chat_per_stream_hour_cap"]) * sh
    sessions = viewers * a["sessions_per_viewer_hour"] * hours
    viewer_minutes = vh * 60
    q["chat_msgs"] = chat_msgs
    nodes_hours = tasks * hours
    bucket_writes = min(r.get("analytics_bucket_writes_per_viewer_minute", 0.0) * vps * 60,
                        a["analytics_bucket_writes_per_stream_hour_cap"]) * sh
    q["analytics_bucket_writes"] = bucket_writes
    wru = (bucket_writes * a["analytics_bucket_wru"]
           + r.get("feed_wru_per_stream_hour", 0.0) * sh
           + r["ingest_wru_per_stream_hour"] * sh
           + fleet_rate(r, "lease_writes_per_stream_hour") * sh
           + fleet_rate(r, "registry_writes_per_node_hour") * nodes_hours
           + r["viewer_wru_per_minute"] * viewer_minutes
           + r["chat_wru"] * chat_msgs
           + r["session_wru"] * sessions)
    conn_rru = max(0.5, vps * r["conn_item_bytes"] / 4096)  # one fan-out Query of a stream's CONN# items
    rru = (r.get("feed_rru_per_stream_hour", 0.0) * sh
           + r["ingest_rru_per_stream_hour"] * sh
           + r["viewer_rru_per_minute"] * viewer_minutes
           + r["chat_rru"] * chat_msgs
           + (r["fanout_queries_per_stream_hour"] * sh + r["chat_queries"] * chat_msgs) * conn_rru
           + (r["session_rru"] + a["rest_calls_per_session"]) * sessions)
    q["wru"], q["rru"] = wru, rru
    lines["DynamoDB (on-demand reads + writes)"] = wru * p["ddb_wru"] + rru * p["ddb_rru"]

    posts_per_msg = vps + 1  # the measured fan-out reaches every socket of the stream
    posts = r["posts_per_viewer_minute"] * viewer_minutes + r["chat_posts_per_socket"] * posts_per_msg * chat_msgs
    q["posts"] = posts
    invocations_handlers = (r["heartbeat_invocations_per_viewer_minute"] * viewer_minutes
                            + r["chat_invocations"].get("ws-chat", 1.0) * chat_msgs
                            + sessions * (r["session_invocations"] + a["rest_calls_per_session"]))
    fanout_inv = (r["fanout_invocations_per_stream_hour"] * sh
                  + r["chat_invocations"].get("events-fanout", 0.0) * chat_msgs)
    q["invocations"] = invocations_handlers + fanout_inv
    gb_s = a["lambda_gb"] / 1000 * (
        a["lambda_handler_ms"] * (invocations_handlers + fanout_inv) + a["lambda_post_ms"] * posts)
    lines["Lambda (requests + GB-s)"] = q["invocations"] * p["lambda_request"] + gb_s * p["lambda_gb_s"]

    ws_msgs = posts + r["client_msgs_per_viewer_minute"] * viewer_minutes + chat_msgs
    q["ws_msgs"] = ws_msgs
    lines["API Gateway (WebSocket messages + minutes, HTTP API)"] = (
        tiered(ws_msgs, p["apigw_ws_message_tiers"])
        + viewer_minutes * p["apigw_ws_connection_minute"]
        + sessions * a["rest_calls_per_session"] * p["apigw_http_request"])

    gb_per_viewer_hour = r["gb_per_hour"][a["viewer_rung"]] + r["gb_per_hour"].get("audio", 0.0)
    playlist_bytes = (r["playlist_bytes_per_segment"] * a["stream_age_avg_s"] / a["segment_seconds"]
                      * (r["playlist_gzip_ratio"] if a["playlists_compressed"] else 1.0))
    q["cdn_playlist_gb"] = vh * 3600 * a["playlist_reloads_per_viewer_second"] * playlist_bytes / 1e9
    q["cdn_gb"] = gb_per_viewer_hour * vh + q["cdn_playlist_gb"]
    q["cdn_requests"] = vh * 3600 * a["cdn_requests_per_viewer_second"]
    lines["CloudFront (egress + HTTPS requests)"] = (tiered(q["cdn_gb"], p["cloudfront_gb_tiers"])
                                                    + q["cdn_requests"] * p["cloudfront_https_request"])

    ingest_gb = a["ingest_mbps"] * 3600 / 8 / 1000 * sh
    nlcu = max(ingest_gb / hours, streams / 100_000 if streams else 0)
    lines["NLB (hour + NLCU)"] = hours * (p["nlb_hour"] + nlcu * p["nlb_nlcu_hour"])

    lines["CloudWatch (metric + PutMetricData)"] = (
        FLEET["custom_metrics"] * p["cw_metric_month"] * hours / HOURS_PER_MONTH
        + FLEET["put_metric_data_per_node_hour"] * nodes_hours * p["cw_put_request"])

    # Amazon IVS for the same hour: STANDARD channel input + output at the same resolution,
    # the scenario's hours taken as the month's whole volume for the tiers (as CloudFront's).
    res = a["viewer_rung"]
    mult = 1.0 if res == "720p" else (p["ivs_output_fhd_of_hd"] if res == "1080p" else p["ivs_output_sd_of_hd"])
    ivs_tiers = list(zip(p["ivs_output_tier_hours"], [x * mult for x in p["ivs_output_hd"]]))
    ivs = {"IVS input (STANDARD channel)": sh * p["ivs_input_standard_hour"],
           f"IVS output ({res} viewer-hours)": tiered(vh, ivs_tiers)}
    video_keys = ["Ingest compute (Fargate + public IPv4)", "S3 requests (PUT segments/playlists, origin GET)",
                  "CloudFront (egress + HTTPS requests)", "NLB (hour + NLCU)", "CloudWatch (metric + PutMetricData)"]
    return {"lines": lines, "quantities": q, "ivs": ivs,
            "total": sum(lines.values()), "video_total": sum(lines[k] for k in video_keys),
            "ivs_total": sum(ivs.values())}


def idle_month(r: dict) -> dict:
    p = PRICES
    registry = fleet_rate(r, "registry_writes_per_node_hour")
    task_hour = FLEET["task_vcpu"] * p["fargate_vcpu_hour"] + FLEET["task_gb"] * p["fargate_gb_hour"]
    lines = {
        "Ingest compute (Fargate + public IPv4)": FLEET["min_tasks"] * HOURS_PER_MONTH * (task_hour + p["public_ipv4_hour"]),
        "NLB (hour + NLCU)": HOURS_PER_MONTH * p["nlb_hour"],
        "DynamoDB (on-demand reads + writes)": registry * HOURS_PER_MONTH * FLEET["min_tasks"] * p["ddb_wru"],
        "CloudWatch (metric + PutMetricData)": FLEET["custom_metrics"] * p["cw_metric_month"]
        + FLEET["put_metric_data_per_node_hour"] * HOURS_PER_MONTH * FLEET["min_tasks"] * p["cw_put_request"],
        "ECR (the ingest image)": FLEET["image_gb"] * p["ecr_gb_month"],
    }
    return {"lines": lines, "total": sum(lines.values())}


def money(x: float) -> str:
    if x == 0:
        return "0"
    if x < 0.01:
        return f"{x:.4f}"
    if x < 100:
        return f"{x:,.2f}"
    return f"{x:,.0f}"


def render(r: dict, a: dict, counts: dict) -> str:
    results = [(name, scenario(r, s, v, h, a)) for name, s, v, h in SCENARIOS]
    idle = idle_month(r)
    keys = list(results[0][1]["lines"].keys())
    head = ["cost line (USD)"] + [n.split(":")[0] for n, _ in results] + ["idle, per month"]
    out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for k in keys:
        row = [k] + [money(res["lines"][k]) for _, res in results] + [money(idle["lines"].get(k, 0.0))]
        out.append("| " + " | ".join(row) + " |")
    out.append("| " + " | ".join(["ECR (the ingest image)"] + ["-"] * len(results)
                                 + [money(idle["lines"]["ECR (the ingest image)"])]) + " |")
    out.append("| " + " | ".join(["**Rill total**"] + [f"**{money(res['total'])}**" for _, res in results]
                                 + [f"**{money(idle['total'])}**"]) + " |")
    out.append("| " + " | ".join(["Rill video only (compute, S3 req., CDN, NLB, CW)"]
                                 + [money(res["video_total"]) for _, res in results] + [""]) + " |")
    for k in results[0][1]["ivs"]:
        out.append("| " + " | ".join([k] + [money(res["ivs"][k]) for _, res in results] + ["0"]) + " |")
    out.append("| " + " | ".join(["**Amazon IVS total (video only)**"]
                                 + [f"**{money(res['ivs_total'])}**" for _, res in results] + ["**0**"]) + " |")
    out.append("")
    for name, res in results:
        q = res["quantities"]
        out.append(
            f"- {name}: {q['tasks']:,} task(s) ({q['vcpu_hours']:,.0f} vCPU-h), {q['s3_puts']:,.0f} S3 PUTs, "
            f"{q['s3_gets']:,.0f} origin GETs, {q['stored_gb']:,.1f} GB recorded, {q['wru']:,.0f} WRU + "
            f"{q['rru']:,.0f} RRU, {q['chat_msgs']:,.0f} chat messages, {q['invocations']:,.0f} Lambda invocations, "
            f"{q['posts']:,.0f} PostToConnection, {q['ws_msgs']:,.0f} WebSocket messages, "
            f"{q['cdn_gb']:,.0f} GB (of which playlists {q['cdn_playlist_gb']:,.0f} GB) + "
            f"{q['cdn_requests']:,.0f} requests from CloudFront.")
    return "\n".join(out)


def render_counts(r: dict, counts: dict) -> str:
    g = r["gb_per_hour"]
    mbps = {k: v * 8 * 1000 / 3600 for k, v in g.items()}
    return "\n".join([
        f"Measured ({counts.get('measured_at', '?')}, {counts['phase_seconds']} s watch + "
        f"{counts['phase_seconds']} s chat, {counts['viewers']} viewers + 1 chatter, "
        f"{counts['chat_messages']} chat messages):",
        f"- S3 PUTs per stream-hour: {r['s3_puts_per_stream_hour']:,.0f} "
        f"({r['s3_puts_segment']:,.0f} segments + {r['s3_puts_playlist']:,.0f} playlists + "
        f"{r['s3_puts_other']:,.0f} thumbnails/other) over {len(r['renditions'])} renditions "
        f"({', '.join(r['renditions'])})",
        "- media per stream-hour: " + ", ".join(f"{k} {g[k]:.2f} GB ({mbps[k]:.2f} Mbit/s)" for k in r["renditions"])
        + f"; {r['stored_gb_per_stream_hour']:.2f} GB in all",
        f"- ingest node DynamoDB: {r['sample_writes_per_stream_hour']:,.0f} quality-sample writes and "
        f"{r['ingest_wru_per_stream_hour']:,.0f} WRU in all per stream-hour without the fleet's, "
        f"{r['ingest_rru_per_stream_hour']:,.0f} RRU per stream-hour (status checks, viewer counts, lease reads); "
        + (f"fleet: {r['lease_writes_per_stream_hour']:,.0f} lease writes per stream-hour and "
           f"{r['registry_writes_per_node_hour']:,.0f} registry writes per node-hour measured (design: "
           f"{FLEET['lease_writes_per_stream_hour']} and {FLEET['registry_writes_per_node_hour']})"
           if r["lease_writes_per_stream_hour"] else
           f"fleet not in the measured node: its design figures, {FLEET['lease_writes_per_stream_hour']} lease "
           f"writes per stream-hour and {FLEET['registry_writes_per_node_hour']} registry writes per node-hour"),
        f"- per viewer-minute: {r['posts_per_viewer_minute']:.1f} PostToConnection, "
        f"{r['client_msgs_per_viewer_minute']:.2f} client messages (heartbeats), "
        f"{r['heartbeat_invocations_per_viewer_minute']:.2f} Lambda invocations, "
        f"{r['viewer_rru_per_minute']:.2f} reads + {r['viewer_wru_per_minute']:.2f} writes, "
        f"{r.get('analytics_bucket_writes_per_viewer_minute', 0.0):.2f} analytics bucket writes "
        f"(small audience; capped per stream-hour)",
        f"- per stream-hour: {r['fanout_invocations_per_stream_hour']:,.0f} events-fanout invocations, "
        f"{r['fanout_queries_per_stream_hour']:,.0f} fan-out Queries of CONN# "
        f"({r['conn_item_bytes']:.0f} bytes per connection)",
        "- per chat message: " + ", ".join(f"{v:.2f} {k}" for k, v in sorted(r["chat_invocations"].items()) if v > 0.05)
        + " invocations; DynamoDB " + ", ".join(f"{v} {k}" for k, v in sorted(r["chat_ddb_calls"].items()))
        + f"; {r['chat_posts_per_socket']:.2f} PostToConnection per socket on the stream",
        f"- per viewer session ($connect + $disconnect): {r['session_invocations']:.1f} invocations, "
        f"{r['session_ddb_calls']:.1f} DynamoDB calls ({r['session_wru']:.1f} WRU, {r['session_rru']:.1f} RRU)",
        f"- keep-all media playlist: {r['playlist_bytes_per_segment']:.0f} bytes per listed segment, "
        f"gzip to {100 * r['playlist_gzip_ratio']:.0f} %",
    ])


# ================================================================ command line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", default=str(ROOT / "scripts/cost-counts.json"), help="measured counts (JSON)")
    ap.add_argument("--measure", action="store_true", help="measure on a local stack and write --counts first")
    ap.add_argument("--viewers", type=int, default=10, help="viewer sockets while measuring")
    ap.add_argument("--phase-seconds", type=int, default=60, help="length of the watch and chat phases")
    ap.add_argument("--viewer-rung", default=ASSUMPTIONS["viewer_rung"], choices=["1080p", "720p", "480p", "360p"])
    ap.add_argument("--chat-per-viewer-hour", type=float, default=ASSUMPTIONS["chat_per_viewer_hour"])
    ap.add_argument("--uncompressed-playlists", action="store_true", help="price playlists without CDN gzip")
    ap.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    args = ap.parse_args()
    if args.measure:
        counts = measure(args.viewers, args.phase_seconds, lambda s: print(s, file=sys.stderr, flush=True))
        counts["measured_at"] = time.strftime("%Y-%m-%d")
        counts["how"] = "python3 scripts/cost-model.py --measure (see its docstring)"
        Path(args.counts).write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    counts = json.loads(Path(args.counts).read_text())
    a = dict(ASSUMPTIONS, viewer_rung=args.viewer_rung, chat_per_viewer_hour=args.chat_per_viewer_hour,
             playlists_compressed=not args.uncompressed_playlists)
    r = rates_from(counts)
    if args.json:
        print(json.dumps({
            "prices_as_of": PRICES_AS_OF,
            "rates": r,
            "scenarios": {name: scenario(r, s, v, h, a) for name, s, v, h in SCENARIOS},
            "idle_month": idle_month(r),
        }, indent=1, default=str))
        return
    print(f"Prices: {PRICES_AS_OF}. Viewers on the {a['viewer_rung']} rung; "
          f"{a['chat_per_viewer_hour']:g} chat messages per viewer-hour (at most "
          f"{a['chat_per_stream_hour_cap']:,} per stream-hour).\n")
    print(render(r, a, counts))
    print()
    print(render_counts(r, counts))


if __name__ == "__main__":
    main()
