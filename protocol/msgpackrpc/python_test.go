package msgpackrpc

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// pythonClient talks to the server with Python's msgpack (a third-party implementation) over a raw socket.
const pythonClient = `
import msgpack, socket, sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
u = msgpack.Unpacker(raw=False)

def recv():
    while True:
        try:
            return u.unpack()
        except msgpack.OutOfData:
            data = s.recv(65536)
            if not data:
                raise EOFError("server closed")
            u.feed(data)

def check(got, want):
    if got != want:
        raise AssertionError("got %r, want %r" % (got, want))

params = [b"key", "str", 7, -3, 1.5, None, True, {"r": 2}, [1, [2]], 2**40, 2**64 - 1]
s.sendall(msgpack.packb([0, 1, "echo", params]))
check(recv(), [1, 1, None, params])

# Method as bin, and old-style raw str (use_bin_type=False).
s.sendall(msgpack.packb([0, 2, b"ping", []], use_bin_type=True))
check(recv(), [1, 2, None, "pong"])
s.sendall(msgpack.packb([0, 3, "echo", [b"raw"]], use_bin_type=False))
check(recv(), [1, 3, None, ["raw"]])

# A notification gets no response.
s.sendall(msgpack.packb([2, "ping", []]))
s.sendall(msgpack.packb([0, 4, "ping", []]))
check(recv(), [1, 4, None, "pong"])

# Errors, a struct result, a bad message that keeps the connection.
s.sendall(msgpack.packb([0, 5, "fail", []]))
check(recv(), [1, 5, {"code": "not_found", "message": "no such key", "got": 1, "need": 2}, None])
s.sendall(msgpack.packb([0, 6, "struct", []]))
check(recv(), [1, 6, None, {"a": 1, "b": b"bin", "c": "str"}])
s.sendall(msgpack.packb([1, 7, None, None]))
r = recv()
check((r[0], r[1], r[2]["code"], r[3]), (1, 7, "bad_request", None))
s.sendall(msgpack.packb([0, 8, "nosuch", []]))
check(recv()[2]["code"], "unknown_method")

# Pipelined in one write.
s.sendall(b"".join(msgpack.packb([0, 100 + i, "echo", [i]]) for i in range(50)))
got = sorted(recv()[1] for _ in range(50))
check(got, list(range(100, 150)))
print("OK")
`

func TestPythonMsgpackClient(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import msgpack").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs %s with python3-msgpack: %v", python, err)
		}
		t.Skipf("%s with python3-msgpack not available: %v", python, err)
	}
	_, addr := startServer(t, Config{}, newTestHandler())
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	out, err := exec.Command(python, "-c", pythonClient, port).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("python client: %v\n%s", err, out)
	}
}
