#!/usr/bin/env bash
# Installs every Debian package kfront needs to build, test and benchmark.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential meson ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libevent-dev libnghttp2-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler
  libcriterion-dev libyaml-dev libjsmn-dev libhttp-parser-dev libbsd-dev
  openssl curl nghttp2-client haproxy wrk nginx-light bc python3 python3-kubernetes python3-yaml
  python3-h2 zlib1g-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# kubectl comes from Debian's kubernetes-client only where the machine has none.
command -v kubectl >/dev/null 2>&1 || $SUDO apt-get install -y -q --no-install-recommends kubernetes-client || true
