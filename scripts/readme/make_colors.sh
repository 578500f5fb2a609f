#!/usr/bin/env bash
# The README's colour pictures: the main job keeping the photograph's colours, both ways.
set -euo pipefail
cd "$(dirname "$0")/../.."
for mode in luminance histogram; do
    jaxstyle stylize ../shared/images/tubingen.jpg ../shared/images/starry_night.jpg \
        -o "scripts/readme/tubingen_starry_night_$mode.jpg" --size 256 --preserve-colors "$mode" -q "$@"
done
