"""Throwaway TLS material and ports for tests that start a TLS redis-server of their own."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path


def make_certificates(
    openssl: str, folder: Path, *, common_name: str, alt_names: str
) -> tuple[Path, Path, Path]:
    """Make a throwaway CA and a server certificate signed by it; return (ca, cert, key).

    Args:
        openssl: The openssl command.
        folder: Where the files go.
        common_name: The server certificate's CN.
        alt_names: Its subjectAltName, e.g. "IP:127.0.0.1,DNS:localhost".
    """
    ca_key, ca_file = folder / "ca.key", folder / "ca.crt"
    key, request, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    extensions = folder / "server.ext"
    extensions.write_text(f"subjectAltName={alt_names}\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_file,
         "-days", "1", "-subj", "/CN=corequeue test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
         "-subj", f"/CN={common_name}"],
        ["x509", "-req", "-in", request, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "1", "-extfile", extensions],
    ):  # fmt: skip
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True)
    return ca_file, cert, key


def free_port() -> int:
    """Return a loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
