"""TLS by configuration: a node serves HTTPS with its certificate, and clients verify it."""
from __future__ import annotations

import datetime
import ipaddress

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from eth_account import Account
from nodes import TEST_PASSPHRASE, start_node

from node.chain.deployment import GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.client import NodeClient
from node.keys import create_member_keys


def self_signed(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (folder / "node.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "node.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return folder / "node.crt", folder / "node.key"


def test_node_serves_https_and_clients_verify_its_certificate(anvil, artifacts, tmp_path):
    gateway = ChainGateway.connect(anvil.url, artifacts)
    keys = create_member_keys(tmp_path / "k", TEST_PASSPHRASE, scrypt_n=2**10)
    deployer = Account.create()
    for a in (deployer, keys.account):
        gateway.fund(a.address)
    dep = deploy_consortium(gateway, deployer, [GenesisMember(keys.address, "insurer", Role.INSURER)])
    cert, key = self_signed(tmp_path)
    node = start_node(tmp_path / "home", "insurer", tmp_path / "k", anvil.url, dep.save(tmp_path / "d.json"),
                      tls_certfile=str(cert), tls_keyfile=str(key))
    try:
        assert node.url.startswith("https://")
        client = NodeClient(node.url, keys.account, keys.address, gateway.chain_id, verify=str(cert))
        r = client.request("GET", "/governance/members")
        assert r.status_code == 200 and r.json()[0]["name"] == "insurer"
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate refuses to talk
            httpx.get(node.url + "/health", timeout=5)
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served on the TLS port
            httpx.get(node.url.replace("https://", "http://") + "/health", timeout=5)
    finally:
        node.stop()
