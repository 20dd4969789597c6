# Shared helpers for the project's scripts. Source, don't run.

# Build output lives outside the clone so fresh clones reuse it (CI sets its own).
: "${CARGO_TARGET_DIR:=${HOME:-/root}/.cache/myna-kyukyu/target}"
export CARGO_TARGET_DIR

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages PKG...: install missing Debian packages (apt-get update first).
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "could not install ${missing[*]}"
}

# ensure_cargo_tool NAME VERSION: install a cargo subcommand from crates.io if it is missing.
ensure_cargo_tool() {
  local name=$1 version=$2
  command -v "$name" >/dev/null 2>&1 && return 0
  log "installing $name $version (cargo install)"
  cargo install --locked --quiet "$name" --version "$version" || die "could not install $name"
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust toolchain (rustup) first"
}

# Packages every build and test needs; the IPAex Gothic font is embedded in the handoff PDF.
BASE_PACKAGES=(gcc libc6-dev pkg-config sqlite3 ca-certificates libpcsclite-dev fonts-ipaexfont-gothic)

# The PDF tests read the handoff back with poppler (pdftoppm, pdftotext, pdffonts).
REPORT_PACKAGES=(poppler-utils)

# The PC/SC stack the card tests run against: pcscd with the vsmartcard virtual reader, and
# OpenSC as an unmodified third-party client.
CARD_PACKAGES=(pcscd vsmartcard-vpcd opensc)

# The browser tests: Debian's Chromium (playwright-core drives it; nothing is downloaded).
BROWSER_PACKAGES=(chromium fonts-noto-cjk curl libnss3-tools)

# The partition test (crates/myna-kyukyu/tests/partition.rs): network namespaces, veth pairs
# and iptables rules that it makes and removes itself (as root).
NETWORK_PACKAGES=(iproute2 iptables procps)
