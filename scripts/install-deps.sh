#!/usr/bin/env bash
# Installs what the product and its tests need: Debian packages (as root through apt, otherwise a
# clear message naming them) and the npm dependencies. Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB_PACKAGES=(orthanc orthanc-dicomweb dcmtk dicom3tools mricron-data chromium)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies"
  npm ci --no-audit --no-fund
fi
