# Sourced by scripts/demo and scripts/test: installs the Debian packages building the embedded
# RocksDB (the `rocksdb` crate) needs when they are missing: libclang-dev (bindgen) and g++ (its
# C++ sources). Other systems: install libclang and a C++ compiler by hand.
ensure_build_deps() {
  local missing=()
  if command -v dpkg >/dev/null 2>&1; then
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  fi
  command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 || missing+=(g++)
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): installing ${missing[*]} (needed to build the embedded RocksDB)" >&2
    local sudo_=""
    [ "$(id -u)" = 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}"
  fi
}
