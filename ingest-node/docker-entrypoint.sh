#!/bin/sh
# Entry point of the rill-ingest image: fills in WEBRTC_ADVERTISE_IP, then execs the node
# (so the node is PID 1 and gets SIGTERM itself).
#
# The node binds WebRTC media on WEBRTC_UDP_ADDR (0.0.0.0:8890 in the image) and refuses to
# start on a wildcard address unless it knows which address to put in its ICE candidates
# (WEBRTC_ADVERTISE_IP). Until the node discovers its public address itself (ECS task
# metadata + the task's network interface), this falls back to the container's first own
# address:
#   * docker run / compose on one host: that address is reachable from the host;
#   * ECS Fargate: it is the task's *private* VPC address, so RTMP works but a WHIP
#     publisher on the internet cannot reach the media port. Set WEBRTC_ADVERTISE_IP
#     (e.g. an Elastic IP) where that matters.
set -eu

if [ -z "${WEBRTC_ADVERTISE_IP:-}" ]; then
    case "${WEBRTC_UDP_ADDR:-}" in
    0.0.0.0:*)
        ip=""
        for a in $(hostname -I 2>/dev/null || true); do
            case "$a" in
            *.*.*.*) ip="$a" && break ;;
            esac
        done
        if [ -n "$ip" ]; then
            WEBRTC_ADVERTISE_IP="$ip"
            export WEBRTC_ADVERTISE_IP
            echo "rill-ingest-entrypoint: WEBRTC_ADVERTISE_IP unset; advertising $ip (the container's own IPv4 address)" >&2
        fi
        ;;
    esac
fi

exec /usr/local/bin/rill-ingest "$@"
