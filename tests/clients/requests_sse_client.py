"""Reads an SSE stream with the `requests-sse` client and prints one JSON line per event on
stdout: {"id": ..., "data": ...}. Starts from LAST_EVENT_ID when given, as a client resuming
from a saved id does. Exits 0 after COUNT events; the read timeout bounds every wait.

Usage: python requests_sse_client.py URL COUNT [LAST_EVENT_ID]
"""

import json
import sys

from requests_sse import EventSource


def main() -> int:
    url, count = sys.argv[1], int(sys.argv[2])
    last_event_id = sys.argv[3] if len(sys.argv) > 3 else None
    seen = 0
    with EventSource(url, timeout=30, latest_event_id=last_event_id) as source:
        for event in source:
            print(json.dumps({"id": event.last_event_id, "data": event.data}), flush=True)
            seen += 1
            if seen >= count:
                return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
