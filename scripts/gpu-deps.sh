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
# SentencePiece's sources (Debian's, with Debian's patches, less its test data and Python
# module): gpu-check.sh builds them there as static archives linked into the shim, so that the
# tokenizer and its bundled protobuf are compiled by that machine's compiler and none of their
# symbols can meet libtorch's (Debian's shared libsentencepiece failed there with a protobuf
# CHECK, session 4). `apt-get source` needs deb-src entries; one is added when none exists.
if [[ ! -f .gpudeps/sentencepiece-src.tar.gz ]]; then
  if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      >/etc/apt/sources.list.d/compacter-deb-src.sources
    apt-get update -qq
  fi
  src=$(mktemp -d)
  (cd "$src" && apt-get source -qq sentencepiece >/dev/null 2>&1)
  dir=$(find "$src" -maxdepth 1 -type d -name "sentencepiece-*" | head -1)
  # Debian's packaging drops the static archives; they are what the shim links here.
  patch -d "$dir" -R -p1 -s <"$dir/debian/patches/disable-static-library.patch"
  rm -rf "$dir"/{data,python,doc,debian,.pc} && find "$dir/src" -name "*_test.cc" -delete
  tar -C "$src" -czf .gpudeps/sentencepiece-src.tar.gz "$(basename "$dir")"
  rm -rf "$src"
fi
if [[ -d ../shared/data ]]; then
  rm -rf .gpushared && mkdir -p .gpushared && cp -r ../shared/data .gpushared/data
fi
du -sh .gpudeps .gpushared 2>/dev/null
