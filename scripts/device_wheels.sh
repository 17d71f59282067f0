#!/usr/bin/env bash
# Builds, on a machine with a package registry, the wheels that scripts/device_setup.sh installs on a GPU
# machine that has Python 3.12 and torch but no registry, Ray, soundfile or soxr:
#   scripts/device_wheels.sh [DEST]        (default DEST: .device/wheels, git-ignored)
# PYTHON_VERSION=3.11 builds the same set for another Python, to try the install where that one runs.
# Ray's wheel is 79 MB; it is carried as a tarball of the installed package without the Java jars, the
# dashboard's web client, RLlib and Serve (none of which Ray Data, Ray Train or ray.init import), with
# symbols stripped from its three native binaries: ~26 MB with xz.
set -euo pipefail

DEST=${1:-.device/wheels}
RAY_VERSION=2.60.0
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
TAG=cp${PYTHON_VERSION/./}
# Ray and what the jobs import, minus what the GPU machine's image already holds (its package list:
# torch, numpy, pandas, pyarrow, fsspec, attrs, typing-extensions (older), msgpack, protobuf, pyyaml,
# requests, click, filelock, packaging, aiohttp, grpcio, ...). pydantic is needed by ray.train (v2);
# typing-extensions is carried because pydantic-core needs >= 4.14.1.
WHEELS=(
  soundfile==0.14.0 cffi==2.0.0 pycparser==3.0 soxr==1.1.0
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==0.30.0
  pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
  typing-extensions==4.15.0
)
PLATFORM=(--only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

rm -rf "$DEST"
mkdir -p "$DEST"
python3 -m pip download -q --no-deps "${PLATFORM[@]}" -d "$DEST" "${WHEELS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps "${PLATFORM[@]}" -d "$work" "ray==$RAY_VERSION"
mkdir "$work/tree"
unzip -q "$work"/ray-"$RAY_VERSION"-*.whl -d "$work/tree"  # unzip keeps the executables' mode
rm -rf "$work"/tree/ray/{jars,dashboard/client/build,rllib,serve}
for binary in ray/_raylet.so ray/core/src/ray/gcs/gcs_server ray/core/src/ray/raylet/raylet; do
  strip --strip-unneeded "$work/tree/$binary"
done
tar -C "$work/tree" -cf - ray "ray-$RAY_VERSION.dist-info" | xz -T0 -6 > "$DEST/ray-$RAY_VERSION-$TAG-slim.tar.xz"
du -ch "$DEST"/* | tail -1
