"""JAX tests run on the CPU, with XLA's multi-threaded Eigen kernels off: the suite shares a small
machine (XLA may still start helper threads of its own)."""
import os

# Read by XLA when jax is first imported, which happens in these modules, after this file.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
