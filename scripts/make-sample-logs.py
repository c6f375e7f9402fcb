#!/usr/bin/env python3
"""Write the small sample project's logs (examples/sample/logs), deterministically.

Two web hosts log nginx lines in the demo's custom format (combined + vid/uid/rt), gzip, one
file per host per day; one app host writes JSON-lines events. A few lines are deliberately
broken so the quarantine has something to show. Re-run to regenerate; the output is committed.
"""
import gzip, json, os, random
from datetime import datetime, timedelta, timezone

ROOT = os.path.join(os.path.dirname(__file__), "..", "examples", "sample", "logs")
DAYS = ["2026-03-01", "2026-03-02"]
PATHS = ["/", "/photos/{}", "/popular", "/upgrade", "/market/{}", "/search?q=sunset&page={}", "/u/{}"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    'curl/8.5.0 \\"quoted\\"',
]

def nginx_time(ts):
    local = ts.astimezone(timezone(timedelta(hours=-5)))
    return local.strftime("%d/%b/%Y:%H:%M:%S -0500")

def main():
    rnd = random.Random(42)
    for day in DAYS:
        start = datetime.fromisoformat(day + "T05:00:00+00:00")  # midnight in Toronto (EST)
        for host in ["web-1", "web-2"]:
            lines = []
            for i in range(400):
                ts = start + timedelta(seconds=i * 216 + rnd.randint(0, 200))
                ip = rnd.choice(["203.0.113.%d" % rnd.randint(1, 254), "2001:db8::%x" % rnd.randint(1, 4000)])
                path = rnd.choice(PATHS).format(rnd.randint(1, 999))
                status = rnd.choice([200] * 12 + [301, 304, 404, 500])
                size = rnd.randint(200, 90000) if status == 200 else 0
                vid = "v%06d" % rnd.randint(1, 300)
                uid = str(rnd.randint(1, 80)) if rnd.random() < 0.4 else "-"
                rt = "%.3f" % (rnd.random() / 4)
                ref = rnd.choice(["-", "https://www.google.com/", "https://example.com/x"])
                lines.append(
                    f'{ip} - - [{nginx_time(ts)}] "GET {path} HTTP/1.1" {status} {size} "{ref}" '
                    f'"{rnd.choice(AGENTS)}" vid={vid} uid={uid} rt={rt}'
                )
            if host == "web-2" and day == DAYS[1]:
                lines.insert(100, "GET /health 200 this line is from another program")
                lines.insert(200, '{"level":"info","msg":"not an access log"}')
            path = os.path.join(ROOT, "web", host, f"access-{day}.log.gz")
            # mtime=0 keeps the gzip header, and so the file, the same on every run
            with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
                f.write(("\n".join(lines) + "\n").encode())
        events = []
        for i in range(300):
            ts = start + timedelta(seconds=i * 288 + rnd.randint(0, 200))
            events.append(json.dumps({
                "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "event": rnd.choice(["app_open", "photo_view", "like", "upload", "comment"]),
                "user_id": str(rnd.randint(1, 80)),
                "device": {"platform": rnd.choice(["ios", "android"]), "app_version": "4.2.%d" % rnd.randint(0, 3)},
            }, separators=(",", ":")))
        with open(os.path.join(ROOT, "app", "api-1", f"events-{day}.jsonl"), "w") as f:
            f.write("\n".join(events) + "\n")

if __name__ == "__main__":
    for d in ["web/web-1", "web/web-2", "app/api-1"]:
        os.makedirs(os.path.join(ROOT, d), exist_ok=True)
    main()
