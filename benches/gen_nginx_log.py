#!/usr/bin/env python3
"""Write a realistic nginx `combined` access log of a given size, deterministically.

    python3 benches/gen_nginx_log.py OUT.log --mb 2048 [--date 2026-03-01]

Lines look like real traffic: IPv4 and some IPv6 clients, paths with ids and query strings,
a status mix, referers, real browser/app/bot user agents (some with quotes), sizes; about
200-260 bytes a line. The same arguments always give the same bytes.
"""
import argparse, random

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
    "PhotoApp/4.12.1 (iPhone; iOS 17.5; Scale/3.00)",
    "PhotoApp/4.12.0 (Android 14; SM-S918B)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    'Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0 \\"beta\\"',
]
REFERERS = ["-", "-", "-", "https://www.google.com/", "https://photos.example.com/popular",
            "https://photos.example.com/photos/123456", "https://t.co/abc123", "https://www.facebook.com/"]
PATHS = ["/", "/popular", "/fresh", "/photos/{id}", "/photos/{id}/comments?page={p}",
         "/api/v2/photos/{id}", "/api/v2/users/{id}/photos?per_page=20&page={p}",
         "/search?q=sunset+beach&page={p}", "/market/licences/{id}", "/static/js/app.{id}.js",
         "/u/{id}", "/api/v2/feed?since={id}"]
METHODS = ["GET"] * 16 + ["POST", "POST", "PUT", "DELETE", "HEAD"]
STATUSES = [200] * 40 + [204, 301, 302, 304, 304, 304, 400, 401, 403, 404, 404, 499, 500, 502]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mb", type=int, default=2048)
    ap.add_argument("--date", default="2026-03-01")
    args = ap.parse_args()
    y, m, d = (int(x) for x in args.date.split("-"))
    rnd = random.Random(7)
    target = args.mb * 1024 * 1024
    ips = ["%d.%d.%d.%d" % (rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254))
           for _ in range(5000)] + ["2001:db8:%x::%x" % (rnd.randint(0, 65535), rnd.randint(1, 65535)) for _ in range(800)]
    written = 0
    second = 0
    with open(args.out, "w", buffering=1 << 22) as f:
        while written < target:
            chunk = []
            for _ in range(20000):
                second += rnd.random() < 0.01
                s = second % 86400
                ts = "%02d/%s/%d:%02d:%02d:%02d -0500" % (d, MONTHS[m - 1], y, s // 3600, s // 60 % 60, s % 60)
                path = rnd.choice(PATHS).format(id=rnd.randint(1, 9_999_999), p=rnd.randint(1, 40))
                status = rnd.choice(STATUSES)
                size = rnd.randint(150, 250_000) if status in (200, 400, 404, 500) else 0
                user = "-" if rnd.random() < 0.97 else "alice"
                chunk.append('%s - %s [%s] "%s %s HTTP/1.1" %d %d "%s" "%s"\n' % (
                    rnd.choice(ips), user, ts, rnd.choice(METHODS), path, status, size,
                    rnd.choice(REFERERS), rnd.choice(AGENTS)))
            text = "".join(chunk)
            f.write(text)
            written += len(text)


if __name__ == "__main__":
    main()
