"""Batches on the operator console: listed for every tenant, read-only."""

import pytest
from django.test import Client

from tests.batches.conftest import chat_line
from tokenmill.batches.models import Batch

pytestmark = pytest.mark.django_db(transaction=True)
BATCHES = "/console/batches/batch/"


@pytest.fixture
def console():
    from tenants.models import User
    from tests.factories import PASSWORD

    client = Client()
    client.force_login(User.objects.create_superuser("ops@tokenmill.example", PASSWORD))
    return client


def test_operators_see_every_tenants_batches_and_cannot_edit_them(
    backend, upload_batch_file, create_batch, console, charlie_key
):
    ours = create_batch(upload_batch_file([chat_line("a")])).json()["id"]
    theirs = create_batch(upload_batch_file([chat_line("b")], key=charlie_key), key=charlie_key)
    listed = console.get(BATCHES)
    assert listed.status_code == 200
    shown = {batch.public_id for batch in listed.context["cl"].result_list}
    assert shown == {ours, theirs.json()["id"]}
    batch = Batch.unscoped.get(public_id=ours)
    page = console.get(f"{BATCHES}{batch.pk}/change/")
    assert page.status_code == 200
    assert b'name="status"' not in page.content  # read-only: no form field to change it
    assert console.get(f"{BATCHES}add/").status_code == 403
