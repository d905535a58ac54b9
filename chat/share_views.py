"""Pages of shared links: the owner's (create, list, revoke) and the viewer's (the read-only
shared page, and continuing it in one's own account). The workflows are in chat.sharing."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import sharing
from chat.access import conversation_or_404, share_link_or_404
from chat.attachments import attachment_response
from chat.forms import ShareForm
from chat.models import ShareLink, ShareSettings, User

R = TypeVar("R", bound=HttpResponseBase)


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _signed_in(request: HttpRequest) -> User | None:
    user = request.user
    return user if isinstance(user, User) and user.is_authenticated else None


# --- the owner's pages ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def create(request: HttpRequest, public_id: str) -> HttpResponse:
    conversation = conversation_or_404(_user(request), public_id)
    form = ShareForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        made = sharing.create_link(
            _user(request),
            conversation,
            kind=form.cleaned_data["kind"],
            expires_in=form.expires_in(),
            show_owner_name=form.cleaned_data["show_owner_name"],
            show_cost=form.cleaned_data["show_cost"],
            request=request,
        )
        # The token is shown this once, in this response, and never stored: it is not put in
        # a flash message (the session store) or a redirect.
        url = request.build_absolute_uri(f"/s/{made.token}")
        return render(request, "chat/share_created.html", {"link": made.link, "url": url})
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "chat/share_new.html",
        {"conversation": conversation, "form": form, "policy": ShareSettings.current()},
        status=status,
    )


@login_required
@require_GET
def links(request: HttpRequest) -> HttpResponse:
    mine = ShareLink.objects.filter(owner=_user(request)).select_related("conversation")
    return render(request, "chat/share_links.html", {"links": mine})


@login_required
@require_POST
def revoke(request: HttpRequest, public_id: str) -> HttpResponse:
    link = share_link_or_404(_user(request), public_id)
    if sharing.revoke_link(link, _user(request), request=request):
        messages.success(request, _("The link was revoked: it no longer opens."))
    return redirect("chat:share_links")


# --- the viewer's pages ---------------------------------------------------------------------------


def _private(response: R) -> R:
    """Shared pages: never indexed, cached, framed, or named in a Referer."""
    patch_cache_control(response, no_store=True)
    response["X-Robots-Tag"] = "noindex, nofollow, noarchive"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Frame-Options"] = "DENY"
    return response


def _gone(request: HttpRequest) -> HttpResponse:
    """Unknown, revoked and expired links alike: one 404, as private as the page itself."""
    return _private(render(request, "chat/share_gone.html", status=404))


def _may_view(request: HttpRequest) -> bool:
    return _signed_in(request) is not None or ShareSettings.current().anyone_may_view


@require_GET
def shared(request: HttpRequest, token: str) -> HttpResponse:
    # The policy first, before the token is looked at: a visitor who may not view learns
    # nothing about whether a link exists.
    if not _may_view(request):
        return _private(redirect_to_login(request.get_full_path()))
    link = ShareLink.objects.for_token(token)
    if link is None:
        return _gone(request)
    link.note_view()
    live = link.kind == ShareLink.Kind.LIVE
    shown = [
        sharing.for_viewer(m.to_wire(), link.show_cost, token)
        for m in sharing.visible_messages(link)
    ]
    page_data: dict[str, Any] = {
        "live": live,
        "socket_path": f"/ws/share/{token}/" if live else None,
        "messages": shown,
    }
    context = {
        "link": link,
        "title": link.conversation.display_title,
        "owner_name": sharing.owner_label(link),
        "page_data": page_data,
        "signed_in": _signed_in(request) is not None,
        "token": token,
    }
    return _private(render(request, "chat/shared.html", context))


@require_GET
def shared_file(request: HttpRequest, token: str, public_id: str) -> HttpResponseBase:
    """A file of a message the link shows, to whoever may open the link (else the same 404)."""
    if not _may_view(request):
        return _private(redirect_to_login(f"/s/{token}"))
    link = ShareLink.objects.for_token(token)
    file = sharing.visible_file(link, public_id) if link is not None else None
    if file is None:
        return _gone(request)
    return _private(attachment_response(file))


@require_POST
def continue_shared(request: HttpRequest, token: str) -> HttpResponse:
    user = _signed_in(request)
    if user is None:
        return _private(redirect_to_login(f"/s/{token}"))
    link = ShareLink.objects.for_token(token)
    if link is None:
        return _gone(request)
    copy = sharing.continue_in_account(link, user)
    messages.success(request, _("The shared conversation is now yours to continue."))
    return redirect("chat:conversation", public_id=copy.public_id)
