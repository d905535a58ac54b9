"""Pages: the chat, token settings, and small JSON endpoints the chat page uses."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from chat import branches, budgets, catalogue, conversation_export, tokens, upstream, usage_report
from chat import conversations as conversation_list
from chat.access import NotFound, attachment_or_404, conversation_or_404
from chat.attachments import attachment_response
from chat.forms import RenameForm, TokenForm
from chat.models import Conversation, NoboxToken, Usage, User, WireMessage
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
    messages_data, older = (
        _latest_messages(conversation, count=FIRST_PAGE_MESSAGES) if conversation else ([], False)
    )
    page_data: dict[str, Any] = {
        "conversation": conversation.public_id if conversation else None,
        "model": conversation.model if conversation else "",
        "system": conversation.system_prompt if conversation else "",
        "temperature": conversation.temperature if conversation else None,
        "max_tokens": conversation.max_tokens if conversation else None,
        "messages": messages_data,
        "older_messages": older,
        "messages_url": reverse("chat:messages", args=[conversation.public_id])
        if conversation
        else None,
        "limits": page_limits(),
        "usage": conversation_usage_data(conversation) if conversation else None,
    }
    needs_token = conversation is None and not _can_chat(user)
    return render(
        request,
        "chat/chat.html",
        {
            # First run: the empty chat asks for a token in place (chat/settings saves it and
            # comes back here), instead of pointing at a model picker that cannot fill.
            "needs_token": needs_token,
            "token_form": TokenForm() if needs_token else None,
            "conversations": conversation_list.sidebar(user, SIDEBAR_SIZE),
            "conversation": conversation,
            "page_data": page_data,
            "limits": page_data["limits"],
        },
    )


def _can_chat(user: User) -> bool:
    try:
        tokens.resolve(user)
    except tokens.TokenProblem:
        return False
    return True


# A page carries the latest messages, a few screens' worth: every one is in the page's HTML and
# is rendered before the composer can be used. The browser fetches older ones a bigger page at a
# time as the reader scrolls up.
FIRST_PAGE_MESSAGES = 40
MESSAGES_PER_PAGE = 100


def _latest_messages(
    conversation: Conversation, before_seq: int | None = None, count: int = MESSAGES_PER_PAGE
) -> tuple[list[WireMessage], bool]:
    """Up to `count` messages of the visible branch before `before_seq` (on the branch that
    leads to it; the latest if None), oldest first, and whether there are older ones."""
    tree = branches.load(conversation)
    shown = branches.latest_visible(conversation, tree, count + 1, before_seq or 0)
    return branches.wire(shown[-count:], tree), len(shown) > count


@login_required
@require_GET
def older_messages(request: HttpRequest, public_id: str) -> JsonResponse:
    conversation = conversation_or_404(_user(request), public_id)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        error = {"code": "invalid", "message": "before must be a message's seq."}
        return JsonResponse({"error": error}, status=400)
    messages_data, older = _latest_messages(conversation, before)
    return JsonResponse({"messages": messages_data, "older": older})


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _chat_page(request, None)


@login_required
@require_GET
def conversation(request: HttpRequest, public_id: str) -> HttpResponse:
    return _chat_page(request, conversation_or_404(_user(request), public_id))


def conversation_usage_data(conversation: Conversation) -> dict[str, Any]:
    """What the chat's header shows: the conversation's cost so far, from its usage records."""
    found = usage_report.totals(Usage.objects.filter(conversation=conversation))
    return {
        "cost": usage_report.money(found["cost"]),
        "records": found["records"],
        "unknown_price": found["unknown_price"],
        "estimated": found["estimated"],
    }


@login_required
@require_GET
def conversation_usage(request: HttpRequest, public_id: str) -> HttpResponse:
    return JsonResponse(conversation_usage_data(conversation_or_404(_user(request), public_id)))


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
    messages.success(request, _("Conversation deleted."))
    return redirect("chat:home")


@login_required
@require_GET
def attachment(request: HttpRequest, public_id: str) -> FileResponse:
    """A file of a message, to those who may see the message (else 404, as for any id)."""
    file = attachment_or_404(_user(request), public_id)
    return attachment_response(file)


@login_required
@require_GET
def export_json(request: HttpRequest, public_id: str) -> HttpResponse:
    conversation = conversation_or_404(_user(request), public_id)
    body = json.dumps(conversation_export.as_json(conversation), ensure_ascii=False, indent=1)
    return _download(body, "application/json", conversation, "json")


@login_required
@require_GET
def export_markdown(request: HttpRequest, public_id: str) -> HttpResponse:
    conversation = conversation_or_404(_user(request), public_id)
    body = conversation_export.as_markdown(conversation)
    return _download(body, "text/markdown", conversation, "md")


def _download(
    body: str, content_type: str, conversation: Conversation, suffix: str
) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    name = slugify(conversation.display_title)[:60] or "conversation"
    response["Content-Disposition"] = f'attachment; filename="{name}.{suffix}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def import_conversation(request: HttpRequest) -> JsonResponse:
    """An exported JSON file (the request body, sent by the page's fetch) as a new conversation.
    Read here up to MAX_IMPORT_BYTES: Django's own body limit is for forms."""
    limit = settings.MAX_IMPORT_BYTES
    too_large = _("The file is larger than %(size)d MB.") % {"size": limit // (1024 * 1024)}
    if int(request.headers.get("Content-Length") or 0) > limit:
        return _import_error(too_large, 413)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return _import_error(too_large, 413)
    try:
        conversation = conversation_export.import_json(_user(request), raw)
    except conversation_export.ImportRefused as refused:
        return _import_error(str(refused), 400)
    return JsonResponse({"url": reverse("chat:conversation", args=[conversation.public_id])})


def _import_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": "import_refused", "message": message}}, status=status)


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
            messages.success(request, _("Your Nobox token was removed."))
            return redirect("chat:settings")
        form = TokenForm(request.POST)
        if form.is_valid() and await _verified(form):
            await sync_to_async(tokens.store_token)(
                user, form.cleaned_data["token"], request=request
            )
            messages.success(request, _("Token verified with Nobox and saved."))
            return redirect(_next_page(request) or "chat:settings")
    saved = await NoboxToken.objects.filter(user=user).afirst()
    team = await sync_to_async(tokens.team_token_available)(user)
    spending = await sync_to_async(spending_of)(user)
    return await sync_to_async(render)(
        request,
        "chat/settings.html",
        {"form": form, "saved": saved, "team_token_available": team, **spending},
    )


def _next_page(request: HttpRequest) -> str | None:
    """Where to go after saving (the chat's first-run card sends "/"), if it is ours."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and safe else None


SPEND_CHART_DAYS = 30


def spending_of(user: User) -> dict[str, Any]:
    """The settings page's spending section: this month against the limit, and the last 30
    days, a day at a time, for the chart."""
    budget = budgets.budget_of(user)
    mine = Usage.objects.filter(user=user)
    month = usage_report.totals(
        mine.filter(finished_at__gte=budget.month_start, finished_at__lt=budget.resets_at)
    )
    days = usage_report.Range.last_days(SPEND_CHART_DAYS)
    daily = usage_report.by_day(days.records(mine), days.start, days.end)
    return {
        "budget": budget,
        "own_limit": user.monthly_limit is not None,
        "month": month,
        "month_spent": usage_report.usd(month["cost"]),
        "spend_chart": {
            "days": [day["key"] for day in daily],
            "cost": [usage_report.money(day["cost"]) for day in daily],
            "tokens": [day["total_tokens"] for day in daily],
        },
    }


def explain(error: NoboxError) -> str:
    """What went wrong, for a person: a token that could not even be sent says so."""
    if isinstance(error, UnsendableToken):
        # The client's own words (chat.nobox has no translations): English in every language.
        return f"{error.message[:1].upper()}{error.message[1:]}."
    return upstream.explain(error)


@sensitive_variables("token", "form")
async def _verified(form: TokenForm) -> bool:
    token = form.cleaned_data["token"]
    try:
        await upstream.models_for(token, fresh=True)
    except UnsendableToken as error:
        form.add_error("token", _("%(problem)s Nothing was saved.") % {"problem": explain(error)})
        return False
    except InvalidToken:
        form.add_error(
            "token",
            _("Nobox rejected this token (401). Check it and try again; nothing was saved."),
        )
        return False
    except NoboxError as error:
        form.add_error(
            "token",
            _("Could not verify the token with Nobox: %(problem)s Nothing was saved.")
            % {"problem": upstream.explain(error)},
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
            {"error": {"code": problem.code, "message": str(problem.message)}}, status=409
        )
    try:
        models = await upstream.models_for(resolved.token)
    except NoboxError as error:
        if isinstance(error, InvalidToken):
            await sync_to_async(tokens.mark_rejected)(resolved.record_pk)
        return JsonResponse({"error": {"code": error.code, "message": explain(error)}}, status=502)
    return JsonResponse({"models": [catalogue.entry(m) for m in models]})
