#!/usr/bin/env bash
# The README's sweep pictures, each one compiled run of the cells, 192 px, 100 L-BFGS steps:
#   sweep_grid.jpg:  a 2x3 grid of content and style weights (the run's grid.png)
#   style_blend.jpg: The Starry Night blended into The Scream in 5 steps (its grid.png)
set -euo pipefail
cd "$(dirname "$0")/../.."
images=../shared/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jpeg() { python -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').save(sys.argv[2], quality=90)" "$@"; }
jaxstyle sweep $images/tubingen.jpg $images/starry_night.jpg -o "$work/weights" \
    --content-weight 5,50 --style-weight 10,100,1000 --size 192 "$@"
jpeg "$work/weights/grid.png" scripts/readme/sweep_grid.jpg
jaxstyle sweep $images/tubingen.jpg $images/starry_night.jpg $images/the_scream.jpg \
    -o "$work/blend" --style-blend "1,0;0.75,0.25;0.5,0.5;0.25,0.75;0,1" --size 192 "$@"
jpeg "$work/blend/grid.png" scripts/readme/style_blend.jpg
