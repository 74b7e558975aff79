#!/usr/bin/env bash
# Build staticcheck (honnef.co/go/tools, MIT) once into the tool cache, for make lint.
#
#   bash scripts/staticcheck.sh        # no-op when the pinned version is already built
#
# Where: ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/staticcheck, with a .version stamp
# beside it, like versitygw. Only the Go module proxy is used (scripts/gotool.sh); the
# tool stays out of go.mod.
set -euo pipefail
exec bash "$(dirname "$0")/gotool.sh" staticcheck v0.8.2 honnef.co/go/tools/cmd/staticcheck -version
