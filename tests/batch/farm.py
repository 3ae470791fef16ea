"""A small crafted device farm: copies of the two recorded sample sessions under new names,
with a manifest giving each a platform, device model and OS version, plus one broken session
(a capture that is garbage). Used by the batch tests and bench/batch_bench.py."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "captures"
MODELS = {
    "huawei": ("android", [("Huawei P30", "EMUI 12"), ("Huawei Mate 40", "HarmonyOS 3"),
                           ("Huawei nova 9", "HarmonyOS 2")]),
    "ios": ("ios", [("iPhone 12", "iOS 17.5"), ("iPhone 15", "iOS 18.1"), ("iPhone SE", "iOS 16.7")]),
}


def build(root: Path, per_sample: int = 12, broken: bool = True) -> Path:
    """Write sessions under ROOT/sessions/ and ROOT/manifest.csv; return the manifest."""
    rows = []
    for sample, (platform, models) in MODELS.items():
        src = SAMPLES / sample
        for i in range(per_sample):
            name = f"{sample}-{i:02d}"
            d = root / "sessions" / name
            d.mkdir(parents=True, exist_ok=True)
            for f in ("capture.pcapng", "app.log", "server.log", "phone"):
                shutil.copy2(src / f, d / f)
            model, os_version = models[i % len(models)]
            rows.append({"session": name, "capture": f"sessions/{name}/capture.pcapng",
                         "logs": f"sessions/{name}/app.log;sessions/{name}/server.log",
                         "phone": (src / "phone").read_text().strip(), "platform": platform,
                         "device_model": model, "os_version": os_version})
    if broken:
        d = root / "sessions" / "broken-00"
        d.mkdir(parents=True, exist_ok=True)
        (d / "capture.pcapng").write_bytes(b"this is not a capture at all\n" * 40)
        rows.append({"session": "broken-00", "capture": "sessions/broken-00/capture.pcapng", "logs": "",
                     "phone": "127.0.0.2", "platform": "android", "device_model": "Broken",
                     "os_version": "0"})
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest
