#!/usr/bin/env bash
# Build the web UI's third-party browser assets from the npm registry (pinned in
# src/juxing/web/assets/package-lock.json) and ship them inside the package under
# src/juxing/web/static/vendor/ (git-ignored). Nothing is loaded from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=src/juxing/web/assets
OUT=src/juxing/web/static/vendor
WORK=build/web-assets

if ! command -v npm >/dev/null 2>&1; then
  echo "build_assets: npm is required (apt-get install -y nodejs npm)" >&2
  exit 1
fi

mkdir -p "$WORK" "$OUT"
cp "$SRC/package.json" "$SRC/package-lock.json" "$WORK/"
(cd "$WORK" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

cp "$WORK/node_modules/htmx.org/dist/htmx.min.js" "$OUT/htmx.min.js"
cp "$WORK/node_modules/chart.js/dist/chart.umd.min.js" "$OUT/chart.umd.min.js"
for f in htmx.min.js chart.umd.min.js; do
  test -s "$OUT/$f" || { echo "build_assets: $f missing" >&2; exit 1; }
done
cp "$WORK/node_modules/htmx.org/LICENSE" "$OUT/htmx.LICENSE.txt"
cp "$WORK/node_modules/chart.js/LICENSE.md" "$OUT/chart.js.LICENSE.txt"
touch "$OUT/.built"
echo "build_assets: htmx and Chart.js copied to $OUT"
