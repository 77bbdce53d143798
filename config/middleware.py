"""Refuse NUL characters in the path and query string with a 400 (see config.parsers)."""

from urllib.parse import unquote

from django.http import JsonResponse

from config.parsers import NUL_MESSAGE


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = request.path + "?" + unquote(request.META.get("QUERY_STRING", ""))
        if "\x00" in raw:
            return JsonResponse(
                {"error": {"code": "invalid_input", "message": NUL_MESSAGE}}, status=400
            )
        return self.get_response(request)
