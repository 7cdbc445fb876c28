"""JAX tests run on the CPU, one thread: the suite shares a small machine."""
import os

# Read by XLA when jax is first imported, which happens in these modules, after this file.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
