"""The few calls the platform makes to a vLLM server's own HTTP API, in one place."""

from __future__ import annotations

import httpx


class VllmError(Exception):
    """vLLM refused a request; the message is vLLM's own."""


class VllmClient:
    def __init__(self, base_url: str, *, api_key: str = "", timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VllmClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def healthy(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def models(self) -> list[dict]:
        """The served models: the base model, then each loaded adapter (with `parent`)."""
        response = self._http.get("/v1/models")
        _raise_for(response)
        return response.json()["data"]

    def adapters(self) -> dict[str, str]:
        """Loaded LoRA adapters: served name -> the folder vLLM loaded it from."""
        return {m["id"]: m.get("root", "") for m in self.models() if m.get("parent")}

    def ready(self, served_name: str) -> bool:
        """Ready for clients: healthy, and listing `served_name` (the API is up, not just the engine)."""
        if not self.healthy():
            return False
        try:
            return any(model["id"] == served_name for model in self.models())
        except (httpx.HTTPError, VllmError, KeyError, ValueError):
            return False

    def load_adapter(self, name: str, path: str) -> None:
        response = self._http.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}, timeout=120
        )
        _raise_for(response)

    def chat(self, model: str, messages: list[dict], *, max_tokens: int) -> str:
        """The greedy answer of `model` (the base model or an adapter's served name)."""
        response = self._http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
        )
        _raise_for(response)
        return response.json()["choices"][0]["message"]["content"] or ""

    def complete(self, model: str, prompt: str, *, max_tokens: int) -> str:
        response = self._http.post(
            "/v1/completions",
            json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0},
        )
        _raise_for(response)
        return response.json()["choices"][0]["text"] or ""

    def forced_token_logprobs(
        self, model: str, prompts: list[list[int]], token: int
    ) -> list[float]:
        """The log-probability `model` gives `token` right after each prompt (token ids).

        The token is forced (`allowed_token_ids`), and vLLM reports the log-probability
        of the raw model output, before that restriction: so scoring a text token by
        token through generation gives its exact likelihood. (`prompt_logprobs` would
        score it in one request, but vLLM's LoRA path does not support it reliably.)
        """
        response = self._http.post(
            "/v1/completions",
            json={
                "model": model,
                "prompt": prompts,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": 0,
                "allowed_token_ids": [token],
            },
        )
        _raise_for(response)
        choices = sorted(response.json()["choices"], key=lambda choice: choice["index"])
        return [choice["logprobs"]["token_logprobs"][0] for choice in choices]

    def unload_adapter(self, name: str) -> None:
        response = self._http.post("/v1/unload_lora_adapter", json={"lora_name": name})
        if response.status_code == 404:  # already gone (a restart, or a concurrent unload)
            return
        _raise_for(response)


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = (body.get("error") or {}).get("message") or body.get("message") or response.text
    except ValueError:
        message = response.text
    raise VllmError(
        f"{response.request.method} {response.request.url.path}: {response.status_code} {message}"
    )
