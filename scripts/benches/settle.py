"""Settlement: gas of a period's statement, which must not grow with the accesses metered, and metering time.

Period 0 meters a few accesses, period 1 a million (by default), over the same certificates and
providers: the two statements' gas differ only by calldata of their amounts. Every access is a real
AccessRecorded event logged by its data owner (recordAccessBatch), read back by the metering code.
"""
from __future__ import annotations

import time

describe = "settlement statement gas for a period with N certificates and M metered accesses (anvil), and metering time"

DAY = 86_400


def add_arguments(parser) -> None:
    parser.add_argument("--certificates", type=int, default=100)
    parser.add_argument("--providers", type=int, default=100, help="providers in the agreement (lines of the statement)")
    parser.add_argument("--accesses", type=int, default=1_000_000, help="access records metered in the large period")
    parser.add_argument("--small-accesses", type=int, default=1_000, help="access records metered in the small period")
    parser.add_argument("--batch", type=int, default=1_250, help="access records per recordAccessBatch transaction")
    parser.add_argument("--participants", type=int, default=1_000_000, help="mutual-aid payout apportioned (bench apportion)")
    parser.add_argument("--skip-apportion", action="store_true", help="statement gas only")


def run(args, progress) -> dict:
    from eth_account import Account

    from node.chain.anvil import AnvilNode
    from node.chain.compiler import compile_contracts
    from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger, dataset_id
    from node.settlement.book import SettlementBook
    from node.settlement.formula import Figure, Formula, Source

    if args.certificates < args.providers:
        raise SystemExit("--certificates must be at least --providers (each provider sells at least one)")
    with AnvilNode() as anvil:
        gw = ChainGateway.connect(anvil.url, compile_contracts())  # a benchmark deploys: it compiles (cached)
        task = progress.add_task("setting up", total=None)
        payer = Account.create()
        providers = [Account.create() for _ in range(args.providers)]
        deployer = Account.create()
        for a in [payer, deployer, *providers]:
            gw.fund(a.address)
        genesis = [GenesisMember(payer.address, "payer", Role.INSURER)]
        genesis += [GenesisMember(p.address, f"provider-{i}", Role.PLATFORM) for i, p in enumerate(providers)]
        deployment = deploy_consortium(gw, deployer, genesis)
        L = {a.address: Ledger(gw, a) for a in [payer, *providers]}
        buyer = L[payer.address]

        def all_mined(sent) -> list:
            return [s.wait(timeout=600) for s in sent]

        market = buyer.market
        terms = [(dataset_id("claims"), int(Purpose.STATISTICS), b"\0" * 32, 365 * DAY, 1000, 3, 1, 0, 2000, b"\x07" * 32)]
        all_mined([L[p.address]._submit(market.functions.publishOffer(terms[0])) for p in providers])
        offer_of = {e["args"]["owner"]: e["args"]["offerId"] for e in gw.events("DataMarket", "OfferPublished")}
        owners = [providers[i % len(providers)].address for i in range(args.certificates)]
        all_mined([buyer._submit(market.functions.buy(offer_of[o])) for o in owners])
        certs = [(e["args"]["owner"], e["args"]["grantId"]) for e in gw.events("DataMarket", "CertificateIssued")]
        formula = Formula(500, 2000, 5000, 3000, 2000, Source.ACCESSES, Source.ROWS, Source.DECLARED)
        start = gw.block_time() + 1
        aid = buyer.propose_agreement(payer.address, [p.address for p in providers], formula, period_start=start,
                                      period_seconds=DAY, dispute_window=DAY)
        all_mined([L[p.address]._submit(L[p.address].settlement.functions.acceptAgreement(aid)) for p in providers])

        dua = buyer.authorizations.address
        selector = bytes(gw.w3.keccak(text="recordAccessBatch(uint256[],bytes32[],uint32[])")[:4])
        fees = {"maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * gw.w3.eth.gas_price + 10**9}
        keys = {p.address: p for p in providers}

        def batch_calldata(grant_id: int, first: int, k: int) -> bytes:
            # ABI by hand (three dynamic arrays): web3's encoder costs more than anvil's execution at this size
            word = 32 * (k + 1)
            head = b"".join(x.to_bytes(32, "big") for x in (96, 96 + word, 96 + 2 * word))
            grants = k.to_bytes(32, "big") + grant_id.to_bytes(32, "big") * k
            hashes = k.to_bytes(32, "big") + b"".join((first + j).to_bytes(32, "big") for j in range(k))
            rows = k.to_bytes(32, "big") + (3).to_bytes(32, "big") * k
            return selector + head + grants + hashes + rows

        def record(total: int, label: str) -> float:
            """Each certificate's owner logs its share of ``total`` accesses, raw-signed and pipelined."""
            progress.update(task, description=f"{label}: logging {total:,} accesses", total=total, completed=0)
            began = time.perf_counter()
            per_cert = [total // len(certs) + (1 if i < total % len(certs) else 0) for i in range(len(certs))]
            nonces = {o: gw.w3.eth.get_transaction_count(o, "pending") for o in keys}
            gas: dict[int, int] = {}  # batch size -> gas limit
            for (owner, grant_id), n in zip(certs, per_cert):
                for lo in range(0, n, args.batch):
                    k = min(args.batch, n - lo)
                    tx = {"to": dua, "data": batch_calldata(grant_id, lo + 1, k), "chainId": gw.chain_id, "type": 2,
                          "nonce": nonces[owner], **fees}
                    if k not in gas:
                        estimate = gw.w3.eth.estimate_gas({"from": owner, "to": dua, "data": tx["data"]})
                        gas[k] = estimate + estimate // 5  # margin: the first batch of a grant reads it cold
                    tx["gas"] = gas[k]
                    raw = keys[owner].sign_transaction(tx).raw_transaction
                    answer = gw.w3.provider.make_request("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
                    if "error" in answer:
                        raise SystemExit(f"access batch refused: {answer['error']}")
                    nonces[owner] += 1
                    progress.advance(task, k)
            for owner, nonce in nonces.items():  # all mined: every owner's mined count reached its last nonce
                while gw.w3.eth.get_transaction_count(owner, "latest") < nonce:
                    time.sleep(0.2)
            return time.perf_counter() - began

        def declare(period: int) -> None:
            all_mined([buyer._submit(buyer.settlement.functions.declareFigure(aid, period, p.address, int(Figure.PREMIUM),
                                                                              100_000 + i, b"\x01" * 32))
                       for i, p in enumerate(providers)])
            all_mined([L[p.address]._submit(L[p.address].settlement.functions.declareFigure(
                aid, period, p.address, int(Figure.COST), 1 + i % 7, b"\x02" * 32)) for i, p in enumerate(providers)])

        def advance_to(ts: int) -> None:
            gw.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
            gw.w3.provider.make_request("evm_mine", [])

        advance_to(start)
        record(args.small_accesses, "period 0")
        advance_to(start + DAY)
        logging_seconds = record(args.accesses, "period 1")
        advance_to(start + 2 * DAY)
        declare(0)
        declare(1)
        progress.update(task, description="metering and issuing statements", total=None)
        book = SettlementBook(buyer, from_block=deployment.deployment_block, chunk_blocks=16)
        results = {}
        for period, expected in ((0, args.small_accesses), (1, args.accesses)):
            began = time.perf_counter()
            computed = book.compute(aid, period)
            metering = time.perf_counter() - began
            metered = sum(c.accesses for c in computed.inputs.certificates)
            if metered != expected:
                raise SystemExit(f"period {period}: metered {metered} accesses, logged {expected}")
            receipt = buyer.issue_statement(aid, period, computed.inputs_hash, computed.amounts)
            results[period] = {"gas": receipt["gasUsed"], "metering_seconds": round(metering, 2), "metered": metered,
                               "total": sum(computed.amounts), "certificates": len(computed.inputs.certificates)}
        confirm = L[providers[0].address].confirm_statement(aid, 1)["gasUsed"]
    out = {
        "statement_gas": results[1]["gas"],
        "statement_gas_small_period": results[0]["gas"],
        "certificates": results[1]["certificates"],
        "providers": args.providers,
        "metered_accesses": results[1]["metered"],
        "metered_accesses_small_period": results[0]["metered"],
        "metering_seconds": results[1]["metering_seconds"],
        "metering_seconds_small_period": results[0]["metering_seconds"],
        "access_logging_seconds": round(logging_seconds, 1),
        "confirm_gas": confirm,
        "statement_total": results[1]["total"],
    }
    if not args.skip_apportion:  # the mutual-aid figures of the same issue, measured as `bench.py apportion` does
        import argparse

        from benches import apportion

        defaults = argparse.ArgumentParser()
        apportion.add_arguments(defaults)
        a = defaults.parse_args(["--participants", str(args.participants)])
        measured = apportion.run(a, progress)
        out.update({k: measured[k] for k in ("participants", "apportion_seconds", "proof_bytes", "verify_us",
                                             "baseline_rfc6962_verify_us", "baseline_full_list_check_seconds")})
    return out
