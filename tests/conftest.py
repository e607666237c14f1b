"""Shared fixtures: the devices every device-parametrised test runs on, PyTorch as the reference, and a fixed seed
for every test.

GPU cases run on a real GPU when CuPy sees one; otherwise through the strict CuPy stand-in (tests/cupy_standin),
so the GPU path is exercised on every machine, CI included. `--gpu=standin` forces the stand-in, `--gpu=real`
needs a real GPU (the cases skip without one), `--gpu=none` skips them.
"""
import os

import pytest

import tinygrad_proust as tp


def pytest_addoption(parser):
    parser.addoption("--gpu", choices=["auto", "standin", "real", "none"], default="auto",
                     help="where GPU cases run: a real GPU if CuPy sees one, else the strict CuPy stand-in (auto)")


def real_gpu_present():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, no driver, no device: all mean "no GPU here"
        return False


def pytest_configure(config):
    mode = config.getoption("--gpu")
    config.gpu_mode = mode
    if mode == "standin" or (mode == "auto" and not real_gpu_present()):
        from cupy_standin import install
        install()
        config.gpu_mode = "standin"


@pytest.fixture(params=["cpu", "gpu"])
def device(request):
    if request.param == "gpu":
        if request.config.gpu_mode == "none":
            pytest.skip("GPU cases turned off (--gpu=none)")
        if not tp.gpu_available():
            pytest.skip("needs CuPy and a CUDA GPU (--gpu=real)")
    return request.param


@pytest.fixture
def standin(request):
    """The stand-in module, for tests of what only it can observe (host syncs); skipped on a real GPU."""
    if request.config.gpu_mode != "standin":
        pytest.skip("counts host syncs through the CuPy stand-in")
    import cupy
    return cupy


def reference(module, install):
    """An optional package the tests compare against. Without it they are skipped on your machine, but fail in CI
    (CI=true): there a failed install must never pass as green."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed, and CI must run the tests that compare against it: {install}")
        pytest.skip(f"{module} is not installed ({install} runs these tests)")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the independent reference of the parity tests (a test extra, not a dependency)."""
    return reference("torch", "pip install torch==2.13.0")


@pytest.fixture(scope="session")
def transformers():
    """Hugging Face Transformers (with safetensors and tokenizers), for the bridge's round trips."""
    for module in ("safetensors", "tokenizers"):
        reference(module, "pip install -r requirements-hf.txt")
    transformers = reference("transformers", "pip install -r requirements-hf.txt")
    transformers.logging.set_verbosity_error()
    return transformers


@pytest.fixture(autouse=True)
def _seeded():
    tp.manual_seed(0)
    yield
