"""A member's settlement book: statements computed from the chain, checked, issued, confirmed, and its earnings.

The statement is computed here, off chain, by node.settlement.formula.compute_statement from inputs
metered on chain (node.settlement.metering) and figures declared on Settlement; what goes on chain is
the hash of those inputs and the amounts. Every party can recompute both, so a member confirms only a
statement it has reproduced exactly, and disputes otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from node.chain.ledger import Ledger
from node.errors import ConsortiumError
from node.settlement.formula import (
    DeclaredFigure,
    Figure,
    Formula,
    Source,
    StatementInputs,
    StatementLine,
    amounts,
    compute_statement,
)
from node.settlement.metering import Meter, period_window

AGREEMENT_ACTIVE = 2


class SettlementError(ConsortiumError):
    reason = "settlement"


@dataclass(frozen=True)
class ComputedStatement:
    inputs: StatementInputs
    lines: list[StatementLine]

    @property
    def inputs_hash(self) -> bytes:
        return self.inputs.inputs_hash()

    @property
    def amounts(self) -> list[int]:
        return amounts(self.lines)

    def document(self) -> dict:
        return {"inputs_hash": "0x" + self.inputs_hash.hex(), "total": sum(self.amounts),
                "lines": [{"provider": line.provider, "certificate_charges": line.certificate_charges,
                           "base_commission": line.base_commission, "data_value_share": line.data_value_share,
                           "total": line.total} for line in self.lines],
                "inputs": self.inputs.document()}


def formula_of(agreement: dict) -> Formula:
    f = agreement["formula"]
    return Formula(f[0], f[1], f[2], f[3], f[4], Source(f[5]), Source(f[6]), Source(f[7]))


class SettlementBook:
    def __init__(self, ledger: Ledger, *, from_block: int = 0, chunk_blocks: int = 500):
        self.ledger = ledger
        self.from_block = from_block
        self.meter = Meter(ledger, from_block=from_block, chunk_blocks=chunk_blocks)

    def agreement(self, agreement_id: int) -> dict:
        if not 0 < agreement_id <= self.ledger.agreement_count():
            raise SettlementError(f"no agreement {agreement_id} on chain", reason="unknown_agreement",
                                  hint="list agreements with `consortium settle statement --help`")
        return self.ledger.get_agreement(agreement_id)

    def figures(self, agreement_id: int, period: int) -> dict[str, dict[str, DeclaredFigure]]:
        out: dict[str, dict[str, DeclaredFigure]] = {}
        for e in self.ledger.gateway.events("Settlement", "FigureDeclared", from_block=self.from_block,
                                            filters={"agreementId": agreement_id, "period": period}):
            a = e["args"]
            out.setdefault(Web3.to_checksum_address(a["provider"]), {})[Figure(a["figure"]).name] = DeclaredFigure(
                a["value"], "0x" + bytes(a["evidenceHash"]).hex())
        return out

    def compute(self, agreement_id: int, period: int) -> ComputedStatement:
        """The statement of one period, from the chain as it stands (the period must have ended)."""
        agreement = self.agreement(agreement_id)
        if agreement["state"] != AGREEMENT_ACTIVE:
            raise SettlementError(f"agreement {agreement_id} is not active (every party must accept it first)",
                                  reason="agreement_not_active", hint="each party runs `consortium settle accept`")
        start, end = period_window(agreement, period)
        blocks = self.meter.period_blocks(start, end)
        providers = [Web3.to_checksum_address(p) for p in agreement["providers"]]
        usage = self.meter.usage(agreement["payer"], providers, blocks)
        context = {"chain_id": self.ledger.gateway.chain_id, "settlement": self.ledger.settlement.address,
                   "agreement_id": agreement_id, "period": period, "payer": Web3.to_checksum_address(agreement["payer"]),
                   "start": start, "end": end, "first_block": blocks.first_block, "last_block": blocks.last_block}
        inputs = StatementInputs(tuple(providers), formula_of(agreement), tuple(usage), self.figures(agreement_id, period), context)
        return ComputedStatement(inputs, compute_statement(inputs))

    def issue(self, agreement_id: int, period: int) -> ComputedStatement:
        computed = self.compute(agreement_id, period)
        self.ledger.issue_statement(agreement_id, period, computed.inputs_hash, computed.amounts)
        return computed

    def check(self, agreement_id: int, period: int) -> dict:
        """The statement on chain against this member's own recomputation."""
        on_chain = self.ledger.get_statement(agreement_id, period)
        if on_chain["state"] == "NONE":
            raise SettlementError(f"no statement for agreement {agreement_id} period {period}", reason="no_statement",
                                  hint="a party issues it with `consortium settle statement --issue`")
        computed = self.compute(agreement_id, period)
        matches = computed.inputs_hash == on_chain["inputs_hash"] and computed.amounts == on_chain["amounts"]
        return {"matches": matches, "on_chain": on_chain, "computed": computed}

    def confirm(self, agreement_id: int, period: int) -> dict:
        """Confirm only a statement reproduced exactly (inputs hash and every amount)."""
        checked = self.check(agreement_id, period)
        if not checked["matches"]:
            raise SettlementError(f"the statement on chain for agreement {agreement_id} period {period} differs from this "
                                  "member's recomputation", reason="statement_mismatch",
                                  hint="dispute it with `consortium settle dispute`")
        self.ledger.confirm_statement(agreement_id, period)
        return checked

    def earnings(self, address: str) -> dict:
        """What ``address`` earned (as a provider) and owes (as a payer), per statement, by state."""
        address = Web3.to_checksum_address(address)
        latest: dict[tuple[int, int], dict] = {}
        for e in self.ledger.gateway.events("Settlement", "StatementIssued", from_block=self.from_block):
            latest[(e["args"]["agreementId"], e["args"]["period"])] = e["args"]
        agreements: dict[int, dict] = {}
        rows, totals = [], {"earned": {}, "owed": {}}
        for (agreement_id, period), args in sorted(latest.items()):
            a = agreements.setdefault(agreement_id, self.ledger.get_agreement(agreement_id))
            providers = [Web3.to_checksum_address(p) for p in a["providers"]]
            state = self.ledger.get_statement(agreement_id, period)["state"]
            if address in providers:
                amount = args["amounts"][providers.index(address)]
                rows.append({"agreement_id": agreement_id, "period": period, "role": "provider", "counterparty": a["payer"],
                             "amount": amount, "state": state,
                             "payment": ("none", "recorded", "received")[self.ledger.payment_state(agreement_id, period, address)]})
                totals["earned"][state] = totals["earned"].get(state, 0) + amount
            if Web3.to_checksum_address(a["payer"]) == address:
                rows.append({"agreement_id": agreement_id, "period": period, "role": "payer", "counterparty": None,
                             "amount": args["total"], "state": state})
                totals["owed"][state] = totals["owed"].get(state, 0) + args["total"]
        return {"member": address, "statements": rows, "totals": totals}
