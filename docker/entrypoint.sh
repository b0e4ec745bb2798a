#!/bin/sh
# Every container of the images starts here. The profile is MMG4_PROFILE (else MMG4_CONFIG, else the
# toy profile). When the environment overrides part of it (MMG4_MEMORY_URL: the translation memory's
# database; MMG4_LAKE_ROOT: the storage root), the profile is written with those values to a temporary
# file and MMG4_CONFIG points at it, so one image serves a laptop, compose and a cluster. Run containers
# inherit MMG4_PROFILE (not the derived MMG4_CONFIG, a file of another container) and derive their own.
set -e
MMG4_PROFILE="${MMG4_PROFILE:-${MMG4_CONFIG:-configs/toy.yaml}}"
export MMG4_PROFILE MMG4_CONFIG="$MMG4_PROFILE"
if [ -n "${MMG4_MEMORY_URL:-}${MMG4_LAKE_ROOT:-}" ]; then
  derived=$(mktemp "${TMPDIR:-/tmp}/mmg4-profile.XXXXXX.yaml")
  python /app/docker/derive_profile.py "$MMG4_PROFILE" "$derived"
  export MMG4_CONFIG="$derived"
fi
exec "$@"
