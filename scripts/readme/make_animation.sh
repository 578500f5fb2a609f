#!/usr/bin/env bash
# The README's animation: a still Tübingen with The Scream's figure moving across it, 8
# frames painted in the style of The Starry Night at 128 px, each frame on its own
# (--temporal-weight 0, left) and pulled towards its neighbours (the default, right).
#   scripts/readme/make_animation.sh [IMAGES_DIR]
set -eu
images=${1:-../shared/images}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
python - "$images" "$tmp/frames" <<'PY'
import os, sys
from PIL import Image
images, frames = sys.argv[1:]
os.makedirs(frames)
scene = Image.open(f"{images}/tubingen.jpg").convert("RGB").resize((128, 96))
figure = Image.open(f"{images}/the_scream.jpg").convert("RGB").resize((20, 24))
for i in range(8):
    frame = scene.copy()
    frame.paste(figure, (8 + 14 * i, 62))
    frame.save(f"{frames}/{i + 1}.png")
PY
for weight in 0 default; do
    pull=(); [ "$weight" = default ] || pull=(--temporal-weight "$weight")
    jaxstyle animate "$tmp/frames" "$images/starry_night.jpg" -o "$tmp/$weight.png" \
        --size 128 --steps 100 --optimizer adam --fps 6 -q "${pull[@]}"
done
python - "$tmp" "$here/animation.gif" <<'PY'
import sys
import numpy as np
import jaxstyle
tmp, out = sys.argv[1:]
clips = [[f.image for f in jaxstyle.read_frames(f"{tmp}/{w}.png")] for w in ("0", "default")]
gap = np.ones((clips[0][0].shape[0], 4, 3), np.float32)
frames = [np.hstack([a, gap, b]) for a, b in zip(*clips, strict=True)]
jaxstyle.save_animation(out, frames, [1000 // 6] * len(frames), overwrite=True)
PY
echo "wrote $here/animation.gif"
