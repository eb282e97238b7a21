"""Which upstream endpoints lockgate may forward to: the spec's allow-list, and the addresses no
upstream may resolve to unless the spec lists them itself (a guard against server-side request
forgery).

Pure decisions on plain values; :mod:`lockgate.llm.upstream` resolves names and calls them.

- The URL is ``http://`` or ``https://`` with a host, an optional port and a path: no user
  information (``http://allowed@127.0.0.1/`` is refused, not read as either host), no query or
  fragment, no backslash, space or percent sign in the host.
- The host must be in ``upstreams.allowed_hosts``: an entry is ``NAME``, ``NAME:PORT``, an
  address (``127.0.0.1:8001``, ``[::1]:8001``) or a network (``10.0.0.0/8``). An entry without a
  port allows every port.
- Every address the host resolves to is checked: loopback, link-local (169.254.0.0/16,
  fe80::/10), the cloud metadata services (169.254.169.254, fd00:ec2::254, 100.100.100.200),
  private, shared, reserved, multicast and unspecified addresses are refused unless the address
  itself is listed (as an address or inside a listed network; a metadata address only as that
  one address): listing a *name* does not let it resolve to one, so a name that is re-pointed at
  127.0.0.1 (DNS rebinding) is refused. ``0.0.0.0/0`` is not an entry.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from lockgate.errors import UserError

__all__ = [
    "LIST_ADDRESS_HINT",
    "METADATA_ADDRESSES",
    "METADATA_NAMES",
    "AllowedHost",
    "UpstreamUrl",
    "address_refusal",
    "check_upstream_url",
    "is_listed",
    "parse_allowed_hosts",
    "parse_upstream_url",
    "resolved_refusal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not on the public internet
_HOST_CHARS = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
LIST_ADDRESS_HINT = (
    "if the upstream really runs at that address, add the address itself (not a name for it) to "
    "upstreams.allowed_hosts"
)
_URL_HINT = "e.g. http://127.0.0.1:8001/v1 or https://api.example.com/v1"


@dataclass(frozen=True)
class UpstreamUrl:
    """A checked upstream URL: scheme, host (a lowercase name, or an address without brackets),
    port and the API's base path (no trailing slash)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def address(self) -> IPAddress | None:
        """The host as an address, when it is one."""
        return _as_address(self.host)

    @property
    def host_header(self) -> str:
        """``Host``: the host as written, with the port when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class AllowedHost:
    """One ``allowed_hosts`` entry: a name or an address or a network, and a port or any (None)."""

    name: str | None
    network: IPNetwork | None
    port: int | None

    def allows_name(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return self.name == host
        address = _as_address(host)
        return address is not None and self.network is not None and _unmapped(address) in self.network

    def allows_address(self, address: IPAddress, port: int) -> bool:
        """Whether this entry lists ``address`` itself: a metadata address only as that one address."""
        if self.network is None or (self.port is not None and self.port != port):
            return False
        address = _unmapped(address)
        if address in METADATA_ADDRESSES and self.network.num_addresses != 1:
            return False
        return address in self.network


def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _refuse_url(url: str, why: str) -> UserError:
    return UserError(f"upstream URL '{url}' is refused: {why}", hint=_URL_HINT)


def parse_upstream_url(url: str) -> UpstreamUrl:
    """Split ``url`` into its checked parts; a URL that could be read two ways is refused."""
    if any(c.isspace() or ord(c) < 32 for c in url) or "\\" in url:
        raise _refuse_url(url, "it contains a space, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse_url(url, f"it cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _refuse_url(url, f"the scheme '{parts.scheme}:' is not http or https")
    if "@" in parts.netloc:
        raise _refuse_url(url, "it has user information before '@' (the key goes in api_key_env)")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise _refuse_url(url, "it has a query or a #fragment")
    netloc_host = parts.netloc.lower().rsplit(":", 1)[0] if port is not None else parts.netloc.lower()
    if not netloc_host or not _HOST_CHARS.fullmatch(netloc_host):
        raise _refuse_url(url, "its host is empty or has characters a host name does not")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _refuse_url(url, "it has no host")
    if netloc_host.startswith("[") and _as_address(host) is None:
        raise _refuse_url(url, f"'{netloc_host}' is not an IPv6 address")
    return UpstreamUrl(scheme, host, port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/"))


def parse_allowed_hosts(entries: Sequence[str]) -> tuple[AllowedHost, ...]:
    """The spec's ``allowed_hosts``, read; an entry that is none of the forms is a UserError."""
    parsed = []
    for entry in entries:
        text = entry.strip().lower().rstrip(".")
        host, port = text, None
        if text.startswith("["):  # [v6] or [v6]:port
            closing = text.find("]")
            host, rest = text[1:closing], text[closing + 1 :]
            if closing < 0 or (rest and not re.fullmatch(r":\d{1,5}", rest)):
                raise _bad_entry(entry)
            port = int(rest[1:]) if rest else None
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            if not port_text.isdigit():
                raise _bad_entry(entry)
            port = int(port_text)
        if port is not None and not 0 < port < 65536:
            raise _bad_entry(entry)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            if network.prefixlen == 0:
                raise UserError(
                    f"upstreams.allowed_hosts entry '{entry}' would allow every address",
                    hint="list the upstreams' hosts or networks, e.g. api.example.com or 10.0.0.0/8",
                )
            parsed.append(AllowedHost(None, network, port))
            continue
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host):
            raise _bad_entry(entry)
        parsed.append(AllowedHost(host, None, port))
    return tuple(parsed)


def _bad_entry(entry: str) -> UserError:
    return UserError(
        f"upstreams.allowed_hosts entry '{entry}' is not a host, host:port, address or network",
        hint="e.g. api.example.com, 127.0.0.1:8001, [::1]:8001 or 10.0.0.0/8",
    )


def is_listed(target: UpstreamUrl, allowed: Sequence[AllowedHost]) -> bool:
    """Whether the URL's host (and port) is in the allow-list."""
    return any(entry.allows_name(target.host, target.port) for entry in allowed)


def address_refusal(address: IPAddress) -> str | None:
    """What kind of address no upstream may use without listing it, or None for a public one."""
    address = _unmapped(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def check_upstream_url(url: str, allowed: Sequence[AllowedHost]) -> UpstreamUrl:
    """Parse ``url`` and check its host against the allow-list (and, for an address written in the
    URL, against the addresses that must be listed); a refusal is a UserError naming the rule."""
    target = parse_upstream_url(url)
    listed = ", ".join(_entry_text(e) for e in allowed) or "none"
    if target.host in METADATA_NAMES and not any(e.name == target.host for e in allowed):
        raise UserError(
            f"upstream URL '{url}' is refused: '{target.host}' is a cloud metadata service",
            hint="an upstream is an OpenAI-compatible API; list the host in upstreams.allowed_hosts "
            "only if that is really what you mean",
        )
    if not is_listed(target, allowed):
        raise UserError(
            f"upstream URL '{url}' is refused: {target.host}:{target.port} is not in "
            f"upstreams.allowed_hosts (listed: {listed})",
            hint=f"add '{_netloc(target.host, target.port)}' to upstreams.allowed_hosts in the spec",
        )
    address = target.address
    if address is not None:
        why = resolved_refusal(target, [str(address)], allowed)
        if why is not None:
            raise UserError(f"upstream URL '{url}' is refused: {why}", hint=LIST_ADDRESS_HINT)
    return target


def resolved_refusal(
    target: UpstreamUrl, addresses: Sequence[str], allowed: Sequence[AllowedHost]
) -> str | None:
    """Why forwarding to ``target`` is refused when its host resolved to ``addresses`` (every one is
    checked), or None. A special address passes only when listed itself."""
    if not addresses:
        return f"'{target.host}' resolved to no address"
    for text in addresses:
        address = _as_address(text.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is link-local
        if address is None:
            return f"'{target.host}' resolved to '{text}', which is not an address"
        why = address_refusal(address)
        if why is not None and not any(e.allows_address(address, target.port) for e in allowed):
            said = (
                f"{address} is {why}"
                if str(address) == target.host
                else (f"'{target.host}' resolves to {address}, {why}")
            )
            return f"{said}, which an upstream may use only when upstreams.allowed_hosts lists that address"
    return None


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _entry_text(entry: AllowedHost) -> str:
    host = entry.name if entry.name is not None else str(entry.network)
    return host if entry.port is None else f"{host}:{entry.port}"
