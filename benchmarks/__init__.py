"""The experiments behind bench.py, one module each, every one printing its own table (bench.py is only their
command line); common.py holds what several share.

This file runs before any of them is imported, and imports nothing that loads NumPy: the setting below reaches
OpenBLAS only if it is in the environment when NumPy loads (bench.py therefore imports this package first).
"""
import os

# Both frameworks keep thread pools (NumPy's OpenBLAS, PyTorch's OpenMP) whose idle threads spin-wait for the next
# job, which is what makes each fast on its own: a GEMM or a parallel elementwise op starts without waking a
# sleeping thread. Alternating in one process, one framework's spinning threads steal the cores from the other's
# step. So each keeps its own spin-waiting, bounded: OpenBLAS's threads sleep after 2^24 cycles (about 7 ms here,
# longer than any gap inside our step; its default, 2^28, spins on for about 0.1 s), libgomp's after its default
# spin count, and every timed step starts after PAUSE_S of idling, when both pools are asleep.
# Measured on nanoGPT's recipe: PyTorch alone 53-65 ms/step, alternating this way 58-62; making idle threads sleep
# at once instead (OMP_WAIT_POLICY=PASSIVE, the old setting here) slowed PyTorch to 95 ms and us far less.
USER_ENV = dict(os.environ)  # what train.py runs under in --train-race: the user's own settings
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "24")
PAUSE_S = 0.02
