# Installs the carried wheels (scripts/device_wheels.sh) on a GPU machine with no package registry, into
# $DEVICE_SITE (default /tmp/site), and puts it and the repository on PYTHONPATH. Source it from the
# repository root:
#   . scripts/device_setup.sh [WHEELS]       (default WHEELS: .device/wheels)
# Returns non-zero, with the reason, if anything is missing or does not import.

device_setup() {
  local wheels=${1:-.device/wheels} site=${DEVICE_SITE:-/tmp/site}
  local slim=("$wheels"/ray-*-slim.tar.xz)
  if [[ ! -f ${slim[0]} ]]; then
    echo "device_setup: no ray-*-slim.tar.xz under $wheels (build it with scripts/device_wheels.sh)" >&2
    return 1
  fi
  mkdir -p "$site" || return 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$wheels"/*.whl || return 1
  tar -xJf "${slim[0]}" -C "$site" || return 1
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  python3 -c "
import ray, ray.data, ray.train.torch, soundfile, soxr, torch
import os, sys
print(f'device_setup: python {sys.version.split()[0]}, torch {torch.__version__}, '
      f'ray {ray.__version__} ({os.path.dirname(ray.__file__)}), soundfile {soundfile.__version__} '
      f'(libsndfile {soundfile.__libsndfile_version__}), soxr {soxr.__version__}')
"
}

device_setup "$@"
