"""The demo's S3/DynamoDB side, through boto3 against the local moto server: waits for
every upload's final record, then writes demo-output/ (records.json, index.html) and
prints the summary table.

usage: demo.py upload PHOTO_DIR BUCKET PREFIX UPLOADS_JSON
       demo.py wait UPLOADS_JSON TABLE TIMEOUT_SECS
       demo.py report UPLOADS_JSON TABLE OUTPUT_BUCKET OUT_DIR [NAME=DAEMON_LOG...]
`upload` puts every file of PHOTO_DIR (not its subdirectories) under PREFIX, multipart
above 8 MiB, and writes UPLOADS_JSON: each key with the time its upload finished (unix
seconds). `wait` adds when its final record was written (the record's ProcessedAt).
`report` with daemon logs (JSON lines, fleet mode) adds a column naming the daemon whose
"job finished" line ended each key.
"""
import html
import json
import os
import sys
import time
import urllib.parse
from decimal import Decimal

import boto3
from boto3.dynamodb.types import TypeDeserializer
from boto3.s3.transfer import TransferConfig
from datetime import datetime

FINAL = {"DONE", "FAILED"}


def table_items(table):
    client = boto3.client("dynamodb")
    items, start = [], None
    while True:
        kwargs = {"TableName": table}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def plain(item):
    d = TypeDeserializer()
    value = {k: d.deserialize(v) for k, v in item.items()}

    def fix(v):
        if isinstance(v, Decimal):
            return int(v) if v == int(v) else float(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, (list, set, tuple)):
            return [fix(x) for x in v]
        if isinstance(v, bytes):
            return v.hex()
        return v

    return fix(value)


def upload(photo_dir, bucket, prefix, uploads_path):
    s3 = boto3.client("s3")
    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    uploads = {}
    for name in sorted(os.listdir(photo_dir)):
        path = os.path.join(photo_dir, name)
        if not os.path.isfile(path):
            continue
        key = prefix + name
        s3.upload_file(path, bucket, key, Config=config)
        uploads[key] = time.time()
    with open(uploads_path, "w") as f:
        json.dump(uploads, f)
    if not uploads:
        print(f"no files in {photo_dir}", file=sys.stderr)
        return 1
    print(f"{len(uploads)} uploads", file=sys.stderr)
    return 0


def finished_at(record, fallback):
    """When the record was written, from its ProcessedAt (RFC 3339, UTC)."""
    try:
        return datetime.fromisoformat(record["ProcessedAt"].replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError, AttributeError):
        return fallback


def wait(uploads_path, table, timeout):
    uploads = json.load(open(uploads_path))
    seen = {}
    deadline = time.time() + timeout
    tty = sys.stderr.isatty()
    while True:
        records = {r["FileName"]: r for r in map(plain, table_items(table))}
        now = time.time()
        for key in uploads:
            r = records.get(key)
            if key not in seen and r and r.get("Status") in FINAL:
                seen[key] = finished_at(r, now)
        done = len(seen)
        failed = sum(1 for k in seen if records[k].get("Status") == "FAILED")
        line = f"{done}/{len(uploads)} final records ({failed} failed)"
        print(("\r\033[K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)
        if done == len(uploads) or now > deadline:
            break
        time.sleep(0.25 if tty else 2.0)
    if tty:
        print(file=sys.stderr)
    json.dump({k: {"uploaded": uploads[k], "final": seen.get(k)} for k in uploads}, open(uploads_path, "w"), indent=2)
    missing = [k for k in uploads if k not in seen]
    if missing:
        print(f"timed out waiting for {len(missing)} record(s): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def renderers(logs):
    """Which daemons finished each key: {key: [name, ...]}, from their JSON log lines."""
    done = {}
    for name, path in logs:
        for line in open(path, errors="replace"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields", event) if isinstance(event, dict) else {}
            if fields.get("message") == "job finished" and fields.get("status") in FINAL and fields.get("key"):
                names = done.setdefault(fields["key"], [])
                if name not in names:
                    names.append(name)
    return done


def report(uploads_path, table, bucket, out, *logs):
    logs = [entry.split("=", 1) for entry in logs]
    rendered_by = renderers(logs) if logs else None
    timing = json.load(open(uploads_path))
    records = sorted((plain(i) for i in table_items(table)), key=lambda r: r["FileName"])
    with open(os.path.join(out, "records.json"), "w") as f:
        json.dump(records, f, indent=2, ensure_ascii=False)

    rows = []
    for r in records:
        t = timing.get(r["FileName"], {})
        seconds = (t["final"] - t["uploaded"]) if t.get("final") and t.get("uploaded") else None
        rows.append((r, seconds))

    # Summary table on stdout.
    width = max([len("key")] + [len(r["FileName"]) for r, _ in rows])
    who = {r["FileName"]: ",".join(rendered_by.get(r["FileName"], ["-"])) for r, _ in rows} if logs else {}
    daemon_width = max([len("daemon")] + [len(w) for w in who.values()])
    daemon_head = f"  {'daemon':{daemon_width}}" if logs else ""
    print(f"{'key':{width}}  {'status':7}  {'variants':8}  {'upload->record':>14}{daemon_head}  detail")
    for r, seconds in rows:
        variants = len(r.get("Variants") or [])
        detail = r.get("ErrorCode", "") if r.get("Status") == "FAILED" else f"{r.get('Format', '')} {r.get('Width', '')}x{r.get('Height', '')}"
        took = f"{seconds:.2f} s" if seconds is not None else "-"
        daemon = f"  {who[r['FileName']]:{daemon_width}}" if logs else ""
        print(f"{r['FileName']:{width}}  {r.get('Status', '?'):7}  {variants:8}  {took:>14}{daemon}  {detail}")
    if logs:
        counts = {name: sum(1 for w in who.values() if name in w.split(",")) for name, _ in logs}
        print("rendered: " + ", ".join(f"{name} {n}" for name, n in counts.items()))

    # Contact sheet.
    cards = []
    for r, seconds in rows:
        key = r["FileName"]
        images = "".join(
            f'<figure><img src="{html.escape(urllib.parse.quote(v["Key"]))}" loading="lazy"><figcaption>{html.escape(v["Name"])} '
            f'{v.get("Width")}x{v.get("Height")}, {v.get("Bytes", 0) // 1024} KiB</figcaption></figure>'
            for v in (r.get("Variants") or [])
        )
        exif = r.get("Exif") or {}
        camera = " ".join(str(exif[k]) for k in ("Make", "Model") if exif.get(k)) or "-"
        facts = [
            ("status", r.get("Status", "?") + (f" ({r.get('ErrorCode')}: {r.get('ErrorMessage', '')})" if r.get("Status") == "FAILED" else "")),
            ("source", f"{r.get('Format', '?')} {r.get('Width', '?')}x{r.get('Height', '?')}, orientation {r.get('Orientation', '-')}, {r.get('SizeBytes', 0) // 1024} KiB"),
            ("camera", camera),
            ("gps", json.dumps(r.get("Gps")) if r.get("Gps") else "-"),
            ("dominant color", r.get("DominantColor", "-")),
            ("processing", f"{r.get('ProcessingMs', '-')} ms in the daemon, {seconds:.2f} s from upload to record" if seconds is not None else "-"),
        ] + ([("rendered by", ", ".join(rendered_by.get(key, ["-"])))] if logs else [])
        swatch = f'<span class="swatch" style="background:{html.escape(r.get("DominantColor", "#fff"))}"></span>'
        rows_html = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
        cards.append(f'<section><h2>{swatch}{html.escape(key)}</h2><table>{rows_html}</table><div class="variants">{images}</div></section>')
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Image pipeline demo</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; background: #f4f4f4; }}
section {{ background: #fff; padding: 1em; margin-bottom: 1.5em; border-radius: 6px; }}
h2 {{ font-size: 16px; margin: 0 0 .5em; }}
th {{ text-align: left; padding-right: 1em; color: #555; font-weight: normal; }}
.variants {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-end; margin-top: 1em; }}
figure {{ margin: 0; }} img {{ max-width: 320px; max-height: 320px; display: block; border: 1px solid #ddd; }}
figcaption {{ color: #555; font-size: 12px; }}
.swatch {{ display: inline-block; width: 1em; height: 1em; margin-right: .4em; vertical-align: -2px; border: 1px solid #999; }}
</style></head><body>
<h1>Image pipeline demo: {len(records)} sources</h1>
<p>Variants downloaded from s3://{html.escape(bucket)}/; records from the {html.escape(table)} table (also in records.json).</p>
{''.join(cards)}
</body></html>
"""
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(page)
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "upload":
        sys.exit(upload(*sys.argv[2:6]))
    if cmd == "wait":
        sys.exit(wait(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    if cmd == "report":
        sys.exit(report(*sys.argv[2:]))
    sys.exit(f"unknown command {cmd}")
