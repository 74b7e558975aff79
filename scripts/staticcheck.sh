#!/usr/bin/env bash
# Build staticcheck (honnef.co/go/tools, MIT) once into the tool cache, for make lint.
#
#   bash scripts/staticcheck.sh        # no-op when the pinned version is already built
#
# Where: ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/staticcheck, with a .version stamp
# beside it, like versitygw (scripts/versitygw.sh). Only the Go module proxy is used;
# the tool stays out of go.mod.
set -euo pipefail

VERSION=v0.8.2
PKG=honnef.co/go/tools/cmd/staticcheck
CACHE="${TAILOR_CACHE:-$HOME/.cache/tailor}"
BINDIR="$CACHE/bin"
BIN="$BINDIR/staticcheck"
STAMP="$BIN.version"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
  echo "staticcheck $VERSION already built: $BIN"
  exit 0
fi

mkdir -p "$BINDIR"
tmp="$(mktemp -d "$BINDIR/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building staticcheck $VERSION into $BIN (once)"
# Clear GOFLAGS: the project's (-tags) are not meant for a foreign module. Run outside
# the repository so its go.mod plays no part.
(cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "$PKG@$VERSION")
"$tmp/staticcheck" -version >/dev/null
mv -f "$tmp/staticcheck" "$BIN"
echo "$VERSION" >"$STAMP"
echo "built $BIN"
