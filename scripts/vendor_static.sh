#!/usr/bin/env bash
# Install the front-end libraries from the npm registry and copy the files we
# serve into static/vendor/ (git-ignored). Never a CDN, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=static/vendor
if [ -f "$out/.stamp" ] && [ "$out/.stamp" -nt package.json ]; then exit 0; fi
npm install --no-audit --no-fund --loglevel=error >/dev/null
rm -rf "$out" && mkdir -p "$out/katex"
cp node_modules/htmx.org/dist/htmx.min.js "$out/"
cp node_modules/chart.js/dist/chart.umd.min.js "$out/chart.umd.min.js" 2>/dev/null || cp node_modules/chart.js/dist/chart.umd.js "$out/chart.umd.min.js"
cp node_modules/katex/dist/katex.min.js node_modules/katex/dist/katex.min.css "$out/katex/"
cp node_modules/katex/dist/contrib/auto-render.min.js "$out/katex/"
cp -r node_modules/katex/dist/fonts "$out/katex/fonts"
touch "$out/.stamp"
