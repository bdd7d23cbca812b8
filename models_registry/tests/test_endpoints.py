"""Endpoint safety: the SSRF corpus, admin exceptions, and a session pinned to one address.

Nothing here leaves 127.0.0.1: names are resolved by injected resolvers, and an autouse
guard fails any test that asks the system resolver about anything but a loopback IP.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from models_registry.endpoints import (
    CheckedEndpoint,
    UnsafeEndpoint,
    check_endpoint,
    pinned_session,
)

SCHEME = "Only http:// and https:// URLs are allowed."
BAD_URL = "This URL is not valid."
NO_HOST = "The URL must include a host name."
USERINFO = "User names and passwords are not allowed in the URL."
BAD_PORT = "The port number is not valid."
BAD_HOST = "This host name is not valid."
NUMERIC = "This numeric address form is not allowed; write the address as a normal IP or host name."
UNRESOLVED = "Could not resolve the host name."
PRIVATE = "This address is on a private network, which personal models may not use."
RESERVED = "This is a reserved or multicast address, which personal models may not use."
METADATA = "Cloud metadata and link-local addresses are never allowed."
BROADCAST = "Broadcast addresses are never allowed."

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

DNS = {
    "api.example.com": [PUBLIC_V4],
    "v6.example.com": [PUBLIC_V6],
    "dual.example.com": [PUBLIC_V6, PUBLIC_V4],
    "xn--bcher-kva.example": [PUBLIC_V4],
    "localtest.me": ["127.0.0.1"],
    "rebind.example.com": [PUBLIC_V4, "10.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "mapped.example.com": ["::ffff:10.1.2.3"],
    "ollama": ["172.18.0.2"],
}


@dataclass
class FakeDNS:
    """A resolver from a table; unknown names fail the way getaddrinfo does."""

    table: dict[str, list[str]] = field(default_factory=lambda: DNS)
    asked: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any system lookup of a name or a non-loopback address is a test bug: fail loudly."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"test tried to resolve or reach {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def refusal(url: str, *, allow_private: bool) -> str:
    with pytest.raises(UnsafeEndpoint) as caught:
        check_endpoint(url, allow_private=allow_private, resolver=FakeDNS())
    return str(caught.value)


# --- What personal models may not use -----------------------------------------------------

SSRF_CORPUS = [
    # Loopback and numeric spellings of it.
    ("http://127.0.0.1", PRIVATE),
    ("http://127.0.0.1:11434/v1", PRIVATE),
    ("http://127.1", NUMERIC),
    ("http://2852039166/", NUMERIC),
    ("http://0x7f.1/", NUMERIC),
    ("http://0177.0.0.1/", NUMERIC),
    ("http://0x7f000001/", NUMERIC),
    ("http://0x7f.0x0.0x0.0x1/", NUMERIC),
    ("http://10.1/", NUMERIC),
    ("http://127.0.0.1./", NUMERIC),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", PRIVATE),  # full-width digits
    ("http://[::1]/", PRIVATE),
    ("http://localtest.me/", PRIVATE),
    # IPv6 forms that carry an IPv4 address.
    ("http://[::ffff:169.254.169.254]/", METADATA),
    ("http://[::ffff:127.0.0.1]/", PRIVATE),
    ("http://[::ffff:7f00:1]/", PRIVATE),
    ("http://[::127.0.0.1]/", PRIVATE),
    ("http://[64:ff9b::a9fe:a9fe]/", METADATA),
    ("http://[2002:7f00:1::1]/", PRIVATE),
    ("http://[::ffff:0:a00:5]/", PRIVATE),
    # Cloud metadata.
    ("http://169.254.169.254/latest/meta-data", METADATA),
    ("http://metadata.google.internal/computeMetadata/v1/", METADATA),
    ("http://[fd00:ec2::254]/", METADATA),
    ("http://100.100.100.200/", METADATA),
    ("http://168.63.129.16/", METADATA),
    ("http://[fe80::1]/", METADATA),
    # Private networks, special and reserved addresses.
    ("http://10.0.0.5/", PRIVATE),
    ("http://192.168.1.10/", PRIVATE),
    ("http://172.16.0.1/", PRIVATE),
    ("http://100.64.0.1/", PRIVATE),
    ("http://0.0.0.0/", PRIVATE),
    ("http://[::]/", PRIVATE),
    ("http://[fc00::1]/", PRIVATE),
    ("http://[fd12:3456::1]/", PRIVATE),
    ("http://[fec0::1]/", PRIVATE),
    ("http://ollama:11434/v1", PRIVATE),
    ("http://mapped.example.com/", PRIVATE),
    ("http://rebind.example.com/", PRIVATE),  # one public and one private answer
    ("http://224.0.0.1/", RESERVED),
    ("http://[ff02::1]/", RESERVED),
    ("http://240.0.0.1/", RESERVED),
    ("http://255.255.255.255/", BROADCAST),
    # Not an http(s) URL with a plain host.
    ("ftp://api.example.com/", SCHEME),
    ("file:///etc/passwd", SCHEME),
    ("gopher://api.example.com:70/_GET", SCHEME),
    ("api.example.com/v1", SCHEME),
    ("http://user:pass@api.example.com/", USERINFO),
    ("http://api.example.com@127.0.0.1/", USERINFO),
    ("http:///v1", NO_HOST),
    ("https://", NO_HOST),
    ("http://api.example.com:99999/", BAD_PORT),
    ("http://api.example.com:0/", BAD_PORT),
    ("http://api.example.com:8o/", BAD_PORT),
    ("http://api.exa\tmple.com/", BAD_URL),
    ("http://api.example.com/v1 x", BAD_URL),
    ("http://[fe80::1%25eth0]/", BAD_URL),
    ("http://[not-an-ip]/", BAD_URL),
    ("http://api.example.com\\@evil/", USERINFO),
    ("http://api.example.com\\.evil/", BAD_HOST),
    ("http://exa%6dple.com/", BAD_HOST),
    ("http://nowhere.invalid/", UNRESOLVED),
]


@pytest.mark.parametrize(("url", "message"), SSRF_CORPUS)
def test_personal_models_are_refused_with_a_short_message(url, message):
    assert refusal(url, allow_private=False) == message


ADMIN_ALLOWED = {PRIVATE, RESERVED}


@pytest.mark.parametrize(("url", "message"), SSRF_CORPUS)
def test_system_models_may_use_private_addresses_but_never_metadata(url, message):
    """allow_private lifts only the private/reserved verdicts; numeric tricks stay refused."""
    if message in ADMIN_ALLOWED:
        endpoint = check_endpoint(url, allow_private=True, resolver=FakeDNS())
        assert endpoint.address
    else:
        assert refusal(url, allow_private=True) == message


def test_every_resolved_address_is_judged_and_the_first_is_pinned():
    endpoint = check_endpoint(
        "http://rebind.example.com/v1", allow_private=True, resolver=FakeDNS()
    )
    assert endpoint.address == PUBLIC_V4
    metadata_second = FakeDNS({"sneaky.example.com": [PUBLIC_V4, "169.254.169.254"]})
    with pytest.raises(UnsafeEndpoint, match="metadata"):
        check_endpoint("http://sneaky.example.com/", allow_private=True, resolver=metadata_second)


@pytest.mark.parametrize(
    "resolver",
    [
        FakeDNS({"api.example.com": []}),
        FakeDNS({"api.example.com": ["not an address"]}),
        FakeDNS({}),
    ],
)
def test_a_name_that_does_not_resolve_cleanly_is_refused(resolver):
    with pytest.raises(UnsafeEndpoint) as caught:
        check_endpoint("https://api.example.com/v1", allow_private=True, resolver=resolver)
    assert str(caught.value) == UNRESOLVED


# --- What anyone may use -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.example.com/v1",
            CheckedEndpoint(
                "https://api.example.com/v1", "https", "api.example.com", 443, PUBLIC_V4
            ),
        ),
        (
            "HTTPS://API.Example.COM:443/v1?api-version=2024#top",
            CheckedEndpoint(
                "https://api.example.com/v1?api-version=2024",
                "https",
                "api.example.com",
                443,
                PUBLIC_V4,
            ),
        ),
        (
            "  http://v6.example.com:8080/v1  ",
            CheckedEndpoint(
                "http://v6.example.com:8080/v1", "http", "v6.example.com", 8080, PUBLIC_V6
            ),
        ),
        (
            "http://dual.example.com",
            CheckedEndpoint("http://dual.example.com", "http", "dual.example.com", 80, PUBLIC_V6),
        ),
        (
            "http://93.184.216.34/v1",
            CheckedEndpoint("http://93.184.216.34/v1", "http", PUBLIC_V4, 80, PUBLIC_V4),
        ),
        (
            f"https://[{PUBLIC_V6.upper()}]:8443/v1",
            CheckedEndpoint(f"https://[{PUBLIC_V6}]:8443/v1", "https", PUBLIC_V6, 8443, PUBLIC_V6),
        ),
        (
            "https://B\u00dcCHER.example/v1",
            CheckedEndpoint(
                "https://xn--bcher-kva.example/v1", "https", "xn--bcher-kva.example", 443, PUBLIC_V4
            ),
        ),
        (
            "http://[::ffff:93.184.216.34]/",
            CheckedEndpoint(
                "http://[::ffff:5db8:d822]/", "http", "::ffff:5db8:d822", 80, "::ffff:5db8:d822"
            ),
        ),
    ],
)
def test_public_endpoints_are_allowed_for_personal_models(url, expected):
    assert check_endpoint(url, allow_private=False, resolver=FakeDNS()) == expected


def test_the_resolver_is_asked_once_with_the_ascii_host_and_port():
    dns = FakeDNS()
    check_endpoint("https://B\u00fccher.example:8443/v1", allow_private=False, resolver=dns)
    assert dns.asked == [("xn--bcher-kva.example", 8443)]


def test_literal_addresses_are_not_resolved():
    dns = FakeDNS()
    check_endpoint(f"http://{PUBLIC_V4}/", allow_private=False, resolver=dns)
    check_endpoint(f"http://[{PUBLIC_V6}]/", allow_private=False, resolver=dns)
    assert dns.asked == []


def test_the_default_resolver_takes_every_address_getaddrinfo_gives(monkeypatch):
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append((host, port, args, kwargs))
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (PUBLIC_V6, port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UnsafeEndpoint, match="private network"):
        check_endpoint("https://api.example.com/v1", allow_private=False)
    assert calls == [("api.example.com", 443, (), {"type": socket.SOCK_STREAM})]
    endpoint = check_endpoint("https://api.example.com/v1", allow_private=True)
    assert endpoint.address == PUBLIC_V6


# --- The pinned session --------------------------------------------------------------------


@dataclass
class Stub:
    """A loopback HTTP(S) server that records what reached it."""

    port: int
    seen: list[dict[str, str]]
    server_names: list[str | None]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "host": self.headers["Host"]})  # type: ignore[attr-defined]
        if self.path.endswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    # socketserver, not http.server.HTTPServer: that one looks its own name up (getfqdn).
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def serve() -> Iterator[Callable[..., Stub]]:
    servers: list[_Server] = []

    def start(tls: ssl.SSLContext | None = None) -> Stub:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.seen = []  # type: ignore[attr-defined]
        server_names: list[str | None] = []
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: server_names.append(name)
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return Stub(server.server_address[1], server.seen, server_names)  # type: ignore[attr-defined]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def endpoint_for(stub_port: int, scheme: str = "http") -> CheckedEndpoint:
    """A name that cannot resolve anywhere, pinned by hand to the loopback stub."""
    return CheckedEndpoint(
        url=f"{scheme}://some-name.invalid:{stub_port}/v1",
        scheme=scheme,
        host="some-name.invalid",
        port=stub_port,
        address="127.0.0.1",
    )


def test_the_session_connects_to_the_pinned_address_with_the_name_in_host(serve):
    stub = serve()
    endpoint = endpoint_for(stub.port)
    with pinned_session(endpoint) as session:
        response = session.get(f"{endpoint.url}/models", allow_redirects=False, timeout=5)
    assert response.status_code == 200
    assert stub.seen == [{"path": "/v1/models", "host": f"some-name.invalid:{stub.port}"}]


@pytest.mark.parametrize("allow_redirects", [False, True])
def test_redirects_are_returned_not_followed(serve, allow_redirects):
    stub = serve()
    endpoint = endpoint_for(stub.port)
    with pinned_session(endpoint) as session:
        response = session.get(
            f"{endpoint.url}/redirect", allow_redirects=allow_redirects, timeout=5
        )
    assert response.status_code == 302
    assert response.history == []
    assert [request["path"] for request in stub.seen] == ["/v1/redirect"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/v1",
        "http://other-name.invalid:{port}/v1",
        "http://some-name.invalid:{other_port}/v1",
        "https://some-name.invalid:{port}/v1",
    ],
)
def test_the_session_refuses_any_other_target(serve, url):
    stub = serve()
    with pinned_session(endpoint_for(stub.port)) as session, pytest.raises(UnsafeEndpoint):
        session.get(url.format(port=stub.port, other_port=stub.port + 1), timeout=5)
    assert stub.seen == []


def test_proxies_cannot_carry_requests_past_the_pin(serve, monkeypatch):
    stub = serve()
    decoy = serve()
    proxy = f"http://127.0.0.1:{decoy.port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("ALL_PROXY", proxy)
    endpoint = endpoint_for(stub.port)
    with pinned_session(endpoint) as session:
        assert session.trust_env is False  # also keeps ~/.netrc passwords from user-chosen hosts
        session.get(endpoint.url, allow_redirects=False, timeout=5)
        session.get(endpoint.url, allow_redirects=False, timeout=5, proxies={"http": proxy})
    assert len(stub.seen) == 2
    assert decoy.seen == []


def test_a_refused_connection_is_an_ordinary_requests_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    endpoint = endpoint_for(closed_port)
    with pinned_session(endpoint) as session, pytest.raises(requests.ConnectionError):
        session.get(endpoint.url, allow_redirects=False, timeout=5)


# --- HTTPS: the certificate is checked against the name, not the pinned IP ------------------


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` only (no IP), which is also its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _tls_server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_https_verifies_the_certificate_against_the_pinned_name(serve, tmp_path):
    cert_file, key_file = _self_signed(tmp_path, "some-name.invalid")
    stub = serve(_tls_server_context(cert_file, key_file))
    endpoint = endpoint_for(stub.port, scheme="https")
    with pinned_session(endpoint) as session:
        session.verify = str(cert_file)
        response = session.get(f"{endpoint.url}/models", allow_redirects=False, timeout=5)
    assert response.status_code == 200
    assert stub.server_names == ["some-name.invalid"]
    assert stub.seen == [{"path": "/v1/models", "host": f"some-name.invalid:{stub.port}"}]


def test_https_refuses_a_certificate_for_another_name(serve, tmp_path):
    cert_file, key_file = _self_signed(tmp_path, "other-name.invalid")
    stub = serve(_tls_server_context(cert_file, key_file))
    endpoint = endpoint_for(stub.port, scheme="https")
    with pinned_session(endpoint) as session:
        session.verify = str(cert_file)
        with pytest.raises(requests.exceptions.SSLError) as caught:
            session.get(endpoint.url, allow_redirects=False, timeout=5)
    assert "Hostname mismatch" in str(caught.value)
    assert stub.seen == []
