#!/usr/bin/env python3
"""Verify one scanned code with the gateway, as a gate or door controller would.

Standard library only (Python 3.8+). Reads the code from standard input, prints the
gateway's decision as JSON, and exits 0 to open the gate, 1 to keep it shut, 2 when
the gateway could not decide (the gate's own fallback then applies).

  python3 verify.py --url https://gateway:8443 --ca ca.pem --key-file api.key \
      --venue bus < code.txt

docs/INTEGRATION.md explains every field; tests/e2e/integration.rs runs this file.
"""
import argparse
import http.client
import json
import ssl
import sys
import time
import urllib.parse


def verify(url, ca, api_key, code, venue, timeout=2.0, retries=2):
    """Returns (http_status, answer_dict). Retries 503 (after Retry-After, capped) and
    connection failures; never retries 4xx, which will not change."""
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=ca)
    body = json.dumps({"code": code, "venue": venue})
    headers = {"Authorization": "Bearer " + api_key, "Content-Type": "application/json"}
    for attempt in range(retries + 1):
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout, context=ctx)
        try:
            conn.request("POST", "/v1/verify", body=body, headers=headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read() or b"{}")
            if resp.status == 503 and attempt < retries:
                time.sleep(min(float(resp.getheader("Retry-After", "1")), 1.0))
                continue
            return resp.status, answer
        except (OSError, http.client.HTTPException):
            if attempt == retries:
                return 0, {"error": "unreachable"}
        finally:
            conn.close()
    return 0, {"error": "unreachable"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--venue", required=True)
    a = p.parse_args()
    with open(a.key_file) as f:
        api_key = f.read().strip()
    # Only the line end: a space is a Base45 character and may end a code.
    code = sys.stdin.read().rstrip("\r\n")
    status, answer = verify(a.url, a.ca, api_key, code, a.venue)
    print(json.dumps({"status": status, **answer}))
    if status == 200:
        return 0 if answer["decision"] == "allow" else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
