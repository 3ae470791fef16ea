"""`analyze CAPTURE ...`: arguments, progress, the printed summary, exit codes.

Exit codes: 0 analysed (warnings, if any, printed); 2 bad input or usage (one line on
stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analyzer import __version__
from analyzer.exceptions import AnalyzerError

TEARDOWN_ORDER = ("rst", "fin", "refused", "syn_unanswered", "udp_unanswered", "icmp_unreachable", "open")
PROGRESS_MIN_BYTES = 32 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="analyze",
        description="Label how every flow in a phone capture was torn down (who sent RST or "
                    "FIN, which SYNs went unanswered or were refused) and write flows.csv, "
                    "events.csv and summary.json. Subcommands: record, serve, emulate, session "
                    "(see `analyze SUBCOMMAND --help`).")
    p.add_argument("capture", help="pcap or pcapng file (.gz and .zst read as they are)")
    p.add_argument("--out", "-o", help="output folder (default: a folder named after the capture)")
    p.add_argument("--phone", action="append", default=[], metavar="IP",
                   help="the phone's address (repeatable); without it the phone is inferred")
    p.add_argument("--logs", action="append", default=[], metavar="LOG",
                   help="an app or server log to align with the capture (repeatable)")
    p.add_argument("--engine", choices=("native", "tshark"), default="native",
                   help="native: our own reader (fast); tshark: Wireshark's dissectors via pyshark")
    p.add_argument("--format", default="csv", metavar="FMT",
                   help="table formats, comma-separated: csv, parquet, zeek (a Zeek-style conn.log); default csv")
    p.add_argument("--tcp-idle-timeout", type=float, default=0.0, metavar="S",
                   help="split an established TCP flow after S idle seconds (default 0: never)")
    p.add_argument("--clock-offset", action="append", default=[], metavar="FILE=SECONDS",
                   help="fix a log's clock: seconds to add to its own times (repeatable)")
    p.add_argument("--log-role", action="append", default=[], metavar="FILE=ROLE",
                   help="say which log is the app's and which the server's (app|server)")
    p.add_argument("--signatures", metavar="TOML",
                   help="your own platform behaviours, added to the built-in ones")
    p.add_argument("--lifecycle-pattern", action="append", default=[], metavar="REGEX=STATE",
                   help="a log line pattern that marks background/foreground (repeatable)")
    p.add_argument("--no-report", action="store_true",
                   help="write the tables and summary only (no timeline, no report.html)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors and warnings")
    p.add_argument("--version", action="version", version=f"analyzer {__version__}")
    return p


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    """'FILE=VALUE' arguments as (file, value) pairs (the last '=' splits: file names may hold one)."""
    pairs = []
    for item in values:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value:
            raise ValueError(f"{flag} {item!r}: expected FILE=VALUE")
        pairs.append((name, value))
    return pairs


def _default_out(capture: Path) -> Path:
    name = capture.name
    for suffix in (".gz", ".zst", ".pcapng", ".pcap", ".cap"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return capture.with_name(name + ".analysis") if name == capture.name else capture.with_name(name)


def analyze_main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    capture = Path(args.capture)
    out = Path(args.out) if args.out else _default_out(capture)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    bad = [f for f in formats if f not in ("csv", "parquet", "zeek")]
    if bad:
        print(f"analyze: unknown format {bad[0]!r} (choose csv, parquet, zeek)", file=sys.stderr)
        return 2
    try:
        clock_offsets = {}
        for name, value in _pairs(args.clock_offset, "--clock-offset"):
            try:
                clock_offsets[name] = float(value)
            except ValueError:
                raise ValueError(f"--clock-offset {name}={value}: seconds must be a number") from None
        log_roles = dict(_pairs(args.log_role, "--log-role"))
    except ValueError as exc:
        print(f"analyze: {exc}", file=sys.stderr)
        return 2
    bad_roles = [v for v in log_roles.values() if v not in ("app", "server")]
    if bad_roles:
        print(f"analyze: --log-role: role must be app or server, not {bad_roles[0]!r}", file=sys.stderr)
        return 2
    if out.exists() and not out.is_dir():
        print(f"analyze: --out {out}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        from analyzer import pipeline
        opts = pipeline.Options(capture=capture, out=out, phones=args.phone,
                                logs=[Path(x) for x in args.logs], engine=args.engine,
                                formats=formats, tcp_idle_timeout=args.tcp_idle_timeout,
                                clock_offsets=clock_offsets, log_roles=log_roles,
                                signatures=Path(args.signatures) if args.signatures else None,
                                lifecycle_patterns=args.lifecycle_pattern, report=not args.no_report,
                                keep_tables=False)
        result = _run_with_progress(pipeline, opts, capture, args.quiet)
    except AnalyzerError as exc:
        print(f"analyze: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a file or folder could not be read or written (permissions, a full disk, an --out
        # below a file): say which and why, in one line
        print(f"analyze: {exc.filename or out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("analyze: interrupted", file=sys.stderr)
        return 130
    for warning in result.summary["warnings"]:
        print(f"analyze: warning: {warning}", file=sys.stderr)
    if not args.quiet:
        _print_summary(result)
    return 0


def _run_with_progress(pipeline, opts, capture: Path, quiet: bool):
    try:
        size = capture.stat().st_size
    except OSError:
        size = 0
    if quiet or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return pipeline.run(opts)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.fields[frames]:,} frames"), TimeElapsedColumn(),
                  transient=True) as bar:
        task = bar.add_task(f"reading {capture.name}", total=size, frames=0)

        def update(frames: int, position: int) -> None:
            bar.update(task, completed=position, frames=frames)

        def stage(text: str) -> None:
            bar.update(task, description=text, completed=size)

        return pipeline.run(opts, progress=update, stage=stage)


def _print_summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = result.summary
    cap = s["capture"]
    links = ", ".join(l["name"] for l in cap.get("link_types", [])) or "none"
    console.print(f"[bold]{cap['file']}[/]: {cap.get('format', '?')}, {cap['packets']:,} frames "
                  f"({links}), {s['flows']['total']:,} flows, read in {result.seconds:.2f} s")
    phones = s["phones"]
    console.print(f"phone: {', '.join(phones['addresses']) or 'unknown'} ({phones['how']})")
    by = s["flows"]["by_teardown"]
    if by:
        table = Table(title="flows by teardown and sender")
        table.add_column("teardown")
        for who in ("phone", "server", "unknown"):
            table.add_column(f"by {who}", justify="right")
        table.add_column("total", justify="right")
        for kind in TEARDOWN_ORDER:
            if kind in by:
                row = by[kind]
                table.add_row(kind, *(str(row.get(w, "")) for w in ("phone", "server", "unknown")),
                              str(sum(row.values())))
        console.print(table)
    verdict = s.get("verdicts", {}).get("session", {})
    if verdict:
        console.print(f"verdict: [bold]{verdict.get('behaviour')}[/] (confidence {verdict.get('confidence', 0):.2f}"
                      f"{', caused by the phone' if verdict.get('caused_by_phone_lifecycle') else ''})")
    for name, clock in s.get("clocks", {}).items():
        if clock.get("offset_s") is not None:
            console.print(f"clock {name}: {clock['offset_s']:+.3f} s ± {clock.get('uncertainty_s', 0):.3f} ({clock.get('method')})")
    console.print(f"wrote {', '.join(result.written)} in {result.out}")
