#!/usr/bin/env bash
# make demo-s3: the demo (embedded Kafka → sink → run → check of every point) end to end
# against a local S3 server: versitygw from the tool cache (scripts/versitygw.sh), started
# on a free loopback port with a fresh data directory, and stopped at the end.
#
#   bash scripts/demo-s3.sh [demo flags...]     # e.g. --series 1000
#
# The store is s3://tailor-demo/demo?endpoint=http://127.0.0.1:<port>; the credentials
# reach Tailor through the standard AWS variables, as they would in production.
set -euo pipefail

BIN="${BIN:-bin/tailor-batch}"
CACHE="${TAILOR_CACHE:-$HOME/.cache/tailor}"
VGW="${TAILOR_VERSITYGW:-$CACHE/bin/versitygw}"
ACCESS=tailor-demo-access
SECRET=tailor-demo-secret-key-0123456789
REGION=us-east-1
BUCKET=tailor-demo

[[ -n "${TAILOR_VERSITYGW:-}" ]] || bash "$(dirname "$0")/versitygw.sh" >/dev/null
[[ -x "$BIN" ]] || { echo "demo-s3: $BIN not built: run make build" >&2; exit 1; }

# A free loopback port: nothing answers a connect to it.
port=""
for p in $(shuf -i 20000-60000 -n 50); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || { echo "demo-s3: no free port found" >&2; exit 1; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/tailor-demo-s3.XXXXXX")"
mkdir -p "$dir/data" "$dir/meta"
# --sidecar keeps object metadata (ETags) in files, so the demo works on file systems
# without user xattrs too.
env -i PATH="$PATH" HOME="$dir" "$VGW" --port "127.0.0.1:$port" --access "$ACCESS" --secret "$SECRET" \
  --region "$REGION" --quiet posix --sidecar "$dir/meta" "$dir/data" >"$dir/versitygw.log" 2>&1 &
vgw=$!
cleanup() {
  kill "$vgw" 2>/dev/null || true
  wait "$vgw" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  curl -s -o /dev/null "$endpoint/" && break
  kill -0 "$vgw" 2>/dev/null || { echo "demo-s3: versitygw exited:" >&2; cat "$dir/versitygw.log" >&2; exit 1; }
  sleep 0.05
done
curl -fsS -o /dev/null -X PUT -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS:$SECRET" "$endpoint/$BUCKET" ||
  { echo "demo-s3: create bucket failed:" >&2; cat "$dir/versitygw.log" >&2; exit 1; }
echo "demo-s3: versitygw on $endpoint, bucket $BUCKET, data in $dir/data"

unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export AWS_ACCESS_KEY_ID="$ACCESS" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_REGION="$REGION" \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$dir/aws-config" AWS_SHARED_CREDENTIALS_FILE="$dir/aws-credentials"
"$BIN" demo --store "s3://$BUCKET/demo?endpoint=$endpoint" "$@"
