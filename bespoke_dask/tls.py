"""Dask TLS for an executor: the user's certificates, or a CA and a node certificate of its own.

With TLS every connection (client, worker, scheduler) must present a certificate signed by the
executor's CA, so a process without one is refused. Generated certificates live in
`<directory>/tls/` (keys readable by their owner only): clients on the same file system pick
them up from there; elsewhere, copy them and pass `--tls-ca-file/--tls-cert/--tls-key`.
"""

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from distributed.security import Security

from bespoke_dask.errors import InputError

FOLDER = "tls"
CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "node.pem", "node-key.pem"
VALID_FOR = datetime.timedelta(days=365)


def security(ca_file: str | os.PathLike, cert: str | os.PathLike, key: str | os.PathLike) -> Security:
    """Security that requires TLS, with one certificate for every role (scheduler, worker, client)."""
    ca_file, cert, key = map(str, (ca_file, cert, key))
    roles = ("scheduler", "worker", "client")
    files = {f"tls_{role}_{kind}": path for role in roles for kind, path in (("cert", cert), ("key", key))}
    return Security(tls_ca_file=ca_file, require_encryption=True, **files)


def from_directory(directory: str | os.PathLike) -> Security | None:
    """The executor's generated certificates, if it made any."""
    folder = Path(directory) / FOLDER
    if not (folder / CA_FILE).exists():
        return None
    return security(folder / CA_FILE, folder / CERT_FILE, folder / KEY_FILE)


def resolve(
    directory: str | os.PathLike | None = None,
    ca_file: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> Security:
    """A client's or worker's security: flags, else the directory's certificates, else dask config."""
    if ca_file or cert or key:
        if not (ca_file and cert and key):
            raise InputError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
        return security(ca_file, cert, key)
    return (directory and from_directory(directory)) or Security()


def for_executor(
    directory: str | os.PathLike,
    host: str,
    ca_file: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> Security:
    """An executor's TLS: the user's files (flags, else distributed.comm.tls), else generated ones."""
    if ca_file or cert or key:
        return resolve(None, ca_file, cert, key)
    configured = Security(require_encryption=True)
    if configured.tls_ca_file:
        return configured
    return from_directory(directory) or generate(directory, host)


def generate(directory: str | os.PathLike, host: str) -> Security:
    """Write a CA and a node certificate for `host` (and localhost) into `<directory>/tls/`."""
    folder = Path(directory) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bespoke-dask executor CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    node_key = ec.generate_private_key(ec.SECP256R1())
    node_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bespoke-dask node")])
    node = (
        _builder(node_name, ca_name, node_key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / CA_FILE, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(folder / CERT_FILE, node.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(folder / KEY_FILE, _pem(node_key), 0o600)
    # The CA key is not kept: nobody can sign a further certificate for this executor.
    return from_directory(directory)


def _builder(subject, issuer, public_key, now) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    for address in {host, "127.0.0.1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (a key is never readable by others, even briefly)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
