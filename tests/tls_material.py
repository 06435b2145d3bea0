"""Throw-away TLS material for the tests: two CAs, a server certificate and a client certificate.

    material = TLSMaterial.generate(tmp_path_factory.mktemp("tls"))
    with FixtureServer(tls=material.server_context()) as srv:             # plain TLS
        ...
    with FixtureServer(tls=material.server_context(mtls=True)) as srv:    # requires a client cert

Everything is generated with `cryptography` at test time (nothing is checked in) and written as PEM:

    ca.pem / ca.key              the CA that signs the server and client certificates
    wrong-ca.pem / wrong-ca.key  an unrelated CA: trusting it must not validate the server
    server.pem / server.key      CN=localhost, SANs IP:127.0.0.1, DNS:localhost (TLS server auth)
    client.pem / client.key      CN=cilium-check-client (TLS client auth), key unencrypted
    client-encrypted.key         the client key encrypted with `client_key_password`
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_CLIENT_KEY_PASSWORD = "client-key-password"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cilium-check tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _validity(builder).sign(key, hashes.SHA256()), key


def _make_leaf(
    common_name: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _validity(builder).sign(ca_key, hashes.SHA256()), key


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption = (
        serialization.BestAvailableEncryption(password.encode("utf-8")) if password else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class TLSMaterial:
    """Paths of the generated PEM files (see the module docstring)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    wrong_ca_cert: Path
    wrong_ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    client_key_password: str

    @classmethod
    def generate(cls, directory: Path, *, client_key_password: str = DEFAULT_CLIENT_KEY_PASSWORD) -> TLSMaterial:
        """Create the CAs and certificates in `directory` (which must exist)."""
        directory = Path(directory)
        ca, ca_key = _make_ca("cilium-check test CA")
        wrong_ca, wrong_ca_key = _make_ca("cilium-check unrelated CA")
        server, server_key = _make_leaf(
            "localhost",
            ca,
            ca_key,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        )
        client, client_key = _make_leaf("cilium-check-client", ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        return cls(
            directory=directory,
            ca_cert=_write_cert(directory / "ca.pem", ca),
            ca_key=_write_key(directory / "ca.key", ca_key),
            wrong_ca_cert=_write_cert(directory / "wrong-ca.pem", wrong_ca),
            wrong_ca_key=_write_key(directory / "wrong-ca.key", wrong_ca_key),
            server_cert=_write_cert(directory / "server.pem", server),
            server_key=_write_key(directory / "server.key", server_key),
            client_cert=_write_cert(directory / "client.pem", client),
            client_key=_write_key(directory / "client.key", client_key),
            client_key_encrypted=_write_key(directory / "client-encrypted.key", client_key, client_key_password),
            client_key_password=client_key_password,
        )

    def server_context(self, *, mtls: bool = False, maximum_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A server-side context presenting the server certificate.

        `mtls`: require a client certificate signed by the CA (the handshake fails without one).
        `maximum_version`: cap the protocol (say TLSv1_2, where a missing client certificate fails
        inside the handshake rather than on the first read as with TLS 1.3).
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if maximum_version is not None:
            context.maximum_version = maximum_version
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        if mtls:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca_cert))
        return context


def generate(directory: Path, **kwargs) -> TLSMaterial:
    """Shorthand for `TLSMaterial.generate`."""
    return TLSMaterial.generate(directory, **kwargs)
