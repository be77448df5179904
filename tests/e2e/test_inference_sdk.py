"""The official openai SDK against the gateway (uvicorn, live) in front of real vLLM servers."""

import math
import shutil
import warnings

import httpx
import openai
import pytest

from tests.gateway.conftest import make_fine_tuned_model
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.helpers import stream_lines, wait_for
from tests.gateway.live import LiveServer
from tokenmill.catalog.services import replica_register
from tokenmill.finetuning import services as finetuning_services
from tokenmill.gateway import callers, routes
from tokenmill.gateway.balancer import balancer

QUESTION = [{"role": "user", "content": "What color is the sky?"}]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture
def served(vllm_chat, vllm_embeddings, transactional_db, settings, monkeypatch):
    """The gateway under uvicorn, with the real vLLM servers as the models' replicas."""
    from django.db import connections

    # Not persistent under ASGI (see tests/gateway/conftest.py: asgi_connections).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    replica_register(model_id="tiny-chat", url=vllm_chat.base_url, api_key=vllm_chat.api_key)
    replica_register(
        model_id="all-MiniLM-L6-v2", url=vllm_embeddings.base_url, api_key=vllm_embeddings.api_key
    )
    from tokenmill.asgi import application

    routes.forget_local()
    callers.forget_local()
    balancer.outstanding.clear()
    balancer._down_until.clear()
    with LiveServer(application, lifespan="on") as server:
        yield server
    routes.forget_local()


@pytest.fixture
def client(served, alice_key):
    with openai.OpenAI(base_url=served.url + "/v1", api_key=alice_key, max_retries=0) as sdk:
        yield sdk


def test_chat_answers_from_vllm(client):
    completion = client.chat.completions.create(
        model="tiny-chat", messages=QUESTION, max_tokens=16, temperature=0
    )
    assert completion.model == "tiny-chat"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens > 0
    assert completion.usage.prompt_tokens > 0


def test_a_stream_without_include_usage_has_no_usage_chunk(client):
    chunks = list(
        client.chat.completions.create(
            model="tiny-chat", messages=QUESTION, max_tokens=12, temperature=0, stream=True
        )
    )
    assert len(chunks) > 2
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text.strip()


def test_a_stream_with_include_usage_ends_with_the_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="tiny-chat",
            messages=QUESTION,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 12
    assert all(chunk.usage is None for chunk in chunks[:-1])
    whole = client.chat.completions.create(
        model="tiny-chat", messages=QUESTION, max_tokens=12, temperature=0
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert whole.usage.prompt_tokens == chunks[-1].usage.prompt_tokens
    assert streamed.startswith(whole.choices[0].message.content[:8])


def test_completions_answer(client):
    completion = client.completions.create(
        model="tiny-chat", prompt="Once upon a time", max_tokens=10, temperature=0
    )
    assert completion.choices[0].text
    assert completion.usage.completion_tokens > 0


def test_embeddings_are_real_vectors(client):
    texts = ["The cat sat on the mat.", "The cat sat on the mat.", "Quarterly tax filings are due."]
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert cosine(vectors[0], vectors[1]) == pytest.approx(1.0, abs=1e-4)
    assert cosine(vectors[0], vectors[2]) < 0.5


def test_every_parameter_error_reaches_the_sdk_as_a_bad_request(client):
    cases = [
        ({"temperature": 3}, "temperature", "Invalid 'temperature': 3 is out of range"),
        ({"top_p": -1}, "top_p", "Invalid 'top_p': -1 is out of range"),
        ({"max_tokens": 0}, "max_tokens", "Invalid 'max_tokens': 0; it must be at least 1."),
        ({"n": 0}, "n", "Invalid 'n': 0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "stop may hold at most 4 sequences"),
        ({"seed": "x"}, "seed", "seed must be an integer"),
        ({"top_logprobs": 2}, "top_logprobs", "only allowed when 'logprobs' is true"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "Invalid value"),
        ({"max_tokens": 400}, "messages", "maximum context length is 256 tokens"),
    ]
    for extra, param, message in cases:
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="tiny-chat", messages=QUESTION, **extra)
        assert raised.value.status_code == 400
        assert raised.value.body["param"] == param, extra
        assert message in raised.value.body["message"], extra


def test_an_unknown_model_and_another_organizations_fine_tune_are_not_found(
    client, served, globex, charlie_key, artifact_store
):
    theirs = make_fine_tuned_model(globex)
    for model in ("gpt-9", theirs.model_id):
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(model=model, messages=QUESTION, max_tokens=4)
        assert raised.value.body["code"] == "model_not_found"


@pytest.fixture
def identity_adapter(tmp_path_factory, demo_model_path):
    """A LoRA adapter of tiny-chat in PEFT's format (B = 0: it answers like the base)."""
    folder = tmp_path_factory.mktemp("adapter")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings():  # transformers' and PEFT's own deprecation notices
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(demo_model_path)
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
        get_peft_model(model, config).save_pretrained(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_an_own_fine_tune_answers_until_it_is_deleted(
    client, vllm_chat, acme, artifact_store, identity_adapter
):
    from gpu_inference.serving.vllm_api import VllmClient

    model = make_fine_tuned_model(acme)
    with VllmClient(vllm_chat.base_url, api_key=vllm_chat.api_key) as vllm:
        vllm.load_adapter(model.model_id, str(identity_adapter))
        try:
            answer = client.chat.completions.create(
                model=model.model_id, messages=QUESTION, max_tokens=8, temperature=0
            )
            assert answer.model == model.model_id
            finetuning_services.fine_tuned_model_delete(tenant=acme, model=model)

            def refused() -> bool:
                try:
                    client.chat.completions.create(
                        model=model.model_id, messages=QUESTION, max_tokens=4
                    )
                except openai.NotFoundError:
                    return True
                return False

            wait_for(refused, timeout=2, what="the deleted fine-tune to stop answering")
        finally:
            vllm.unload_adapter(model.model_id)


def test_a_stream_cut_by_the_client_stops_and_the_gateway_keeps_serving(client, served, alice_key):
    got = stream_lines(
        served.url + "/v1/chat/completions",
        alice_key,
        {
            "model": "tiny-chat",
            "messages": QUESTION,
            "max_tokens": 200,
            "stream": True,
            "ignore_eos": True,
        },
        read_events=3,
    )
    assert len(got) == 3
    wait_for(lambda: not any(balancer.outstanding.values()), what="the cut stream to be released")
    again = client.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=4)
    assert again.choices[0].message.content is not None


def test_a_replica_killed_mid_run_sends_new_requests_to_the_other(client, vllm_chat):
    # Two replicas: real vLLM and a fake one on another port; the fake one dies.
    doomed = LiveServer(FakeBackend()).start()
    doomed.state = doomed.app.state
    replica_register(model_id="tiny-chat", url=doomed.url)
    served_by = {"fake": 0}
    for _ in range(4):
        client.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=4)
    served_by["fake"] = doomed.state.served
    assert served_by["fake"] >= 1  # both replicas took traffic
    doomed.stop()
    for _ in range(4):
        answer = client.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=4)
        assert answer.choices[0].message.content is not None
    assert doomed.state.served == served_by["fake"]
    assert all(count == 0 for count in balancer.outstanding.values())


def test_health_checks_read_the_real_servers(served, vllm_chat):
    from tokenmill.catalog.models import Replica
    from tokenmill.gateway import health

    assert health.replicas_check()["healthy"] == 2
    assert Replica.objects.get(url=vllm_chat.base_url).health == "healthy"
    response = httpx.get(served.url + "/v1/chat/completions")
    assert response.status_code == 405
