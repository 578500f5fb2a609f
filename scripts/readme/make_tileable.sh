#!/usr/bin/env bash
# The README's tileable texture: The Starry Night's texture at 160 px, with and without
# --tileable, each shown as 2x2 copies side by side (the seams are where the copies meet).
#   scripts/readme/make_tileable.sh [IMAGES_DIR]
set -eu
images=${1:-../shared/images}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
for mode in --no-tileable --tileable; do
    jaxstyle stylize --texture "$images/starry_night.jpg" -o "$tmp/texture$mode.png" \
        --size 160 --seed 0 -q "$mode"
done
python - "$tmp" "$here/tileable.jpg" <<'PY'
import sys
import numpy as np
from PIL import Image
tmp, out = sys.argv[1:]
tiles = [np.asarray(Image.open(f"{tmp}/texture{m}.png")) for m in ("--no-tileable", "--tileable")]
gap = np.full((2 * tiles[0].shape[0], 8, 3), 255, np.uint8)
Image.fromarray(np.hstack([np.tile(tiles[0], (2, 2, 1)), gap, np.tile(tiles[1], (2, 2, 1))])).save(out, quality=90)
PY
echo "wrote $here/tileable.jpg"
