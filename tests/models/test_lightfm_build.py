"""LightFM's compiled extension as `make setup` builds it leaves the process's floating point alone.

Linked with -ffast-math, the extension would carry crtfastmath.o, whose constructor turns on flush-to-zero
for the whole process when LightFM is imported: every later computation with subnormal numbers, in numpy
or anywhere else, would silently give zero."""

from __future__ import annotations

import numpy as np

import models.lightfm_hybrid  # noqa: F401  (imports LightFM and its compiled extension)


def test_importing_lightfm_keeps_subnormal_numbers() -> None:
    for dtype in (np.float64, np.float32):
        smallest_normal = np.array([np.finfo(dtype).tiny], dtype=dtype)
        assert (smallest_normal / dtype(4))[0] > 0
