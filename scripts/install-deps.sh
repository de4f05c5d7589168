#!/usr/bin/env bash
# Installs the Debian 12 packages compacter.cpp builds with (run as root; skips what is present).
# Extra package names given as arguments are installed too (the demo adds wordnet-base).
set -euo pipefail
# libopenblas0-openmp: without it libtorch's BLAS resolves to the reference BLAS (libblas3), and
# matrix products run ~15x slower (measured: 6 vs 90 GFLOP/s per core).
# libgoogle-perftools-dev: TCMalloc, the program's allocator (CMakeLists.txt, COMPACTER_TCMALLOC).
# libcpp-httplib-dev: the HTTP server of `serve --http` (tools/compacter/http_serve.cpp).
# libgloo-dev: the headers that c10d's ProcessGroupGloo (data-parallel training) is compiled against.
# libxml2-utils (xmllint), chromium-headless-shell (a 64 MB .deb; on the dev VM 98 MB downloaded
# and 303 MB installed with its dependencies), fonts-dejavu-core, zlib1g-dev: tests/plot_tools
# checks the SVG figures with xmllint and renders one in headless Chromium, decoding the PNG with
# zlib (skipped without them).
pkgs=(build-essential cmake pkg-config libtorch-dev libopenblas0-openmp libsentencepiece-dev
      sentencepiece nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev
      libgoogle-perftools-dev libcpp-httplib-dev libgloo-dev
      libxml2-utils chromium-headless-shell fonts-dejavu-core zlib1g-dev "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
