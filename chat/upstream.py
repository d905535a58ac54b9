"""The app's side of Nobox: one shared HTTP client per process, the models catalogue, and what
each upstream failure means to a user."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from chat.nobox import (
    ConnectionFailed,
    IncompleteStream,
    InsufficientFunds,
    InvalidToken,
    MalformedResponse,
    ModelInfo,
    ModelNotFound,
    NoboxClient,
    NoboxError,
    NoboxTimeout,
    RateLimited,
    RetryPolicy,
    Timeouts,
    UpstreamError,
)
from chat.nobox.transport import FastTransport
from chat.shutdown import on_shutdown

log = logging.getLogger(__name__)

# httpx.AsyncClient binds to the event loop that first uses it, so the shared client is per loop
# (in production there is exactly one loop per daphne process; tests make one per test).
_clients: dict[asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, NoboxClient]] = {}
# Upstream connections per process: streams in flight, and idle ones kept for the next reply.
MAX_CONNECTIONS = 200
MAX_IDLE = 50


def _transport() -> httpx.AsyncBaseTransport | None:
    """FastTransport unless turned off (None: httpx's default, which also honours proxies)."""
    if not settings.NOBOX_FAST_TRANSPORT:
        return None
    return FastTransport(max_connections=MAX_CONNECTIONS, max_idle=MAX_IDLE)


def nobox_client() -> NoboxClient:
    """The process's Nobox client, created on first use, reusing connections across replies."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is None:
        http = httpx.AsyncClient(
            transport=_transport(),
            timeout=httpx.Timeout(
                connect=settings.NOBOX_CONNECT_TIMEOUT, read=None, write=30.0, pool=30.0
            ),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_IDLE
            ),
            follow_redirects=False,
        )
        client = NoboxClient(
            settings.NOBOX_BASE_URL,
            http,
            timeouts=Timeouts(
                connect=settings.NOBOX_CONNECT_TIMEOUT,
                first_byte=settings.NOBOX_FIRST_BYTE_TIMEOUT,
                stall=settings.NOBOX_STALL_TIMEOUT,
                total=settings.NOBOX_TOTAL_TIMEOUT,
            ),
            retry=RetryPolicy(attempts=settings.NOBOX_RETRY_ATTEMPTS),
            include_usage=settings.NOBOX_INCLUDE_USAGE,
        )
        entry = _clients[loop] = (http, client)
        on_shutdown("close nobox http client", close_clients)
    return entry[1]


async def close_clients() -> None:
    """Close the shared HTTP client(s) of the running loop; safe to call more than once."""
    loop = asyncio.get_running_loop()
    entry = _clients.pop(loop, None)
    if entry is not None:
        await entry[0].aclose()


# --- models catalogue --------------------------------------------------------------------------

CATALOGUE_TTL = 300.0


@dataclass
class _CatalogueEntry:
    models: list[ModelInfo]
    fetched: float


_catalogues: dict[str, _CatalogueEntry] = {}


def _catalogue_key(token: str) -> str:
    # Keyed by a hash so the token itself is not kept as a dict key in memory dumps or reprs.
    return hashlib.sha256(token.encode()).hexdigest()


async def models_for(token: str, *, fresh: bool = False) -> list[ModelInfo]:
    """The models this token's account may use, with prices; cached for a few minutes."""
    key = _catalogue_key(token)
    entry = _catalogues.get(key)
    if entry and not fresh and time.monotonic() - entry.fetched < CATALOGUE_TTL:
        return entry.models
    models = await nobox_client().list_models(token)
    _catalogues[key] = _CatalogueEntry(models, time.monotonic())
    return models


async def model_info(token: str, model: str) -> ModelInfo | None:
    """The model as the catalogue lists it (with its price), or None if it cannot say."""
    try:
        models = await models_for(token)
    except NoboxError:
        return None
    return next((info for info in models if model in (info.id, info.public_id)), None)


# --- what a failure means to the user ----------------------------------------------------------


def explain(error: NoboxError) -> str:
    """A sentence for the chat: what happened and what to do about it."""
    if isinstance(error, InsufficientFunds):
        return _("Your Nobox wallet is out of funds. Top it up in the Nobox dashboard, then retry.")
    if isinstance(error, InvalidToken):
        return _("Nobox rejected your token. Replace it in Settings, then retry.")
    if isinstance(error, ModelNotFound):
        return _(
            "Nobox does not know this model (or your account cannot use it). Pick another model."
        )
    if isinstance(error, RateLimited):
        if error.retry_after:
            return _(
                "Nobox is rate limiting your requests. Wait about %(seconds)d s, then retry."
            ) % {"seconds": round(error.retry_after)}
        return _("Nobox is rate limiting your requests. Wait a moment, then retry.")
    if isinstance(error, NoboxTimeout):
        return {
            "connect": _("Could not reach Nobox in time. Check the network, then retry."),
            "first_byte": _("Nobox did not start answering in time. Retry, or pick another model."),
            "stall": _(
                "Nobox stopped sending in the middle of the answer. The text so far is kept."
            ),
            "total": _("The answer took too long and was cut off. The text so far is kept."),
        }.get(error.phase, _("Nobox took too long to answer. Retry."))
    if isinstance(error, IncompleteStream):
        return _(
            "The connection to Nobox broke before the answer finished. The text so far is kept."
        )
    if isinstance(error, ConnectionFailed):
        return _("Could not connect to Nobox. Retry in a moment.")
    if isinstance(error, MalformedResponse):
        return _("Nobox sent a response that could not be read. Retry in a moment.")
    if isinstance(error, UpstreamError):
        return _("Nobox or the model's provider had an internal error. Retry in a moment.")
    return _("Nobox could not answer this request. Check the message and retry.")
