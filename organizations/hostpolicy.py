"""Which hosts tenants' database servers, S3 endpoints and webhooks may reach.

Tenants give any host, and the workers connect to it from inside the server's network: left
alone, a "test connection" is a port scanner of that network and a webhook can read the cloud
metadata service. So the operator sets, per organisation, a host policy: a list of entries,

- a network in CIDR notation (``10.0.0.0/8``, ``2001:db8::/32``; a bare address is a /32 or
  /128), matched against every address the host resolves to;
- a host name, matched exactly (``db.example.com``), or ``*.example.com`` for any name under
  ``example.com`` (not ``example.com`` itself), matched against the name the tenant gave;
- ``*``: any host.

An organisation without entries follows ``STRONGBOX_DEFAULT_ALLOWED_HOSTS`` (same syntax);
when that is empty too, any host may be reached (Strongbox's behaviour before policies).

Whatever the policy, addresses in ``ALWAYS_REFUSED`` are refused: link-local (where the
cloud metadata services live), AWS's IPv6 metadata address, Alibaba Cloud's metadata
address, "this host" (0.0.0.0/8, ``::``, which Linux connects to the local machine) and
multicast/broadcast. IPv4 addresses embedded in IPv6 (``::ffff:169.254.169.254``, NAT64
``64:ff9b::/96``) are judged as the IPv4 address they reach.

A host passes when none of its addresses is always refused and either the policy allows any
host, or its name matches a name entry, or every address it resolves to is inside a network
entry. The local machine spelled as a socket (an empty host, a socket directory) or as
``localhost`` passes when the policy allows ``localhost`` by name or 127.0.0.1 or ::1.

The check runs twice: when a tenant saves a host (``host_problem``, ``url_problem``: the
interface turns the answer into a 400 naming the field) and at connect time
(``allowed_addresses``), against what the name resolves to *then*; callers connect to the
address that was checked, so a DNS answer that changes in between (DNS rebinding) cannot
lead elsewhere. Connect-time checks take a ``HostRules`` read beforehand (``host_rules``):
they run on threads that make no app-database queries.

Refusals never say which address a name resolved to: the answer would be an oracle of the
server's internal DNS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error

from organizations.models import HostPolicy

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_REFUSED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",  # IPv4 link-local: 169.254.169.254 is AWS, GCP, Azure, OCI metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this host": connecting to 0.0.0.0 reaches the local machine
        "::/128",  # the same in IPv6
        "224.0.0.0/4",  # multicast
        "ff00::/8",  # multicast
        "255.255.255.255/32",  # broadcast
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")


class HostNotAllowed(OSError):
    """A host the organisation may not reach, or that cannot be reached at all.

    An OSError, so that code connecting through ``allowed_addresses`` fails the way it
    fails for any host that does not answer."""


class HostUnresolved(HostNotAllowed):
    """The name does not resolve (now): unlike a refusal, trying later may help."""


def refusal(host: str) -> str:
    return (
        f"{host} is not a host this organisation may reach: the server's host policy does "
        "not allow it (link-local and cloud metadata addresses are always refused)."
    )


# --- the rules, pure -----------------------------------------------------------------------


@dataclass(frozen=True)
class HostRules:
    """A parsed policy: what an organisation's sources, S3 endpoints and webhooks may reach."""

    entries: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # ".example.com" for "*.example.com"

    @property
    def any_host(self) -> bool:
        return not self.entries or "*" in self.entries


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def entry_problem(entry: str) -> str | None:
    """None when ``entry`` is a valid policy entry; otherwise what is wrong with it."""
    try:
        _parse_entry(entry)
    except ValueError as exc:
        return str(exc)
    return None


def _parse_entry(entry: str) -> IPNetwork | str:
    """A network, a lower-case host name, ".suffix" for a wildcard, or "*"."""
    text = entry.strip()
    if text == "*":
        return text
    if "/" in text or ":" in text or _looks_numeric(text):
        try:
            return ipaddress.ip_network(text)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a network: {exc}.") from None
    wildcard = text.startswith("*.")
    name = normalise_name(text[2:] if wildcard else text)
    if not is_host_name(name):
        raise ValueError(
            f"{entry!r} is neither a network (10.0.0.0/8), a host name (db.example.com) "
            "nor a wildcard (*.example.com)."
        )
    return f".{name}" if wildcard else name


def _looks_numeric(text: str) -> bool:
    return bool(text) and all(part.isdigit() for part in text.split("."))


def parse_rules(entries: Iterable[str]) -> HostRules:
    """The rules of a list of entries; ValueError naming the first invalid one."""
    kept, networks, names, suffixes = [], [], set(), []
    for entry in entries:
        if not entry.strip():
            continue
        parsed = _parse_entry(entry)
        kept.append(entry.strip())
        if isinstance(parsed, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(parsed)
        elif parsed.startswith("."):
            suffixes.append(parsed)
        elif parsed != "*":
            names.add(parsed)
    return HostRules(tuple(kept), tuple(networks), frozenset(names), tuple(suffixes))


def is_host_name(name: str) -> bool:
    return len(name) <= 253 and bool(_HOST_NAME.match(name))


def parse_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells (IPv6 with or without brackets), else None."""
    try:
        return ipaddress.ip_address(host.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def effective_address(address: IPAddress) -> IPAddress:
    """The address a connection really reaches: IPv4 embedded in IPv6 is that IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def always_refused(address: IPAddress) -> bool:
    address = effective_address(address)
    return any(address in network for network in ALWAYS_REFUSED)


def address_allowed(rules: HostRules, address: IPAddress) -> bool:
    """May a connection go to ``address``, judged by the address alone?"""
    address = effective_address(address)
    if always_refused(address):
        return False
    if rules.any_host:
        return True
    return any(address in network for network in rules.networks)


def name_allowed(rules: HostRules, name: str) -> bool:
    """Does a name entry (exact or wildcard) allow ``name``?"""
    name = normalise_name(name)
    return name in rules.names or any(name.endswith(suffix) for suffix in rules.suffixes)


def host_allowed(rules: HostRules, host: str, addresses: Iterable[IPAddress]) -> bool:
    """May ``host``, resolving to ``addresses``, be reached? (See the module docstring.)"""
    addresses = list(addresses)
    if not addresses or any(always_refused(address) for address in addresses):
        return False
    if rules.any_host or (parse_address(host) is None and name_allowed(rules, host)):
        return True
    return all(address_allowed(rules, address) for address in addresses)


def is_local(host: str) -> bool:
    """The local machine, spelled as a socket (no host, a directory) or ``localhost``."""
    host = host.strip()
    return not host or host.startswith("/") or normalise_name(host) == "localhost"


def local_allowed(rules: HostRules) -> bool:
    return (
        rules.any_host
        or name_allowed(rules, "localhost")
        or any(address_allowed(rules, loopback) for loopback in _LOOPBACKS)
    )


# --- the rules of an organisation ------------------------------------------------------------


def default_rules() -> HostRules:
    return parse_rules(settings.STRONGBOX_DEFAULT_ALLOWED_HOSTS)


def rules_from(entries: Iterable[str] | None) -> HostRules:
    """An organisation's own entries, or the server's default when it has none."""
    entries = [entry for entry in entries or () if entry.strip()]
    return parse_rules(entries) if entries else default_rules()


def host_rules(organisation_id) -> HostRules:
    """The rules of an organisation (one query)."""
    entries = (
        HostPolicy.objects.filter(organisation_id=organisation_id)
        .values_list("allowed_hosts", flat=True)
        .first()
    )
    return rules_from(entries)


# --- resolving and checking ------------------------------------------------------------------


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """The addresses ``host`` resolves to now, in the resolver's order (socket.gaierror)."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    found = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _syntax_problem(host: str) -> str | None:
    if parse_address(host) is not None or is_host_name(normalise_name(host)):
        return None
    return f"{host!r} is not a host name or an IP address; give exactly one."


def rules_problem(rules: HostRules, host: str, port: int | None = None) -> str | None:
    """What is wrong with saving ``host`` under ``rules``, or None.

    A name that does not resolve yet is accepted when the policy allows any host or names
    it: it is checked again, resolved, whenever Strongbox connects."""
    host = host.strip()
    if is_local(host):
        return None if local_allowed(rules) else refusal(host or "The local server")
    problem = _syntax_problem(host)
    if problem:
        return problem
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        named = parse_address(host) is None and name_allowed(rules, host)
        return None if rules.any_host or named else refusal(host)
    if host_allowed(rules, host, addresses):
        return None
    logger.info("host policy refuses %s (resolves to %s)", host, addresses)
    return refusal(host)


def host_problem(organisation, host: str, port: int | None = None) -> str | None:
    """What is wrong with letting ``organisation`` use ``host``, or None (resolves it)."""
    return rules_problem(host_rules(organisation.pk), host, port)


def url_problem(organisation, url: str) -> str | None:
    """``host_problem`` for an http(s) URL (an S3 endpoint, a webhook)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        return f"{url!r} has an invalid port."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http:// or https:// URL with a host."
    return host_problem(organisation, parts.hostname, port)


def allowed_addresses(rules: HostRules, host: str, port: int | None = None) -> list[str]:
    """The addresses to connect to for ``host``, checked now; HostNotAllowed otherwise.

    An empty list means the local machine (``is_local``): the client resolves it itself,
    which no outside DNS answer can change."""
    host = host.strip()
    if is_local(host):
        if local_allowed(rules):
            return []
        raise HostNotAllowed(refusal(host or "The local server"))
    if _syntax_problem(host):
        raise HostNotAllowed(refusal(host))
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise HostUnresolved(f"{host} is not reachable: the name does not resolve.") from exc
    if not host_allowed(rules, host, addresses):
        logger.info("host policy refuses %s (resolves to %s) at connect time", host, addresses)
        raise HostNotAllowed(refusal(host))
    return [str(address) for address in addresses]


def pinned_address(rules: HostRules, host: str, port: int | None = None) -> str:
    """The one checked address a database client should connect to ("" for the local
    machine): the first the name resolves to now."""
    addresses = allowed_addresses(rules, host, port)
    return addresses[0] if addresses else ""


def url_host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port


def check_url(rules: HostRules, url: str) -> list[str]:
    """``allowed_addresses`` for the host of an http(s) URL."""
    host, port = url_host_port(url)
    if not host:
        raise HostNotAllowed(f"{url!r} has no host.")
    return allowed_addresses(rules, host, port)


def check_default_setting(app_configs=None, **kwargs):
    """System check: STRONGBOX_DEFAULT_ALLOWED_HOSTS must parse."""
    try:
        default_rules()
    except ValueError as exc:
        return [Error(f"STRONGBOX_DEFAULT_ALLOWED_HOSTS: {exc}", id="strongbox.E101")]
    return []


# --- connections made by code we do not control ----------------------------------------------

_guard = threading.local()
_system_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    rules = getattr(_guard, "rules", None)
    if rules is None or host is None:
        return _system_getaddrinfo(host, port, *args, **kwargs)
    name = host.decode() if isinstance(host, bytes) else str(host)
    _guard.rules = None  # the check resolves the name itself, unguarded
    try:
        addresses = allowed_addresses(rules, name, None)
    except HostNotAllowed as exc:
        _guard.refused = str(exc)
        raise
    finally:
        _guard.rules = rules
    if not addresses:  # the local machine, which the policy allows
        return _system_getaddrinfo(host, port, *args, **kwargs)
    found = []
    for address in addresses:
        found += _system_getaddrinfo(address, port, *args, **kwargs)
    return found


@contextlib.contextmanager
def guarded_resolution(rules: HostRules) -> Iterator[GuardedResolution]:
    """Hold every name this thread resolves in the block to ``rules``.

    For libraries that open their own connections (apprise's plugins, through requests,
    smtplib and others) and to hosts only they know (``slack://`` posts to
    hooks.slack.com): every ``socket.getaddrinfo`` of this thread, which is how urllib3 and
    ``socket.create_connection`` find an address, answers only addresses checked now
    (``allowed_addresses``), or fails with ``HostNotAllowed``. So the connection goes to a
    checked address, as the webhook notifier's pinned connections do. Other threads are not
    affected; the wrapper is installed once, on first use, and does nothing outside a block.
    """
    if socket.getaddrinfo is not _guarded_getaddrinfo:
        socket.getaddrinfo = _guarded_getaddrinfo
    outcome = GuardedResolution()
    previous = getattr(_guard, "rules", None)
    _guard.rules, _guard.refused = rules, None
    try:
        yield outcome
    finally:
        outcome.refused = _guard.refused
        _guard.rules, _guard.refused = previous, None


@dataclass
class GuardedResolution:
    """What ``guarded_resolution`` saw: the refusal of a host, if one was refused."""

    refused: str | None = None
