#!/usr/bin/env bash
# The README's coarse-to-fine pictures: the main job at 512 px, 100 L-BFGS steps at 512 px
# against 50 at 256 px and then 50 at 512 px from that result.
#   tubingen_512.jpg:             100 steps at 512 px
#   tubingen_512_from_256.jpg:    50 steps at 256 px, then 50 at 512 px
set -euo pipefail
cd "$(dirname "$0")/../.."
images=../shared/images
rm -f scripts/readme/tubingen_512.jpg scripts/readme/tubingen_512_from_256.jpg
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg \
    -o scripts/readme/tubingen_512.jpg --size 512 --steps 100 "$@"
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg \
    -o scripts/readme/tubingen_512_from_256.jpg --size 512 --steps 50 --coarse-to-fine 256 "$@"
rm -f scripts/readme/tubingen_512.json scripts/readme/tubingen_512_from_256.json
