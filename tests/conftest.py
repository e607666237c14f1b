"""Shared fixtures: the device list (GPU cases skip cleanly without CuPy or a GPU), PyTorch as the reference,
and a fixed seed for every test."""
import os

import pytest

import tinygrad_proust as tp

DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(not tp.gpu_available(),
                                                               reason="needs CuPy and a CUDA GPU"))]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the independent reference of the parity tests (a test extra, not a dependency). Without it they
    are skipped on your machine, but fail in CI (CI=true): there a failed install must never pass as green."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyTorch is not installed, and CI must run the parity tests: pip install torch==2.13.0")
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0 runs the parity tests)")
    return torch


@pytest.fixture(autouse=True)
def _seeded():
    tp.manual_seed(0)
    yield
