"""Compare a response with a seed document's example: same keys, same JSON types."""

from numbers import Number


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def assert_same_shape(actual, example, *, nullable=(), path="$"):
    """Recursively: the same keys as the example and the same JSON types.

    ``nullable`` lists paths (``$.data[].completedAt``) where null may stand for a value.
    """
    if actual is None and path in nullable:
        return
    assert _kind(actual) == _kind(example), f"{path}: {_kind(actual)} != {_kind(example)}"
    if isinstance(example, dict):
        assert set(actual) == set(example), (
            f"{path}: keys differ: extra {set(actual) - set(example)}, "
            f"missing {set(example) - set(actual)}"
        )
        for key, value in example.items():
            assert_same_shape(actual[key], value, nullable=nullable, path=f"{path}.{key}")
    elif isinstance(example, list) and example:
        for item in actual:
            assert_same_shape(item, example[0], nullable=nullable, path=f"{path}[]")
