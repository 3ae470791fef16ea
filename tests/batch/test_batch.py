"""`analyze batch` over a crafted farm: 24 copies of the two recorded samples (12 Huawei,
12 iOS, with manifest metadata) and one garbage capture, on a LocalCluster with two worker
processes; then a re-run through the command line that must skip every unchanged session."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from analyzer import batch, cli
from tests.batch import farm

PER_SAMPLE = 12


def _csv_rows(path: Path) -> int:
    with path.open(newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("farm")
    manifest = farm.build(root, per_sample=PER_SAMPLE)
    out = root / "out"
    summary = batch.run_batch(manifest, out, workers=2, processes=True, progress=False)
    return root, manifest, out, summary


def test_every_good_session_analysed_and_the_broken_one_reported(fleet_run):
    _, _, out, summary = fleet_run
    assert summary["counts"] == {"sessions": 2 * PER_SAMPLE + 1, "failed": 1, "skipped": 0,
                                 "analysed": 2 * PER_SAMPLE}
    [failed] = summary["failed"]
    assert failed["session"] == "broken-00"
    assert "\n" not in failed["error"] and "not a pcap or pcapng" in failed["error"]
    on_disk = json.loads((out / "fleet.json").read_text())
    assert on_disk["failed"] == summary["failed"]


def test_dataset_matches_each_sessions_own_tables(fleet_run):
    _, _, out, summary = fleet_run
    for table in ("flows", "events", "logs"):
        df = pd.read_parquet(out / "dataset" / table)
        assert {"session", "platform", "device_model", "os_version"} <= set(df.columns)
        per_session = df.groupby(df["session"].astype(str)).size().to_dict()
        good = [s for s in summary["sessions"] if s["status"] == "ok"]
        assert set(per_session) == {s["session"] for s in good}
        for s in good:
            assert per_session[s["session"]] == _csv_rows(out / "sessions" / s["session"] / f"{table}.csv"), \
                (table, s["session"])
    flows = pd.read_parquet(out / "dataset" / "flows")
    one = flows[flows["session"].astype(str) == "ios-03"].drop(
        columns=["session", "platform", "device_model", "os_version"]).reset_index(drop=True)
    own = pd.read_parquet(out / "sessions" / "ios-03" / "flows.parquet")
    pd.testing.assert_frame_equal(one.astype(object), own.astype(object), check_dtype=False)
    meta = flows.drop_duplicates("session").set_index(flows.drop_duplicates("session")["session"].astype(str))
    assert meta.loc["ios-04", "platform"] == "ios" and meta.loc["ios-04", "device_model"] == "iPhone 15"
    assert meta.loc["huawei-00", "os_version"] == "EMUI 12"


def test_fleet_counts_behaviours_per_platform(fleet_run):
    _, _, out, _ = fleet_run
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["platforms"]["android"]["behaviours"] == {"huawei_background_kill": PER_SAMPLE}
    assert fleet["platforms"]["ios"]["behaviours"] == {"ios_suspend": PER_SAMPLE}
    assert sum(g["sessions"] for g in fleet["groups"]) == 2 * PER_SAMPLE
    assert len(fleet["groups"]) == 6
    assert fleet["platforms"]["ios"]["reconnect"]["tcp_server"] == {"refused": PER_SAMPLE}
    assert fleet["platforms"]["android"]["reconnect"]["tcp_server"] == {"timeout": PER_SAMPLE}
    for platform in ("android", "ios"):
        delay = fleet["platforms"][platform]["teardown_delay"]
        # both samples: the phone's RST (Huawei) or FIN (iOS) on its two open TCP sockets, ~1 ms
        # after the app went to the background; the refused / unanswered reconnects do not count
        assert delay["n"] == 2 * PER_SAMPLE
        assert 0 <= delay["min_s"] <= delay["median_s"] <= delay["max_s"] < 0.1
    assert fleet["platforms"]["ios"]["seed_table"]["tcp_server"]["reconnect"] == "refused"


def test_fleet_page_is_self_contained_and_links_each_report(fleet_run):
    _, _, out, summary = fleet_run
    page = (out / "fleet.html").read_text()
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page
    for s in summary["sessions"]:
        if s["status"] == "ok":
            assert f"href='{s['report']}'" in page
            assert (out / s["report"]).is_file()
    assert "broken-00" in page


def test_rerun_skips_unchanged_sessions(fleet_run):
    root, manifest, out, _ = fleet_run
    touched = root / "sessions" / "huawei-05" / "app.log"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cli.SUBCOMMANDS["batch"] == "analyzer.batch:batch_main"
    from dask.distributed import LocalCluster
    # this time on an existing cluster (threads, quick to start), reached by its address
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = cli.main(["batch", str(manifest), "--out", str(out), "--scheduler", cluster.scheduler_address,
                         "--no-progress"])
    assert code == 1                     # one session failed
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["counts"] == {"sessions": 2 * PER_SAMPLE + 1, "failed": 1,
                               "skipped": 2 * PER_SAMPLE - 1, "analysed": 1}
    [again] = [s for s in fleet["sessions"] if not s["skipped"] and s["status"] == "ok"]
    assert again["session"] == "huawei-05"
    # the dataset is whole again, unchanged sessions read back from their folders
    flows = pd.read_parquet(out / "dataset" / "flows")
    assert flows["session"].nunique() == 2 * PER_SAMPLE
    assert fleet["platforms"]["android"]["behaviours"] == {"huawei_background_kill": PER_SAMPLE}


def test_directory_discovery(fleet_run):
    root, _, out, _ = fleet_run
    found = batch.find_sessions(root / "sessions", out)
    assert len(found) == 2 * PER_SAMPLE + 1
    hw = next(s for s in found if s.name == "huawei-00")
    assert hw.phones == ["127.0.0.2"] and [Path(p).name for p in hw.logs] == ["app.log", "server.log"]
    # the batch's own output folder under the source is not mistaken for sessions
    assert batch.find_sessions(root, out)[0].name != "out"
    assert all("/out/" not in s.capture for s in batch.find_sessions(root, out))


def test_discovery_of_compressed_captures_and_manifest_names(tmp_path):
    import gzip
    d = tmp_path / "lab" / "pixel" / "night1"
    d.mkdir(parents=True)
    (d / "trace.pcapng.gz").write_bytes(gzip.compress((farm.SAMPLES / "ios" / "capture.pcapng").read_bytes()))
    (d / "app.log").write_text("")
    (d / "meta.json").write_text(json.dumps({"platform": "android", "device_model": "Pixel 8", "os_version": "14"}))
    (d / "notes.txt").write_text("not a capture")
    [s] = batch.find_sessions(tmp_path / "lab")
    assert (s.name, Path(s.capture).name, s.device_model, s.os_version) == ("pixel_night1", "trace.pcapng.gz", "Pixel 8", "14")
    assert [Path(p).name for p in s.logs] == ["app.log"] and s.phones == []
    manifest = tmp_path / "m.csv"
    manifest.write_text("capture,logs,phone,platform,device_model,os_version\n"
                        "a/capture.pcap,a/app.log; a/server.log ,10.0.0.1,ios,iPhone 12,iOS 17\n"
                        "b/a/capture.pcap,,,android,,\n")
    one, two = batch.find_sessions(manifest)
    assert one.name == "a" and two.name == "a-2"          # names stay unique: they name partitions
    assert one.logs == [str(tmp_path / "a" / "app.log"), str(tmp_path / "a" / "server.log")]
    assert two.logs == [] and two.device_model is None


def test_a_missing_capture_is_one_line_of_error(tmp_path):
    res = batch.analyse_session(batch.Session(name="gone", capture=str(tmp_path / "nope.pcap")), str(tmp_path))
    assert res["status"] == "error" and res["error"].startswith("FileNotFoundError") and "\n" not in res["error"]
