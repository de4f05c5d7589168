#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh carries to a lent GPU machine, which has CUDA, CMake and a
# pip torch but no apt and no network: the Debian 12 packages the build needs besides libtorch
# (downloaded here into .gpudeps/; GoogleTest also as sources, built there by the machine's compiler) and a copy of ../shared/data (into .gpushared/data). Both
# folders are git-ignored through .git/info/exclude; name them in the device run's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info .gpudeps
for d in /.gpudeps/ /.gpushared/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
done
(cd .gpudeps && apt-get download libsentencepiece0 libsentencepiece-dev nlohmann-json3-dev \
  libcli11-dev libgtest-dev googletest 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
if [[ -d ../shared/data ]]; then
  rm -rf .gpushared && mkdir -p .gpushared && cp -r ../shared/data .gpushared/data
fi
du -sh .gpudeps .gpushared 2>/dev/null
