"""Choosing where implicit's models fit: the CPU path here, a clear refusal of cuda without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from models.devices import gpu_available, host, resolve_device
from models.families import create
from recsys.errors import ModelError
from tests.models.planted import planted
from training.cli import app

NO_GPU = pytest.mark.skipif(gpu_available(), reason="this machine has a GPU implicit can use")


@pytest.mark.parametrize("family", ["als", "bpr"])
def test_auto_uses_the_gpu_only_where_implicit_has_one(family: str) -> None:
    assert resolve_device("auto", family) == ("cuda" if gpu_available() else "cpu")
    assert resolve_device("cpu", family) == "cpu"


@NO_GPU
@pytest.mark.parametrize("family", ["als", "bpr"])
def test_cuda_without_a_gpu_is_refused_with_the_reason(family: str) -> None:
    with pytest.raises(ModelError, match=r"implicit\.gpu\.HAS_CUDA is false"):
        resolve_device("cuda", family)
    with pytest.raises(ModelError, match=r"implicit\.gpu\.HAS_CUDA is false"):
        create(family, device="cuda", iterations=1).fit(planted().training)


def test_families_without_a_gpu_version_run_on_the_cpu() -> None:
    assert resolve_device("auto", "lightfm") == "cpu"
    with pytest.raises(ModelError, match="lightfm family has no GPU version"):
        resolve_device("cuda", "lightfm")
    with pytest.raises(ModelError, match="one of auto, cpu, cuda"):
        resolve_device("tpu", "als")


@pytest.mark.parametrize("family", ["als", "bpr"])
def test_the_device_parameter_keeps_the_cpu_results(family: str) -> None:
    data = planted().training
    params = {"iterations": 5, "num_threads": 1}
    default = create(family, **params).fit(data).member_embeddings()
    chosen = create(family, device="cpu", **params).fit(data).member_embeddings()
    np.testing.assert_array_equal(chosen.factors, default.factors)
    assert chosen.factors.any()


def test_host_copies_device_matrices_back() -> None:
    class DeviceMatrix:  # what implicit.gpu.Matrix offers: a copy to host memory
        def to_numpy(self) -> np.ndarray:
            return np.arange(6, dtype=np.float64).reshape(2, 3)

    back = host(DeviceMatrix())
    assert back.dtype == np.float32 and back.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert host(np.ones((2, 2))).dtype == np.float32


@NO_GPU
def test_train_with_cuda_and_no_gpu_fails_naming_the_flag() -> None:
    result = CliRunner().invoke(app, ["train", "--family", "als", "--device", "cuda", "--data", "nowhere"])
    assert result.exit_code == 2
    assert "--device" in result.output and "HAS_CUDA is false" in result.output
