"""The glibc allocator switch of daninet_pipeline.allocator.

Every platform the project runs on (Debian, the container image, CI) uses glibc, so
these tests run everywhere the project is tested.
"""

import os
import subprocess
import sys

_PROBE = """
import ctypes, sys
from daninet_pipeline.allocator import keep_freed_memory
switched = keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
# a 256 MB block: served by mmap with glibc's defaults, from the heap once switched
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.sbrk.restype = ctypes.c_void_p
libc.sbrk.argtypes = [ctypes.c_ssize_t]
before = libc.sbrk(0)
p = libc.malloc(256 << 20)
grown = libc.sbrk(0) - before
print(switched, grown >= (256 << 20))
"""


def _probe(env_value: str | None) -> str:
    env = dict(os.environ)
    env.pop("DANINET_KEEP_FREED_MEMORY", None)
    if env_value is not None:
        env["DANINET_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_large_blocks_come_from_the_heap_once_switched():
    assert _probe(None) == "True True"


def test_environment_variable_turns_the_switch_off():
    assert _probe("0") == "False False"
