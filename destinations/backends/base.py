from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.core.files.storage import Storage

from organizations.hostpolicy import HostRules


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool = False
    help: str = ""


class DestinationBackend:
    kind: str = ""
    parameters: tuple[Parameter, ...] = ()
    sensitive_parameters: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        config: Mapping,
        secrets: Mapping,
        host_rules: Callable[[], HostRules] | None = None,
    ):
        self.config = dict(config)
        self.secrets = dict(secrets)
        # The organisation's host policy, read only by backends that connect to a host.
        self.host_rules = host_rules

    @classmethod
    def validate(cls, config: Mapping, secrets: Mapping) -> dict[str, str]:
        """Return {parameter: problem} for missing or unknown parameters."""
        known = {p.name for p in cls.parameters}
        problems = {}
        for p in cls.parameters:
            source = secrets if p.name in cls.sensitive_parameters else config
            if p.required and not source.get(p.name):
                problems[p.name] = f"{p.name} is required for a {cls.kind} destination."
        for name in {*config, *secrets} - known:
            problems[name] = f"Unknown parameter for a {cls.kind} destination."
        return problems

    def storage(self) -> Storage:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError
