"""Put first on a GPU worker's PYTHONPATH by tests/processes.py: the process cannot
import Django or any platform package, so a GPU node that still needed them would fail
to start or to train, and the test with it."""

import sys

for name in ("django", "rest_framework", "tokenmill", "tenants", "workers"):
    sys.modules[name] = None  # any import of them raises ImportError
