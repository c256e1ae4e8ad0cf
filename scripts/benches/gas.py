"""Gas used by every state-changing contract function, measured on a real anvil."""
from __future__ import annotations

import hashlib

describe = "gas used by each state-changing function of the consortium contracts (anvil)"


def add_arguments(parser) -> None:
    parser.add_argument("--batch", type=int, default=100, help="records per batch-logging transaction")


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def run(args, progress) -> dict:
    from eth_account import Account

    from node.access.consent import Consent, sign_consent
    from node.chain.anvil import AnvilNode
    from node.chain.compiler import compile_contracts
    from node.chain.deployment import ClaimStep, GenesisMember, Purpose, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger, dataset_id

    gas: dict[str, int] = {}
    with AnvilNode() as anvil:
        gw = ChainGateway.connect(anvil.url, compile_contracts())  # a benchmark deploys: it compiles (cached)
        names = ["insurer_a", "insurer_b", "platform", "regulator", "candidate", "deployer"]
        acct = {n: Account.create() for n in names}
        for a in acct.values():
            gw.fund(a.address)
        roles = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "platform": Role.PLATFORM, "regulator": Role.REGULATOR}
        genesis = [GenesisMember(acct[n].address, n, r, f"https://{n}.example", _h(n)) for n, r in roles.items()]
        task = progress.add_task("measuring gas", total=None)
        # Deployment gas: replay each deployment and read its receipt.
        deployment = deploy_consortium(gw, acct["deployer"], genesis)
        start = gw.w3.eth.block_number
        for block in range(deployment.deployment_block, start + 1):
            for tx in gw.w3.eth.get_block(block, full_transactions=True)["transactions"]:
                receipt = gw.w3.eth.get_transaction_receipt(tx["hash"])
                if receipt["contractAddress"]:
                    name = next(n for n, c in gw.contracts.items() if c.address == receipt["contractAddress"])
                    gas[f"deploy {name} ({len(genesis)} genesis members)" if name == "ConsortiumRegistry" else f"deploy {name}"] = receipt["gasUsed"]
        L = {n: Ledger(gw, acct[n]) for n in names}
        reg = L["insurer_a"].registry

        def measure(label: str, ledger: Ledger, fn) -> None:
            gas[label] = gw.transact(ledger.account, fn)["gasUsed"]
            progress.advance(task)

        measure("ConsortiumRegistry.propose", L["insurer_a"], reg.functions.propose(acct["candidate"].address, "newco", 3, "https://newco", _h("x"), _h("p"), 0))
        measure("ConsortiumRegistry.vote (not deciding)", L["insurer_a"], reg.functions.vote(1))
        gw.transact(acct["insurer_b"], reg.functions.vote(1))
        # 4 members in good standing: the third vote is the first above two thirds.
        measure("ConsortiumRegistry.vote (admits the member)", L["platform"], reg.functions.vote(1))
        measure("ConsortiumRegistry.rotateKeys", L["platform"], reg.functions.rotateKeys(_h("k2"), _h("p2")))
        measure("ConsortiumRegistry.setEndpoint", L["platform"], reg.functions.setEndpoint("https://platform2.example"))
        measure("ConsortiumRegistry.warn", L["regulator"], reg.functions.warn(acct["insurer_b"].address, _h("r")))
        measure("ConsortiumRegistry.suspend", L["regulator"], reg.functions.suspend(acct["insurer_b"].address, _h("r")))
        measure("ConsortiumRegistry.reinstate", L["regulator"], reg.functions.reinstate(acct["insurer_b"].address, _h("r")))
        # expulsion is a proposal: 5 members not expelled, the 4th vote carries it
        measure("ConsortiumRegistry.proposeExpulsion", L["regulator"], reg.functions.proposeExpulsion(acct["candidate"].address, _h("r"), 0))
        for voter in ("insurer_a", "insurer_b", "platform"):
            gw.transact(acct[voter], reg.functions.vote(2))
        measure("ConsortiumRegistry.vote (expels the member)", L["regulator"], reg.functions.vote(2))

        dua = L["insurer_a"].authorizations
        now = gw.w3.eth.get_block("latest")["timestamp"]
        ds = dataset_id("claims")

        def granted(purpose: Purpose, subjects_root: str):
            # Every grant carries a consent bound to its fields; the chain checks it (EIP-712 + ecrecover).
            signed = sign_consent(acct["insurer_a"], Consent(acct["insurer_a"].address, acct["insurer_a"].address,
                                                             acct["platform"].address, "0x" + ds.hex(), int(purpose),
                                                             "0x" + _h("s").hex(), now + 86400, subjects_root),
                                  gw.chain_id, dua.address)
            return dua.functions.grant(acct["platform"].address, ds, int(purpose), _h("s"), 0, now + 86400,
                                       signed.consent.as_tuple(), signed.signature)

        measure("DataUseAuthorization.grant", L["insurer_a"], granted(Purpose.STATISTICS, "0x" + "00" * 32))
        measure("DataUseAuthorization.grant (second, consent batch)", L["insurer_a"], granted(Purpose.FRAUD, "0x" + _h("c").hex()))
        measure("DataUseAuthorization.recordAccess", L["insurer_a"], dua.functions.recordAccess(1, _h("q"), 10))
        n = args.batch
        measure(f"DataUseAuthorization.recordAccessBatch ({n})", L["insurer_a"], dua.functions.recordAccessBatch([1] * n, [_h(str(i)) for i in range(n)], [10] * n))
        measure("DataUseAuthorization.recordDenial", L["insurer_a"], dua.functions.recordDenial(acct["insurer_b"].address, ds, 3, 1, _h("q")))
        measure(f"DataUseAuthorization.recordDenialBatch ({n})", L["insurer_a"], dua.functions.recordDenialBatch([acct["insurer_b"].address] * n, [ds] * n, [3] * n, [1] * n, [_h(str(i)) for i in range(n)]))
        measure("DataUseAuthorization.revoke", L["insurer_a"], dua.functions.revoke(2))

        ev = L["insurer_a"].evidence
        measure("EvidenceRegistry.anchorBatch", L["insurer_a"], ev.functions.anchorBatch(_h("root"), 4096, _h("batch"), _h("meta")))
        for step in ClaimStep:
            if step in (ClaimStep.REJECTED,):
                continue
            measure(f"EvidenceRegistry.recordClaimStep ({step.name})", L["insurer_a"], ev.functions.recordClaimStep(_h("claim"), int(step), _h(step.name), 1 if step == ClaimStep.ASSESSED else 0))

        st = L["platform"].stats
        parts = [acct["insurer_a"].address, acct["insurer_b"].address]
        measure("StatsLedger.openJob (2 participants)", L["platform"], st.functions.openJob(_h("spec"), parts, _h("key"), 10, now + 3600))
        measure("StatsLedger.commitContribution", L["insurer_a"], st.functions.commitContribution(1, _h("c1")))
        gw.transact(acct["insurer_b"], st.functions.commitContribution(1, _h("c2")))
        measure("StatsLedger.publishResult", L["platform"], st.functions.publishResult(1, _h("result")))
        gw.transact(acct["platform"], st.functions.openJob(_h("spec2"), parts, _h("key"), 10, now + 3600))
        gw.w3.provider.make_request("evm_increaseTime", [7200])
        gw.w3.provider.make_request("evm_mine", [])
        measure("StatsLedger.abort", L["platform"], st.functions.abort(2))

        # Pools: insurer_a's claim above is PAID with its evidence root anchored, so it is a confirmed loss.
        rp, pool = L["insurer_a"].risk_pool, _h("pool")
        measure("RiskPool.openPool (2 members)", L["insurer_a"], rp.functions.openPool(pool, parts, [70, 30], 10**12, 30 * 86400))
        measure("RiskPool.joinPool (activates)", L["insurer_b"], rp.functions.joinPool(pool))
        measure("RiskPool.proposeRatio", L["insurer_b"], rp.functions.proposeRatio(pool, [40, 60]))
        measure("RiskPool.approveRatio (takes effect)", L["insurer_a"], rp.functions.approveRatio(pool, 1))
        measure("RiskPool.reportLoss (2 members)", L["insurer_a"], rp.functions.reportLoss(pool, _h("claim"), 1_000_001, _h("root"), bytes(32)))
        loss_id = gw.call(ev.functions.claimKey(acct["insurer_a"].address, _h("claim")))
        measure("RiskPool.recordContribution", L["insurer_b"], rp.functions.recordContribution(loss_id, _h("pay")))
        measure("RiskPool.confirmContribution", L["insurer_a"], rp.functions.confirmContribution(loss_id, acct["insurer_b"].address))
        ma = L["insurer_a"].mutual_aid
        terms = (_h("claim"), _h("root"), 300_000_001, 1_000_000, 1, _h("share root"), _h("share list"), acct["deployer"].address)
        measure("MutualAid.anchorApportionment", L["insurer_a"], ma.functions.anchorApportionment(terms))
        measure("MutualAid.recordPayout", L["insurer_a"], ma.functions.recordPayout(loss_id, _h("payout")))
        measure("MutualAid.confirmPayout", L["deployer"], ma.functions.confirmPayout(loss_id))

    per_access = gas[f"DataUseAuthorization.recordAccessBatch ({n})"] / n
    per_denial = gas[f"DataUseAuthorization.recordDenialBatch ({n})"] / n
    gas["recordAccess per record in a batch"] = round(per_access)
    gas["recordDenial per record in a batch"] = round(per_denial)
    return gas
