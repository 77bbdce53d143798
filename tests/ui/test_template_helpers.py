"""The template helpers every page uses: words for identifiers, and form fields whose
widget names its help text and its errors for screen readers."""

import re

from django import forms
from django.template.loader import render_to_string

from organizations.templatetags.strongbox_ui import words


class _Form(forms.Form):
    name = forms.CharField(help_text="Letters and digits.")
    port = forms.IntegerField()


def _field_html(form, name: str) -> str:
    return render_to_string("includes/field.html", {"field": form[name]})


def test_identifiers_read_as_words():
    assert words("safety_backup") == "Safety backup"
    assert words("point-in-time") == "Point in time"
    assert words("SAFETY_BACKUP") == "Safety backup"
    assert words("") == ""


def test_a_refused_field_points_at_its_help_and_every_error_by_ids_that_exist():
    form = _Form(data={"name": "", "port": "x"})
    assert not form.is_valid()

    for name in ("name", "port"):
        html = _field_html(form, name)
        (described,) = re.findall(r'aria-describedby="([^"]+)"', html)
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        assert described.split() and set(described.split()) <= ids, html
        assert 'aria-invalid="true"' in html
    assert "id_name_helptext" in _field_html(form, "name")


def test_a_field_without_help_or_errors_describes_nothing():
    html = _field_html(_Form(), "port")

    assert "aria-describedby" not in html and "aria-invalid" not in html


def test_every_page_has_an_icon_and_favicon_ico_leads_to_it(client):
    html = client.get("/login/").content.decode()

    assert 'rel="icon"' in html and "img/favicon.svg" in html
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")
