from __future__ import annotations

from django import forms


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Nobox token",
        max_length=500,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="From the Nobox dashboard. It is checked with Nobox, stored encrypted, and "
        "never shown again (only its last four characters).",
    )

    def clean_token(self) -> str:
        token: str = self.cleaned_data["token"]
        if any(ch.isspace() for ch in token) or len(token) < 8:
            raise forms.ValidationError("That does not look like a Nobox token.")
        return token


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)
