from __future__ import annotations

from django import forms
from django.views.decorators.debug import sensitive_variables

from chat import tokens


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Nobox token",
        max_length=tokens.MAX_TOKEN_LENGTH,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="From the Nobox dashboard. It is checked with Nobox, stored encrypted, and "
        "never shown again (only its last four characters).",
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
    title = forms.CharField(max_length=200, strip=True)
