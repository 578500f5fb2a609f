#!/usr/bin/env bash
# The README's picture of the live view: `jaxstyle stylize --live` mid-run, photographed by
# headless Chromium (Debian: apt-get install chromium; only this script needs it).
#   live_view.jpg:  the page at about step 60 of 120 (two passes: 40 at 128 px, 80 at 256 px)
set -euo pipefail
cd "$(dirname "$0")/../.."
images=../shared/images
port=${PORT:-8765}
work=$(mktemp -d)
trap 'kill %1 2>/dev/null || true; rm -rf "$work"' EXIT
jaxstyle stylize $images/tubingen.jpg $images/starry_night.jpg -o "$work/out.png" --size 256 \
    --steps 80 --coarse-to-fine 128 --coarse-to-fine-steps 40 --live $port --live-every 5 -q &
python - "$port" <<'WAIT'
import json, sys, time, urllib.request
while True:  # until the page has shown step 60
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/state.json") as r:
            if max(json.load(r)["steps"], default=0) >= 60:
                break
    except OSError:
        pass
    time.sleep(0.2)
WAIT
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1240,760 \
    --virtual-time-budget=2500 --screenshot="$work/page.png" \
    "http://127.0.0.1:$port/" 2>/dev/null
wait %1
python -c "from PIL import Image; Image.open('$work/page.png').convert('RGB').save(
    'scripts/readme/live_view.jpg', quality=85)"
