#!/usr/bin/env bash
# Build versitygw (a real S3 API gateway over a POSIX directory, Apache-2.0) once into
# the tool cache, for the S3 tests (storage/s3test), make demo-s3 and make bench-s3.
#
#   bash scripts/versitygw.sh          # no-op when the pinned version is already built
#
# Where: ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/versitygw, with a .version stamp beside
# it. Tests find it there, or at $TAILOR_VERSITYGW. Only the Go module proxy is used.
set -euo pipefail

VERSION=v1.8.0
PKG=github.com/versity/versitygw/cmd/versitygw
CACHE="${TAILOR_CACHE:-$HOME/.cache/tailor}"
BINDIR="$CACHE/bin"
BIN="$BINDIR/versitygw"
STAMP="$BIN.version"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
  echo "versitygw $VERSION already built: $BIN"
  exit 0
fi

mkdir -p "$BINDIR"
tmp="$(mktemp -d "$BINDIR/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "building versitygw $VERSION into $BIN (once; about 2 minutes on 2 cores)"
# Clear GOFLAGS: the project's (-tags, -mod) are not meant for a foreign module.
# Run outside the repository so its go.mod plays no part.
if ! (cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "$PKG@$VERSION"); then
  # Fallback for a go install that refuses (replace directives, a toolchain mismatch):
  # a throwaway module that requires versitygw and builds the command.
  echo "go install failed; building through a temporary module" >&2
  mkdir -p "$tmp/mod"
  (
    cd "$tmp/mod"
    GOFLAGS= go mod init tailor-tools-versitygw >/dev/null 2>&1
    GOFLAGS= go get "$PKG@$VERSION"
    GOFLAGS=-mod=mod go build -o "$tmp/versitygw" "$PKG"
  )
fi

"$tmp/versitygw" --help >/dev/null
mv -f "$tmp/versitygw" "$BIN"
echo "$VERSION" >"$STAMP"
echo "built $BIN"
