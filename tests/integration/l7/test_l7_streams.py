"""Long streams and tunnels through kfront in mode http, with the real kubectl against kube-sim:
`kubectl logs` (byte for byte the same as kube-sim's own answer), `kubectl logs -f` (lines as
they come; the stream ends when kubectl is killed or the pod is deleted), the apiserver's 400
for a multi-container pod, and `kubectl port-forward` (SPDY tunnelled in WebSocket, kubectl's
default, and the plain SPDY upgrade it falls back to) to kube-sim's echo server: concurrent
connections, 1 MiB each way, a clean stop. Each kfront test has a direct twin against kube-sim,
so a kfront bug and a kube-sim bug are told apart."""
import calendar
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import Test, free_port, read_head, wait_for  # noqa: E402
from test_l7_kubesim import Env  # noqa: E402
from test_l7_upgrade import read_to_eof  # noqa: E402
import ksim  # noqa: E402

LOG_LINES = 40  # kube-sim's lines per container before any follow


def xfail(reason):
    """Strict expected failure: a known kfront bug. Passing is reported as a failure too."""
    def wrap(f):
        def run():
            try:
                f()
            except Exception as e:  # noqa: BLE001
                print(f"xfail {f.__name__}: {reason}: {e}")
                return
            raise AssertionError(f"{f.__name__} passed but is marked xfail ({reason})")
        run.__name__ = f.__name__
        return run
    return wrap


def close(env):
    """Stop kfront and kube-sim; kube-sim's exit status and sanitizer reports fail the test."""
    env.close()
    failures = list(ksim.FAILURES)
    ksim.FAILURES.clear()
    assert not failures, failures


def have_kubectl():
    if shutil.which("kubectl"):
        return True
    print("kubectl not installed: skipped")
    return False


def kubectl(kubeconfig, *args, env=None, timeout=20):
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig] + list(args),
                          capture_output=True, timeout=timeout, env=env)


def first_pod(env):
    out = kubectl(env.kubeconfig, "get", "pods", "-A", "-o", "json")
    pod = json.loads(out.stdout)["items"][0]
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def kf_metric(env, prefix):
    """Sum of the samples of kfront's /metrics whose line starts with prefix."""
    _, text = env.kf.http("/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))


def sim_metric(sim, name):
    for line in sim.admin_get("/metrics").decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"kube-sim metric {name} not found")


def gauges(env):
    """What an open stream holds: kfront's client connections and tunnels, kube-sim's streams."""
    return (env.kf.metric("kfront_frontend_connections_active"),
            env.kf.metric("kfront_http_upgrades_active"), sim_metric(env.sim, "kubesim_log_follows"),
            sim_metric(env.sim, "kubesim_portforward_sessions"))


# ---- logs ----------------------------------------------------------------------------------

def check_logs(env, kubeconfig, ns, pod):
    """kubectl logs in several forms; returns their outputs for comparison."""
    outs = []
    for args in (["-c", "app"], ["-c", "log-shipper", "--tail", "5", "--timestamps"],
                 ["-c", "app", "--limit-bytes", "100"], []):
        out = kubectl(kubeconfig, "logs", "-n", ns, pod, *args)
        assert out.returncode == 0, (args, out.stderr)
        outs.append(out.stdout)
    lines = outs[0].decode().splitlines()
    assert len(lines) == LOG_LINES and lines[-1].startswith(f"app {ns}/{pod} line 39: "), lines[-3:]
    tail = outs[1].decode().splitlines()
    assert len(tail) == 5 and all(l.split(" ", 2)[1] == "log-shipper" for l in tail), tail
    assert tail[0].split(" ")[0].endswith("Z") and "line 35:" in tail[0], tail
    assert outs[2] == outs[0][:100], outs[2]
    assert outs[3] == outs[0], "without -c kubectl 1.32 picks the first container"
    # the apiserver's own answer without a container: a 400 naming them, as kubectl prints it
    out = kubectl(kubeconfig, "get", "--raw", f"/api/v1/namespaces/{ns}/pods/{pod}/log")
    want = (f"Error from server (BadRequest): a container name must be specified for pod {pod}, "
            "choose one of: [app log-shipper]")
    assert out.returncode == 1 and out.stderr.decode().strip() == want, out.stderr
    out = kubectl(kubeconfig, "logs", "-n", ns, "no-such-pod", "-c", "app")
    assert out.returncode == 1 and b'pods "no-such-pod" not found' in out.stderr, out.stderr
    return outs


def test_logs_direct():
    if not have_kubectl():
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        check_logs(env, env.sim.kubeconfig, ns, pod)
        out = kubectl(env.sim.kubeconfig, "logs", "-n", ns, pod)
        assert out.stderr.decode().strip() == 'Defaulted container "app" out of: app, log-shipper'
        logs = lambda *a: kubectl(env.sim.kubeconfig, "logs", "-n", ns, pod, "-c", "app", *a)  # noqa
        # since: the lines are from the pod's first 40 seconds, two days ago
        assert logs("--since", "1h").stdout == b""
        created = json.loads(kubectl(env.sim.kubeconfig, "get", "pod", "-n", ns, pod, "-o",
                                     "json").stdout)["metadata"]["creationTimestamp"]
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
            calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) + 30))
        lines = logs("--since-time", since).stdout.decode().splitlines()
        assert len(lines) == 11 and " line 29: " in lines[0], lines
        out = logs("-p")
        assert out.returncode == 1 and out.stderr.decode().strip() == (
            'Error from server (BadRequest): previous terminated container "app" in pod '
            f'"{pod}" not found'), out.stderr
        out = logs("-c", "nope")
        assert f"container nope is not valid for pod {pod}" in out.stderr.decode(), out.stderr
        # invalid options: the 422 with one cause per field
        st = json.loads(env.sim.curl(f"{env.sim.url}/api/v1/namespaces/{ns}/pods/{pod}/log?"
                                     "tailLines=-1&limitBytes=0").stdout)
        assert st["code"] == 422 and st["reason"] == "Invalid", st
        assert [c["field"] for c in st["details"]["causes"]] == ["tailLines", "limitBytes"], st
        assert st["message"] == (f'PodLogOptions "{pod}" is invalid: [tailLines: Invalid value: '
                                 '-1: must be greater than or equal to 0, limitBytes: Invalid '
                                 'value: 0: must be greater than 0]'), st
        # follow ends by itself once limitBytes is reached
        t0 = time.time()
        out = logs("-f", "--tail", "0", "--limit-bytes", "150")
        assert out.returncode == 0 and len(out.stdout) == 150, out
        assert 0.4 < time.time() - t0 < 5, time.time() - t0
    finally:
        close(env)


def test_logs_through_kfront_are_byte_for_byte_kube_sims():
    if not have_kubectl():
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        direct = check_logs(env, env.sim.kubeconfig, ns, pod)
        via = check_logs(env, env.kubeconfig, ns, pod)
        assert via == direct
        # HTTP/1.1 as well as kubectl's HTTP/2: a chunked text/plain body
        code, body = env.curl(f"/api/v1/namespaces/{ns}/pods/{pod}/log?container=app",
                              http="--http1.1")
        assert code == 200 and body == direct[0], (code, body[:200])
        assert env.kf.metric('kfront_http_requests_total{verb="get",resource="pods/log",code="200"}') == 5
        # authorized upstream as get on pods/log for the client (kfront vouched for alice)
        code, body = env.curl(f"/api/v1/namespaces/{ns}/pods/{pod}/log?container=app",
                              cert="user-alice")
        assert code == 403 and json.loads(body)["message"] == (
            f'pods "{pod}" is forbidden: User "alice" cannot get resource "pods/log" in API '
            f'group "" in the namespace "{ns}"'), body
        assert env.kf.metric('kfront_http_requests_total{verb="get",resource="pods/log",code="400"}') == 1
    finally:
        close(env)


class LineReader:
    """The stdout of a process, line by line, with a deadline."""

    def __init__(self, proc):
        self.q = queue.Queue()
        threading.Thread(target=self._run, args=(proc.stdout,), daemon=True).start()

    def _run(self, f):
        for line in iter(f.readline, b""):
            self.q.put(line.decode())
        self.q.put(None)

    def get(self, timeout=3):
        return self.q.get(timeout=timeout)


def follow(env, kubeconfig, ns, pod, kill=True):
    """kubectl logs -f: the last 2 lines at once, then new ones every ~200 ms."""
    proc = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "logs", "-f", "-n", ns, pod,
                             "-c", "app", "--tail", "2", "--timestamps"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = LineReader(proc)
    t0 = time.time()
    got = [r.get(10) for _ in range(6)]
    seqs = [int(l.split(" line ")[1].split(":")[0]) for l in got]
    assert seqs == list(range(LOG_LINES - 2, LOG_LINES + 4)), got
    assert time.time() - t0 >= 0.6, "followed lines are written as they come, ~200 ms apart"
    assert got[2].split(" ")[0] > got[1].split(" ")[0], "new lines carry the current time"
    assert sim_metric(env.sim, "kubesim_log_follows") == 1
    if kill:
        proc.kill()
        proc.wait(5)
    return proc, r


def test_logs_follow_direct_ends_with_the_pod():
    if not have_kubectl():
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        proc, r = follow(env, env.sim.kubeconfig, ns, pod, kill=False)
        kubectl(env.sim.kubeconfig, "delete", "pod", "-n", ns, pod, "--wait=false")
        assert proc.wait(5) == 0, proc.stderr.read()
        while r.get(2) is not None:  # what was on its way, then the end
            pass
    finally:
        close(env)


def test_logs_follow_through_kfront():
    if not have_kubectl():
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        base = gauges(env)
        assert base == (0, 0, 0, 0), base
        proc, _ = follow(env, env.kubeconfig, ns, pod)
        # killed: the client connection goes away and kfront ends the upstream stream
        wait_for(lambda: gauges(env) == base, 5, f"gauges back to {base}: {gauges(env)}")
        # the same over HTTP/1.1 (chunked): curl reads a few lines and is killed
        crt, key = env.sim.cert("admin")
        proc = subprocess.Popen(["curl", "-sN", "--http1.1", "--cacert", f"{env.sim.certs}/ca.crt",
                                 "--cert", crt, "--key", key, f"{env.url}/api/v1/namespaces/{ns}/"
                                 f"pods/{pod}/log?container=app&follow=true&tailLines=1"],
                                stdout=subprocess.PIPE)
        r = LineReader(proc)
        got = [r.get(5) for _ in range(3)]
        assert [" line 39: " in got[0], " line 40: " in got[1], " line 41: " in got[2]] == [True] * 3
        proc.kill()
        proc.wait(5)
        wait_for(lambda: gauges(env) == base, 5, f"gauges back to {base}: {gauges(env)}")
        # and it ends by itself, through kfront too, when the pod is deleted
        proc, r = follow(env, env.kubeconfig, ns, pod, kill=False)
        kubectl(env.kubeconfig, "delete", "pod", "-n", ns, pod, "--wait=false")
        assert proc.wait(5) == 0, proc.stderr.read()
        wait_for(lambda: gauges(env) == base, 5, f"gauges back to {base}: {gauges(env)}")
    finally:
        close(env)


# ---- port-forward ----------------------------------------------------------------------------

def start_port_forward(kubeconfig, ns, pod, websockets):
    """kubectl port-forward pod/NAME PORT:80; returns (process, local port) once it listens."""
    env = dict(os.environ, KUBECTL_PORT_FORWARD_WEBSOCKETS="true" if websockets else "false")
    port = free_port()
    proc = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "port-forward", "-n", ns,
                             f"pod/{pod}", f"{port}:80", "--address", "127.0.0.1", "-v", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = proc.stdout.readline().decode()
    assert line.startswith(f"Forwarding from 127.0.0.1:{port} -> 80"), (line, proc.stderr.read())
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc, port


def echo(port, data):
    """Send data over a local connection, half-close, read until the end; the bytes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        sender.join()
        return bytes(got)


def check_port_forward(sim, kubeconfig, ns, pod, websockets):
    """Concurrent connections and a 1 MiB transfer echo back intact; kubectl stops cleanly.
    Returns the stderr of kubectl -v 6 (which says how it upgraded)."""
    proc, port = start_port_forward(kubeconfig, ns, pod, websockets)
    pf_streams = lambda: sim_metric(sim, "kubesim_portforward_streams")  # noqa: E731
    try:
        assert echo(port, b"hello\n") == b"hello\n"
        payloads = [bytes([65 + i]) * (1000 * (i + 1)) + os.urandom(5000) for i in range(6)]
        results = [None] * len(payloads)

        def one(i):
            results[i] = echo(port, payloads[i])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
        [t.start() for t in threads]
        [t.join(20) for t in threads]
        assert results == payloads, [len(r or b"") for r in results]
        big = os.urandom(1 << 20)
        assert echo(port, big) == big
        assert echo(port, b"") == b"", "a connection that sends nothing ends cleanly"
        # every connection's error and data streams were closed both ways, the session is open
        wait_for(lambda: pf_streams() == 0, 5, "streams closed")
        assert sim_metric(sim, "kubesim_portforward_sessions") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(10)
    err = proc.stderr.read().decode()
    assert rc == 0, (rc, err[-2000:])
    assert "lost connection" not in err and "An error occurred" not in err, err[-2000:]
    wait_for(lambda: sim_metric(sim, "kubesim_portforward_sessions") == 0, 5, "session closed")
    return err


def test_port_forward_direct():
    if not have_kubectl():
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        err = check_port_forward(env.sim, env.sim.kubeconfig, ns, pod, websockets=True)
        assert "fallback" not in err and "GET " in err, err
        err = check_port_forward(env.sim, env.sim.kubeconfig, ns, pod, websockets=False)
        assert "POST " in err and "101 Switching Protocols" in err, err
        # authorized as create on pods/portforward
        st = json.loads(env.sim.curl("-X", "POST", f"{env.sim.url}/api/v1/namespaces/{ns}/pods/"
                                     f"{pod}/portforward", cert="user-alice").stdout)
        assert st["code"] == 403 and 'cannot create resource "pods/portforward"' in st["message"]
        # a pod that is not there: 404
        out = kubectl(env.sim.kubeconfig, "port-forward", "-n", ns, "pod/nope", "1:80")
        assert b'pods "nope" not found' in out.stderr, out.stderr
    finally:
        close(env)


def port_forward_through_kfront(websockets):
    env = Env()
    try:
        ns, pod = first_pod(env)
        up0 = kf_metric(env, "kfront_http_upgrades_total")
        err = check_port_forward(env.sim, env.kubeconfig, ns, pod, websockets)
        assert ("fallback" not in err) if websockets else ("POST " in err), err[-2000:]
        assert kf_metric(env, "kfront_http_upgrades_total") == up0 + 1
        assert kf_metric(env, 'kfront_http_requests_total{verb="%s",resource="pods/portforward",'
                         'code="101"}' % ("get" if websockets else "create")) == 1
        wait_for(lambda: gauges(env) == (0, 0, 0, 0), 5, f"all closed: {gauges(env)}")
        # kubectl killed in the middle of a transfer: kfront closes the tunnel both ways
        proc, port = start_port_forward(env.kubeconfig, ns, pod, websockets)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"x" * 100000)
            assert read_exactly(s, 100000)[0] == b"x" * 100000
            assert sim_metric(env.sim, "kubesim_portforward_streams") == 2
            proc.kill()
            proc.wait(5)
        wait_for(lambda: gauges(env) == (0, 0, 0, 0), 5, f"all closed: {gauges(env)}")
    finally:
        close(env)


def test_port_forward_websocket_through_kfront():
    port_forward_through_kfront(websockets=True)


def test_port_forward_spdy_through_kfront():
    port_forward_through_kfront(websockets=False)


# ---- hostile port-forward clients (direct: kube-sim's own robustness) --------------------------

def raw_upgrade(sim, ns, pod, headers):
    """A TLS connection with a hand-written upgrade request; returns (socket, head, rest)."""
    s = sim.ssl_context().wrap_socket(socket.create_connection(("127.0.0.1", sim.port), 10),
                                      server_hostname="127.0.0.1")
    s.sendall(f"POST /api/v1/namespaces/{ns}/pods/{pod}/portforward HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: 0\r\n{headers}\r\n".encode())
    head, rest = read_head(s)
    return s, head.decode(), rest


def read_exactly(s, n, rest=b""):
    while len(rest) < n:
        data = s.recv(65536)
        assert data, f"closed after {rest!r}"
        rest += data
    return rest[:n], rest[n:]


def ping(n):
    return b"\x80\x03\x00\x06\x00\x00\x00\x04" + n.to_bytes(4, "big")


SPDY = "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
GOAWAY_PROTOCOL_ERROR = b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01"


def test_port_forward_refusals_and_bad_frames_direct():
    env = Env()
    sim = env.sim
    try:
        ns, pod = first_pod(env)
        # a pod on no node: no port-forward (the apiserver's 400), and no logs (empty)
        manifest = os.path.join(sim.dir, "pending.yaml")
        with open(manifest, "w") as f:
            f.write(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: pending, namespace: {ns}}}\n"
                    "spec:\n  containers: [{name: c, image: busybox}]\n")
        assert kubectl(sim.kubeconfig, "apply", "-f", manifest).returncode == 0
        s, head, rest = raw_upgrade(sim, ns, "pending", SPDY + "X-Stream-Protocol-Version: "
                                    "portforward.k8s.io\r\n")
        st = json.loads(read_to_eof(s, rest)[0])
        assert head.startswith("HTTP/1.1 400") and st["message"] == \
            "pod pending does not have a host assigned", (head, st)
        out = kubectl(sim.kubeconfig, "logs", "-n", ns, "pending")
        assert out.returncode == 0 and out.stdout == b"", out
        # the kubelet's handshake refusals (plain text, as http.Error writes them)
        s, head, rest = raw_upgrade(sim, ns, pod, SPDY)
        assert head.startswith("HTTP/1.1 400") and b"X-Stream-Protocol-Version does not exist" \
            in read_to_eof(s, rest)[0], head
        s, head, rest = raw_upgrade(sim, ns, pod, SPDY + "X-Stream-Protocol-Version: v9\r\n")
        assert head.startswith("HTTP/1.1 403") and \
            "x-accepted-stream-protocol-versions: portforward.k8s.io" in head.lower(), head
        s.close()
        s, head, rest = raw_upgrade(sim, ns, pod, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    "Sec-WebSocket-Version: 13\r\n"
                                    "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n")
        assert head.startswith("HTTP/1.1 400"), head
        s.close()
        # a session: pings answered, frames for unknown streams and flow control ignored,
        # then a header block that is not zlib ends it with GOAWAY(PROTOCOL_ERROR)
        s, head, rest = raw_upgrade(sim, ns, pod, SPDY + "X-Stream-Protocol-Version: "
                                    "portforward.k8s.io\r\n")
        assert head.startswith("HTTP/1.1 101") and \
            "x-stream-protocol-version: portforward.k8s.io" in head.lower(), head
        s.sendall(ping(1))
        got, rest = read_exactly(s, 12, rest)
        assert got == ping(1), got
        s.sendall(b"\x00\x00\x00\x05\x01\x00\x00\x03abc"                     # DATA, no stream
                  b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x05"  # RST
                  b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x00\x00\x01\x00\x00"  # WINDOW
                  b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x00"                  # SETTINGS
                  b"\x80\x03\x00\x0f\x00\x00\x00\x02zz"                               # unknown
                  + ping(2) + ping(3))  # an even ping is the server's own: not answered
        got, rest = read_exactly(s, 12, rest)
        assert got == ping(3), got
        s.sendall(b"\x80\x03\x00\x01\x00\x00\x00\x12\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                  b"not zlib")
        assert read_to_eof(s, rest) == (GOAWAY_PROTOCOL_ERROR, "eof"), "and the connection ends"
        s.close()
        # a frame bigger than kube-sim takes
        s, head, rest = raw_upgrade(sim, ns, pod, SPDY + "X-Stream-Protocol-Version: "
                                    "portforward.k8s.io\r\n")
        s.sendall(b"\x00\x00\x00\x01\x00\x20\x00\x00")
        got, rest = read_exactly(s, len(GOAWAY_PROTOCOL_ERROR), rest)
        assert got == GOAWAY_PROTOCOL_ERROR, got
        s.close()
        # tunnelled in WebSocket: garbage in a binary message, GOAWAY back, close 1002
        s, head, rest = raw_upgrade(sim, ns, pod, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                    "Sec-WebSocket-Version: 13\r\n"
                                    "Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n")
        assert head.startswith("HTTP/1.1 101") and "spdy/3.1+portforward.k8s.io" in head.lower()
        payload = b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"  # SPDY version 2
        mask = b"\x01\x02\x03\x04"
        s.sendall(bytes([0x82, 0x80 | len(payload)]) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        want = bytes([0x82, 16]) + GOAWAY_PROTOCOL_ERROR + b"\x88\x02\x03\xea"
        got, rest = read_exactly(s, len(want), rest)
        assert got == want, got
        s.close()
        # kube-sim is still fine
        err = check_port_forward(sim, sim.kubeconfig, ns, pod, websockets=True)
        assert "fallback" not in err
    finally:
        close(env)


if __name__ == "__main__":
    if not have_kubectl():
        sys.exit(77)
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
