"""The model list as the chat page's picker reads it (GET /api/models): one entry per model, its
price parsed once here so the page only displays it."""

from __future__ import annotations

from typing import Any, TypedDict

from chat.nobox import ModelInfo

# How people write the providers Nobox lists by slug; any other provider is shown as given.
PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta": "Meta",
    "meta-llama": "Meta",
    "deepseek": "DeepSeek",
    "mistralai": "Mistral",
    "mistral": "Mistral",
    "x-ai": "xAI",
    "qwen": "Qwen",
    "cohere": "Cohere",
    "nvidia": "NVIDIA",
    "microsoft": "Microsoft",
    "amazon": "Amazon",
    "perplexity": "Perplexity",
    "sim": "Simulator",
}
OTHER_PROVIDER = "Other"


class ModelEntry(TypedDict):
    id: str
    public_id: str | None
    name: str
    provider: str
    pricing: Any  # as Nobox gave it
    input_per_million: str | None  # USD, "2.50"; None when the price is unknown
    output_per_million: str | None
    free: bool
    price_unknown: bool
    context_length: int | None


def provider_name(provider: str | None) -> str:
    if not provider:
        return OTHER_PROVIDER
    return PROVIDER_NAMES.get(provider.lower(), provider)


def entry(model: ModelInfo) -> ModelEntry:
    per_million = model.price.per_million()
    return {
        "id": model.id,
        "public_id": model.public_id,
        "name": model.name,
        "provider": provider_name(model.provider),
        "pricing": model.pricing,
        "input_per_million": per_million[0] if per_million else None,
        "output_per_million": per_million[1] if per_million else None,
        "free": model.price.free,
        "price_unknown": not model.price.known,
        "context_length": model.context_length,
    }
