"""A single-writer, many-reader ring buffer of fixed-shape numpy records in shared memory.

Cameras and the arm controller each own one: the producer process writes every frame / state sample with its
capture timestamp, consumers in other processes read the latest k records without locks and without copying
through a pipe. Why hand-written: ``multiprocessing.shared_memory`` gives raw bytes only; the reference's
equivalent (SharedMemoryRingBuffer) is not a library.

Lock-free protocol (a per-slot sequence lock): the writer marks slot ``s`` busy (seq = -1), writes the record,
stamps seq = record index, then publishes ``count``. A reader takes ``count``, copies the slots of the records it
wants and accepts a copy only if the slot's seq equals the record index both before and after the copy; a record
overwritten meanwhile (the reader fell a whole ring behind) is retried. x86 and ARM64 keep these plain aligned
int64 stores ordered enough for this within CPython (each store is a separate bytecode-level memory write).
"""

from __future__ import annotations

import time
from multiprocessing import resource_tracker, shared_memory

import numpy as np

_HEADER = 64  # bytes: int64 count at offset 0, rest reserved


class RingSpec(dict):
    """{field: (shape, dtype)}. Every record also gets a float64 ``timestamp`` field."""

    def layout(self, capacity: int):
        fields = {"timestamp": ((), np.dtype(np.float64)), **{k: (tuple(s), np.dtype(d)) for k, (s, d) in self.items()}}
        offsets, off = {}, _HEADER + 8 * capacity  # seq array after the header
        for name, (shape, dtype) in fields.items():
            off = (off + 63) // 64 * 64
            offsets[name] = (off, shape, dtype)
            off += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize * capacity
        return offsets, off


class SharedRing:
    """Create with ``SharedRing.create(name, spec, capacity)`` (writer) or ``SharedRing.attach(name, spec,
    capacity)`` (reader). The creator unlinks the segment on :meth:`close`."""

    def __init__(self, shm: shared_memory.SharedMemory, spec: RingSpec, capacity: int, owner: bool):
        self.shm, self.spec, self.capacity, self.owner = shm, RingSpec(spec), capacity, owner
        offsets, size = self.spec.layout(capacity)
        if shm.size < size:
            raise ValueError(f"shared memory {shm.name!r} holds {shm.size} bytes, the spec needs {size}: "
                             "writer and reader disagree on the record spec or capacity")
        buf = shm.buf
        self._count = np.ndarray((1,), np.int64, buf, 0)
        self._seq = np.ndarray((capacity,), np.int64, buf, _HEADER)
        self.arrays = {k: np.ndarray((capacity, *shape), dtype, buf, off) for k, (off, shape, dtype) in offsets.items()}

    @classmethod
    def create(cls, name: str | None, spec: dict, capacity: int) -> "SharedRing":
        _, size = RingSpec(spec).layout(capacity)
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        ring = cls(shm, spec, capacity, owner=True)
        ring._count[0] = 0
        ring._seq[:] = -1
        return ring

    @classmethod
    def attach(cls, name: str, spec: dict, capacity: int, timeout: float = 0.0,
               child_of_owner: bool = False) -> "SharedRing":
        """Attach to an existing ring. ``child_of_owner``: this process is a multiprocessing child of the ring's
        creator and shares its resource tracker (so it must leave the creator's registration alone)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                shm = shared_memory.SharedMemory(name=name, create=False)
                break
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise FileNotFoundError(f"no shared-memory ring {name!r}: is its producer (camera / controller "
                                            "process or the twin) running?") from None
                time.sleep(0.02)
        # Python < 3.13 registers attached segments with the resource tracker, which would unlink the
        # producer's segment when this reader exits: only the creator owns it.
        if not child_of_owner:
            resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
        return cls(shm, spec, capacity, owner=False)

    @property
    def name(self) -> str:
        return self.shm.name

    @property
    def count(self) -> int:
        """Records written so far."""
        return int(self._count[0])

    def put(self, timestamp: float, **fields) -> None:
        i = int(self._count[0])
        s = i % self.capacity
        self._seq[s] = -1
        self.arrays["timestamp"][s] = timestamp
        for k, v in fields.items():
            self.arrays[k][s] = v
        self._seq[s] = i
        self._count[0] = i + 1

    def last(self, k: int = 1, retries: int = 20) -> dict[str, np.ndarray]:
        """The newest ``k`` records, oldest first, as arrays of shape (k, ...). Raises if none was written."""
        for _ in range(retries):
            n = int(self._count[0])
            if n == 0:
                raise LookupError(f"ring {self.name!r} is empty: its producer has not written a record yet")
            k_eff = min(k, n, self.capacity - 1)
            idx = np.arange(n - k_eff, n)
            slots = idx % self.capacity
            before = self._seq[slots].copy()
            out = {name: arr[slots].copy() for name, arr in self.arrays.items()}
            after = self._seq[slots]
            if np.array_equal(before, idx) and np.array_equal(after, idx):
                return out
        raise RuntimeError(f"ring {self.name!r}: reader kept being overtaken by the writer; read fewer records")

    def close(self) -> None:
        self._count = self._seq = None
        self.arrays = {}
        try:
            self.shm.close()
        except BufferError:
            pass  # a caller still holds a view; the mapping goes away with the process
        if self.owner:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass
