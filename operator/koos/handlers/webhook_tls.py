"""The webhook server's TLS: kube-apiserver calls admission webhooks over https only.

With `--webhook-cert-dir` the operator serves the certificate mounted there (`tls.crt`,
`tls.key`, and `ca.crt` as the caBundle when present: the layout of a kubernetes.io/tls
Secret or a cert-manager Certificate). Without it, it makes a self-signed certificate for the
address the API server calls, valid for a year, kept in a private temporary folder for the
life of the process; the caBundle it publishes is that certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ServingFiles:
    certfile: str
    keyfile: str
    cafile: str | None  # None: the certificate is its own CA
    owned_dir: str | None = None  # a folder made for a generated pair, removed by close()

    def close(self) -> None:
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)


def serving_files(host: str, cert_dir: str | None) -> ServingFiles:
    if cert_dir:
        folder = Path(cert_dir)
        cert, key, ca = folder / "tls.crt", folder / "tls.key", folder / "ca.crt"
        missing = [p.name for p in (cert, key) if not p.is_file()]
        if missing:
            raise ValueError(f"--webhook-cert-dir {cert_dir}: missing {', '.join(missing)}")
        return ServingFiles(str(cert), str(key), str(ca) if ca.is_file() else None)
    made = tempfile.mkdtemp(prefix="koos-webhook-tls-")  # mode 0700
    cert_pem, key_pem = self_signed(host)
    cert_path, key_path = Path(made, "tls.crt"), Path(made, "tls.key")
    cert_path.write_bytes(cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    return ServingFiles(str(cert_path), str(key_path), None, owned_dir=made)


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A certificate (and its key, PEM) for `host`, an IP address or a DNS name."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"koos-webhooks {host}"[:64])])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
