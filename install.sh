#!/usr/bin/env bash
# Installs SustainML and everything its tests use into ./.venv, on a fresh machine.
#  - torch: the release pinned below (on this project's CPU machines pip takes the CPU build that
#    lies on disk; elsewhere set TORCH_SPEC, e.g. to a CPU wheel, to avoid gigabytes of CUDA);
#  - Debian's Cyclone DDS C packages (with the DDS Security plugins; the cyclonedds binding is built
#    against them into .venv/dds-security for a secured bus), eProsima Fast DDS (libfastrtps-dev, fastddsgen) and C/C++
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

# DDS Security (README "Security: a secured bus"): the PyPI cyclonedds wheel is built without it, so the
# binding is built once more, against Debian's Cyclone DDS (which ships the security plugins), into
# .venv/dds-security; the sustainml command runs on it when a security folder is configured.
plugins=$(ls /usr/lib/*/libddsc0debian/libdds_security_auth.so 2>/dev/null | head -n 1 || true)
if [ -n "$plugins" ] && [ -f /usr/include/dds/dds.h ]; then
  if [ ! -d .venv/dds-security/cyclonedds ]; then
    home=.venv/cyclonedds-home   # what the binding's build expects of CYCLONEDDS_HOME, pointing at Debian's files
    mkdir -p "$home"
    ln -sfn /usr/include "$home/include"
    ln -sfn "$(dirname "$(dirname "$plugins")")" "$home/lib"
    ln -sfn /usr/bin "$home/bin"
    echo "install.sh: pip install cyclonedds==0.10.2 against Debian's Cyclone DDS (DDS Security) into .venv/dds-security"
    CYCLONEDDS_HOME="$PWD/$home" .venv/bin/pip install -q --no-deps --no-binary cyclonedds \
      --target .venv/dds-security cyclonedds==0.10.2
  fi
  PYTHONPATH=.venv/dds-security .venv/bin/python -c "from sustainml import _dds_compat; assert _dds_compat.has_security()" \
    || { echo "install.sh: .venv/dds-security does not load Cyclone DDS with DDS Security" >&2; exit 1; }
else
  echo "install.sh: no Debian Cyclone DDS security plugins (apt: cyclonedds-dev, as root): no secured bus here"
fi
echo "install.sh: done (.venv)"
