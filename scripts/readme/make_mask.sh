#!/usr/bin/env bash
# The README's mask picture: The Starry Night's style in Tübingen's sky only. The mask is
# drawn here: white over the top 35% of the picture, fading to black by 45%.
set -euo pipefail
cd "$(dirname "$0")/../.."
mask=$(mktemp --suffix=.png)
trap 'rm -f "$mask"' EXIT
python - "$mask" <<'PY'
import sys

import numpy as np
from PIL import Image

rows = np.linspace(0, 1, 192)
weight = np.clip((0.45 - rows) / 0.10, 0, 1)
Image.fromarray(np.uint8(255 * np.tile(weight[:, None], (1, 256)))).save(sys.argv[1])
PY
jaxstyle stylize ../shared/images/tubingen.jpg ../shared/images/starry_night.jpg \
    -o scripts/readme/tubingen_starry_sky.jpg --size 256 --mask "$mask" -q "$@"
rm -f scripts/readme/tubingen_starry_sky.json  # its record names the temporary mask
