"""JSON endpoints of the conversation list (docs/protocol.md, "Conversation list"): search,
rename, pin, archive, delete with undo. POSTs need the CSRF token (header X-CSRFToken); another
user's conversation is a 404 like one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat import conversations, search
from chat.access import NotFound, conversation_for
from chat.forms import RenameForm
from chat.models import User

JsonView = Callable[..., JsonResponse]


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def signed_in_json(view: JsonView) -> JsonView:
    """A JSON 401 rather than a redirect to the login page, which fetch() would follow; a
    conversation the user cannot see is a JSON 404."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        user = request.user
        if not isinstance(user, User) or not user.is_authenticated:
            return error(401, "unauthenticated", _("You are signed out. Sign in again."))
        try:
            return view(request, user, *args, **kwargs)
        except NotFound:
            return error(404, "not_found", _("No such conversation."))

    return wrapper


def _flag(request: HttpRequest, name: str) -> bool | None:
    return {"true": True, "false": False}.get(request.POST.get(name, ""))


def _utf16_span(text: str, span: tuple[int, int] | None) -> list[int] | None:
    """A span of code points as the UTF-16 indices JavaScript's String.slice takes (an emoji
    before the match counts twice there)."""
    if span is None:
        return None
    return [len(text[:index].encode("utf-16-le")) // 2 for index in span]


@require_GET
@signed_in_json
def search_conversations(request: HttpRequest, user: User) -> JsonResponse:
    try:
        query = search.clean_query(request.GET.get("q", ""))
    except search.BadQuery as bad:
        return error(400, "query_too_long", str(bad))
    hits = search.search(user, query)
    return JsonResponse(
        {
            "query": query,
            "results": [
                {
                    **conversations.summary(hit.conversation),
                    "snippet": hit.snippet,
                    "highlight": _utf16_span(hit.snippet, hit.highlight),
                }
                for hit in hits
            ],
        }
    )


@require_POST
@signed_in_json
def rename(request: HttpRequest, user: User, public_id: str) -> JsonResponse:
    target = conversation_for(user, public_id)
    form = RenameForm(request.POST)
    if not form.is_valid():
        return error(
            400, "invalid_title", _("A title needs 1 to 200 characters (not only spaces).")
        )
    target.title = form.cleaned_data["title"]
    target.save(update_fields=["title"])
    return JsonResponse({"conversation": conversations.summary(target)})


@require_POST
@signed_in_json
def pin(request: HttpRequest, user: User, public_id: str) -> JsonResponse:
    pinned = _flag(request, "pinned")
    if pinned is None:
        return error(400, "invalid_flag", _("Send pinned=true or pinned=false."))
    target = conversations.set_pinned(user, public_id, pinned)
    return JsonResponse({"conversation": conversations.summary(target)})


@require_POST
@signed_in_json
def archive(request: HttpRequest, user: User, public_id: str) -> JsonResponse:
    archived = _flag(request, "archived")
    if archived is None:
        return error(400, "invalid_flag", _("Send archived=true or archived=false."))
    target = conversations.set_archived(user, public_id, archived)
    return JsonResponse({"conversation": conversations.summary(target)})


@require_POST
@signed_in_json
def delete(request: HttpRequest, user: User, public_id: str) -> JsonResponse:
    deleted = conversations.delete(user, public_id)
    return JsonResponse(
        {
            "conversation": deleted.conversation.public_id,
            "undo_until": deleted.undo_until.isoformat(),
            "undo_seconds": settings.CONVERSATION_UNDO_SECONDS,
            "stopped_reply": deleted.stopped_reply,
        }
    )


@require_POST
@signed_in_json
def restore(request: HttpRequest, user: User, public_id: str) -> JsonResponse:
    try:
        restored = conversations.restore(user, public_id)
    except conversations.UndoExpired:
        return error(
            410,
            "undo_expired",
            _("Too late to undo: the conversation was deleted for good."),
        )
    return JsonResponse({"conversation": conversations.summary(restored)})
