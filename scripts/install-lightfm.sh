#!/usr/bin/env bash
# Install LightFM 1.17 and what its build needs into the Python given ($1, default python3), the same
# way for `make setup` and the Dockerfile.
#
# lightfm 1.17 has no wheel, and its setup.py only builds without build isolation, with numpy, scipy
# and a setuptools older than 70 already present. It also adds -march=native, so a build computes
# differently on another CPU (with or without AVX-512) and the same seed and data would give other
# metrics on another machine: LIGHTFM_NO_CFLAGS drops that, and --no-cache-dir stops pip from reusing
# a wheel built with other flags. -ffast-math is kept for speed, on the compiler (CC) only: on the
# link line (CFLAGS would put it there) it adds crtfastmath.o, which turns on flush-to-zero for the
# whole process at import (tests/models/test_lightfm_build.py checks that it does not).
set -euo pipefail
python=${1:-python3}
pip=("$python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "setuptools==65.5.0" "wheel==0.48.0" "numpy==2.4.6" "scipy==1.17.1"
config() { "$python" -c "import sysconfig; print(sysconfig.get_config_var('$1'))"; }
LIGHTFM_NO_CFLAGS=1 CC="$(config CC) -ffast-math" LDSHARED="$(config LDSHARED)" \
    "${pip[@]}" --no-build-isolation --no-cache-dir --force-reinstall --no-deps "lightfm==1.17"
