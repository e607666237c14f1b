"""Shared fixtures: the devices every device-parametrised test runs on, PyTorch as the reference, and a fixed seed
for every test.

GPU cases run on a real GPU when CuPy sees one; otherwise through the strict CuPy stand-in (tests/cupy_standin),
so the GPU path is exercised on every machine, CI included. `--gpu=standin` forces the stand-in, `--gpu=real`
needs a real GPU (the cases skip without one), `--gpu=none` skips them.
"""
import os
import shutil

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


# The full CI run sets this: every optional package is installed there, so a test that would skip fails instead
# (a failed install must never pass as green), and a run that skips anything at all fails (see the end of this file)
REQUIRE_EXTRAS = os.environ.get("TINYGRAD_PROUST_REQUIRE_EXTRAS") == "1"


def optional(module, install):
    """An optional package a test needs (a reference to compare against, or the extra a feature uses). Without it
    the test is skipped with a reason naming the package; with TINYGRAD_PROUST_REQUIRE_EXTRAS=1 it fails."""
    try:
        return __import__(module)
    except ImportError:
        if REQUIRE_EXTRAS:
            pytest.fail(f"{module} is not installed, and this run must run the tests that need it: {install}")
        pytest.skip(f"needs {module}: {install}")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the independent reference of the parity tests (a test extra, not a dependency)."""
    return optional("torch", "pip install torch==2.13.0")


@pytest.fixture(scope="session")
def transformers():
    """Hugging Face Transformers (with safetensors and tokenizers), for the bridge's round trips."""
    for module in ("safetensors", "tokenizers"):
        optional(module, "pip install -r requirements-hf.txt")
    transformers = optional("transformers", "pip install -r requirements-hf.txt")
    transformers.logging.set_verbosity_error()
    return transformers


@pytest.fixture(scope="session")
def safetensors():
    """safetensors alone: the .safetensors checkpoint format and the export to Hugging Face's layout."""
    return optional("safetensors", "pip install -r requirements-hf.txt")


@pytest.fixture(scope="session")
def matplotlib():
    """matplotlib, the optional drawing extra (attention maps, loss curves)."""
    return optional("matplotlib", "pip install matplotlib")


@pytest.fixture(scope="session")
def nvcc():
    """NVIDIA's CUDA compiler (the CUDA toolkit; no GPU needed), to compile the framework's kernels for GPUs the
    suite has no access to."""
    path = shutil.which("nvcc")
    if path is None:
        if REQUIRE_EXTRAS:
            pytest.fail("nvcc is not installed, and this run must compile the GPU kernels: install the CUDA toolkit")
        pytest.skip("needs nvcc: install the CUDA toolkit")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    tp.manual_seed(0)
    yield


def pytest_sessionfinish(session, exitstatus):
    """With TINYGRAD_PROUST_REQUIRE_EXTRAS=1 nothing may skip: a skipped test there is a check that did not run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if REQUIRE_EXTRAS and skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} tests skipped, and TINYGRAD_PROUST_REQUIRE_EXTRAS=1 allows none:")
        for report in skipped[:20]:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else ""
            reporter.write_line(f"  {report.nodeid}: {reason}")
        session.exitstatus = 1
