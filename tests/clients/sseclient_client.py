"""Reads an SSE stream with the `sseclient-py` client over `requests` and prints one JSON
line per event on stdout: {"id": ..., "data": ...}. Exits 0 after COUNT events; the read
timeout bounds every wait.

Usage: python sseclient_client.py URL COUNT
"""

import json
import sys

import requests
import sseclient


def main() -> int:
    url, count = sys.argv[1], int(sys.argv[2])
    response = requests.get(url, stream=True, timeout=30, headers={"Accept": "text/event-stream"})
    response.raise_for_status()
    seen = 0
    for event in sseclient.SSEClient(response).events():
        print(json.dumps({"id": event.id, "data": event.data}), flush=True)
        seen += 1
        if seen >= count:
            response.close()
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
