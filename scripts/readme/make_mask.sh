#!/usr/bin/env bash
# The README's mask pictures. The masks are drawn here: "sky" white over the top 35% of the
# picture, fading to black by 45%; "ground" its complement.
#   tubingen_starry_sky.jpg:  The Starry Night in the sky only
#   tubingen_two_styles.jpg:  The Starry Night in the sky, The Scream on the ground
set -euo pipefail
cd "$(dirname "$0")/../.."
masks=$(mktemp -d)
trap 'rm -rf "$masks"' EXIT
python - "$masks" <<'PY'
import sys

import numpy as np
from PIL import Image

rows = np.linspace(0, 1, 192)
sky = np.tile(np.clip((0.45 - rows) / 0.10, 0, 1)[:, None], (1, 256))
Image.fromarray(np.uint8(255 * sky)).save(f"{sys.argv[1]}/sky.png")
Image.fromarray(np.uint8(255 * (1 - sky))).save(f"{sys.argv[1]}/ground.png")
PY
images=../shared/images
# made anew: their records, which would name the temporary masks, are not kept (below)
rm -f scripts/readme/tubingen_starry_sky.jpg scripts/readme/tubingen_two_styles.jpg
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg \
    -o scripts/readme/tubingen_starry_sky.jpg --size 256 --mask "$masks/sky.png" -q "$@"
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg $images/the_scream.jpg \
    -o scripts/readme/tubingen_two_styles.jpg --size 256 \
    --mask "$masks/sky.png" --mask "$masks/ground.png" -q "$@"
rm -f scripts/readme/tubingen_starry_sky.json scripts/readme/tubingen_two_styles.json
