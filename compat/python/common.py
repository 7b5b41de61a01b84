"""Shared pieces of the Python drivers of the compatibility matrix.

Every driver is called as `DRIVER BOOTSTRAP SCENARIO TAG` and prints exactly one JSON
line: {"client", "version", "scenario", "result": "pass|fail|unsupported", "detail"}.
TAG makes topic and group names unique per cell; the two halves of the restart scenario
(group_commit, then group_resume after the runner restarted the broker) share one TAG.
"""

import json
import sys
import time
import traceback

SCENARIOS = [
    "metadata",
    "produce_consume",
    "compression_gzip",
    "compression_snappy",
    "compression_lz4",
    "compression_zstd",
    "group_commit",
    "group_resume",
    "group_commit_consumer",
    "group_resume_consumer",
    "admin",
    "idempotent",
    "crc",
    "large_record",
    "offset_seek",
    "timestamp",
    "no_autocreate",
]

N_RECORDS = 1000
GROUP_PER_PARTITION = 50  # group_commit: records per partition (2 partitions)
RESUME_PER_PARTITION = 10  # group_resume: new records per partition after the restart
LARGE = 1024 * 1024
TS_BASE = 1_700_000_000_000  # timestamp scenario: record i has TS_BASE + i * 1000


class Unsupported(Exception):
    """The client does not offer what the scenario needs."""


class Fail(Exception):
    """The scenario ran and the result was wrong."""


def names(tag, scenario):
    topic = f"compat-{tag}-{scenario}".replace("_", "-")
    return topic, f"{topic}-group"


def keyed_records(n=N_RECORDS, prefix="k"):
    """(key, value, headers) with a distinct key, value and header set per record."""
    return [
        (
            f"{prefix}{i}".encode(),
            f"value-{i}-{'x' * (i % 17)}".encode(),
            [("idx", str(i).encode()), ("src", b"compat")],
        )
        for i in range(n)
    ]


def check_same(expected, got, what="records"):
    if len(got) != len(expected):
        raise Fail(f"{what}: expected {len(expected)}, got {len(got)}")
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            raise Fail(f"{what}: first difference at #{i}: expected {short(e)}, got {short(g)}")


def short(x, n=160):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


def wait_until(pred, timeout_s, step_s=0.1):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return pred()


def main(client, version, scenarios):
    """scenarios: dict name -> fn(bootstrap, tag) returning a detail string."""
    bootstrap, scenario, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    fn = scenarios.get(scenario)
    result, detail = "pass", ""
    try:
        if fn is None:
            raise Unsupported("not implemented for this client")
        detail = fn(bootstrap, tag) or ""
    except Unsupported as e:
        result, detail = "unsupported", str(e)
    except Fail as e:
        result, detail = "fail", str(e)
    except Exception as e:  # noqa: BLE001 - every client error is a failed cell
        result = "fail"
        tb = traceback.format_exc().strip().splitlines()
        detail = f"{type(e).__name__}: {e} ({tb[-3].strip() if len(tb) >= 3 else ''})"
    line = {"client": client, "version": version, "scenario": scenario, "result": result, "detail": detail}
    print(json.dumps(line), flush=True)
