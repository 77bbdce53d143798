"""Template helpers every page uses: words for the domain's identifiers, and form widgets
that point at their own help and errors."""

from django import template

from organizations.forms import describing_ids

register = template.Library()


@register.filter
def words(value) -> str:
    """``safety_backup`` → "Safety backup" (``title`` would give "Safety_Backup")."""
    text = str(value or "").replace("_", " ").replace("-", " ").strip().lower()
    return text[:1].upper() + text[1:]


@register.simple_tag
def described_widget(field):
    """The field's widget with ``aria-describedby`` naming its help text and each of its
    errors (the ids ``includes/field.html`` gives them), and ``aria-invalid`` when it has
    errors, so a screen reader reads why a field was refused."""
    ids = describing_ids(field)
    attrs = {}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs=attrs)
