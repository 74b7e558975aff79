#!/usr/bin/env bash
# Build a Go command once into the tool cache, from the Go module proxy:
#
#   bash scripts/gotool.sh NAME VERSION PACKAGE [CHECK-ARG]
#
# e.g. `bash scripts/gotool.sh staticcheck v0.8.2 honnef.co/go/tools/cmd/staticcheck
# -version`. A no-op when that version is built already. Where:
# ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/NAME, with a NAME.version stamp beside it.
# The tool never enters go.mod. After building, `NAME CHECK-ARG` (default --help) must
# succeed. scripts/versitygw.sh and scripts/staticcheck.sh call it.
set -euo pipefail

NAME=$1
VERSION=$2
PKG=$3
CHECK=${4:---help}
CACHE="${TAILOR_CACHE:-$HOME/.cache/tailor}"
BINDIR="$CACHE/bin"
BIN="$BINDIR/$NAME"
STAMP="$BIN.version"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
  echo "$NAME $VERSION already built: $BIN"
  exit 0
fi

mkdir -p "$BINDIR"
tmp="$(mktemp -d "$BINDIR/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building $NAME $VERSION into $BIN (once)"
# Clear GOFLAGS: the project's (-tags, -mod) are not meant for a foreign module.
# Run outside the repository so its go.mod plays no part.
if ! (cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "$PKG@$VERSION"); then
  # Fallback for a go install that refuses (replace directives, a toolchain mismatch):
  # a throwaway module that requires the tool and builds the command.
  echo "go install failed; building through a temporary module" >&2
  mkdir -p "$tmp/mod"
  (
    cd "$tmp/mod"
    GOFLAGS= go mod init "tailor-tools-$NAME" >/dev/null 2>&1
    GOFLAGS= go get "$PKG@$VERSION"
    GOFLAGS=-mod=mod go build -o "$tmp/$NAME" "$PKG"
  )
fi

"$tmp/$NAME" "$CHECK" >/dev/null
mv -f "$tmp/$NAME" "$BIN"
echo "$VERSION" >"$STAMP"
echo "built $BIN"
