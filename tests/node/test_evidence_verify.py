"""Auditor verification: most cases are negative. One anchored batch of 11 leaves serves the module."""
from __future__ import annotations

import copy
import hashlib
import json

import pytest
from conftest import build_consortium

from node.chain.deployment import Status
from node.chain.gateway import ChainGateway
from node.cli.main import main as cli_main
from node.evidence.errors import EvidenceVerificationError
from node.evidence.leaf import DocType, evidence_leaf_hash
from node.evidence.service import PROOF_FORMAT, EvidenceService, EvidenceSettings
from node.evidence.store import create_store_engine
from node.evidence.verify import RegistryEvidenceChain, verify_evidence
from privacy.merkle import MerkleTree, proof_to_json

DOCUMENT = b"%PDF-1.7 invoice no. 4711, hospital stay, 2 nights, total 1,234.00\n" * 20
LEAF = 5


@pytest.fixture(scope="module")
def anchored(anvil, artifacts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evidence-verify")
    consortium = build_consortium(ChainGateway.connect(anvil.url, artifacts))
    service = EvidenceService(create_store_engine(folder / "evidence.db"), consortium["insurer_a"], EvidenceSettings())
    items = [(hashlib.sha256(b"other %d" % n).digest(), f"CLM-{n}", "loss-photo") for n in range(11)]
    items[LEAF] = (hashlib.sha256(DOCUMENT).digest(), "CLM-4711", "invoice")
    service.accept_many(items)
    service.close_open_batch()
    service.run_once()
    proof = service.proofs("CLM-4711")[0]
    deployment_path = consortium.deployment.save(folder / "deployment.json")
    (folder / "invoice.pdf").write_bytes(DOCUMENT)
    (folder / "proof.json").write_text(json.dumps(proof))
    return {"consortium": consortium, "service": service, "proof": proof, "folder": folder,
            "deployment": deployment_path, "chain": RegistryEvidenceChain(consortium.gateway), "other": service.proofs("CLM-3")[0]}


def check(anchored, proof, document=DOCUMENT):
    return verify_evidence(hashlib.sha256(document).digest(), proof, anchored["chain"])


def reason_of(anchored, proof, document=DOCUMENT) -> str:
    with pytest.raises(EvidenceVerificationError) as err:
        check(anchored, proof, document)
    return err.value.reason


def flip(hex_hash: str, bit: int) -> str:
    raw = bytearray(bytes.fromhex(hex_hash))
    raw[bit // 8] ^= 1 << (bit % 8)
    return raw.hex()


def test_valid_proof_names_block_time_and_submitter(anchored):
    verdict = check(anchored, anchored["proof"])
    assert verdict.leaf_index == LEAF and verdict.tree_size == 11
    assert verdict.submitter_name == "insurer_a" and verdict.submitter_status == "ACTIVE"
    assert verdict.block_number > 0 and verdict.block_time > 0 and verdict.claim_id == "CLM-4711"


@pytest.mark.parametrize("node", range(4))
@pytest.mark.parametrize("bit", [0, 7, 100, 255])
def test_flipped_bit_in_any_proof_node_is_a_wrong_proof(anchored, node, bit):
    proof = copy.deepcopy(anchored["proof"])
    assert len(proof["proof"]["audit_path"]) == 4
    proof["proof"]["audit_path"][node] = flip(proof["proof"]["audit_path"][node], bit)
    assert reason_of(anchored, proof) == "wrong_proof"


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p["proof"].update(leaf_index=LEAF + 1), "wrong_proof"),
    (lambda p: p["proof"].update(leaf_index=LEAF - 1), "wrong_proof"),
    (lambda p: p["proof"].update(leaf_index=11), "wrong_proof"),
    (lambda p: p["proof"].update(tree_size=12), "wrong_proof"),
    (lambda p: p["proof"].update(tree_size=10), "wrong_proof"),
    (lambda p: p["proof"].update(tree_size=8, leaf_index=LEAF), "wrong_proof"),
    (lambda p: p["proof"]["audit_path"].append(p["proof"]["audit_path"][0]), "wrong_proof"),
    (lambda p: p["proof"]["audit_path"].pop(), "wrong_proof"),
    (lambda p: p["proof"]["audit_path"].pop(0), "wrong_proof"),
    (lambda p: p["proof"].update(audit_path=[]), "wrong_proof"),
    (lambda p: p["proof"]["audit_path"].reverse(), "wrong_proof"),
    (lambda p: p.update(batch_id="11" * 32), "wrong_proof"),
    (lambda p: p["proof"].update(root=flip(p["proof"]["root"], 3)), "unknown_root"),
    (lambda p: p["proof"].update(root="00" * 32), "unknown_root"),
    (lambda p: p["proof"].update(leaf_hash=flip(p["proof"]["leaf_hash"], 0)), "tampered_document"),
    (lambda p: p.update(claim_id="CLM-4712"), "tampered_document"),
    (lambda p: p.update(doc_type="medical-record"), "tampered_document"),
    (lambda p: p.update(doc_sha256=flip(p["doc_sha256"], 9)), "tampered_document"),
    (lambda p: p.update(format="something/else"), "malformed_proof"),
    (lambda p: p["anchor"].update(submitter="0x" + "11" * 20), "unknown_root"),  # roots are per submitter
    (lambda p: p["anchor"].update(submitter="0x1234"), "malformed_proof"),
    (lambda p: p.pop("anchor"), "malformed_proof"),
    (lambda p: p.pop("proof"), "malformed_proof"),
    (lambda p: p["proof"].update(root="xyz"), "malformed_proof"),
    (lambda p: p["proof"].update(leaf_index=-1), "malformed_proof"),
    (lambda p: p["proof"].update(tree_size=True), "malformed_proof"),
    (lambda p: p["proof"].update(extra=1), "malformed_proof"),
    (lambda p: p.update(doc_type="selfie"), "malformed_proof"),
    (lambda p: p.update(claim_id=""), "malformed_proof"),
])
def test_every_wrong_proof_field_is_refused_with_its_reason(anchored, mutate, reason):
    proof = copy.deepcopy(anchored["proof"])
    mutate(proof)
    assert reason_of(anchored, proof) == reason


@pytest.mark.parametrize("document", [DOCUMENT[:-1], DOCUMENT + b" ", b"X" + DOCUMENT[1:], b""])
def test_tampered_document_fails(anchored, document):
    assert reason_of(anchored, anchored["proof"], document) == "tampered_document"


def test_another_documents_valid_proof_does_not_vouch_for_this_document(anchored):
    assert reason_of(anchored, anchored["other"]) == "tampered_document"
    other = copy.deepcopy(anchored["other"])  # the other proof, rewritten to claim this document
    other.update(doc_sha256=hashlib.sha256(DOCUMENT).hexdigest(), claim_id="CLM-4711", doc_type="invoice")
    other["proof"]["leaf_hash"] = anchored["proof"]["proof"]["leaf_hash"]
    assert reason_of(anchored, other) == "wrong_proof"


def test_a_proof_naming_another_document_is_wrong_proof_and_a_changed_document_is_tampered(anchored, tmp_path, capsys):
    """Proof files written by the CLI name their document: handing over the wrong proof file is a mix-up
    (wrong_proof), a document of the proof's own name that hashes differently was changed (tampered_document)."""
    other = {**copy.deepcopy(anchored["other"]), "document": "photo-3.jpg"}
    with pytest.raises(EvidenceVerificationError) as err:
        verify_evidence(hashlib.sha256(DOCUMENT).digest(), other, anchored["chain"], document_name="invoice.pdf")
    assert err.value.reason == "wrong_proof" and "photo-3.jpg" in str(err.value)
    mine = {**copy.deepcopy(anchored["proof"]), "document": "invoice.pdf"}
    with pytest.raises(EvidenceVerificationError) as err:
        verify_evidence(hashlib.sha256(DOCUMENT + b" ").digest(), mine, anchored["chain"], document_name="in/invoice.pdf")
    assert err.value.reason == "tampered_document"
    assert verify_evidence(hashlib.sha256(DOCUMENT).digest(), mine, anchored["chain"], document_name="invoice.pdf")
    # through the CLI, with the proof file as `evidence upload --out` writes it (0x transaction hash, document name)
    from node.evidence.proof_file import proof_file_text

    anchored_proof = copy.deepcopy(anchored["proof"])
    assert anchored_proof["anchor"]["tx_hash"].startswith("0x")  # as the node's API serves it
    # a proof exported before transaction hashes carried 0x is written with it, and the caller's dict is left alone
    old_style = {**anchored_proof, "anchor": {**anchored_proof["anchor"], "tx_hash": anchored_proof["anchor"]["tx_hash"][2:]}}
    assert json.loads(proof_file_text(old_style))["anchor"]["tx_hash"] == anchored_proof["anchor"]["tx_hash"]
    assert not old_style["anchor"]["tx_hash"].startswith("0x")
    text = proof_file_text(anchored_proof, "somewhere/invoice.pdf")
    assert json.loads(text)["anchor"]["tx_hash"].startswith("0x") and json.loads(text)["document"] == "invoice.pdf"
    (tmp_path / "invoice.pdf.proof.json").write_text(text)
    (tmp_path / "invoice.pdf").write_bytes(DOCUMENT.replace(b"1,234.00", b"9,234.00"))
    (tmp_path / "receipt.pdf").write_bytes(b"another document entirely")
    proof_path = tmp_path / "invoice.pdf.proof.json"
    assert _cli(anchored, "--json", document=tmp_path / "invoice.pdf", proof_path=proof_path) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "tampered_document"
    assert _cli(anchored, "--json", document=tmp_path / "receipt.pdf", proof_path=proof_path) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "wrong_proof"


def test_self_consistent_proof_of_a_root_never_anchored_is_an_unknown_root(anchored):
    leaf = evidence_leaf_hash(hashlib.sha256(DOCUMENT).digest(), "CLM-4711", DocType.INVOICE)
    tree = MerkleTree([leaf, hashlib.sha256(b"x").digest(), hashlib.sha256(b"y").digest()])
    forged = {**anchored["proof"], "proof": proof_to_json(0, 3, leaf, tree.inclusion_proof(0), tree.root())}
    forged["proof"]["root"] = tree.root().hex()
    assert reason_of(anchored, forged) == "unknown_root"


def test_empty_and_non_object_proof_files_are_malformed(anchored):
    for bad in ({}, [], "proof", None, 7):
        assert reason_of(anchored, bad) == "malformed_proof"


class FakeChain:
    """The real anchored batch, but the registry says the submitter has another status."""

    def __init__(self, real: RegistryEvidenceChain, status: Status):
        self.real, self.status = real, status

    def batch_by_root(self, submitter, root):
        return self.real.batch_by_root(submitter, root)

    def batch_by_id(self, submitter, batch_id):
        return self.real.batch_by_id(submitter, batch_id)

    def member(self, address):
        return ("", self.status) if self.status == Status.NONE else ("insurer_a", self.status)


def test_root_anchored_by_a_non_member_is_refused_and_a_suspended_submitter_is_shown(anchored):
    digest = hashlib.sha256(DOCUMENT).digest()
    with pytest.raises(EvidenceVerificationError) as err:
        verify_evidence(digest, anchored["proof"], FakeChain(anchored["chain"], Status.NONE))
    assert err.value.reason == "non_member"
    verdict = verify_evidence(digest, anchored["proof"], FakeChain(anchored["chain"], Status.SUSPENDED))
    assert verdict.submitter_status == "SUSPENDED"


def _cli(anchored, *extra, proof_path=None, document=None):
    folder = anchored["folder"]
    return cli_main(["evidence", "verify", str(document or folder / "invoice.pdf"), "--proof",
                     str(proof_path or folder / "proof.json"), "--rpc", anchored["consortium"].gateway.rpc_url,
                     "--deployment", str(anchored["deployment"]), *extra])


def test_cli_verify_exits_0_with_block_time_and_submitter(anchored, capsys):
    assert _cli(anchored) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID") and "insurer_a" in out and "block" in out
    assert _cli(anchored, "--json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["valid"] is True


def test_cli_verify_exits_1_with_the_reason(anchored, capsys, tmp_path):
    tampered = tmp_path / "invoice.pdf"
    tampered.write_bytes(DOCUMENT.replace(b"1,234.00", b"9,234.00"))
    assert _cli(anchored, document=tampered) == 1
    assert "tampered_document" in capsys.readouterr().err
    wrong = copy.deepcopy(anchored["proof"])
    wrong["proof"]["audit_path"].pop()
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    assert _cli(anchored, "--json", proof_path=tmp_path / "wrong.json") == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "wrong_proof"
    (tmp_path / "broken.json").write_text("{not json")
    assert _cli(anchored, proof_path=tmp_path / "broken.json") == 1
    assert "malformed_proof" in capsys.readouterr().err


def test_cli_proof_exports_files_that_verify(anchored, capsys, tmp_path):
    db = anchored["folder"] / "evidence.db"
    assert cli_main(["evidence", "proof", "CLM-4711", "--db", str(db), "--out", str(tmp_path), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported[0]["format"] == PROOF_FORMAT
    (path,) = tmp_path.glob("*.proof.json")
    assert _cli(anchored, proof_path=path) == 0
    assert cli_main(["evidence", "proof", "CLM-none", "--db", str(db)]) == 1
    assert "no evidence for claim" in capsys.readouterr().err


def test_the_same_root_anchored_by_another_member_does_not_change_the_verdict(anchored):
    """Roots are write-once per submitter: a copy anchored by another member is a separate anchoring."""
    c = anchored["consortium"]
    root = bytes.fromhex(anchored["proof"]["proof"]["root"])
    c["insurer_b"].anchor_batch(root, 11, hashlib.sha256(b"copied").digest())
    verdict = check(anchored, anchored["proof"])
    assert verdict.submitter == c.accounts["insurer_a"].address and verdict.batch_id == anchored["proof"]["batch_id"]
