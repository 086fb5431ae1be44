"""The pages' forms: where a browser's POST becomes typed values for graphspace.actions, or
form errors shown again with the user's input.

Django's CharField already refuses NUL characters; the JSON fields parse text into values the
actions check (graphspace.actions.check_json), the tags field splits on commas.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from graphspace.actions import NAME_MAX

BIGINT_MAX = 2**63 - 1


def _name(label: str) -> forms.CharField:
    return forms.CharField(
        label=label, max_length=NAME_MAX,
        error_messages={
            "required": f"{label} is required.",
            "max_length": f"{label} cannot be more than {NAME_MAX} characters long.",
        },
    )


class JsonField(forms.CharField):
    """JSON typed in a textarea: empty is None (or required), anything else must parse."""

    def __init__(self, *, label: str, required: bool = False, object_only: bool = False) -> None:
        super().__init__(label=label, required=required, strip=True,
                         error_messages={"required": f"{label} is required."})
        self.object_only = object_only

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            parsed = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"{self.label} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
            ) from None
        except (ValueError, RecursionError):
            # NaN or Infinity, an integer of more than 4,300 digits, or nesting Python's
            # parser gives up on.
            raise forms.ValidationError(f"{self.label} is not JSON this site can store.") from None
        if self.object_only and not isinstance(parsed, dict):
            raise forms.ValidationError(f"{self.label} must be a JSON object.")
        return parsed


def _no_constant(name: str) -> Any:
    raise ValueError(name)


class TagsField(forms.CharField):
    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        if "\x00" in text:  # the NUL validator would see the list's repr, not the text
            raise forms.ValidationError("Null characters are not allowed.")
        return [tag.strip() for tag in text.split(",") if tag.strip()]


class GraphUploadForm(forms.Form):
    name = _name("Name")
    graph_json = JsonField(label="Graph JSON", required=True)
    style_json = JsonField(label="Style JSON")
    tags = TagsField(required=False)
    is_public = forms.BooleanField(required=False)


class GraphUpdateForm(forms.Form):
    name = _name("Name")
    is_public = forms.BooleanField(required=False)
    graph_json = JsonField(label="Graph JSON", required=True)
    style_json = JsonField(label="Style JSON")


class LayoutCreateForm(forms.Form):
    name = _name("Layout name")
    positions_json = JsonField(label="Positions JSON", object_only=True)
    is_shared = forms.BooleanField(required=False)


class LayoutUpdateForm(forms.Form):
    name = _name("Layout name")
    positions_json = JsonField(label="Positions JSON", object_only=True)


class LayoutShareForm(forms.Form):
    """is_shared=1 shares, anything else unshares (the page's two buttons)."""

    is_shared = forms.CharField(required=False)

    def shared(self) -> bool:
        return bool(self.cleaned_data.get("is_shared") == "1")


class GroupForm(forms.Form):
    name = _name("Group name")
    description = forms.CharField(required=False, strip=True)


class MemberForm(forms.Form):
    """Members are added by email: the page never looks a user up by id."""

    email = forms.EmailField(error_messages={"required": "Email is required.", "invalid": "Enter a valid email address."})

    def clean_email(self) -> str:
        return str(self.cleaned_data["email"]).strip().lower()


class ShareForm(forms.Form):
    group_id = forms.IntegerField(
        min_value=1, max_value=BIGINT_MAX,
        error_messages={k: "Choose a group." for k in ("required", "invalid", "min_value", "max_value")},
    )


class UnshareForm(forms.Form):
    next = forms.CharField(required=False)


def first_error(form: forms.Form) -> str:
    """The message to show for a form that failed: its first error, naming the field."""
    for field, messages in form.errors.items():
        message = str(messages[0])
        label = form.fields[field].label if field in form.fields else None
        if label and not message.startswith(str(label)) and not message.startswith("Choose"):
            return f"{label}: {message}"
        return message
    return "The form has an error."


def shown(form: forms.Form, initial: dict[str, Any]) -> dict[str, Any]:
    """The values the page's form shows: the initial ones, or what the user sent."""
    if not form.is_bound:
        return initial
    return {
        key: (key in form.data) if isinstance(value, bool) else form.data.get(key, "")
        for key, value in initial.items()
    }
