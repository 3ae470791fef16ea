"""The `analyze` command.

`analyze CAPTURE ...` analyses a capture; the first argument may instead be one of the
subcommands below (names chosen so that none can be mistaken for a capture file: a file
literally named `record` is still reachable as `./record`).
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> "module:function"; each function takes argv (list[str]) and returns an exit code.
SUBCOMMANDS = {
    "record": "analyzer.capture.commands:record_main",
    "serve": "analyzer.capture.commands:serve_main",
    "emulate": "analyzer.capture.commands:emulate_main",
    "session": "analyzer.capture.commands:session_main",
    "compare": "analyzer.report.compare:compare_main",
    "batch": "analyzer.batch:batch_main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module_name, func_name = SUBCOMMANDS[argv[0]].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(argv[1:])
    from analyzer.analyze_command import analyze_main
    return analyze_main(argv)


if __name__ == "__main__":
    sys.exit(main())
