"""Request parsing that refuses what the app database cannot store, and what would exhaust
the parser.

PostgreSQL rejects NUL characters in text and JSON values; without this check such input
would reach the database and fail there as a 500 instead of a 400 naming the problem.
JSON nested thousands deep makes Python's decoder raise RecursionError (a 500 too); no
document here nests more than a few levels, so anything past ``MAX_JSON_DEPTH`` is a 400.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in input."
MAX_JSON_DEPTH = 64
DEPTH_MESSAGE = f"JSON nested more than {MAX_JSON_DEPTH} levels deep is not accepted."


def contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


def nesting_depth(value) -> int:
    """How many arrays and objects deep ``value`` nests (walked without recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(DEPTH_MESSAGE) from None
        # Depth first: contains_nul recurses.
        if nesting_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(DEPTH_MESSAGE)
        if contains_nul(data):
            raise ParseError(NUL_MESSAGE)
        return data
