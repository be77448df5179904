"""The launcher's real vLLM servers answer chat and embeddings through the OpenAI API."""

import math

import httpx
import pytest
from openai import OpenAI


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_chat_server_answers_in_chat_format(vllm_chat):
    with OpenAI(base_url=vllm_chat.openai_base_url, api_key=vllm_chat.api_key) as client:
        completion = client.chat.completions.create(
            model=vllm_chat.model,
            messages=[{"role": "user", "content": "What color is the sky?"}],
            max_tokens=24,
            temperature=0,
        )
    assert completion.model == "tiny-chat"
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens > 0


def test_chat_server_refuses_a_wrong_api_key(vllm_chat):
    response = httpx.get(
        f"{vllm_chat.openai_base_url}/models", headers={"Authorization": "Bearer wrong"}
    )
    assert response.status_code == 401


def test_embeddings_are_real_vectors(vllm_embeddings):
    texts = [
        "The cat sat on the mat.",
        "The cat sat on the mat.",
        "Quarterly tax filings are due in April.",
    ]
    with OpenAI(
        base_url=vllm_embeddings.openai_base_url, api_key=vllm_embeddings.api_key
    ) as client:
        result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    vectors = [item.embedding for item in result.data]
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    assert cosine(vectors[0], vectors[1]) == pytest.approx(1.0, abs=1e-4)
    assert cosine(vectors[0], vectors[2]) < 0.5
