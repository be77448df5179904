"""Who may call which model: keys, scopes, organizations, fine-tuned models, kinds."""

import time

from tests.factories import make_key
from tests.gateway.conftest import make_fine_tuned_model
from tests.gateway.helpers import chat, wait_for
from tokenmill.finetuning import services as finetuning_services

NOT_FOUND = "The model {!r} does not exist or you do not have access to it."


def test_no_key_is_a_401_in_openai_shape(backend, call):
    response = call(None, "/v1/chat/completions", chat())
    assert response.status_code == 401
    assert response.json()["error"] == {
        "message": "You didn't provide an API key. Provide it in an Authorization header "
        "using Bearer auth (Authorization: Bearer YOUR_KEY).",
        "type": "invalid_request_error",
        "param": None,
        "code": "missing_api_key",
    }
    assert backend.state.served == 0


def test_a_wrong_key_is_a_401(backend, call):
    response = call("tm-" + "x" * 40, "/v1/chat/completions", chat())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.json()["error"]["message"].startswith(
        "Incorrect API key provided: tm-xxxxxxxxx***xxxx."
    )


def test_a_revoked_key_stops_within_a_second(backend, call, acme, alice, alice_key):
    from tenants import services as tenant_services
    from tenants.models import ApiKey, Membership

    assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200
    key = ApiKey.objects.for_tenant(acme).get()
    tenant_services.api_key_revoke(
        tenant=acme, api_key=key, actor=Membership.unscoped.get(tenant=acme, user=alice)
    )
    revoked_at = time.monotonic()
    response = wait_for(
        lambda: (r := call(alice_key, "/v1/chat/completions", chat())).status_code == 401 and r,
        what="the revoked key to be refused",
    )
    assert time.monotonic() - revoked_at < 1.0
    assert response.json()["error"]["message"] == "This API key has been revoked."


def test_a_key_without_the_models_scope_is_refused(backend, call, acme, alice):
    key = make_key(acme, alice, scopes=["files"])
    response = call(key, "/v1/chat/completions", chat())
    assert response.status_code == 403
    assert response.json()["error"]["message"] == (
        "This API key does not have the 'models' scope needed for inference."
    )


def test_a_missing_model_is_a_404_naming_it(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(model="gpt-9"))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": NOT_FOUND.format("gpt-9"),
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_an_own_fine_tune_routes_to_its_base_models_replicas_unchanged(
    backend, call, alice_key, fine_tuned
):
    response = call(alice_key, "/v1/chat/completions", chat(model=fine_tuned.model_id))
    assert response.status_code == 200, response.text
    assert backend.state.requests[-1]["body"]["model"] == fine_tuned.model_id


def test_another_organizations_fine_tune_is_exactly_like_a_missing_one(
    backend, call, charlie_key, fine_tuned
):
    theirs = call(charlie_key, "/v1/chat/completions", chat(model=fine_tuned.model_id))
    missing = call(charlie_key, "/v1/chat/completions", chat(model=fine_tuned.model_id + "x"))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"] == NOT_FOUND.format(fine_tuned.model_id)
    assert {k: v for k, v in theirs.json()["error"].items() if k != "message"} == {
        k: v for k, v in missing.json()["error"].items() if k != "message"
    }
    assert backend.state.served == 0


def test_the_owner_is_never_read_from_the_id(backend, call, charlie_key, globex, acme):
    # A model of acme's whose id names globex: charlie (globex) still may not use it.
    impostor = make_fine_tuned_model(acme, suffix="globex")
    impostor.model_id = "ft:tiny-chat:globex:rooms:abcdef"
    impostor.save()
    response = call(charlie_key, "/v1/chat/completions", chat(model=impostor.model_id))
    assert response.status_code == 404


def test_a_deleted_fine_tune_stops_answering_within_a_second(
    backend, call, alice_key, acme, fine_tuned
):
    assert (
        call(alice_key, "/v1/chat/completions", chat(model=fine_tuned.model_id)).status_code == 200
    )
    finetuning_services.fine_tuned_model_delete(tenant=acme, model=fine_tuned)
    deleted_at = time.monotonic()
    wait_for(
        lambda: (
            call(alice_key, "/v1/chat/completions", chat(model=fine_tuned.model_id)).status_code
            == 404
        ),
        what="the deleted model to be refused",
    )
    assert time.monotonic() - deleted_at < 1.0


def test_a_fine_tune_created_after_a_miss_is_found(backend, call, alice_key, acme):
    assert (
        call(alice_key, "/v1/chat/completions", chat(model="ft:tiny-chat:acme:later:x")).status_code
        == 404
    )
    model = make_fine_tuned_model(acme, suffix="later")
    wait_for(
        lambda: (
            call(alice_key, "/v1/chat/completions", chat(model=model.model_id)).status_code == 200
        ),
        what="the new model to answer",
    )


def test_chat_with_an_embedding_model_says_which_endpoint_to_use(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(model="all-MiniLM-L6-v2"))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The model 'all-MiniLM-L6-v2' is an embedding model and cannot be used with "
        "/v1/chat/completions; use /v1/embeddings."
    )
    embeddings = call(alice_key, "/v1/embeddings", {"model": "tiny-chat", "input": "x"})
    assert embeddings.status_code == 400
    assert embeddings.json()["error"]["param"] == "model"
