"""The official `openai` SDK against a live server: models, and every way a key is refused."""

import openai
import pytest

from tenants import services
from tenants.keys import key_prefix
from tenants.models import ApiKey, Organization


def test_models_list_contains_the_demo_model(sdk, alice_key):
    page = sdk(alice_key).models.list()
    assert [model.id for model in page.data] == ["all-MiniLM-L6-v2", "tiny-chat"]
    assert page.data[0].object == "model"


def test_models_retrieve(sdk, alice_key):
    model = sdk(alice_key).models.retrieve("tiny-chat")
    assert (model.id, model.object, model.owned_by) == ("tiny-chat", "model", "tokenmill")
    assert isinstance(model.created, int)
    assert model.created > 1_700_000_000


def test_an_unknown_model_is_not_found(sdk, alice_key):
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(alice_key).models.retrieve("nope")
    assert raised.value.status_code == 404
    assert raised.value.code == "model_not_found"
    assert raised.value.body == {
        "message": "The model 'nope' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.parametrize(
    ("wrong_key", "shown"),
    [
        ("sk-not-a-tokenmill-key", "sk-not-a-tok***-key"),
        # The right prefix with the wrong secret: found by prefix, refused by the hash.
        (None, None),
    ],
    ids=["malformed", "wrong-secret"],
)
def test_a_wrong_key_is_an_authentication_error(sdk, alice_key, wrong_key, shown):
    if wrong_key is None:
        wrong_key = alice_key[:-4] + ("AAAA" if not alice_key.endswith("AAAA") else "BBBB")
        shown = f"{key_prefix(wrong_key)}***{wrong_key[-4:]}"
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(wrong_key).models.list()
    assert raised.value.status_code == 401
    assert raised.value.body == {
        "message": (
            f"Incorrect API key provided: {shown}. "
            "You can find and create API keys in the Tokenmill dashboard."
        ),
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert alice_key not in str(raised.value)


def test_a_revoked_key_is_an_authentication_error(sdk, acme, alice_key):
    client = sdk(alice_key)
    assert [model.id for model in client.models.list().data] == [
        "all-MiniLM-L6-v2",
        "tiny-chat",
    ]  # cached now

    api_key = ApiKey.unscoped.get(prefix=key_prefix(alice_key))
    services.api_key_revoke(tenant=acme, actor=None, api_key=api_key)

    with pytest.raises(openai.AuthenticationError) as raised:
        client.models.list()
    assert raised.value.code == "invalid_api_key"
    assert raised.value.body["message"] == "This API key has been revoked."


def test_a_suspended_organizations_key_is_permission_denied(sdk, acme, alice_key, charlie_key):
    client = sdk(alice_key)
    assert client.models.retrieve("tiny-chat").id == "tiny-chat"  # cached now

    services.organization_set_status(tenant=acme, status=Organization.Status.SUSPENDED)

    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.models.list()
    assert raised.value.status_code == 403
    assert raised.value.body == {
        "message": "The organization 'acme' is suspended. Contact support.",
        "type": "permission_error",
        "param": None,
        "code": "organization_suspended",
    }
    # Another tenant is unaffected; reactivating restores the key.
    assert [model.id for model in sdk(charlie_key).models.list().data] == [
        "all-MiniLM-L6-v2",
        "tiny-chat",
    ]
    services.organization_set_status(tenant=acme, status=Organization.Status.ACTIVE)
    assert [model.id for model in client.models.list().data] == ["all-MiniLM-L6-v2", "tiny-chat"]
