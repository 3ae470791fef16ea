"""Log reader: app and server logs -> one table of log events (see reader.read_log)."""

from analyzer.logs.errors import canonical_errno
from analyzer.logs.goerror import GoOpError, parse_go_error
from analyzer.logs.reader import COLUMNS, LogFile, parse_log_text, read_log

__all__ = ["COLUMNS", "GoOpError", "LogFile", "canonical_errno", "parse_go_error",
           "parse_log_text", "read_log"]
