"""Protocol upgrades (kubectl exec) through kfront in mode http: the real kubectl against
kube-sim's WebSocket exec, curl for answers that are not 101, and a scripted TLS upstream
for broken 101 responses and tunnels that die."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kubesim"))
from kftest import Kfront, LoopbackServer, Test, free_port, read_head, wait_for  # noqa: E402
from test_l7_kubesim import Env  # noqa: E402

WS_HEADERS = ["-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
              "-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
              "-H", "Sec-WebSocket-Protocol: v5.channel.k8s.io"]


def first_pod(env):
    pod = json.loads(env.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"][0]
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def test_kubectl_exec_through_kfront():
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        out = env.kubectl("exec", "-n", ns, pod, "--", "echo", "hello")
        assert out.stdout == "hello\n", out
        out = subprocess.run(["kubectl", "--kubeconfig", env.kubeconfig, "exec", "-i", "-n", ns,
                              pod, "--", "cat"], input="data\nmore data\n", capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0 and out.stdout == "data\nmore data\n", out
        out = env.kubectl("exec", "-n", ns, pod, "--", "sh", "-c", "exit 3", check=False)
        assert out.returncode == 3, out
        # 1 MiB through cat: backpressure both ways, nothing lost or reordered
        blob = "".join(f"{i:07d}\n" for i in range(131072))
        out = subprocess.run(["kubectl", "--kubeconfig", env.kubeconfig, "exec", "-i", "-n", ns,
                              pod, "--", "cat"], input=blob, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and out.stdout == blob, (len(out.stdout), out.stderr[-500:])
        assert env.kf.metric('kfront_http_requests_total{verb="get",resource="pods/exec",code="101"}') == 4
        wait_for(lambda: env.kf.metric("kfront_http_upgrades_active") == 0, 5, "tunnels closed")
    finally:
        env.close()


def test_kubectl_attach_through_kfront():
    """kubectl attach -i: kube-sim's containers run cat, so stdin comes back on stdout; the
    tunnel is counted as pods/attach and closed when kubectl ends stdin."""
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    env = Env()
    try:
        ns, pod = first_pod(env)
        blob = "".join(f"line {i}\n" for i in range(20000))
        out = subprocess.run(["kubectl", "--kubeconfig", env.kubeconfig, "attach", "-i", "-n",
                              ns, pod], input=blob, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout == blob, (len(out.stdout), out.stderr[-500:])
        assert env.kf.metric(
            'kfront_http_requests_total{verb="get",resource="pods/attach",code="101"}') == 1
        wait_for(lambda: env.kf.metric("kfront_http_upgrades_active") == 0, 5, "tunnel closed")
    finally:
        env.close()


def issue_client_cert(certs, name, subject_attrs):
    """A client certificate signed by kube-sim's cluster CA with these (oid, value) subject
    attributes, written as certs/<name>.crt and .key."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    ca_cert = x509.load_pem_x509_certificate(open(os.path.join(certs, "ca.crt"), "rb").read())
    ca_key = serialization.load_pem_private_key(open(os.path.join(certs, "ca.key"), "rb").read(),
                                                None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(o, v) for o, v in subject_attrs]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(certs, name + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(certs, name + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def test_certificate_names_that_headers_cannot_carry():
    """A client certificate whose CN holds CR LF once added headers of its choosing to an
    upgrade's upstream request (X-Remote-Group: system:masters). Such a certificate carries no
    identity: 401, for a plain request and an exec upgrade alike, as kube-sim answers. With
    two CNs the user is the last one, as Go reads a subject."""
    from cryptography.x509.oid import NameOID
    env = Env()
    try:
        c = env.sim.certs
        issue_client_cert(c, "mallory", [(NameOID.ORGANIZATION_NAME, "dev"),
                                         (NameOID.COMMON_NAME,
                                          "mallory\r\nX-Remote-Group: system:masters")])
        issue_client_cert(c, "two-cns", [(NameOID.COMMON_NAME, "first"),
                                         (NameOID.COMMON_NAME, "alice")])
        ns, pod = first_pod(env)
        ctx = ssl.create_default_context(cafile=os.path.join(c, "ca.crt"))
        ctx.load_cert_chain(os.path.join(c, "mallory.crt"), os.path.join(c, "mallory.key"))
        ws = (f"GET /api/v1/namespaces/{ns}/pods/{pod}/exec?command=id&stdout=true HTTP/1.1\r\n"
              "Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
        for port in (env.sim.port, env.port):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(ws.encode())
                    head, _ = read_head(s)
            assert head.startswith(b"HTTP/1.1 401"), (port, head[:200])
        for cert, want in (("mallory", "401"), ("two-cns", 'User \\"alice\\" cannot list')):
            got = [subprocess.run(["curl", "-s", "-w", "\n%{http_code}",
                                   "--cacert", f"{c}/ca.crt", "--cert", f"{c}/{cert}.crt",
                                   "--key", f"{c}/{cert}.key",
                                   f"https://127.0.0.1:{port}/api/v1/namespaces/{ns}/pods"],
                                  capture_output=True, text=True).stdout
                   for port in (env.sim.port, env.port)]
            assert got[0] == got[1], (cert, got)
            assert want in got[0], (cert, got[0][-300:])
    finally:
        env.close()


def test_upgrade_answered_without_101_is_relayed():
    env = Env()
    try:
        ns, pod = first_pod(env)
        path = f"/api/v1/namespaces/{ns}/pods/{pod}/exec?command=echo&stdout=true"
        # alice may not exec: kube-sim's 403 Status reaches the client, naming her
        code, body = env.curl(path, *WS_HEADERS, cert="user-alice", http="--http1.1")
        st = json.loads(body)
        assert code == 403 and st["reason"] == "Forbidden" and '"alice"' in st["message"], body
        # a pod that does not exist: 404
        code, body = env.curl(f"/api/v1/namespaces/{ns}/pods/nope/exec?command=echo",
                              *WS_HEADERS, http="--http1.1")
        assert code == 404 and json.loads(body)["reason"] == "NotFound", body
        # HTTP/2 cannot upgrade: answered as a normal request (kube-sim: 400)
        code, body = env.curl(path, http="--http2")
        assert code == 400, (code, body)
        code, _ = env.curl("/api/v1/namespaces/default/configmaps", http="--http1.1")
        assert code == 200
    finally:
        env.close()


# ---- a scripted upstream ----------------------------------------------------------------

class ScriptedUpstream(LoopbackServer):
    """TLS HTTP/1.1 server whose answer to an upgrade depends on the pod name in the path."""

    def __init__(self, certs):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs, "apiserver.crt"),
                                 os.path.join(certs, "apiserver.key"))
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.seen = []
        super().__init__()

    def _serve(self, raw):
        try:
            c = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.seen.append(head.decode())
                path = head.split(b" ")[1].decode()
                if not self._answer(c, path):
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()

    def _answer(self, c, path):
        up = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        if "/bad101/" in path:      # 101 without Upgrade/Connection: not a switch
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-A: b\r\n\r\n")
        elif "/garbage/" in path:   # not HTTP at all
            c.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        elif "/hugehead/" in path:  # a head beyond any sane bound
            c.sendall(up + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n")
            time.sleep(0.5)
        elif "/dies/" in path:      # switches, says something, then the server dies
            c.sendall(up + b"\r\nhello from upstream")
            time.sleep(0.3)
            c.close()
        elif "/echo/" in path:      # a tunnel that echoes until the client ends
            c.sendall(up + b"\r\n")
            while True:
                data = c.recv(65536)
                if not data:
                    return False
                c.sendall(data)
        else:
            body = b'{"kind":"Status","status":"Success"}'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            return True
        return False


def upgrade(port, certs, pod, extra=b""):
    """Send an upgrade for pods/<pod>/exec through kfront; returns (socket, head, rest)."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    ctx.load_cert_chain(os.path.join(certs, "admin.crt"), os.path.join(certs, "admin.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="127.0.0.1")
    s.sendall(f"GET /api/v1/namespaces/default/pods/{pod}/exec?command=x HTTP/1.1\r\n"
              "Host: kfront\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "X-Remote-User: forged\r\n\r\n".encode() + extra)
    head, rest = read_head(s)
    return s, head.decode(errors="replace"), rest


def read_to_eof(s, rest=b""):
    while True:
        try:
            data = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return rest, "reset"
        if not data:
            return rest, "eof"
        rest += data


def test_broken_upstreams_close_the_client_cleanly():
    env = Env()
    fake = ScriptedUpstream(env.sim.certs)
    c = env.sim.certs
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    path = os.path.join(env.sim.dir, "kfront-fake.yaml")
    with open(path, "w") as f:
        f.write(f"""apiVersion: kfront.io/v1alpha1
kind: KfrontConfiguration
workers: 1
admin: {{listen: "{admin}"}}
identity:
  mode: front-proxy
  proxyClientCertFile: {c}/front-proxy-client.crt
  proxyClientKeyFile: {c}/front-proxy-client.key
frontends:
  - name: api
    listen: ["127.0.0.1:{port}"]
    mode: http
    backend: fake
    tls: {{certFile: {c}/apiserver.crt, keyFile: {c}/apiserver.key, clientCAFile: {c}/ca.crt}}
backends:
  - name: fake
    upstreamTLS: {{caFile: {c}/ca.crt}}
    servers:
      - {{name: fake-1, address: "127.0.0.1:{fake.port}"}}
""")
    kf = Kfront(["--config", path], admin=admin)
    try:
        for pod in ("bad101", "garbage", "hugehead"):
            s, head, rest = upgrade(port, c, pod)
            assert head.startswith("HTTP/1.1 502"), (pod, head)
            body, how = read_to_eof(s, rest)
            assert b'"code":502' in body and how == "eof", (pod, body, how)
            s.close()
        # the server dies mid-tunnel: the client gets what it sent, then a clean end
        s, head, rest = upgrade(port, c, "dies")
        assert head.startswith("HTTP/1.1 101"), head
        assert "upgrade: websocket" in head.lower(), head
        body, how = read_to_eof(s, rest)
        assert body == b"hello from upstream" and how == "eof", (body, how)
        s.close()
        # bytes sent right behind the request head reach the server; echo both ways
        s, head, rest = upgrade(port, c, "echo", b"early")
        assert head.startswith("HTTP/1.1 101"), head
        while len(rest) < 5:
            rest += s.recv(100)
        s.sendall(b"x" * 300000)
        got = rest
        while len(got) < 5 + 300000:
            got += s.recv(65536)
        assert got == b"early" + b"x" * 300000
        s.close()
        # identity: kfront vouched (front-proxy headers for admin), the forged one was dropped
        exec_heads = [h for h in fake.seen if "/exec" in h]
        assert exec_heads and all("X-Remote-User: kubernetes-admin" in h and "forged" not in h
                                  and "Upgrade: websocket" in h for h in exec_heads), exec_heads
        # and kfront keeps serving other requests
        ctx = ssl.create_default_context(cafile=os.path.join(c, "ca.crt"))
        ctx.load_cert_chain(os.path.join(c, "admin.crt"), os.path.join(c, "admin.key"))
        out = subprocess.run(["curl", "-sS", "--cacert", os.path.join(c, "ca.crt"), "--cert",
                              os.path.join(c, "admin.crt"), "--key", os.path.join(c, "admin.key"),
                              f"https://127.0.0.1:{port}/api/v1/namespaces"], capture_output=True,
                             timeout=20)
        assert out.returncode == 0 and b"Success" in out.stdout, out
        wait_for(lambda: kf.metric("kfront_http_upgrades_active") == 0, 5, "tunnels closed")
        assert kf.metric('kfront_http_requests_total{verb="get",resource="pods/exec",code="502"}') == 3
    finally:
        kf.stop()
        fake.close()
        env.close()


def test_upstream_kubeconfig_only():
    """kfront from --mode http --upstream-kubeconfig and serving flags alone: the server, CA and
    kfront's own credentials come from kube-sim's kubeconfig; clients are impersonated."""
    if not shutil.which("kubectl"):
        print("kubectl not installed: skipped")
        return
    import ksim
    sim = ksim.KubeSim(users=("alice=dev",))
    c = sim.certs
    port, admin = free_port(), f"127.0.0.1:{free_port()}"
    try:
        kf = Kfront(["--mode", "http", "--upstream-kubeconfig", sim.kubeconfig,
                     "--tls-cert-file", f"{c}/apiserver.crt", "--tls-private-key-file",
                     f"{c}/apiserver.key", "--client-ca-file", f"{c}/ca.crt",
                     "--listen", f"127.0.0.1:{port}", "--admin-listen", admin], admin=admin)
    except BaseException:
        sim.stop()
        raise
    try:
        wait_for(lambda: kf.metric("kfront_backend_up") == 1, 10, "kube-sim up")
        kubeconfig = os.path.join(sim.dir, "via-kfront")
        with open(sim.kubeconfig) as f:
            text = f.read()
        with open(kubeconfig, "w") as f:
            f.write(text.replace(sim.url, f"https://127.0.0.1:{port}"))
        run = lambda *a: subprocess.run(["kubectl", "--kubeconfig", kubeconfig] + list(a),
                                        capture_output=True, text=True, timeout=30)
        out = run("get", "nodes", "-o", "name")
        assert out.returncode == 0 and len(out.stdout.split()) == 6, out
        pod = json.loads(run("get", "pods", "-A", "-o", "json").stdout)["items"][0]["metadata"]
        out = run("exec", "-n", pod["namespace"], pod["name"], "--", "echo", "impersonated")
        assert out.returncode == 0 and out.stdout == "impersonated\n", out
        # alice is impersonated as herself: kube-sim refuses her by name
        out = subprocess.run(["curl", "-sS", "--cacert", f"{c}/ca.crt", "--cert",
                              f"{c}/user-alice.crt", "--key", f"{c}/user-alice.key",
                              f"https://127.0.0.1:{port}/api/v1/secrets"], capture_output=True,
                             timeout=20)
        st = json.loads(out.stdout)
        assert st["code"] == 403 and '"alice"' in st["message"], st
        # a client without a certificate is not vouched for: anonymous, not kfront's identity
        out = subprocess.run(["curl", "-sS", "--cacert", f"{c}/ca.crt", "-o", "/dev/null",
                              "-w", "%{http_code}", f"https://127.0.0.1:{port}/api/v1/secrets"],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout in ("401", "403"), out
    finally:
        kf.stop()
        sim.stop()


# ---- HTTP/2 extended CONNECT (RFC 8441) ------------------------------------------------------

def ws_frames(buf):
    """Split server WebSocket frames (unmasked) off buf: ([(opcode, payload)], rest)."""
    out = []
    while len(buf) >= 2:
        op, n, i = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, i = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, i = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < i + n:
            break
        out.append((op, buf[i:i + n]))
        buf = buf[i + n:]
    return out, buf


def ws_client_frame(payload, op=2):
    """A masked client frame (the mask may be zero bytes: the masking is then the identity)."""
    n = len(payload)
    head = bytes([0x80 | op]) + (bytes([0x80 | n]) if n < 126 else
                                 bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536 else
                                 bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    return head + b"\0\0\0\0" + payload


class H2Tunnel:
    """An HTTP/2 client (python3-h2) that opens extended CONNECT streams through kfront."""

    def __init__(self, env, cert="admin"):
        import h2.config
        import h2.connection
        crt, key = env.sim.cert(cert)
        ctx = ssl.create_default_context(cafile=os.path.join(env.sim.certs, "ca.crt"))
        ctx.load_cert_chain(crt, key)
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=10),
                                    server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events = []
        while self.conn.remote_settings.enable_connect_protocol != 1:
            self.pump()

    def pump(self):
        data = self.sock.recv(65536)
        assert data, "kfront closed the connection"
        self.events += self.conn.receive_data(data)
        self.sock.sendall(self.conn.data_to_send())

    def connect(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                     (":scheme", "https"), (":path", path),
                                     (":authority", "localhost"),
                                     ("sec-websocket-protocol", "v5.channel.k8s.io"),
                                     ("sec-websocket-version", "13")])
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def send(self, sid, data, end=False):
        """DATA frames within the peer's frame size and flow-control windows."""
        while data:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room == 0:
                self.pump()  # wait for WINDOW_UPDATE
                continue
            self.conn.send_data(sid, data[:room], end_stream=end and len(data) <= room)
            self.sock.sendall(self.conn.data_to_send())
            data = data[room:]

    def wait(self, sid, pred, timeout=10):
        """Pump until pred(headers, data, ended) for stream sid; returns them."""
        import h2.events
        deadline, headers, data, ended = time.time() + timeout, {}, b"", False
        while True:
            for ev in self.events:
                if getattr(ev, "stream_id", None) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in ev.headers}
                elif isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            self.events = [ev for ev in self.events if getattr(ev, "stream_id", None) != sid]
            self.sock.sendall(self.conn.data_to_send())
            if pred(headers, data, ended):
                return headers, data, ended
            assert time.time() < deadline, (headers, data[:200], ended)
            self.pump()

    def close(self):
        self.sock.close()


def test_http2_extended_connect_carries_exec():
    """An HTTP/2 client offering WebSockets by extended CONNECT (RFC 8441) reaches kube-sim's
    exec through kfront (which speaks HTTP/1.1 Upgrade upstream): echo, cat both ways with a
    64 KiB message, a refusal relayed as the stream's status, and other streams unaffected."""
    env, tunnels = Env(), []
    try:
        ns, pod = first_pod(env)
        base = f"/api/v1/namespaces/{ns}/pods/{pod}/exec?container=app&stdout=true"
        t = H2Tunnel(env)
        tunnels.append(t)
        sid = t.connect(base + "&command=echo&command=hello")
        h, data, _ = t.wait(sid, lambda h, d, e: e)
        assert h[":status"] == "200" and h.get("sec-websocket-protocol") == "v5.channel.k8s.io", h
        frames, _ = ws_frames(data)
        out = b"".join(p[1:] for op, p in frames if op == 2 and p[:1] == b"\x01")
        status = [json.loads(p[1:]) for op, p in frames if op == 2 and p[:1] == b"\x03"]
        assert out == b"hello\n" and status and status[0]["status"] == "Success", frames
        # cat: stdin in, stdout back, on a second stream of the same connection
        sid = t.connect(base + "&stdin=true&command=cat")
        t.wait(sid, lambda h, d, e: h.get(":status") == "200")
        blob = bytes(range(256)) * 256
        t.send(sid, ws_client_frame(b"\x00" + blob))
        h, data, _ = t.wait(sid, lambda h, d, e: sum(
            len(p) - 1 for op, p in ws_frames(d)[0] if op == 2 and p[:1] == b"\x01") >= len(blob))
        got = b"".join(p[1:] for op, p in ws_frames(data)[0] if op == 2 and p[:1] == b"\x01")
        assert got == blob
        t.send(sid, ws_client_frame(b"\xff\x00"))  # v5: stdin closed
        t.wait(sid, lambda h, d, e: e)
        # alice may not exec: kube-sim's 403 becomes the stream's answer
        a = H2Tunnel(env, cert="user-alice")
        tunnels.append(a)
        sid = a.connect(base + "&command=echo&command=x")
        h, data, _ = a.wait(sid, lambda h, d, e: e)
        assert h[":status"] == "403" and b'User \\"alice\\"' in data, (h, data[:300])
        code, _ = env.curl("/api/v1/namespaces/default/configmaps", http="--http2")
        assert code == 200
        wait_for(lambda: env.kf.metric("kfront_http_upgrades_active") == 0, 5, "tunnels closed")
    finally:
        for t in tunnels:
            t.close()
        env.close()


def test_http2_connect_flood_is_bounded_per_connection():
    """Each extended CONNECT opens its own connection to an apiserver: one client connection
    may have at most 8 opening at once (kube-sim answers after 1.5 s here); more get 429 with
    Retry-After at once, and the 8 still go through."""
    env, t = Env(), None
    try:
        ns, pod = first_pod(env)
        base = f"/api/v1/namespaces/{ns}/pods/{pod}/exec?container=app&stdout=true"
        env.sim.admin_post("/faults?delayMs=1500")
        t = H2Tunnel(env)
        sids = [t.connect(base + "&command=echo&command=hi") for _ in range(12)]
        answers = [t.wait(sid, lambda h, d, e: e)[0] for sid in sids]
        codes = sorted(h[":status"] for h in answers)
        assert codes == ["200"] * 8 + ["429"] * 4, codes
        assert all(h.get("retry-after") == "1" for h in answers if h[":status"] == "429")
        env.sim.admin_post("/faults?delayMs=0")
        sid = t.connect(base + "&command=echo&command=again")  # the connection still works
        assert t.wait(sid, lambda h, d, e: e)[0][":status"] == "200"
    finally:
        if t:
            t.close()
        env.close()


if __name__ == "__main__":
    Test().run([v for k, v in list(globals().items()) if k.startswith("test_")])
