"""Refuse NUL characters in the path and query string with a 400 (see config.parsers).

A view class that sets ``refuses_nul_itself`` (the API dialects' read views) does the
refusal in its own error body, so the middleware leaves it to that view.
"""

from urllib.parse import unquote

from django.http import JsonResponse

from config.parsers import NUL_MESSAGE


def has_nul(request) -> bool:
    raw = request.path + "?" + unquote(request.META.get("QUERY_STRING", ""))
    return "\x00" in raw


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if getattr(view_class, "refuses_nul_itself", False) or not has_nul(request):
            return None
        return JsonResponse(
            {"error": {"code": "invalid_input", "message": NUL_MESSAGE}}, status=400
        )
