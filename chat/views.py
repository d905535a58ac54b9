"""Pages: the chat, token settings, and small JSON endpoints the chat page uses."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from chat import conversations as conversation_list
from chat import tokens, upstream
from chat.access import NotFound, conversation_or_404
from chat.forms import RenameForm, TokenForm
from chat.models import Conversation, NoboxToken, User
from chat.nobox import InvalidToken, NoboxError
from chat.nobox.client import UnsendableToken

SIDEBAR_SIZE = 200


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def page_limits() -> dict[str, int]:
    """What the page checks before sending: the server's own limits (docs/protocol.md), handed
    over with the page data so no template or module repeats a number."""
    return {
        "max_message_chars": settings.MAX_MESSAGE_CHARS,
        "max_system_prompt_chars": settings.MAX_SYSTEM_PROMPT_CHARS,
        "max_attachments": settings.MAX_ATTACHMENTS,
        "max_attachment_bytes": settings.MAX_ATTACHMENT_BYTES,
        "max_output_tokens": settings.MAX_OUTPUT_TOKENS,
        "max_frame_bytes": settings.MAX_FRAME_BYTES,
    }


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    user = _user(request)
    messages_data = [m.to_wire() for m in conversation.messages.all()] if conversation else []
    page_data: dict[str, Any] = {
        "conversation": conversation.public_id if conversation else None,
        "model": conversation.model if conversation else "",
        "system": conversation.system_prompt if conversation else "",
        "temperature": conversation.temperature if conversation else None,
        "max_tokens": conversation.max_tokens if conversation else None,
        "messages": messages_data,
        "limits": page_limits(),
    }
    return render(
        request,
        "chat/chat.html",
        {
            "conversations": conversation_list.sidebar(user, SIDEBAR_SIZE),
            "conversation": conversation,
            "page_data": page_data,
            "limits": page_data["limits"],
        },
    )


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@login_required
@require_GET
def conversation(request: HttpRequest, public_id: str) -> HttpResponse:
    return _chat_page(request, conversation_or_404(_user(request), public_id))


@login_required
@require_POST
def rename(request: HttpRequest, public_id: str) -> HttpResponse:
    target = conversation_or_404(_user(request), public_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        target.title = form.cleaned_data["title"]
        target.save(update_fields=["title"])
    return redirect("chat:conversation", public_id=target.public_id)


@login_required
@require_POST
def delete(request: HttpRequest, public_id: str) -> HttpResponse:
    """The form fallback of the JSON delete (chat.conversation_views): the same soft delete,
    which stops a running reply and is purged after the undo window."""
    try:
        conversation_list.delete(_user(request), public_id)
    except NotFound as exc:
        raise Http404("No such conversation") from exc
    messages.success(request, "Conversation deleted.")
    return redirect("chat:home")


async def _auser(request: HttpRequest) -> User | None:
    user = await request.auser()
    return user if isinstance(user, User) and user.is_authenticated else None


@sensitive_post_parameters("token")
@sensitive_variables("form")
async def token_settings(request: HttpRequest) -> HttpResponse:
    """Save, replace or remove the user's Nobox token. A token is verified before it is kept."""
    user = await _auser(request)
    if user is None:
        return redirect(f"/accounts/login/?next={request.path}")
    form = TokenForm()
    if request.method == "POST":
        if request.POST.get("action") == "remove":
            await sync_to_async(tokens.remove_token)(user, request=request)
            messages.success(request, "Your Nobox token was removed.")
            return redirect("chat:settings")
        form = TokenForm(request.POST)
        if form.is_valid() and await _verified(form):
            await sync_to_async(tokens.store_token)(
                user, form.cleaned_data["token"], request=request
            )
            messages.success(request, "Token verified with Nobox and saved.")
            return redirect("chat:settings")
    saved = await NoboxToken.objects.filter(user=user).afirst()
    team = await sync_to_async(tokens.team_token_available)(user)
    return await sync_to_async(render)(
        request,
        "chat/settings.html",
        {"form": form, "saved": saved, "team_token_available": team},
    )


def explain(error: NoboxError) -> str:
    """What went wrong, for a person: a token that could not even be sent says so."""
    if isinstance(error, UnsendableToken):
        return f"{error.message[:1].upper()}{error.message[1:]}."
    return upstream.explain(error)


@sensitive_variables("token", "form")
async def _verified(form: TokenForm) -> bool:
    token = form.cleaned_data["token"]
    try:
        await upstream.models_for(token, fresh=True)
    except UnsendableToken as error:
        form.add_error("token", f"{explain(error)} Nothing was saved.")
        return False
    except InvalidToken:
        form.add_error(
            "token", "Nobox rejected this token (401). Check it and try again; nothing was saved."
        )
        return False
    except NoboxError as error:
        form.add_error(
            "token",
            f"Could not verify the token with Nobox: {upstream.explain(error)} Nothing was saved.",
        )
        return False
    return True


@sensitive_variables("resolved")
async def models_list(request: HttpRequest) -> HttpResponse:
    """The user's models with prices, for the picker. Never includes the token."""
    user = await _auser(request)
    if user is None:
        return JsonResponse({"error": {"code": "unauthenticated"}}, status=401)
    try:
        resolved = await sync_to_async(tokens.resolve)(user)
    except tokens.TokenProblem as problem:
        return JsonResponse(
            {"error": {"code": problem.code, "message": problem.message}}, status=409
        )
    try:
        models = await upstream.models_for(resolved.token)
    except NoboxError as error:
        if isinstance(error, InvalidToken):
            await sync_to_async(tokens.mark_rejected)(resolved.record_pk)
        return JsonResponse({"error": {"code": error.code, "message": explain(error)}}, status=502)
    return JsonResponse(
        {
            "models": [
                {"id": m.id, "public_id": m.public_id, "name": m.name, "pricing": m.pricing}
                for m in models
            ]
        }
    )
