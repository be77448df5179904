import json
import time

import httpx


def sse_events(text: str) -> list:
    """The data of each server-sent event: parsed JSON, or the string '[DONE]'."""
    events = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chat(content: str = "hi", **extra) -> dict:
    return {"model": "tiny-chat", "messages": [{"role": "user", "content": content}], **extra}


def wait_for(predicate, *, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def stream_lines(url: str, key: str, body: dict, *, read_events: int):
    """Open a stream, read `read_events` events, then hang up; returns what was read."""
    got = []
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST", url, json=body, headers={"authorization": f"Bearer {key}"}
        ) as response,
    ):
        buffer = ""
        for text in response.iter_text():
            buffer += text
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                got.append(json.loads(block[len("data: ") :]))
                if len(got) >= read_events:
                    return got
    return got
