"""TLS on the services' gRPC ports.

Server side: a certificate and key (LEADFLOW_TLS_CERT_FILE / LEADFLOW_TLS_KEY_FILE), and with
LEADFLOW_TLS_CLIENT_CA_FILE mutual TLS: a client must present a certificate that CA signed.
Client side (our CLI, `leadflow up`'s health waits, the demo, tests, benchmarks): the CA to
trust (LEADFLOW_TLS_CA_FILE) and, for mutual TLS, a client certificate and key.

`CertificateAuthority` makes a local CA and the certificates it signs, for `leadflow up --tls`
and for the tests; production deployments bring their own files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from leadflow_platform.settings import SETTINGS, Settings, SettingsError, read_settings

# Names and addresses a local server certificate is valid for, beside the bind host.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip
CLIENT_SETTINGS = ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file", "tls_server_name")


@dataclass(frozen=True)
class ServerTls:
    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None  # set: mutual TLS, a client certificate is required

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    ca: bytes | None = None  # None: the system's trusted roots
    certificate_chain: bytes | None = None  # with private_key: mutual TLS
    private_key: bytes | None = None
    # The name the server's certificate is checked against, when not the target's host.
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    @classmethod
    def from_files(
        cls,
        ca_file: str | Path | None = None,
        client_cert_file: str | Path | None = None,
        client_key_file: str | Path | None = None,
        server_name: str = "",
    ) -> ClientTls:
        return cls(
            ca=_read(ca_file) if ca_file else None,
            certificate_chain=_read(client_cert_file) if client_cert_file else None,
            private_key=_read(client_key_file) if client_key_file else None,
            server_name=server_name,
        )


def server_tls(settings: Settings) -> ServerTls | None:
    """The server's TLS from its settings; None (plaintext) when no certificate is named."""
    if not settings.tls_cert_file:
        return None
    return ServerTls(
        certificate_chain=_read_setting(settings.tls_cert_file, "LEADFLOW_TLS_CERT_FILE"),
        private_key=_read_setting(settings.tls_key_file, "LEADFLOW_TLS_KEY_FILE"),
        client_ca=(
            _read_setting(settings.tls_client_ca_file, "LEADFLOW_TLS_CLIENT_CA_FILE")
            if settings.tls_client_ca_file
            else None
        ),
    )


def client_tls(settings: Settings) -> ClientTls | None:
    """A client's TLS from its settings; None (plaintext) when neither a CA to trust nor a
    client certificate is named."""
    if not (settings.tls_ca_file or settings.tls_client_cert_file):
        return None
    return ClientTls(
        ca=_read_setting(settings.tls_ca_file, "LEADFLOW_TLS_CA_FILE")
        if settings.tls_ca_file
        else None,
        certificate_chain=(
            _read_setting(settings.tls_client_cert_file, "LEADFLOW_TLS_CLIENT_CERT_FILE")
            if settings.tls_client_cert_file
            else None
        ),
        private_key=(
            _read_setting(settings.tls_client_key_file, "LEADFLOW_TLS_CLIENT_KEY_FILE")
            if settings.tls_client_key_file
            else None
        ),
        server_name=settings.tls_server_name,
    )


def client_tls_from_env(environ: Mapping[str, str] | None = None) -> ClientTls | None:
    """`client_tls` reading only the client TLS variables, so a channel can be opened where
    other settings are unset or meant for another process."""
    values = read_settings({name: SETTINGS[name] for name in CLIENT_SETTINGS}, environ)
    defaults = Settings.from_env({})
    return client_tls(defaults.with_overrides(**values))


# Certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    certificate_pem: bytes
    private_key_pem: bytes

    def write(self, cert_file: Path, key_file: Path) -> None:
        _write(cert_file, self.certificate_pem, 0o644)
        _write(key_file, self.private_key_pem, 0o600)


class CertificateAuthority:
    """A CA key and self-signed certificate that issues server and client certificates
    (ECDSA P-256: quick to make, supported by every gRPC TLS stack)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def create(cls, name: str = "leadflow local CA", *, days: int = 3650) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: not an EC private key")
        return cls(key, x509.load_pem_x509_certificate(cert_file.read_bytes()))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self._key)

    def issue(
        self,
        common_name: str,
        *,
        hosts: Iterable[str] = (),
        client: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A server certificate for `hosts` (DNS names or IP addresses), or with `client` a
        client certificate; valid from five minutes ago for a year unless told otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        names = _subject_names(hosts)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class LocalPki:
    """The files `leadflow up --tls` makes under `<data dir>/tls`."""

    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path

    def client(self, *, mutual: bool) -> ClientTls:
        if mutual:
            return ClientTls.from_files(self.ca_file, self.client_cert_file, self.client_key_file)
        return ClientTls.from_files(self.ca_file)


def local_pki(directory: Path, bind_host: str) -> LocalPki:
    """A CA kept across runs (so what trusts it keeps working), and a server and a client
    certificate issued anew each run for this machine's names and the bind host."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, ca_key_file = directory / "ca.pem", directory / "ca-key.pem"
    try:
        ca = CertificateAuthority.load(ca_file, ca_key_file)
        if ca.certificate.not_valid_after_utc < _now() + dt.timedelta(days=30):
            raise ValueError("CA certificate expires soon")
    except (OSError, ValueError):
        ca = CertificateAuthority.create()
        _write(ca_key_file, ca.key_pem, 0o600)
        _write(ca_file, ca.certificate_pem, 0o644)
    pki = LocalPki(
        ca_file=ca_file,
        server_cert_file=directory / "server.pem",
        server_key_file=directory / "server-key.pem",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client-key.pem",
    )
    hosts = [*LOCAL_HOSTS, bind_host, socket.gethostname()]
    ca.issue("leadflow services", hosts=hosts).write(pki.server_cert_file, pki.server_key_file)
    ca.issue("leadflow local client", client=True).write(pki.client_cert_file, pki.client_key_file)
    return pki


def _subject_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(h for h in hosts if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    temp.replace(path)


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def _read_setting(path: str, env: str) -> bytes:
    try:
        return _read(path)
    except OSError as exc:
        raise SettingsError(f"{env}={path!r}: {exc.strerror or exc}") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
