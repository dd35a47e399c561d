# Sourced by scripts/demo and scripts/test: installs the Debian packages a command needs when
# they are missing. Building needs libclang-dev (bindgen, for the `rocksdb` crate) and
# librocksdb-dev (Debian's RocksDB 7.8, linked instead of compiling the bundled C++ sources:
# .cargo/config.toml points ROCKSDB_LIB_DIR at it). Other systems: install those by hand.

# ensure_packages WHY PKG...: installs the PKGs dpkg does not list as installed.
ensure_packages() {
  local why="$1" missing=() p
  shift
  command -v dpkg >/dev/null 2>&1 || return 0
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "$(basename "$0"): installing ${missing[*]} ($why)" >&2
    local sudo_=""
    [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}"
  fi
}

ensure_build_deps() {
  ensure_packages "needed to build against RocksDB" libclang-dev librocksdb-dev g++
}
