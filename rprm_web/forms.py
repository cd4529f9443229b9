"""What every launch form shares: the idempotency key.

A launch form renders a fresh uuid in a hidden field; the view creates the run through
`rprm_web.runs.launch_once`, so a second POST of the same form (a double click, a
browser resubmit) returns the first run instead of starting another."""

from __future__ import annotations

import uuid

from django import forms


class LaunchKeyForm(forms.Form):
    launch_key = forms.UUIDField(required=False, widget=forms.HiddenInput, initial=uuid.uuid4)

    def launch_key_value(self) -> uuid.UUID | None:
        return self.cleaned_data.get("launch_key")
