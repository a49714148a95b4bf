#!/usr/bin/env bash
# Seeds the sip_message corpus with the RFC 4475 / RFC 5118 torture messages.
# Usage: fuzz/seed.sh [path/to/shared/corpus/sip-torture]
# Default source: ../shared/corpus/sip-torture beside the repository (as in CI).
# Then: cd fuzz && cargo +nightly fuzz run sip_message corpus/sip_message
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-$here/../../shared/corpus/sip-torture}"
dst="$here/corpus/sip_message"
if [ ! -d "$src" ]; then
    echo "seed.sh: no torture corpus at $src" >&2
    exit 1
fi
mkdir -p "$dst"
count=0
while IFS= read -r -d '' f; do
    rel="${f#"$src"/}"
    cp "$f" "$dst/${rel//\//-}"
    count=$((count + 1))
done < <(find "$src" -mindepth 2 -type f -print0)
echo "seed.sh: copied $count messages into $dst"
