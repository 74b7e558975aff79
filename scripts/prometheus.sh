#!/usr/bin/env bash
# Build a real Prometheus server and promtool once into the tool cache, for the
# real-sender test (a Prometheus that scrapes and remote-writes to the gateway) and the
# export test (promtool tsdb analyze / tsdb dump over the blocks export writes).
#
#   bash scripts/prometheus.sh          # no-op when the pinned version is already built
#
# Where: ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/{prometheus,promtool}, each with a
# .version stamp beside it. Tests find them there, or at $TAILOR_PROMETHEUS and
# $TAILOR_PROMTOOL. Only the Go module proxy is used.
#
# Cost: the Prometheus module pulls in every service-discovery SDK (AWS, Azure, GCE,
# Kubernetes, ...). Cold, with an empty module and build cache, both commands take about
# 17 minutes on a loaded 2-core machine; both are built by one go install, so the shared
# packages compile once. Warm (the stamps match), this script returns at once.
set -euo pipefail

VERSION=v0.316.0
MOD=github.com/prometheus/prometheus
CACHE="${TAILOR_CACHE:-$HOME/.cache/tailor}"
BINDIR="$CACHE/bin"

fresh=1
for tool in prometheus promtool; do
  if [[ ! -x "$BINDIR/$tool" || ! -f "$BINDIR/$tool.version" || "$(cat "$BINDIR/$tool.version")" != "$VERSION" ]]; then
    fresh=0
  fi
done
if [[ $fresh == 1 ]]; then
  echo "prometheus and promtool $VERSION already built: $BINDIR"
  exit 0
fi

mkdir -p "$BINDIR"
tmp="$(mktemp -d "$BINDIR/.build-prometheus.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building prometheus and promtool $VERSION into $BINDIR (once; cold about 17 minutes on 2 cores)"
start=$(date +%s)
# Clear GOFLAGS: the project's (-tags, -mod) are not meant for a foreign module.
# Run outside the repository so its go.mod plays no part.
(cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "$MOD/cmd/prometheus@$VERSION" "$MOD/cmd/promtool@$VERSION")

"$tmp/prometheus" --version >/dev/null
"$tmp/promtool" --version >/dev/null
for tool in prometheus promtool; do
  mv -f "$tmp/$tool" "$BINDIR/$tool"
  echo "$VERSION" >"$BINDIR/$tool.version"
done
echo "built $BINDIR/prometheus and $BINDIR/promtool in $(( $(date +%s) - start )) s"
