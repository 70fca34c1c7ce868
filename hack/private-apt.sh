# shellcheck shell=bash
# A private apt configuration, for scripts that download Debian packages without touching the
# system's apt: its own lists, cache and sources (the system's, read through apt-config), and the
# system's settings (proxies, Check-Valid-Until, ...) without the hooks that would refresh
# system-wide caches after an update. No root is needed to download.
#
# Source this file, then: private_apt DIR [deb-src]
#   DIR      where the lists, cache and configuration live (recreated, except the cache)
#   deb-src  also fetch source indexes (for `apt-get source`)
# It exports APT_CONFIG; returns non-zero, with a message, when the system has no apt sources.

private_apt() {
  local apt_dir=$1 with_sources=${2:-} SRC_LIST SRC_PARTS CONF_PARTS f copy
  # The system's locations, from apt itself rather than assuming /etc/apt.
  eval "$(env -u APT_CONFIG apt-config shell \
    SRC_LIST Dir::Etc::sourcelist/f SRC_PARTS Dir::Etc::sourceparts/d CONF_PARTS Dir::Etc::parts/d)"

  rm -rf "$apt_dir/sources.list.d" "$apt_dir/apt.conf.d"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/sources.list.d" "$apt_dir/apt.conf.d"

  # deb822 files; with deb-src, they ask for source indexes as well as binary ones.
  for f in "$SRC_PARTS"*.sources; do
    [[ -f "$f" ]] || continue
    if [[ "$with_sources" == deb-src ]]; then
      sed 's/^Types:.*/Types: deb deb-src/' "$f" >"$apt_dir/sources.list.d/${f##*/}"
    else
      cp "$f" "$apt_dir/sources.list.d/"
    fi
  done
  # One-line files; with deb-src, every `deb` line gets a `deb-src` twin (existing deb-src lines
  # are dropped so that nothing is configured twice).
  for f in "$SRC_LIST" "$SRC_PARTS"*.list; do
    [[ -f "$f" ]] || continue
    copy="$apt_dir/sources.list.d/$(basename "$(dirname "$f")")-${f##*/}"
    if [[ "$with_sources" == deb-src ]]; then
      awk '/^[[:space:]]*deb-src[[:space:]]/ { next }
           /^[[:space:]]*deb[[:space:]]/ { print; sub(/deb/, "deb-src"); print; next }' "$f" >"$copy"
    else
      cp "$f" "$copy"
    fi
  done
  if ! compgen -G "$apt_dir/sources.list.d/*" >/dev/null; then
    echo "no apt sources found under $SRC_PARTS or $SRC_LIST" >&2
    return 1
  fi

  if [[ -d "$CONF_PARTS" ]]; then
    find "$CONF_PARTS" -maxdepth 1 -type f -exec cp {} "$apt_dir/apt.conf.d/" \;
  fi
  cat >"$apt_dir/apt.conf.d/zz-private-no-hooks" <<'APT'
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
APT
  cat >"$apt_dir/apt.conf" <<APT
Dir::State::Lists "$apt_dir/lists/";
Dir::Cache "$apt_dir/cache/";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt_dir/sources.list.d/";
Dir::Etc::Parts "$apt_dir/apt.conf.d/";
APT
  # As root, apt hands downloads to the _apt user, which cannot write into a cache under root's
  # home; the files are ours anyway.
  if [[ $EUID -eq 0 ]]; then
    echo 'APT::Sandbox::User "root";' >>"$apt_dir/apt.conf"
  fi
  export APT_CONFIG="$apt_dir/apt.conf"
}
