#!/usr/bin/env python3
"""A local Apache Kafka (KRaft) started by the project, as reference broker and peer.

    kafka.py resolve                 resolve the broker's jars from Maven Central (tools/kafka/pom.xml,
                                     cached in ~/.m2) into the class path folder; prints it
    kafka.py start [--nodes N] [--port P] [--dir D] [--set key=value ...] [--foreground]
                                     format a KRaft log dir per node in D (a new temp dir by default),
                                     write server.properties, start kafka.Kafka on 127.0.0.1, wait until
                                     a Metadata request lists all N brokers, print the ready line
                                       kafka ready bootstrap=127.0.0.1:P,... dir=D pids=1,2,3 seconds=S
                                     and exit (the JVMs keep running), or with --foreground wait for
                                     Ctrl-C / SIGTERM and stop them
    kafka.py settings [--nodes N] [--set key=value ...]
                                     print, as JSON, what start would run: version, Java, heap, JVM
                                     flags and the settings beyond Kafka's defaults (for meta.json)
    kafka.py stop --dir D            stop the nodes started in D by their PIDs (SIGTERM, then SIGKILL
                                     after 20 s) and remove D unless --keep

N = 1: one combined broker+controller node. N = 3: three combined nodes, a three-voter
controller quorum, node ids 1..N, client port P+i-1 (P = 0: free ports) and a free
controller port each. Settings are those of Kafka's own config/server.properties for a local dev
broker (group.initial.rebalance.delay.ms=0, replication factors of the internal topics
capped at N) plus what `--set` adds; `settings()` returns them for the record. Heap is
bounded (KAFKA_HEAP_OPTS, default -Xmx512m -Xms512m).

Importable: `start(...)` returns a `Cluster` with `.bootstrap`, `.pids`, `.settings`,
`.version` and `.stop()`.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
POM = os.path.join(HERE, "pom.xml")
VERSION = "4.4.0"
DEFAULT_HEAP = "-Xmx512m -Xms512m"
# kafka-run-class.sh's JVM flags for the broker (KAFKA_JVM_PERFORMANCE_OPTS).
JVM_FLAGS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
             "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "strikemq", f"kafka-{VERSION}")


def resolve(quiet=True):
    """The class path folder, resolved from Maven Central (through ~/.m2) once."""
    cp = os.path.join(cache_dir(), "lib")
    stamp = os.path.join(cp, ".complete")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(POM):
        return cp
    shutil.rmtree(cp, ignore_errors=True)
    os.makedirs(cp)
    cmd = ["mvn", "-B", "-f", POM, "dependency:copy-dependencies", f"-DoutputDirectory={cp}",
           "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(2, "-q")
    subprocess.run(cmd, check=True, timeout=900)
    with open(stamp, "w") as f:
        f.write(VERSION + "\n")
    return cp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_id():
    """A random cluster id as Kafka's Uuid.randomUuid makes it: never one that starts
    with '-', which StorageTool's argument parser would take for an option (1 in 64)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def settings(nodes, extra=()):
    """The broker settings beyond Kafka's defaults, as a local dev Kafka sets them."""
    rf = min(3, nodes)
    s = {
        "num.partitions": "1",
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min(2, rf)),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(min(2, rf)),
        # config/server.properties of the Kafka distribution: "We override this to 0 here
        # as it makes for a better out-of-the-box experience for development and testing."
        "group.initial.rebalance.delay.ms": "0",
    }
    for kv in extra:
        k, _, v = kv.partition("=")
        if not k or not _:
            raise SystemExit(f"--set expects key=value, got {kv!r}")
        s[k] = v
    return s


def node_properties(node_id, port, voters, cport, data_dir, extra):
    p = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data_dir,
    }
    p.update(extra)
    return "".join(f"{k}={v}\n" for k, v in p.items())


def metadata_brokers(port, timeout_s=1.0):
    """How many brokers a Metadata v4 request (no topics) lists, or None."""
    client = b"strikemq-kafka-ready"
    body = struct.pack(">hhih", 3, 4, 1, len(client)) + client + struct.pack(">i?", 0, False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 16:
                chunk = s.recv(16 - len(head))
                if not chunk:
                    return None
                head += chunk
            _size, corr, _throttle, n = struct.unpack(">iiii", head)
            return n if corr == 1 else None
    except OSError:
        return None


class Cluster:
    def __init__(self, root, ports, procs, settings_, version, java):
        self.root, self.ports, self.procs, self.settings, self.version = root, ports, procs, settings_, version
        self.java = java

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def pids(self):
        return [p.pid if hasattr(p, "pid") else p for p in self.procs]

    def alive(self):
        return all(pid_alive(pid) for pid in self.pids)

    def stop(self, keep=False):
        stop_dir(self.root, keep=keep)

    def restart(self):
        """SIGTERM every node, then start them again on the same dirs and ports."""
        stop_dir(self.root, keep=True)
        self.procs = launch(self.root, self.java_cmd, self.ports, self.ready_timeout_s)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def describe(nodes=1, extra=()):
    """What `start` runs, for the record (the experiment runner's meta.json)."""
    return {"broker": "kafka", "version": VERSION, "java": java_version(), "nodes": nodes,
            "process_roles": "broker,controller", "heap": os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP),
            "jvm_flags": JVM_FLAGS, "settings": settings(nodes, extra),
            "note": "Kafka's defaults apart from these settings (tools/kafka/kafka.py)"}


def java_version():
    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0] if out else "unknown"


def start(nodes=1, port=0, root=None, extra=(), heap=None, ready_timeout_s=120, tied=True):
    cp = resolve()
    root = root or tempfile.mkdtemp(prefix="strikemq-kafka-")
    os.makedirs(root, exist_ok=True)
    heap = heap or os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP)
    # Client ports as asked (or free ones); controller ports always free ones, so that
    # only the ports a user names can clash with what else runs on the machine.
    ports = [port + i for i in range(nodes)] if port else [free_port() for _ in range(nodes)]
    cports = [free_port() for _ in range(nodes)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cports[i]}" for i in range(nodes))
    extra_s = settings(nodes, extra)
    cid = cluster_id()
    classpath = os.path.join(cp, "*")
    log4j = os.path.join(root, "log4j2.properties")
    with open(log4j, "w") as f:
        f.write(LOG4J2)
    java = ["java", *heap.split(), *JVM_FLAGS, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
    started = time.monotonic()
    try:
        for i in range(nodes):
            ndir = os.path.join(root, f"node{i + 1}")
            os.makedirs(ndir, exist_ok=True)
            props = os.path.join(ndir, "server.properties")
            with open(props, "w") as f:
                f.write(node_properties(i + 1, ports[i], voters, cports[i], os.path.join(ndir, "data"), extra_s))
            # Formatting is a separate JVM (kafka-storage.sh format): the static quorum
            # (controller.quorum.voters) needs no --standalone / --initial-controllers.
            fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", cid, "-c", props,
                                  "--ignore-formatted"], capture_output=True, text=True, timeout=120)
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka-storage format of {ndir} failed (exit {fmt.returncode}): "
                                   f"{(fmt.stderr or fmt.stdout).strip()[-2000:]}")
        procs = launch(root, java, ports, ready_timeout_s, tied)
    except BaseException:
        stop_dir(root, keep=True)
        raise
    c = Cluster(root, ports, procs, extra_s, VERSION, java_version())
    c.java_cmd, c.ready_timeout_s = java, ready_timeout_s
    c.seconds = time.monotonic() - started
    return c


def die_with_us():
    """In the child before exec: SIGTERM when the process that started it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch(root, java, ports, ready_timeout_s, tied=True):
    """Start kafka.Kafka on every node dir of root (already formatted); wait until ready.
    tied: the JVMs get SIGTERM when this process dies (not for a detached `start`)."""
    procs = []
    for i in range(len(ports)):
        ndir = os.path.join(root, f"node{i + 1}")
        with open(os.path.join(ndir, "kafka.log"), "ab") as log:
            p = subprocess.Popen([*java, "kafka.Kafka", os.path.join(ndir, "server.properties")], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=die_with_us if tied else None)
        procs.append(p)
        with open(os.path.join(ndir, "pid"), "w") as f:
            f.write(f"{p.pid}\n")
    deadline = time.monotonic() + ready_timeout_s
    while not all(metadata_brokers(p) == len(ports) for p in ports):
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = "exited" if dead else f"not ready within {ready_timeout_s} s"
            raise RuntimeError(f"kafka {why}; see {root}/node*/kafka.log")
        time.sleep(0.05)
    return procs


def stop_dir(root, keep=False, grace_s=20):
    pids = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        pf = os.path.join(root, name, "pid")
        if os.path.exists(pf):
            with open(pf) as f:
                pids.append(int(f.read().strip()))
            os.remove(pf)
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for pid in pids:
        while pid_alive(pid) and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        reap(pid)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("resolve")
    st = sub.add_parser("settings")
    st.add_argument("--nodes", type=int, default=1)
    st.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s = sub.add_parser("start")
    s.add_argument("--nodes", type=int, default=1)
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--dir")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--foreground", action="store_true")
    t = sub.add_parser("stop")
    t.add_argument("--dir", required=True)
    t.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.cmd == "resolve":
        t0 = time.monotonic()
        cp = resolve(quiet=False)
        print(f"kafka {VERSION} class path: {cp} ({time.monotonic() - t0:.1f} s)")
        return 0
    if a.cmd == "settings":
        print(json.dumps(describe(a.nodes, a.set), indent=1))
        return 0
    if a.cmd == "stop":
        stop_dir(a.dir, keep=a.keep)
        return 0
    if not 1 <= a.nodes <= 9:
        raise SystemExit(f"--nodes must be 1..9, got {a.nodes}")
    c = start(a.nodes, a.port, a.dir, a.set, tied=a.foreground)
    print(f"kafka ready bootstrap={c.bootstrap} dir={c.root} pids={','.join(map(str, c.pids))} "
          f"version={c.version} seconds={c.seconds:.1f}", flush=True)
    if not a.foreground:
        print(f"stop with: python3 {os.path.relpath(__file__)} stop --dir {c.root}", flush=True)
        return 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop and c.alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    c.stop()
    print("kafka stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
