"""Serving certificate for the custom metrics adapter, and the CA the APIService trusts.

    python -m controllers.metrics.certs --out kind-config/metrics/certs \\
        [--service custom-metrics-adapter] [--namespace elastic-airflow] [--days 365]

writes `ca.crt`, `tls.crt`, `tls.key` (mode 0600). `kind-config/metrics/kustomization.yaml` turns
them into the adapter's TLS Secret and copies `ca.crt` into the APIService's `caBundle`, so the
aggregator verifies the adapter (no `insecureSkipTLSVerify`). The aggregator checks the name
`<service>.<namespace>.svc`; the certificate carries it (and the short and cluster.local forms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SERVICE = "custom-metrics-adapter"
DEFAULT_NAMESPACE = "elastic-airflow"


@dataclass(frozen=True)
class ServingBundle:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {name: directory / name for name in ("ca.crt", "tls.crt", "tls.key")}
        paths["ca.crt"].write_bytes(self.ca_pem)
        paths["tls.crt"].write_bytes(self.cert_pem)
        key = paths["tls.key"]
        key.touch(mode=0o600, exist_ok=True)
        key.chmod(0o600)
        key.write_bytes(self.key_pem)
        return paths


def service_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _new_ca(common_name: str, now: dt.datetime, until: dt.datetime):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    common_name: str,
    usage: x509.ObjectIdentifier,
    hosts: Sequence[str],
    now: dt.datetime,
    until: dt.datetime,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(_alt_names(hosts))), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _validity(days: int) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return now, now + dt.timedelta(days=days)


def issue(hosts: Sequence[str], days: int = 365, common_name: str | None = None) -> ServingBundle:
    """A fresh CA and a serving certificate for `hosts` (DNS names or IP addresses)."""
    now, until = _validity(days)
    ca_key, ca = _new_ca("elastic-airflow-metrics-ca", now, until)
    cert_pem, key_pem = _leaf(
        ca_key, ca, common_name or hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, hosts, now, until
    )
    return ServingBundle(ca.public_bytes(serialization.Encoding.PEM), cert_pem, key_pem)


def issue_client(common_name: str, days: int = 365) -> ServingBundle:
    """A fresh CA and a client certificate for `common_name` (e.g. the aggregator's front
    proxy); same files as `issue`, `tls.crt`/`tls.key` being the client pair."""
    now, until = _validity(days)
    ca_key, ca = _new_ca(f"{common_name}-ca", now, until)
    cert_pem, key_pem = _leaf(
        ca_key, ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, (), now, until
    )
    return ServingBundle(ca.public_bytes(serialization.Encoding.PEM), cert_pem, key_pem)


def _alt_names(hosts: Iterable[str]) -> Iterable[x509.GeneralName]:
    for host in hosts:
        try:
            yield x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            yield x509.DNSName(host)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.metrics.certs", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--service", default=DEFAULT_SERVICE)
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    p.add_argument("--extra-host", action="append", default=[], help="more DNS names or IPs")
    p.add_argument("--days", type=int, default=365)
    args = p.parse_args(argv)
    hosts = service_names(args.service, args.namespace) + list(args.extra_host)
    paths = issue(hosts, args.days, common_name=hosts[2]).write(args.out)
    print(" ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
