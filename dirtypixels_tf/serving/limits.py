"""The memory the local model server may spend on requests, and the budget that enforces it.

The bound, in bytes, over the server's resident memory once it has loaded its model and answered one request
(`base`), whatever clients send or withhold:

    RSS <= base + max_calls * max_message + max_inflight

- max_calls * max_message: gRPC messages still arriving. At most --max-calls gRPC calls are open at once (more are
  answered RESOURCE_EXHAUSTED by gRPC at once), each holds at most one message of at most --max-message-mb, and a
  message that is not whole within --read-timeout seconds is answered DEADLINE_EXCEEDED and dropped.
- max_inflight: whole requests, from the moment their bytes are held to their answer. Each reserves its working
  memory from one budget of --max-inflight-mb shared by gRPC and REST: GRPC_EXPANSION x its message (the bytes,
  the parsed proto, the arrays and tensors built from it), REST_EXPANSION x its body (the body, Python's JSON
  objects, the arrays). A REST body reserves before it is read, from its Content-Length (a chunked body: its
  largest allowed size); a gRPC message once it has arrived. A request that does not fit waits up to
  --read-timeout seconds, then gets RESOURCE_EXHAUSTED (REST: 429); one that could never fit is refused at once.
Memory is returned to the system after each request over TRIM_BYTES (glibc keeps freed memory otherwise).
"""

import asyncio
import ctypes
import ctypes.util

MIB = 2**20
GRPC_EXPANSION = 4
REST_EXPANSION = 12
TRIM_BYTES = 4 * MIB


def memory_bound_bytes(max_calls, max_message_bytes, max_inflight_bytes):
    """The bound (bytes over `base`) stated above."""
    return max_calls * max_message_bytes + max_inflight_bytes


BOUND_TEXT = "RSS <= base + max_calls x max_message_mb + max_inflight_mb"


class ByteBudget:
    """Bytes reserved by requests in flight, at most `limit`; used from the server's event loop only."""

    def __init__(self, limit):
        self.limit = int(limit)
        self.used = 0
        self._changed = None

    async def acquire(self, size, timeout):
        """Reserve `size` bytes, waiting up to `timeout` s for room; False if there was none (or never can be)."""
        if size > self.limit:
            return False
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.used + size <= self.limit), timeout)
            except asyncio.TimeoutError:
                return False
            self.used += size
            return True

    async def release(self, size):
        async with self._changed:
            self.used -= size
            self._changed.notify_all()
        if size >= TRIM_BYTES:
            release_free_memory()


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None


def release_free_memory():
    """Hand freed heap pages back to the system (glibc's malloc_trim); nothing elsewhere."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
