# Sourced by scripts/demo and scripts/test: installs the Debian packages the `rocksdb` crate needs
# when they are missing: librocksdb-dev (the RocksDB linked, see .cargo/config.toml), libclang-dev
# (its bindings are generated at build time) and g++. Other systems: install RocksDB 7.x, libclang
# and a C++ compiler, and point ROCKSDB_LIB_DIR at the library.
ensure_build_deps() {
  local missing=()
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
    dpkg -s librocksdb-dev >/dev/null 2>&1 || missing+=(librocksdb-dev)
  fi
  command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 || missing+=(g++)
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): installing ${missing[*]} (needed to build and link RocksDB)" >&2
    local sudo_=""
    [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}"
  fi
}
