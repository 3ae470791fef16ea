"""The third-party corpus in ../shared/corpus/logs: every file read, format detected."""

from pathlib import Path

import pytest

from analyzer.logs import read_log

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "logs"

# file -> (format, role, events, unparsed)
EXPECTED = {
    "aosp-development__sample.txt": ("logcat-long", "app", 847, 0),
    "plaso__android_logcat.log": ("logcat-threadtime", "app", 8, 0),
    "plaso__ios_sysdiag.log": ("ios-sysdiagnose", "app", 28, 0),
    "plaso__logd.0.log": ("ios-logd", "app", 76, 0),
    "plaso__ios_lockdownd.log": ("ios-lockdownd", "app", 153, 0),
    "plaso__syslog_osx": ("bsd-syslog", "server", 2, 0),
    "lnav__logfile_blued.0": ("bsd-syslog", "server", 6, 0),
    "lnav__logfile_pretty.0": ("bsd-syslog", "server", 6, 0),
    "lnav__logfile_syslog.3": ("bsd-syslog", "server", 7, 0),
    "plaso__cri.log": ("cri", "server", 17, 0),
    "lnav__logfile_zap_console.0": ("zap-console", "server", 3, 0),
    "lnav__logfile_logfmt.0": ("logrus", "server", 5, 0),
    "lnav__logfile_caddy_log.0": ("docker-compose/zap-json", "server", 39, 0),
    "lnav__logfile_grafana.0": ("logfmt", "server", 5, 0),
    "lnav__logfile_glog.0": ("glog", "server", 7, 0),
    "plaso__googlelog_test.INFO": ("glog", "server", 4, 0),
}

pytestmark = pytest.mark.corpus


def _corpus_files():
    if not CORPUS.is_dir():
        return []
    return sorted(p.name for p in CORPUS.iterdir() if p.name != "MANIFEST.tsv")


@pytest.fixture(autouse=True)
def _need_corpus():
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")


def test_every_corpus_file_is_expected():
    assert set(_corpus_files()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name):
    fmt, role, n_events, unparsed = EXPECTED[name]
    log = read_log(CORPUS / name, year_hint=2021)
    assert (log.format, log.role) == (fmt, role)
    assert len(log.events) == n_events
    assert log.stats["unparsed"] == unparsed
    ev = log.events
    # Every line is accounted for: in an event, or a blank / marker / header line.
    in_events = int(ev.raw.str.count("\n").sum()) + len(ev)
    s = log.stats
    assert in_events + s["blank"] + s["separators"] + s["header"] == s["lines"]
    assert ev.local_time.notna().all()
    assert (ev.line_no.diff().dropna() > 0).all()


def test_corpus_details():
    if not CORPUS.is_dir():
        pytest.skip("no corpus")
    plaso = read_log(CORPUS / "plaso__android_logcat.log", year_hint=2021).events
    zone = plaso[plaso.message.str.contains("year, zone, usec")].iloc[0]
    assert zone.utc_offset_s == 36000.0 and zone.year_known and zone.time_resolution_s == 1e-6
    uid = plaso[plaso.message == "test of time w/ zone, uid, year"].iloc[0]
    assert (uid.format, uid.pid) == ("logcat-time", 1179)
    aosp = read_log(CORPUS / "aosp-development__sample.txt", year_hint=2017).events
    assert (aosp.lifecycle == "screen_off").any()
    first = aosp.iloc[0]
    assert (first.line_no, first.pid, first.tid, first.tag) == (2, 600, 600, "chatty")
    glog = read_log(CORPUS / "plaso__googlelog_test.INFO").events
    assert glog.local_time.iloc[0].year == 2019
    cri = read_log(CORPUS / "plaso__cri.log").events
    assert (cri.format == "cri/go-log").sum() == 3
    zap = read_log(CORPUS / "lnav__logfile_zap_console.0").events
    assert zap.iloc[1].raw.count("\n") == 6
