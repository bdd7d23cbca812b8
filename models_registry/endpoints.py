"""Is a model's base URL safe to call, and a session that calls only the address we checked.

Personal models let any user type a base URL, and the server then fetches it: without
a check that is a server-side request forgery hole (NextChat's CVE-2023-49785), reaching
cloud metadata, the admin's Ollama on localhost or anything on the private network.

``check_endpoint`` parses the URL strictly, refuses numeric tricks (``127.1``,
``0x7f.1``, ``2852039166``) outright, resolves the host once and judges *every* address
it resolves to; IPv6 forms that embed an IPv4 address (mapped, compatible, 6to4, NAT64,
Teredo) are judged by the IPv4 address inside. Private addresses are the caller's choice
(``allow_private=True`` for system models set by the admin); cloud metadata, all
link-local addresses and broadcast are refused for everyone.

``pinned_session`` closes the DNS-rebinding gap between "checked" and "connected": its
connections for the endpoint's scheme, host and port open their TCP socket to
``endpoint.address`` and nowhere else, while the URL, the Host header, TLS SNI and
certificate verification keep using the host name, so https to a public provider works
with verification on. It does this with urllib3 connection classes that override
``_new_conn`` (the one place a socket is opened; the TLS wrap in ``connect()`` then uses
``self.host``, the host name) and a pool manager that hands them the pinned address.
Rewriting the URL to the IP instead would break SNI and certificate checks; patching
``socket.getaddrinfo`` would be global to the process; overriding ``_dns_host`` would
also change the Host header and SNI, which urllib3 derives from it. The session refuses
any request to another scheme, host or port, never follows a redirect (a 3xx is the
response; callers pass ``allow_redirects=False`` all the same), and ignores proxies
(``trust_env = False`` and the adapter drops ``proxies``: a proxy would bypass the pin;
this also keeps ``.netrc`` passwords away from user-chosen hosts).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import idna
import requests
from django.utils.translation import gettext_lazy as _
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url

if TYPE_CHECKING:
    from django.utils.functional import Promise

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Refusals shown on the model form: lazy, so each reader gets them in their language.
BAD_SCHEME = _("Only http:// and https:// URLs are allowed.")
BAD_URL = _("This URL is not valid.")
NO_HOST = _("The URL must include a host name.")
USERINFO = _("User names and passwords are not allowed in the URL.")
BAD_PORT = _("The port number is not valid.")
BAD_HOST = _("This host name is not valid.")
NUMERIC_FORM = _(
    "This numeric address form is not allowed; write the address as a normal IP or host name."
)
UNRESOLVED = _("Could not resolve the host name.")
PRIVATE = _("This address is on a private network, which personal models may not use.")
RESERVED = _("This is a reserved or multicast address, which personal models may not use.")
METADATA = _("Cloud metadata and link-local addresses are never allowed.")
BROADCAST = _("Broadcast addresses are never allowed.")
OTHER_TARGET = _("This connection may only be used for the checked endpoint.")

DEFAULT_PORTS = {"http": 80, "https": 443}

# Labels of letters, digits, hyphens and underscores (Docker service names use them).
_HOSTNAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\.?")
# A last label like this makes inet_aton (and browsers) read the whole host as IPv4.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")

# Refused even for the admin: instance metadata and platform endpoints hold credentials.
_METADATA = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OCI, DigitalOcean metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "168.63.129.16/32",  # Azure WireServer (a public address only Azure VMs reach)
    )
)
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# Spelled out so the verdict does not depend on the Python patch release's ipaddress tables.
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
    )
)
# IPv6 prefixes whose last 32 bits are an IPv4 address the packet really goes to.
_EMBEDS_IPV4_IN_LOW_BITS = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64 well-known prefix
    )
)


class UnsafeEndpoint(ValueError):
    """The URL may not be called; ``str(e)`` is a short message to show the user (in the
    language active when it is read)."""


@dataclass(frozen=True)
class CheckedEndpoint:
    """A URL that passed ``check_endpoint``, with the one address connections must use."""

    url: str
    scheme: str
    host: str  # lower-case ASCII (IDNA-encoded); an IPv6 literal without brackets
    port: int
    address: str


def check_endpoint(
    url: str, *, allow_private: bool, resolver: Resolver | None = None
) -> CheckedEndpoint:
    """Parse, resolve and judge ``url``; raise ``UnsafeEndpoint`` if it may not be called."""
    url = url.strip()
    if any(char.isspace() or not char.isprintable() for char in url):
        raise UnsafeEndpoint(BAD_URL)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UnsafeEndpoint(BAD_URL) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeEndpoint(BAD_SCHEME)
    if "@" in parts.netloc:
        raise UnsafeEndpoint(USERINFO)
    if not parts.hostname:
        raise UnsafeEndpoint(NO_HOST)
    try:
        port = parts.port
    except ValueError:
        raise UnsafeEndpoint(BAD_PORT) from None
    if port == 0:
        raise UnsafeEndpoint(BAD_PORT)
    port = port or DEFAULT_PORTS[scheme]

    literal: IPAddress | None
    if parts.netloc.startswith("["):
        literal = _ipv6_literal(parts.hostname)
        host = literal.compressed
        url_host = f"[{host}]"
    else:
        host = url_host = _ascii_host(parts.hostname)
        literal = _ipv4_literal(host)
    addresses = [literal] if literal is not None else _resolve(host, port, resolver or _getaddrinfo)
    for address in addresses:
        refusal = _refusal(address, allow_private=allow_private)
        if refusal:
            raise UnsafeEndpoint(refusal)

    port_part = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    query = f"?{parts.query}" if parts.query else ""
    return CheckedEndpoint(
        url=f"{scheme}://{url_host}{port_part}{parts.path}{query}",
        scheme=scheme,
        host=host,
        port=port,
        address=str(addresses[0]),
    )


def _ipv6_literal(text: str) -> ipaddress.IPv6Address:
    """A bracketed host must be a plain IPv6 address (zone ids only name link-local ones)."""
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeEndpoint(BAD_URL) from None
    if address.scope_id is not None:
        raise UnsafeEndpoint(BAD_URL)
    return address


def _ascii_host(hostname: str) -> str:
    """IDNA-encode like requests does, so full-width digits and the like cannot hide."""
    if not hostname.isascii():
        try:
            hostname = idna.encode(hostname, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise UnsafeEndpoint(BAD_HOST) from None
    hostname = hostname.lower()
    if len(hostname) > 253 or not _HOSTNAME.fullmatch(hostname):
        raise UnsafeEndpoint(BAD_HOST)
    return hostname


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """A canonical dotted quad, None for a name; any other numeric spelling is refused."""
    if not _NUMERIC_LABEL.fullmatch(host.removesuffix(".").rsplit(".", 1)[-1]):
        return None
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise UnsafeEndpoint(NUMERIC_FORM) from None
    if str(address) != host:
        raise UnsafeEndpoint(NUMERIC_FORM)
    return address


def _getaddrinfo(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    """Resolve once; every answer is judged and the first one is where we connect."""
    try:
        answers = resolver(host, port)
        addresses = list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
    except (OSError, UnicodeError, ValueError):
        raise UnsafeEndpoint(UNRESOLVED) from None
    if not addresses:
        raise UnsafeEndpoint(UNRESOLVED)
    return addresses


def _refusal(address: IPAddress, *, allow_private: bool) -> Promise | None:
    """The message that refuses ``address``, or None when it may be called."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return _refusal(embedded, allow_private=allow_private)
    if address.is_link_local or any(address in net for net in _METADATA):
        return METADATA
    if address == _BROADCAST:
        return BROADCAST
    if allow_private:
        return None
    if address.is_loopback or address.is_unspecified:
        return PRIVATE
    if address.is_multicast or address.is_reserved:
        return RESERVED
    if (
        address.is_private
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address in net for net in _PRIVATE)
    ):
        return PRIVATE
    if not address.is_global:
        return RESERVED
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64, Teredo)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _EMBEDS_IPV4_IN_LOW_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# --- The pinned session -------------------------------------------------------------------


class _PinnedConnectionMixin:
    """Open the socket to the pinned address; Host, SNI and the certificate use ``host``."""

    pinned_address: str
    # Provided by urllib3's HTTPConnection, which this is mixed into.
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any

    def __init__(self, *args: Any, pinned_address: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pinned_address = pinned_address

    def _new_conn(self) -> socket.socket:
        """Like urllib3's, but never looks the host name up: it connects to the checked IP."""
        try:
            return urllib3_connection.create_connection(
                (self.pinned_address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as error:
            message = f"Connection to {self.pinned_address} timed out."
            raise ConnectTimeoutError(self, message) from error
        except OSError as error:
            message = f"Failed to establish a new connection: {error}"
            raise NewConnectionError(self, message) from error


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    """A pool manager whose every connection is pinned to one address."""

    def __init__(self, pinned_address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pinned_address = pinned_address
        self.pool_classes_by_scheme = {
            "http": _PinnedHTTPConnectionPool,
            "https": _PinnedHTTPSConnectionPool,
        }

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        # Added here rather than to connection_pool_kw: urllib3's pool key has fixed fields.
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["pinned_address"] = self.pinned_address
        return super()._new_pool(scheme, host, port, context)


class _PinnedAdapter(HTTPAdapter):
    """Send only to the endpoint's scheme, host and port, over pinned connections."""

    __attrs__ = [*HTTPAdapter.__attrs__, "endpoint"]

    def __init__(self, endpoint: CheckedEndpoint) -> None:
        self.endpoint = endpoint  # init_poolmanager, called by super().__init__, needs it
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _PinnedPoolManager(
            self.endpoint.address,
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **pool_kwargs,
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Refuse other targets; drop proxies, which would carry the request past the pin."""
        target = parse_url(request.url or "")
        scheme = (target.scheme or "").lower()
        host = (target.host or "").lower().strip("[]")
        port = target.port or DEFAULT_PORTS.get(scheme)
        endpoint = self.endpoint
        if (scheme, host, port) != (endpoint.scheme, endpoint.host, endpoint.port):
            raise UnsafeEndpoint(OTHER_TARGET)
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None
        )


class _PinnedSession(requests.Session):
    """A session that never follows a redirect, whatever ``allow_redirects`` says."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        # With no target requests neither follows a 3xx nor prepares the next request, so a
        # redirect comes back as the response. (max_redirects = 0 alone would make every 3xx
        # raise TooManyRedirects, even with allow_redirects=False: requests prepares
        # ``response.next`` eagerly.)
        return None


def pinned_session(endpoint: CheckedEndpoint) -> requests.Session:
    """A session that reaches only ``endpoint``, at ``endpoint.address``, without redirects.

    Callers still pass ``allow_redirects=False`` (say what you mean); a 3xx is returned as
    the response either way. A request to another scheme, host or port raises
    ``UnsafeEndpoint``; connection failures are ordinary ``requests`` exceptions.
    """
    session = _PinnedSession()
    session.trust_env = False
    session.max_redirects = 0
    session.proxies = {}
    adapter = _PinnedAdapter(endpoint)
    session.adapters.clear()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
