"""Request parsing that refuses what the app database cannot store.

PostgreSQL rejects NUL characters in text and JSON values; without this check such input
would reach the database and fail there as a 500 instead of a 400 naming the problem.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in input."


def contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise ParseError(NUL_MESSAGE)
        return data
