#!/usr/bin/env bash
# The README's MRF picture: Li & Wand's MRF style loss (preset cnnmrf) as CNNMRF runs it,
# three levels of 100 L-BFGS steps up to 384 px.
#   tubingen_starry_mrf.jpg:  Tübingen in patches of The Starry Night
set -euo pipefail
cd "$(dirname "$0")/../.."
images=../shared/images
rm -f scripts/readme/tubingen_starry_mrf.jpg
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg \
    -o scripts/readme/tubingen_starry_mrf.jpg --preset cnnmrf --size 384 --coarse-to-fine 96,192 "$@"
rm -f scripts/readme/tubingen_starry_mrf.json
