from django import forms

from audit.actions import ACTIONS, FAMILIES
from audit.filters import FILTER_NAMES

ACTION_CHOICES = [
    ("", "Any action"),
    *((f"{family}.*", f"{family}.* (all)") for family in FAMILIES),
    *((name, name) for name in ACTIONS),
]


class AuditFilterForm(forms.Form):
    """The page's filters; the values are checked by ``audit.filters`` as the API's are."""

    action = forms.ChoiceField(choices=ACTION_CHOICES, required=False)
    actor = forms.CharField(
        required=False, max_length=210, help_text="A name, or user:name, token:name, system"
    )
    since = forms.CharField(
        required=False,
        max_length=40,
        help_text="ISO 8601, e.g. 2026-11-01T00:00:00Z",
        widget=forms.TextInput(attrs={"placeholder": "2026-11-01T00:00:00Z"}),
    )

    def filter_params(self) -> dict:
        return {name: self.cleaned_data[name] for name in FILTER_NAMES if self.cleaned_data[name]}
