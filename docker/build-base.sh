#!/usr/bin/env bash
# A Debian bookworm base image made locally, for machines that reach Debian's and Python's package
# registries but no image registry (so `FROM python:3.11-slim-bookworm` cannot be pulled).
#
#   docker/build-base.sh [TAG]          # default TAG: localhost/bookworm:local
#   docker build -f docker/Dockerfile --build-arg BASE_IMAGE=localhost/bookworm:local -t mmg4:cpu .
#
# Needs root, mmdebstrap (apt-get install mmdebstrap) and a running Docker (or Podman: ENGINE=podman).
# The image's apt sources are this machine's (/etc/apt/sources.list.d/*.sources or sources.list), so
# `apt-get install` inside a build reaches the same Debian mirror. Debian's python3 is 3.11 on bookworm.
set -euo pipefail
tag=${1:-localhost/bookworm:local}
engine=${ENGINE:-docker}
sources=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
[ -n "$sources" ] || sources=/etc/apt/sources.list
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mmdebstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs.tar" "$sources"
"$engine" import "$work/rootfs.tar" "$tag"
echo "built $tag"
