"""Metrics, request ids and health of the web processes (logs: gpu_inference/telemetry.py)."""
