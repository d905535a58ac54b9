"""The model list as the picker reads it: providers named for people, prices parsed once."""

from __future__ import annotations

from chat import catalogue
from chat.nobox import ModelInfo, Price


def model(model_id: str, provider: str | None, pricing: object = None) -> ModelInfo:
    return ModelInfo(model_id, None, model_id, pricing, Price.parse(pricing), provider)


def test_known_provider_slugs_read_as_their_names_and_others_as_given():
    assert catalogue.entry(model("openai/gpt-4o", "openai"))["provider"] == "OpenAI"
    assert catalogue.entry(model("x/y", "Meta-Llama"))["provider"] == "Meta"
    assert catalogue.entry(model("acme/z", "Acme Labs"))["provider"] == "Acme Labs"
    assert catalogue.entry(model("bare-id", None))["provider"] == "Other"


def test_an_entry_carries_its_price_per_million_and_flags():
    priced = catalogue.entry(model("a/b", "a", {"prompt": "0.000003", "completion": "0.000015"}))
    assert (priced["input_per_million"], priced["output_per_million"]) == ("3", "15")
    assert (priced["free"], priced["price_unknown"]) == (False, False)
    free = catalogue.entry(model("a/c", "a", "free"))
    assert (free["free"], free["price_unknown"]) == (True, False)
    unknown = catalogue.entry(model("a/d", "a", {"prompt": "0.1"}))
    assert (unknown["free"], unknown["price_unknown"]) == (False, True)
    assert unknown["input_per_million"] is None
