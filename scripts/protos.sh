#!/usr/bin/env bash
# Build, lint and compatibility-check the API protos in protos/upstream/.
#
#   scripts/protos.sh generate   Python messages, gRPC stubs, .pyi and a descriptor set
#                                with comments (descriptors.binpb) into gen/
#   scripts/protos.sh lint       buf lint (buf.yaml rules) over our protos
#   scripts/protos.sh breaking   buf breaking: working tree against branch main
#
# buf cannot fetch googleapis from the BSR here (no network), so lint and breaking run
# on a descriptor image that protoc builds with googleapis-common-protos' .proto files
# (in site-packages) on the include path; only files under upstream/ are checked.
#
# Environment: PYTHON (default .venv/bin/python), BUF (default .venv/bin/buf, else buf
# on PATH), AGAINST (git ref for `breaking`, default main), GEN_DIR (default gen).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"
if [[ -z "${BUF:-}" ]]; then
  if [[ -x .venv/bin/buf ]]; then BUF=.venv/bin/buf; else BUF=buf; fi
fi
AGAINST="${AGAINST:-main}"
PROTO_ROOT=protos
GEN_DIR="${GEN_DIR:-gen}"

site_packages() {
  "$PYTHON" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])'
}

# Our .proto files relative to $1 (a proto root), sorted, one per line.
proto_files() {
  (cd "$1" && find upstream -name '*.proto' -type f | LC_ALL=C sort)
}

# build_image <proto root> <output .binpb>: self-contained descriptor set with comments.
build_image() {
  local root="$1" out="$2" sp
  sp="$(site_packages)"
  local -a files
  mapfile -t files < <(proto_files "$root")
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "no .proto files under $root/upstream" >&2
    return 1
  fi
  "$PYTHON" -m grpc_tools.protoc -I "$root" -I "$sp" \
    --include_imports --include_source_info \
    --descriptor_set_out="$out" "${files[@]}"
}

cmd_generate() {
  local sp
  sp="$(site_packages)"
  local -a files
  mapfile -t files < <(proto_files "$PROTO_ROOT")
  rm -rf "${GEN_DIR:?}/upstream"
  mkdir -p "$GEN_DIR"
  "$PYTHON" -m grpc_tools.protoc -I "$PROTO_ROOT" -I "$sp" \
    --python_out="$GEN_DIR" --grpc_python_out="$GEN_DIR" --pyi_out="$GEN_DIR" \
    "${files[@]}"
  # The same protos with their comments, for the gateway's OpenAPI document.
  build_image "$PROTO_ROOT" "$GEN_DIR/upstream/descriptors.binpb"
  echo "generated ${#files[@]} protos into $GEN_DIR/upstream"
}

cmd_lint() {
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  build_image "$PROTO_ROOT" "$tmp/image.binpb"
  # --path limits the check to our files; the image also holds google/* imports.
  "$BUF" lint "$tmp/image.binpb" --config buf.yaml --path upstream
  echo "buf lint: OK"
}

cmd_breaking() {
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  if ! git rev-parse --verify --quiet "${AGAINST}^{commit}" >/dev/null; then
    echo "breaking: ref '$AGAINST' does not exist yet; nothing to compare against"
    return 0
  fi
  if [[ -z "$(git ls-tree -r --name-only "$AGAINST" -- "$PROTO_ROOT/upstream" | grep '\.proto$' || true)" ]]; then
    echo "breaking: '$AGAINST' has no protos under $PROTO_ROOT/upstream; nothing to compare against"
    return 0
  fi
  mkdir -p "$tmp/old"
  git archive "$AGAINST" "$PROTO_ROOT" | tar -x -C "$tmp/old"
  build_image "$tmp/old/$PROTO_ROOT" "$tmp/old.binpb"
  build_image "$PROTO_ROOT" "$tmp/new.binpb"
  "$BUF" breaking "$tmp/new.binpb" --against "$tmp/old.binpb" --config buf.yaml \
    --path upstream
  echo "buf breaking against $AGAINST: OK"
}

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  generate) cmd_generate ;;
  lint) cmd_lint ;;
  breaking) cmd_breaking ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
