import math

import pytest

from gpu_inference.hyperparameters import (
    DEMO_MODEL_PARAMETERS,
    InvalidHyperparameter,
    base_learning_rate,
    resolve_hyperparameters,
)


def resolve(
    requested=None, *, n_examples=20, mean_tokens=40, n_params=DEMO_MODEL_PARAMETERS, method="lora"
):
    return resolve_hyperparameters(
        requested or {},
        n_examples=n_examples,
        n_train_tokens=n_examples * mean_tokens,
        n_params=n_params,
        method=method,
    )


def test_auto_for_a_small_chat_set_is_what_learned_it_on_the_demo_model():
    assert resolve(
        {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    ) == {
        "n_epochs": 25,
        "batch_size": 4,
        "learning_rate": 5e-3,
        "learning_rate_multiplier": 1.0,
        "lora_r": 16,
        "lora_alpha": 32,
    }


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(1, 25), (20, 25), (50, 10), (100, 5), (166, 4), (167, 3), (100_000, 3)],
)
def test_auto_epochs_pass_small_sets_about_500_times(n_examples, epochs):
    assert resolve(n_examples=n_examples)["n_epochs"] == epochs


@pytest.mark.parametrize(
    ("n_examples", "batch"), [(1, 1), (3, 3), (20, 4), (1_000, 4), (1_600, 8), (100_000, 64)]
)
def test_auto_batch_size_grows_with_the_data_within_bounds(n_examples, batch):
    assert resolve(n_examples=n_examples)["batch_size"] == batch


def test_auto_batch_size_keeps_long_examples_within_the_token_budget():
    assert resolve(n_examples=100_000, mean_tokens=4_000)["batch_size"] == 4
    assert resolve(n_examples=100_000, mean_tokens=20_000)["batch_size"] == 1


def test_the_multiplier_scales_the_auto_rate():
    resolved = resolve({"learning_rate_multiplier": 0.5})
    assert resolved["learning_rate"] == pytest.approx(2.5e-3)
    assert resolved["learning_rate_multiplier"] == 0.5


def test_numbers_are_taken_as_given():
    resolved = resolve({"n_epochs": 3.0, "batch_size": 16, "lora_r": 8})
    assert resolved["n_epochs"] == 3 and isinstance(resolved["n_epochs"], int)
    assert resolved["batch_size"] == 16
    assert (resolved["lora_r"], resolved["lora_alpha"]) == (8, 16)
    assert resolve({"lora_r": 8, "lora_alpha": 8})["lora_alpha"] == 8


def test_full_fine_tuning_has_its_own_rate_and_no_lora_fields():
    resolved = resolve({"lora_r": "auto", "lora_alpha": None}, method="full")
    assert resolved["learning_rate"] == 1e-3
    assert "lora_r" not in resolved and "lora_alpha" not in resolved


def test_bigger_models_get_smaller_rates_down_to_the_7b_convention():
    rates = [
        base_learning_rate(n, method="lora")
        for n in (10**5, DEMO_MODEL_PARAMETERS, 10**8, 7 * 10**9, 10**11)
    ]
    assert rates[0] == rates[1] == 5e-3
    assert rates[1] > rates[2] > rates[3]
    assert rates[3] == rates[4] == 2e-4
    assert base_learning_rate(7 * 10**9, method="full") == 1e-5


@pytest.mark.parametrize(
    ("requested", "field", "message"),
    [
        ({"n_epochs": 0}, "n_epochs", "between 1 and 50"),
        ({"n_epochs": 51}, "n_epochs", "between 1 and 50"),
        ({"n_epochs": 2.5}, "n_epochs", "'auto' or an integer"),
        ({"n_epochs": True}, "n_epochs", "'auto' or an integer"),
        ({"n_epochs": "three"}, "n_epochs", "'auto' or an integer"),
        ({"batch_size": 257}, "batch_size", "between 1 and 256"),
        ({"learning_rate_multiplier": 0}, "learning_rate_multiplier", "between 0.01 and 10.0"),
        ({"learning_rate_multiplier": math.nan}, "learning_rate_multiplier", "'auto' or a number"),
        ({"learning_rate_multiplier": math.inf}, "learning_rate_multiplier", "between"),
        ({"lora_r": 0}, "lora_r", "between 1 and 256"),
        ({"lora_alpha": 2000}, "lora_alpha", "between 1 and 1024"),
        ({"learning_rate": 0.1}, "learning_rate", "not a hyperparameter"),
    ],
)
def test_out_of_range_requests_name_the_field(requested, field, message):
    with pytest.raises(InvalidHyperparameter, match=message) as failure:
        resolve(requested)
    assert failure.value.field == field


def test_lora_fields_are_refused_for_full_fine_tuning():
    with pytest.raises(InvalidHyperparameter) as failure:
        resolve({"lora_r": 8}, method="full")
    assert failure.value.field == "lora_r"


def test_an_unknown_method_or_an_empty_file_is_refused():
    with pytest.raises(InvalidHyperparameter, match="method"):
        resolve(method="qlora")
    with pytest.raises(InvalidHyperparameter, match="no examples"):
        resolve(n_examples=0)
