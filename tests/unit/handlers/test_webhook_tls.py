"""The webhook server's certificate: self-signed for the address the API server calls, or
the mounted pair; kube-apiserver calls webhooks over https only."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from koos.handlers.webhook_tls import self_signed, serving_files


@pytest.mark.parametrize("host", ["127.0.0.1", "koos-webhooks.koos-system.svc"])
def test_a_generated_pair_serves_tls_for_the_host_and_is_removed_on_close(host: str) -> None:
    files = serving_files(host, None)
    try:
        assert files.cafile is None  # the certificate is its own caBundle
        assert stat.S_IMODE(Path(files.keyfile).stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(files.owned_dir or "").stat().st_mode) == 0o700
        context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.certfile, files.keyfile)
        cert = x509.load_pem_x509_certificate(Path(files.certfile).read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if host[0].isdigit():
            assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(host)]
        else:
            assert names.get_values_for_type(x509.DNSName) == [host]
    finally:
        files.close()
    assert not Path(files.certfile).exists()


def test_a_mounted_pair_is_used_as_it_is(tmp_path: Path) -> None:
    cert, key = self_signed("127.0.0.1")
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    files = serving_files("127.0.0.1", str(tmp_path))
    assert (files.certfile, files.keyfile, files.cafile) == (
        str(tmp_path / "tls.crt"),
        str(tmp_path / "tls.key"),
        None,
    )
    (tmp_path / "ca.crt").write_bytes(cert)
    assert serving_files("127.0.0.1", str(tmp_path)).cafile == str(tmp_path / "ca.crt")
    files.close()
    assert (tmp_path / "tls.crt").exists()  # a mounted pair is never removed


def test_a_mounted_folder_without_the_key_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_text("x")
    with pytest.raises(ValueError, match=r"missing tls\.key"):
        serving_files("127.0.0.1", str(tmp_path))
