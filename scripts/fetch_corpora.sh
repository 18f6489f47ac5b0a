#!/usr/bin/env bash
# Fetch the real-text sources from Debian's package archive (the only outside source reachable
# here) and build the three corpora with scripts/build_corpora.py:
#   OUT_DIR/raw/          private apt state, .deb files, extracted packages, Translation-en, SOURCES.tsv
#   OUT_DIR/mt_en_de/     LibreOffice help EN-DE       (libreoffice-help-en-us, libreoffice-help-de)
#   OUT_DIR/lm_kernel/    Linux kernel documentation   (linux-doc-6.1)
#   OUT_DIR/sum_debian/   package description -> synopsis (apt's Translation-en index)
#   OUT_DIR/cls_debian/   package description -> section (Translation-en + Packages indexes;
#                         scripts/sentence_task.py)
# Packages are downloaded, never installed (installing the help pulls in all of LibreOffice).
# apt runs with its own lists directory, so the machine's apt state is left alone; the English
# description index only comes with `Acquire::Languages=en`, which Debian images turn off.
# Re-running is safe: raw/ is refreshed and the corpora are rewritten.
#
# usage: bash scripts/fetch_corpora.sh OUT_DIR
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3
PACKAGES=(libreoffice-help-en-us libreoffice-help-de linux-doc-6.1)

die() { echo "fetch_corpora.sh: error: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
[[ $# -eq 1 ]] || die "usage: fetch_corpora.sh OUT_DIR"
for tool in apt-get dpkg-deb; do command -v "$tool" >/dev/null || die "$tool not found (Debian/Ubuntu only)"; done
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
RAW="$OUT/raw"
mkdir -p "$RAW/apt/lists/partial" "$RAW/apt/cache/archives/partial" "$RAW/debs" "$RAW/debian"
APT=(apt-get -q -o "Dir::State::Lists=$RAW/apt/lists" -o "Dir::Cache=$RAW/apt/cache"
     -o Acquire::Languages=en -o APT::Sandbox::User=root)

start=$SECONDS
log "apt-get update (private lists dir, English descriptions on)"
"${APT[@]}" update >"$RAW/apt/update.log" 2>&1 || { tail -5 "$RAW/apt/update.log" >&2; die "apt-get update failed"; }

log "download ${PACKAGES[*]}"
rm -f "$RAW"/debs/*.deb
(cd "$RAW/debs" && "${APT[@]}" download "${PACKAGES[@]}" >"$RAW/apt/download.log" 2>&1) \
  || { tail -5 "$RAW/apt/download.log" >&2; die "apt-get download failed"; }

log "extract into raw/root"
rm -rf "$RAW/root"
mkdir -p "$RAW/root"
printf 'source\tversion\tfile\tsha256\n' >"$RAW/SOURCES.tsv"
for deb in "$RAW"/debs/*.deb; do
  dpkg-deb -x "$deb" "$RAW/root"
  printf '%s\t%s\t%s\t%s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
    "$(basename "$deb")" "$(sha256sum "$deb" | cut -d' ' -f1)" >>"$RAW/SOURCES.tsv"
done

# apt keeps its indexes compressed (lz4 here); apt-helper cat-file decompresses any of them.
# index KIND FILE: decompress one index into raw/debian/ and record its suite, date and sha256
index() {
  local kind=$1 f=$2 name release suite date
  name=$(basename "$f"); name=${name%.lz4}; name=${name%.gz}; name=${name%.xz}
  /usr/lib/apt/apt-helper cat-file "$f" >"$RAW/debian/$name.txt"
  release="$RAW/apt/lists/${name%%_main_*}_InRelease"
  suite=$(grep -m1 '^Suite:' "$release" 2>/dev/null | cut -d' ' -f2 || true)
  date=$(grep -m1 '^Date:' "$release" 2>/dev/null | cut -d' ' -f2- || true)
  printf '%s\t%s %s\t%s\t%s\n' "$kind" "${suite:-?}" "${date:-?}" "$name" \
    "$(sha256sum "$RAW/debian/$name.txt" | cut -d' ' -f1)" >>"$RAW/SOURCES.tsv"
}
log "English description index (Translation-en)"
rm -f "$RAW"/debian/*
shopt -s nullglob
indexes=("$RAW"/apt/lists/*_i18n_Translation-en*)
[[ ${#indexes[@]} -gt 0 ]] || die "apt-get update brought no Translation-en index"
for f in "${indexes[@]}"; do index Translation-en "$f"; done
# The Packages indexes give each package's section (the labels of cls_debian).
log "Packages indexes (sections)"
packages=("$RAW"/apt/lists/*_binary-*_Packages*)
[[ ${#packages[@]} -gt 0 ]] || die "apt-get update brought no Packages index"
for f in "${packages[@]}"; do index Packages "$f"; done
# The packages' copyright files point at these full licence texts (Debian's base-files).
mkdir -p "$RAW/common-licenses"
for lic in GPL-2 MPL-2.0 GFDL-1.3; do
  if [[ -f /usr/share/common-licenses/$lic ]]; then cp "/usr/share/common-licenses/$lic" "$RAW/common-licenses/"; fi
done
log "fetched in $((SECONDS - start)) s"

for spec in "mt root mt_en_de" "lm root lm_kernel" "sum debian sum_debian"; do
  read -r mode src dest <<<"$spec"
  t=$SECONDS
  "$PY" "$ROOT/scripts/build_corpora.py" "$mode" "$RAW/$src" "$OUT/$dest"
  log "built $dest in $((SECONDS - t)) s"
done
t=$SECONDS
"$PY" "$ROOT/scripts/sentence_task.py" build "$RAW/debian" "$OUT/cls_debian"
log "built cls_debian in $((SECONDS - t)) s"
