#!/usr/bin/env bash
# Installs SustainML and everything its tests use into ./.venv, on a fresh machine.
#  - torch: the release pinned below (on this project's CPU machines pip takes the CPU build that
#    lies on disk; elsewhere set TORCH_SPEC, e.g. to a CPU wheel, to avoid gigabytes of CUDA);
#  - Debian's Cyclone DDS C packages, eProsima Fast DDS (libfastrtps-dev, fastddsgen) and C/C++
#    compilers, for the partner-node tests (when run as root with apt; otherwise those tests
#    skip and say why);
#  - iproute2, for the multi-host network-namespace tests;
#  - Debian's chromium, the browser the web UI's tests drive with Playwright (which cannot download
#    its own browser here).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in cyclonedds-dev cyclonedds-tools gcc g++ fastddsgen libfastrtps-dev iproute2 chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "install.sh: pip install $TORCH_SPEC"
  .venv/bin/pip install -q "$TORCH_SPEC"
fi
echo "install.sh: pip install -e .[test]"
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import sustainml, sustainml_nodes, torch, cyclonedds" \
  || { echo "install.sh: the installed packages do not import" >&2; exit 1; }
echo "install.sh: done (.venv)"
