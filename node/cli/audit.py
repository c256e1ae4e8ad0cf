"""`consortium audit ...`: the regulator's access-log index from the command line.

Reads the node's own store (``--config``), so it works whether or not the node is running. Like the
audit API, it answers only on a REGULATOR's node in good standing (checked on chain; anyone else's
node gets the 403 reason and a non-zero exit). No key is needed: nothing here signs. Human output
names members; ``--json`` and ``--format csv`` keep addresses.
"""
from __future__ import annotations

import argparse
import json
import sys

from node.audit.queries import EVENT_CATEGORIES
from node.audit.web_auth import issue_login_token
from node.cli.options import command, connect, print_table, settings
from node.connect import own_node_url
from node.enums import Role
from node.errors import ConsortiumError


def _engine(args):
    from node.audit.schema import init_audit_store
    from node.store.db import create_store_engine

    engine = create_store_engine(settings(args).db_url)
    init_audit_store(engine)
    return engine


def _progress(label: str):
    from rich.console import Console

    console = Console(stderr=True)

    def report(done: int, target: int) -> None:
        console.print(f"{label}: block {done} of {target}", end="\r", highlight=False)

    return report


class NotRegulator(Exception):
    pass


def _regulator_directory(args):
    """The member directory, after checking that this node's member is a regulator in good standing.

    The same rule as the audit API (node/api/audit.py): the role comes from the registry. The node's
    address is read from its keystore file (public, unencrypted), so no passphrase is needed.
    """
    from node.members import MemberDirectory

    keys = settings(args).keys
    try:
        address = "0x" + json.loads((keys / "account.json").read_text())["address"].removeprefix("0x")
    except (OSError, ValueError, KeyError) as exc:
        raise ConsortiumError(f"cannot read this node's account from {keys / 'account.json'}: {exc}",
                              reason="keystore", hint="check `keys` in the node's TOML") from None
    directory = MemberDirectory.from_chain(connect(args)[0].gateway)
    me = next((m for m in directory.members if m.address.lower() == address.lower()), None)
    if me is None or me.role != Role.REGULATOR:
        what = f"{me.name} is a {me.role.name.lower()}" if me else f"{address} is not a member"
        raise ConsortiumError(f"forbidden (403 not_regulator): only a consortium regulator may read the audit log; "
                              f"{what}", reason="not_regulator",
                              hint="run it with the regulator's node config (--config REGULATOR.toml)")
    if not me.in_good_standing:
        raise ConsortiumError(f"forbidden (403 not_in_good_standing): the regulator account is {me.status.name.lower()}",
                              reason="not_in_good_standing", hint="the regulator must be reinstated first")
    return directory


def _filter(args, directory=None):
    from node.audit.queries import LogFilter

    if directory is not None:  # member names accepted wherever an address is
        for attr in ("requester", "owner"):
            if getattr(args, attr, None):
                setattr(args, attr, directory.resolve(getattr(args, attr), attr))
    return LogFilter.parse(requester=args.requester, owner=args.owner, purpose=args.purpose, dataset=args.dataset,
                           outcome=args.outcome, since=args.since, until=args.until, grant_id=args.grant_id,
                           flagged=args.flagged)


def _cmd_sync(args) -> int:
    from node.audit.indexer import AuditIndexer

    ledger, deployment = connect(args)
    indexer = AuditIndexer(_engine(args), ledger.gateway, deployment)
    report = indexer.sync(args.to_block, progress=None if args.json else _progress("indexing"))
    out = {"indexed_block": indexer.indexed_block(), "blocks": report.blocks, "events": report.events,
           "seconds": round(report.seconds, 3), "events_per_s": round(report.events_per_second)}
    print(json.dumps(out) if args.json else
          f"indexed up to block {out['indexed_block']}: {report.events} new events in {report.blocks} blocks "
          f"({report.seconds:.1f} s)")
    return 0


def _cmd_status(args) -> int:
    from node.audit.queries import AuditQueries

    _regulator_directory(args)
    out = AuditQueries(_engine(args)).status()
    print(json.dumps(out) if args.json else
          f"indexed up to block {out['indexed_block']}: {out['access_events']} accesses, {out['denial_events']} denials, "
          f"{out['other_events']} other events")
    return 0


def _cmd_logs(args) -> int:
    from node.audit.queries import AuditQueries

    directory = _regulator_directory(args)
    queries = AuditQueries(_engine(args))
    f = _filter(args, directory)
    if args.format == "csv":
        block, lines = queries.export_csv(f, as_of=args.as_of)
        for chunk in lines:
            sys.stdout.write(chunk)
        print(f"# as of block {block}", file=sys.stderr)
        return 0
    if args.all:
        block, pieces = queries.export_json(f, as_of=args.as_of)
        for piece in pieces:
            sys.stdout.write(piece)
        sys.stdout.write("\n")
        return 0
    page = queries.search_logs(f, limit=args.limit, cursor=args.cursor, as_of=args.as_of)
    if args.format == "json":
        print(json.dumps(page.to_json()))
        return 0
    name = directory.name_of
    print_table(f"access log as of block {page.as_of_block}",
                ("time", "block", "outcome", "requester", "owner", "purpose", "dataset", "grant", "reason", "rows", "flag"),
                [(i["time"], f"{i['block']}:{i['log_index']}", i["outcome"], name(i["requester"]), name(i["owner"]),
                  i["purpose"], i["dataset"], i["grant_id"] or "", i["reason"] or "",
                  i["rows"] if i["rows"] is not None else "", i["flag"] or "") for i in page.items])
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor} --as-of {page.as_of_block}", file=sys.stderr)
    return 0


def _cmd_events(args) -> int:
    from node.audit.queries import AuditQueries, parse_time

    directory = _regulator_directory(args)
    account = directory.resolve(args.account, "account") if args.account else None
    page = AuditQueries(_engine(args)).search_events(
        category=args.category, event=args.event, account=account, grant_id=args.grant_id, job_id=args.job_id,
        since=parse_time(args.since, "since") if args.since else None,
        until=parse_time(args.until, "until") if args.until else None, limit=args.limit, cursor=args.cursor,
        as_of=args.as_of)
    print(json.dumps(page.to_json(), indent=None if args.json else 2))
    return 0


def _cmd_aggregate(args) -> int:
    from node.audit.queries import AuditQueries

    directory = _regulator_directory(args)
    out = AuditQueries(_engine(args)).daily_counts(_filter(args, directory), group_by=tuple(args.group_by.split(",")))
    if args.json:
        print(json.dumps(out))
        return 0
    columns = [*out["group_by"], "events", "rows"]
    print_table(f"events as of block {out['as_of_block']}", columns,
                [[directory.name_of(g[c]) if c in ("requester", "owner") else g[c] for c in columns] for g in out["groups"]])
    return 0


def _cmd_anomalies(args) -> int:
    from node.audit.anomalies import AnomalyDetector
    from node.audit.queries import parse_time

    directory = _regulator_directory(args)
    out = AnomalyDetector(_engine(args)).find(
        since=parse_time(args.since, "since") if args.since else None,
        until=parse_time(args.until, "until") if args.until else None,
        kinds=args.kind.split(",") if args.kind else None)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['count']} anomalies as of block {out['as_of_block']}")
        for a in out["anomalies"]:
            subject = str(a["subject"])
            print(f"{a['last_time']}  {a['kind']:<22} {directory.name_of(subject) if subject.startswith('0x') else subject}  "
                  f"{a['detail']}")
    return 0


def _cmd_verify(args) -> int:
    from node.audit.verify import verify_index

    ledger, deployment = connect(args)
    report = verify_index(_engine(args), ledger.gateway, args.from_block if args.from_block is not None else
                          deployment.deployment_block, args.to_block,
                          progress=None if args.json else _progress("verifying"))
    out = report.to_json()
    if args.json:
        print(json.dumps(out))
    else:
        verdict = "matches the chain" if report.matches else "DIFFERS from the chain"
        print(f"index {verdict} over blocks {report.from_block}..{report.to_block}: {report.chain_events} events on chain, "
              f"{report.index_events} indexed; missing {report.counts['missing']}, extra {report.counts['extra']}, "
              f"different {report.counts['different']}")
        for kind in ("missing", "extra", "different"):
            for item in out[kind]:
                print(f"  {kind}: {json.dumps(item)}")
    return 0 if report.matches else 3


def _cmd_web_url(args) -> int:
    node_settings = settings(args)
    token = issue_login_token(node_settings.home, node_settings.web_login_seconds)  # a new single-use token each call
    url = f"{own_node_url(node_settings)}/web/login?token={token}"
    print(json.dumps({"url": url}) if args.json else url)
    return 0


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requester", help="the member that used the data (name or address)")
    p.add_argument("--owner", help="the data owner (name or address)")
    p.add_argument("--purpose", help="UNDERWRITING, CLAIMS, FRAUD, STATISTICS or PRICING")
    p.add_argument("--dataset", help="dataset name (claims) or 0x id")
    p.add_argument("--outcome", choices=["access", "denial"])
    p.add_argument("--since", help="unix seconds or ISO time (inclusive)")
    p.add_argument("--until", help="unix seconds or ISO time (exclusive)")
    p.add_argument("--grant-id", dest="grant_id")
    p.add_argument("--flagged", action="store_true", help="only uses outside their grant's window")


def register(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="the regulator's access-log index: queries, exports, anomalies, verification")
    cmds = audit.add_subparsers(dest="audit_command", required=True)

    p = command(cmds, "sync", "catch the index up with the chain (the node does this by itself while running)", _cmd_sync)
    p.add_argument("--to-block", type=int)
    command(cmds, "status", "indexed height and event counts", _cmd_status)
    p = command(cmds, "logs", "accesses and denials, newest first", _cmd_logs)
    _add_filters(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor", help="continue after a previous page")
    p.add_argument("--as-of", type=int, dest="as_of", help="answer as of this block")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="csv exports every matching row")
    p.add_argument("--all", action="store_true", help="with --format json: every matching row")
    p = command(cmds, "events", "authorization, governance, statistics-job and evidence events", _cmd_events)
    p.add_argument("--category", choices=EVENT_CATEGORIES)
    p.add_argument("--event", help="event name, e.g. JobOpened")
    p.add_argument("--account")
    p.add_argument("--grant-id", type=int, dest="grant_id")
    p.add_argument("--job-id", type=int, dest="job_id")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--cursor")
    p.add_argument("--as-of", type=int, dest="as_of")
    p = command(cmds, "aggregate", "events per day, member and purpose (from the daily rollup)", _cmd_aggregate)
    _add_filters(p)
    p.add_argument("--group-by", default="day,requester,purpose", help="any of day,requester,owner,purpose,outcome")
    p = command(cmds, "anomalies", "window violations, denial bursts, volume spikes, small-cohort and repeated jobs",
                _cmd_anomalies)
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--kind", help="comma-separated anomaly kinds")
    p = command(cmds, "verify", "re-read a block range from the chain and report every difference with the index "
                "(exit 3 when they differ)", _cmd_verify)
    p.add_argument("--from-block", type=int, dest="from_block", help="default: the deployment block")
    p.add_argument("--to-block", type=int, dest="to_block", help="default: the indexed height")
    command(cmds, "web-url", "print a one-time login URL (expires after web_login_seconds) for this node's "
            "web pages (regulator's dashboard, auditor's check, a member's own view)", _cmd_web_url)
