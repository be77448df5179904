"""One source for the job request: the parser, the OpenAPI schema and the trainer's
resolver all read their hyperparameter names and bounds from gpu_inference.hyperparameters."""

import pytest

from gpu_inference import hyperparameters as hp
from tenants.errors import TenantError
from tests.api.test_schema import fetch_schema
from tokenmill.finetuning import params
from tokenmill.finetuning.params import parse_job_request


def request_with(name, value) -> dict:
    return {"model": "m", "training_file": "f", "hyperparameters": {name: value}}


@pytest.mark.parametrize("spec", hp.REQUESTABLE, ids=lambda spec: spec.name)
def test_the_parser_and_the_resolver_accept_exactly_the_declared_bounds(spec):
    for value in spec.bounds:
        parsed = parse_job_request(request_with(spec.name, value)).hyperparameters
        resolved = hp.resolve_hyperparameters(
            hp.from_request(parsed),
            n_examples=20,
            n_train_tokens=800,
            n_params=10**6,
            method="lora",
        )
        assert resolved[spec.key] == value
    for value in (spec.low - 1, spec.high + 1):
        with pytest.raises(TenantError) as refused:
            parse_job_request(request_with(spec.name, value))
        assert refused.value.param == f"hyperparameters.{spec.name}"
        assert refused.value.message == (
            f"hyperparameters.{spec.name} must be at least {spec.low:g} and at most "
            f"{spec.high:g}, got {value!r}."
        )


def test_the_schema_describes_the_declared_hyperparameters(client, db):
    components = fetch_schema(client)["components"]["schemas"]
    properties = components["FineTuningHyperparametersRequestRequest"]["properties"]
    assert list(properties) == [spec.name for spec in hp.REQUESTABLE]
    for spec in hp.REQUESTABLE:
        assert f"from {spec.low:g} to {spec.high:g}" in properties[spec.name]["description"]
    request = components["FineTuningJobCreateRequestRequest"]["properties"]
    assert request["seed"]["maximum"] == params.MAX_SEED
    assert request["suffix"]["maxLength"] == params.SUFFIX_MAX_LENGTH
