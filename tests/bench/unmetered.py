"""The gateway with admission and metering switched off, for `tests/bench/metering.py` only.

The baseline of "what do admission and metering cost": the same ASGI application with the
admission seam's admit, progress and settle replaced by no-ops in this process. Nothing in
the platform can take this path; only the benchmark serves this module.
"""

from tokenmill.asgi import application
from tokenmill.gateway import admission


async def _admit(admitted):
    return admitted


async def _progress(admitted, usage):
    return None


async def _settle(admitted, usage, *, outcome):
    return None


admission.admit = _admit
admission.progress = _progress
admission.settle = _settle

__all__ = ["application"]
