#!/usr/bin/env bash
# The README's picture: the main job with default settings on ../shared/images.
set -euo pipefail
cd "$(dirname "$0")/../.."
jaxstyle stylize ../shared/images/tubingen.jpg ../shared/images/starry_night.jpg \
    -o scripts/readme/tubingen_starry_night.jpg --size 256 "$@"
