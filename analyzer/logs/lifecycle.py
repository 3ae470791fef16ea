"""App lifecycle lines: which log lines say the app left or re-entered the foreground.

Only labels single lines; building background periods from them is correlate/'s job.
Values: background, foreground, suspended, resumed, screen_off, screen_on, locked, unlocked.
"""

from __future__ import annotations

import re

# (pattern, label): where several match, the leftmost wins, then the earlier row.
LIFECYCLE_PATTERNS: tuple[tuple[str, str], ...] = (
    # iOS RunningBoard / assertiond process states.
    (r"running-suspended|\bprocess (?:is )?suspended\b", "suspended"),
    (r"running-active-NotVisible", "background"),
    (r"\bprocess (?:was )?resumed\b|\btask_resume\b", "resumed"),
    (r"running-active\b", "foreground"),
    # UIKit / SwiftUI delegate callbacks (apps often log them).
    (r"(?:application|scene)DidEnterBackground|willResignActive|scenePhase.*\bbackground\b",
     "background"),
    (r"(?:application|scene)(?:WillEnterForeground|DidBecomeActive)|didBecomeActive|"
     r"scenePhase.*\bactive\b", "foreground"),
    # Android event-log tags and Activity callbacks.
    (r"\bam_on_(?:paused|stop)_called\b|\bam_pause_activity\b|\bam_stop_activity\b|"
     r"\bonPause\(\)|\bonStop\(\)|\bON_PAUSE\b|\bON_STOP\b|\bmoveTaskToBack\b", "background"),
    (r"\bam_on_resume_called\b|\bam_resume_activity\b|\bonResume\(\)|\bON_RESUME\b", "foreground"),
    # Screen and keyguard.
    (r"Going to sleep due to|\bscreen_toggled: 0\b|onScreenTurnedOff|SCREEN_OFF\b|"
     r"Display device changed state: .*, OFF\b", "screen_off"),
    (r"Waking up from sleep|\bscreen_toggled: 1\b|onScreenTurnedOn|SCREEN_ON\b|"
     r"Display device changed state: .*, ON\b", "screen_on"),
    (r"lockcomplete|\bdevice (?:is )?locked\b|\bscreen (?:is )?locked\b|keyguard (?:is )?showing|"
     r"onKeyguardShowing|\block screen shown", "locked"),
    (r"USER_PRESENT|\bdevice (?:is )?unlocked\b|\bscreen (?:is )?unlocked\b", "unlocked"),
    # An app's own words.
    (r"\b(?:enter(?:ed|ing|s)?|went(?: to)?|go(?:ing|es)? (?:in)?to|moved? to) (?:the )?background\b",
     "background"),
    (r"\b(?:enter(?:ed|ing|s)?|came|back|return(?:ed|ing)?|go(?:ing|es)? (?:in)?to) "
     r"(?:to )?(?:the )?foreground\b", "foreground"),
)
# One pass over the message instead of one search per row: logs run to millions of lines.
_COMBINED = re.compile("|".join(f"(?P<g{i}>{p})" for i, (p, _) in enumerate(LIFECYCLE_PATTERNS)),
                       re.IGNORECASE)


# Every pattern above contains one of these (lower case): a cheap test before the regex.
_KEYWORDS = ("running-", "process", "task_resume", "background", "foreground", "active", "am_",
             "onpause", "onstop", "on_pause", "on_stop", "movetasktoback", "onresume", "on_resume",
             "sleep", "screen", "display device", "lock", "keyguard", "user_present")


def lifecycle_of(message: str) -> str | None:
    """The lifecycle label a log message carries, or None."""
    if not message:
        return None
    low = message.lower()
    if not any(k in low for k in _KEYWORDS):
        return None
    m = _COMBINED.search(message)
    return LIFECYCLE_PATTERNS[int(m.lastgroup[1:])][1] if m else None
