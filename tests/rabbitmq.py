"""A real three-node RabbitMQ cluster (Debian's rabbitmq-server, its MQTT plugin) for the network
tests, configured as `station hub broker-config --rabbitmq` writes it, each node in a folder of its
own on this machine, and the nodes forming their cluster from the list of peers as they would on
three machines. A node can be killed (-9) and started again.

`Balancer` stands in for what puts a cluster behind one address (HAProxy, a cloud load balancer,
DNS over the nodes): a client's connection goes to the first node in its list that answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path

from station.hub import rabbitmq
from tests.conftest import free_port, listening, wait_until
from tests.fakes.smtp import make_ca_and_server

BIN = Path("/usr/lib/rabbitmq/bin")


def installed() -> bool:
    return (BIN / "rabbitmq-server").exists()


class RabbitCluster:
    def __init__(self, folder: Path, accounts: dict[str, str], size: int = 3):
        self.folder = folder
        self.accounts = accounts
        self.ca, cert, key = make_ca_and_server(folder / "tls", "localhost")
        tag = uuid.uuid4().hex[:8]           # node names are unique on this machine's epmd
        self.nodes = [f"n{i}-{tag}@localhost" for i in range(1, size + 1)]
        self.ports = [free_port() for _ in self.nodes]
        self.home = folder / "home"
        self.home.mkdir(parents=True)
        self.procs: list[subprocess.Popen | None] = [None] * size
        for i, node in enumerate(self.nodes):
            rabbitmq.write(self._dir(i), accounts=accounts, nodes=self.nodes, cert=cert, key=key, ca=self.ca,
                           port=self.ports[i], bind="127.0.0.1")
            # The same definitions on every node, as copied to each machine: a node that finds
            # them already imported skips them (a second import racing the first left a node with
            # its vhost down).
            if i:
                shutil.copy(self._dir(0) / "definitions.json", self._dir(i) / "definitions.json")
        # One cookie for every node and for rabbitmqctl, as copied to each machine.
        shutil.copy(self._dir(0) / "erlang.cookie", self.home / ".erlang.cookie")
        (self.home / ".erlang.cookie").chmod(0o400)

    def _dir(self, i: int) -> Path:
        return self.folder / f"node{i + 1}"

    def _env(self, i: int) -> dict[str, str]:
        d = self._dir(i)
        return {**os.environ, "HOME": str(self.home), "PATH": f"{BIN}:{os.environ['PATH']}",
                "RABBITMQ_NODENAME": self.nodes[i], "RABBITMQ_BASE": str(d), "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
                "RABBITMQ_LOG_BASE": str(d / "log"), "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"), "RABBITMQ_PID_FILE": str(d / "pid"),
                "RABBITMQ_FEATURE_FLAGS_FILE": str(d / "feature_flags"),
                "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"), "RABBITMQ_DIST_PORT": str(free_port())}

    def start(self, *which: int) -> "RabbitCluster":
        """Start nodes (all by default). At the first boot the first node starts alone and the
        others then join it, as RabbitMQ's clustering guide has it."""
        if not which:
            self.start(0)
            which = tuple(range(1, len(self.nodes)))
        for i in which:
            self.procs[i] = subprocess.Popen([str(BIN / "rabbitmq-server")], env=self._env(i), start_new_session=True,
                                             stdout=open(self._dir(i) / "out.log", "ab"), stderr=subprocess.STDOUT)
        for i in which:
            wait_until(lambda: listening(self.ports[i]) or self.procs[i].poll() is not None, 120,
                       interval=0.2, what=f"RabbitMQ node {i + 1} to listen")
            assert self.procs[i].poll() is None, (self._dir(i) / "out.log").read_text()[-3000:]
            wait_until(lambda: self._serves(i), 60, interval=0.2, what=f"RabbitMQ node {i + 1} to take MQTT logins")
        return self

    def _serves(self, i: int) -> bool:
        """A node listens before its vhost is up; an MQTT login (no session kept) tells."""
        import ssl

        import paho.mqtt.client as mqtt
        account = next(iter(self.accounts))
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{i}", clean_session=True,
                        protocol=mqtt.MQTTv311)
        c.username_pw_set(account, self.accounts[account])
        c.tls_set_context(ssl.create_default_context(cafile=str(self.ca)))
        answer = []
        c.on_connect = lambda client, u, flags, rc, p: answer.append(not rc.is_failure)
        try:
            c.connect("localhost", self.ports[i], 10)
            c.loop_start()
            wait_until(lambda: answer, 10, what="its CONNACK")
            return answer[0]
        except (OSError, AssertionError):
            return False
        finally:
            c.loop_stop()
            c.disconnect()

    def ctl(self, *args: str, node: int = 0) -> str:
        return subprocess.run([str(BIN / "rabbitmqctl"), "-n", self.nodes[node], *args], env=self._env(node),
                              capture_output=True, text=True, check=True, timeout=60).stdout

    def running(self) -> list[str]:
        return json.loads(self.ctl("cluster_status", "--formatter", "json"))["running_nodes"]

    def kill(self, i: int) -> None:
        """kill -9 of the whole node (the Erlang VM and its helpers)."""
        os.killpg(self.procs[i].pid, signal.SIGKILL)
        self.procs[i].wait(10)
        self.procs[i] = None

    def stop(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)

    def password_file(self, account: str) -> str:
        p = self.folder / f"{account}.password"
        p.write_text(self.accounts[account] + "\n")
        p.chmod(0o600)
        return str(p)


class Balancer:
    """One address in front of the nodes: each connection goes to the first of `ports` that accepts
    it, and ends when either side ends (a node killed ends its clients' connections)."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.url = f"mqtts://localhost:{self.port}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="balancer", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            for port in self.ports:
                try:
                    node = socket.create_connection(("127.0.0.1", port), 1)
                    node.settimeout(None)        # the 1 s was for the connection only
                    break
                except OSError:
                    continue
            else:
                client.close()
                continue
            ends = [2]
            lock = threading.Lock()
            for a, b in ((client, node), (node, client)):
                threading.Thread(target=_pipe, args=(a, b, client, node, ends, lock), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.server.close()


def _pipe(src: socket.socket, dst: socket.socket, client: socket.socket, node: socket.socket, ends: list[int],
          lock: threading.Lock) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    # Either side's end ends the connection (a node killed ends its clients'); the sockets are
    # closed once both directions are done, never under the other direction's feet.
    for s in (client, node):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    with lock:
        ends[0] -= 1
        last = ends[0] == 0
    if last:
        client.close()
        node.close()
