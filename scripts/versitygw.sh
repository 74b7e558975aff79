#!/usr/bin/env bash
# Build versitygw (a real S3 API gateway over a POSIX directory, Apache-2.0) once into
# the tool cache, for the S3 tests (storage/s3test), make demo-s3 and make bench-s3.
#
#   bash scripts/versitygw.sh          # no-op when the pinned version is already built
#
# Where: ${TAILOR_CACHE:-$HOME/.cache/tailor}/bin/versitygw, with a .version stamp beside
# it (about 2 minutes on 2 cores). Tests find it there, or at $TAILOR_VERSITYGW. Only
# the Go module proxy is used (scripts/gotool.sh).
set -euo pipefail
exec bash "$(dirname "$0")/gotool.sh" versitygw v1.8.0 github.com/versity/versitygw/cmd/versitygw --help
