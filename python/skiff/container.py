"""Serve a Python model to Skiff as a model container.

A model container is a process that connects to Skiff's container RPC port (Clipper's RPC,
version 3, over ZeroMQ) and answers batches of inputs with one string per input. Skiff batches,
caches, times out and selects among containers like any other model. This module needs only
pyzmq and numpy.

    from skiff.container import serve

    def predict(batch):              # a 2-D numpy array (one row per query), or a list
        return [int(row.sum() > 0) for row in batch]

    serve(predict, input_type="doubles")

An object with a ``predict`` method (a scikit-learn estimator) works as well: ``serve(model)``.
Each answer is turned into a string: numbers as plain numbers ("7", "0.25"), arrays and lists as
JSON, strings as they are.

Where to connect and what to announce comes from the environment Skiff (or Clipper) gives a
container: CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_IP (default 127.0.0.1),
CLIPPER_PORT (default 7000), CLIPPER_INPUT_TYPE (default "doubles"); keyword arguments override
them (a process Skiff launches gets SKIFF_RPC_ADDRESS, a Unix socket, which it prefers). Input types: "bytes" (each input a bytes object), "ints" (int32), "floats" (float32),
"doubles" (float64), "strings" (each input a str).

A predict function that raises is logged to stderr with its traceback and the batch is answered
with no outputs, which Skiff reports to the clients of that batch as a model error; the container
keeps serving. When the process that launched the container dies (SKIFF_PARENT_PID), it exits.
"""

import json
import os
import struct
import sys
import time
import traceback

import numpy as np
import zmq

RPC_VERSION = 3

MESSAGE_NEW_CONTAINER = 0
MESSAGE_CONTAINER_CONTENT = 1
MESSAGE_HEARTBEAT = 2

HEARTBEAT_KEEPALIVE = 0
HEARTBEAT_REQUEST_METADATA = 1

REQUEST_PREDICT = 0

INPUT_TYPES = {"bytes": 0, "ints": 1, "floats": 2, "doubles": 3, "strings": 4}
_ALIASES = {
    "b": "bytes", "byte": "bytes",
    "i": "ints", "int": "ints", "integer": "ints", "integers": "ints",
    "f": "floats", "float": "floats",
    "d": "doubles", "double": "doubles",
    "s": "strings", "string": "strings", "str": "strings", "strs": "strings",
}
_DTYPES = {1: np.dtype("<i4"), 2: np.dtype("<f4"), 3: np.dtype("<f8")}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_EMPTY = b""
_VERSION = _U32.pack(RPC_VERSION)
_CONTENT = _U32.pack(MESSAGE_CONTAINER_CONTENT)

POLL_MS = 5000
SILENCE_S = 30.0


def _raw_io(sock):
    """The socket's send, recv and get from pyzmq's compiled layer.

    pyzmq's send_multipart and recv_multipart check every frame in Python, which costs a few
    microseconds per frame; a predict request has eight frames and its answer six, so on a batch of
    one that is most of the container's own time. The compiled methods take the same arguments.
    Falls back to the public methods on a pyzmq that is laid out differently.
    """
    for klass in type(sock).__mro__:
        if klass.__module__.startswith("zmq.backend") and all(hasattr(klass, m) for m in ("send", "recv", "get")):
            return klass.send, klass.recv, klass.get
    return type(sock).send, type(sock).recv, type(sock).getsockopt


def input_type_code(name):
    """Clipper's code for an input type name (or one of its aliases)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in INPUT_TYPES:
        raise ValueError("unknown input type %r; use one of %s" % (name, ", ".join(INPUT_TYPES)))
    return INPUT_TYPES[key]


def to_output(value):
    """One prediction as the string a container answers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist())
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=lambda x: x.item() if isinstance(x, np.generic) else str(x))
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def decode_inputs(input_type, frames):
    """The inputs of one batch (bytes frames): a 2-D array when every numeric input has the same length."""
    if input_type == INPUT_TYPES["strings"]:
        return [f.decode("utf-8", "replace") for f in frames]
    if input_type == INPUT_TYPES["bytes"]:
        return list(frames)
    dtype = _DTYPES[input_type]
    first = len(frames[0])
    if all(len(f) == first for f in frames):
        return np.frombuffer(b"".join(frames), dtype=dtype).reshape(len(frames), -1)
    return [np.frombuffer(f, dtype=dtype) for f in frames]


def to_outputs(result):
    """A batch's predictions as strings (a fast path for a 1-D numeric array)."""
    if isinstance(result, np.ndarray) and result.ndim == 1 and result.dtype.kind in "iub":
        return [str(v) for v in result.tolist()]
    if isinstance(result, np.ndarray) and result.ndim == 1 and result.dtype.kind == "f":
        return [str(v) for v in result.tolist()]
    return [to_output(v) for v in result]


class Container:
    """One connection to Skiff's RPC port, serving ``predict`` for (name, version)."""

    def __init__(self, predict, input_type, name, version, host, port, log=sys.stderr):
        self.predict = predict
        self.input_type = input_type_code(input_type)
        self.name = name
        self.version = str(version)
        self.address = "tcp://%s:%d" % (host, int(port))
        self.log = log
        self.context = zmq.Context.instance()
        parent = os.environ.get("SKIFF_PARENT_PID")
        self.parent = int(parent) if parent and parent.isdigit() else None

    def _send(self, sock, frames):
        send = self._raw_send
        last = len(frames) - 1
        for i, f in enumerate(frames):
            send(sock, f, zmq.SNDMORE if i < last else 0)

    def _recv(self, sock):
        recv, get = self._raw_recv, self._raw_get
        frames = [recv(sock, 0)]
        while get(sock, zmq.RCVMORE):
            frames.append(recv(sock, 0))
        return frames

    def _send_heartbeat(self, sock):
        self._send(sock, [_EMPTY, _U32.pack(MESSAGE_HEARTBEAT)])

    def _send_metadata(self, sock):
        self._send(sock, [
            _EMPTY, _U32.pack(MESSAGE_NEW_CONTAINER), self.name.encode("utf-8"), self.version.encode("utf-8"),
            str(self.input_type).encode("ascii"), _VERSION,
        ])

    def _answer(self, sock, msg_id, outputs):
        encoded = [o.encode("utf-8") for o in outputs]
        n = len(encoded)
        header = struct.pack("<%dQ" % (n + 1), n, *map(len, encoded))
        self._send(sock, [_EMPTY, _CONTENT, msg_id, _U64.pack(len(header)), header] + encoded)

    def _predict(self, frames):
        """Run the model on one batch; [] (no outputs) when it fails."""
        try:
            batch = decode_inputs(self.input_type, frames)
            result = self.predict(batch)
            outputs = to_outputs(result)
            if len(outputs) != len(frames):
                raise ValueError("predict returned %d outputs for %d inputs" % (len(outputs), len(frames)))
            return outputs
        except Exception:  # the container keeps serving; Skiff fails this batch
            traceback.print_exc(file=self.log)
            self.log.flush()
            return []

    def _handle(self, sock, frames):
        if len(frames) < 3 or frames[0]:
            return
        msg_type = _U32.unpack(frames[2])[0]
        if msg_type == MESSAGE_HEARTBEAT:
            if len(frames) > 3 and _U32.unpack(frames[3])[0] == HEARTBEAT_REQUEST_METADATA:
                self._send_metadata(sock)
            return
        if msg_type != MESSAGE_CONTAINER_CONTENT or len(frames) < 7:
            return
        msg_id = frames[3]
        if _U32.unpack(frames[4])[0] != REQUEST_PREDICT:
            return
        input_type = _U64.unpack_from(frames[6])[0]
        if input_type != self.input_type:
            print("skiff.container: got input type %d, serving %d; batch refused" % (input_type, self.input_type), file=self.log)
            self._answer(sock, msg_id, [])
            return
        self._answer(sock, msg_id, self._predict(frames[7:]))

    def _parent_alive(self):
        return self.parent is None or os.getppid() == self.parent

    def run(self):
        """Serve until the process is stopped (reconnecting after a silent server)."""
        while self._parent_alive():
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            # A blocking receive with a timeout: one system call per message on the hot path.
            sock.setsockopt(zmq.RCVTIMEO, POLL_MS)
            sock.connect(self.address)
            self._raw_send, self._raw_recv, self._raw_get = _raw_io(sock)
            self._send_heartbeat(sock)
            last = time.monotonic()
            try:
                while self._parent_alive():
                    try:
                        frames = self._recv(sock)
                    except zmq.Again:
                        if time.monotonic() - last >= SILENCE_S:
                            break  # the server went away: a new socket, a new session
                        self._send_heartbeat(sock)
                        continue
                    self._handle(sock, frames)
                    last = time.monotonic()
            finally:
                sock.close(0)


def serve(model, input_type=None, name=None, version=None, host=None, port=None):
    """Serve ``model`` (a function of a batch, or an object with ``predict``) until stopped."""
    predict = model.predict if hasattr(model, "predict") else model
    if not callable(predict):
        raise TypeError("serve() needs a function of a batch or an object with a predict method")
    env = os.environ
    name = name or env.get("CLIPPER_MODEL_NAME")
    version = version if version is not None else env.get("CLIPPER_MODEL_VERSION")
    if not name or version is None:
        raise ValueError("the model name and version come from CLIPPER_MODEL_NAME / CLIPPER_MODEL_VERSION or serve(name=, version=)")
    c = Container(
        predict,
        input_type or env.get("CLIPPER_INPUT_TYPE", "doubles"),
        name,
        version,
        host or env.get("CLIPPER_IP", "127.0.0.1"),
        port or int(env.get("CLIPPER_PORT", "7000")),
    )
    # Skiff gives the processes it launches a Unix socket too (a shorter path than TCP).
    if host is None and port is None and env.get("SKIFF_RPC_ADDRESS"):
        c.address = env["SKIFF_RPC_ADDRESS"]
    c.run()


def _main(argv):
    import argparse
    import importlib

    p = argparse.ArgumentParser(prog="python3 -m skiff.container", description="Serve module:attr (a function or a model object) to Skiff.")
    p.add_argument("target", help="module:attribute, e.g. mymodel:predict")
    p.add_argument("--input-type", default=None)
    a = p.parse_args(argv)
    mod, _, attr = a.target.partition(":")
    serve(getattr(importlib.import_module(mod), attr or "predict"), input_type=a.input_type)


if __name__ == "__main__":
    _main(sys.argv[1:])
