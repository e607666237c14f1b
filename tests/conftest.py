"""Shared fixtures: the device list (GPU cases skip cleanly without CuPy or a GPU) and an optional torch."""
import pytest

import tinygrad_proust as tp

DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(not tp.gpu_available(),
                                                               reason="needs CuPy and a CUDA GPU"))]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    tp.manual_seed(0)
    yield
