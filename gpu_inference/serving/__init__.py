"""Model serving: vLLM servers, their supervision, and the adapters they hold.

- `launcher`: the vLLM command line and environment for a server spec.
- `supervisor`: keeps a server running (readiness, restart with backoff, reasons).
- `servers`: the chat and embedding servers a host runs.
- `vllm_api`: the calls made to vLLM's own HTTP API.
"""
