from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from chat import tokens
from chat.models import ShareLink
from chat.sharing import EXPIRY_CHOICES


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Nobox token"),
        max_length=tokens.MAX_TOKEN_LENGTH,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=_(
            "From the Nobox dashboard. It is checked with Nobox, stored encrypted, and never "
            "shown again (only its last four characters)."
        ),
    )

    @sensitive_variables("token")
    def clean_token(self) -> str:
        token: str = self.cleaned_data["token"]
        return token_or_error(token)


@sensitive_variables("token")
def token_or_error(token: str) -> str:
    """`token` if its format is right, else the form error saying what is wrong with it."""
    try:
        return tokens.check_format(token)
    except tokens.MalformedToken as problem:
        raise forms.ValidationError(str(problem)) from None


class RenameForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200, strip=True)


class ShareForm(forms.Form):
    kind = forms.ChoiceField(
        choices=ShareLink.Kind.choices,
        initial=ShareLink.Kind.SNAPSHOT,
        widget=forms.RadioSelect,
        label=_("What the link shows"),
        help_text=_(
            "Snapshot: the conversation as it is now; later messages never appear. Live: later "
            "messages appear too, and replies stream as they are written."
        ),
    )
    expires = forms.ChoiceField(
        choices=[(value, label) for value, (label, _duration) in EXPIRY_CHOICES.items()],
        required=False,
        label=_("Expires"),
    )
    show_owner_name = forms.BooleanField(required=False, label=_("Show my name"))
    show_cost = forms.BooleanField(required=False, label=_("Show token counts and cost"))

    def expires_in(self) -> timedelta | None:
        return EXPIRY_CHOICES[self.cleaned_data.get("expires") or ""][1]
