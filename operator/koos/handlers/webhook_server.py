"""The admission webhooks' server: HTTPS with a self-signed certificate koos makes at start.

kube-apiserver calls a URL-configured webhook over https only (a `clientConfig.url` with
another scheme is refused when the configuration is stored), so the server kopf runs for
koos's webhooks must speak TLS. kopf makes a self-signed certificate when given none, but
with `certbuilder`, which koos does not depend on; this subclass makes it with
`cryptography` instead. kopf serves with it and puts it in the configurations' `caBundle`
(for a self-signed certificate the bundle is the certificate itself).

Invariant: the private key never leaves the process (kopf writes it to a temporary file
only to load it, and removes the file).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Collection

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


class WebhookServer(kopf.WebhookServer):
    @staticmethod
    def build_certificate(
        hostnames: Collection[str], password: str | None = None
    ) -> tuple[bytes, bytes]:
        """A self-signed P-256 certificate (PEM) naming `hostnames` (IP addresses as IP
        SANs, the rest as DNS names: Go verifies SANs only), and its key (PEM, encrypted
        with `password` when one is given)."""
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(h for h in hostnames if h):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "koos admission webhooks")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256())
        )
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        pkey = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return cert.public_bytes(serialization.Encoding.PEM), pkey
