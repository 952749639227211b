"""A Python client for Skiff's WebSocket protocol: FlatBuffers frames (schemas/skiff.fbs, code made
by flatc in skiff.wire) over one connection (websocket-client), many queries in flight, answers
matched by id in whatever order they come.

    from skiff.client import Client
    import numpy as np

    with Client("ws://127.0.0.1:8000/ws") as c:
        r = c.infer(model="mnist_mlp", inputs={"input": np.zeros((1, 784), np.float32)})
        print(r.outputs["label"])                      # numpy arrays by output name
        futures = [c.submit(model="mnist_mlp", inputs={"input": x}) for x in batch]
        answers = [f.result() for f in futures]        # concurrent.futures.Future
        c.feedback(app="digits", inputs={"input": x}, label=7)

An answer with an error is returned, not raised: `r.error` is `(code, message)` (see
docs/errors.md). Calls raise only for what cannot be sent, or a lost connection.

Needs numpy, flatbuffers and websocket-client (Debian: python3-numpy, python3-flatbuffers,
python3-websocket).
"""
import itertools
import struct
import threading
from concurrent.futures import Future

import flatbuffers
import numpy as np
import websocket

from skiff.wire import Feedback as FbFeedback
from skiff.wire import Frame as FbFrame
from skiff.wire import Request as FbRequest
from skiff.wire import Tensor as FbTensor
from skiff.wire.DataType import DataType

_IDENT = b"SKF1"

_TO_WIRE = {
    np.dtype(np.bool_): DataType.BOOL, np.dtype(np.uint8): DataType.UINT8, np.dtype(np.uint16): DataType.UINT16,
    np.dtype(np.uint32): DataType.UINT32, np.dtype(np.uint64): DataType.UINT64, np.dtype(np.int8): DataType.INT8,
    np.dtype(np.int16): DataType.INT16, np.dtype(np.int32): DataType.INT32, np.dtype(np.int64): DataType.INT64,
    np.dtype(np.float16): DataType.FP16, np.dtype(np.float32): DataType.FP32, np.dtype(np.float64): DataType.FP64,
}
_FROM_WIRE = {v: k.newbyteorder("<") for k, v in _TO_WIRE.items()}


class Answer:
    """One answer: `outputs` (name -> numpy array; BYTES outputs as lists of bytes), `error`
    ((code, message) or None), and for applications `is_default`, `models_used`, `models_missing`."""

    __slots__ = ("id", "model", "version", "outputs", "error", "is_default", "default_explanation", "models_used", "models_missing")

    def __repr__(self):
        what = f"error={self.error}" if self.error else f"outputs={list(self.outputs)}"
        return f"Answer(id={self.id}, model={self.model!r}, {what})"


def _bytes_elements(data):
    out, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(bytes(data[i + 4:i + 4 + n]))
        i += 4 + n
    return out


def _tensor_out(t):
    shape = tuple(t.ShapeAsNumpy().tolist()) if not t.ShapeIsNone() else ()
    raw = t.DataAsNumpy() if not t.DataIsNone() else np.zeros(0, np.uint8)
    dt = t.Datatype()
    if dt == DataType.BYTES:
        return _bytes_elements(raw.tobytes())
    return np.frombuffer(raw.tobytes(), dtype=_FROM_WIRE[dt]).reshape(shape)


def _strings(b, names):
    return [b.CreateString(n) for n in names]


def _vector(b, start, items, prepend=None):
    start(b, len(items))
    for x in reversed(items):
        (prepend or b.PrependUOffsetTRelative)(x)
    return b.EndVector()


def _tensor_in(b, name, value):
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (bytes, str)):
        items = [v.encode() if isinstance(v, str) else v for v in value]
        data = b"".join(struct.pack("<I", len(v)) + v for v in items)
        dt, shape = DataType.BYTES, (len(items),)
    else:
        arr = np.ascontiguousarray(value)
        if arr.dtype not in _TO_WIRE:
            raise TypeError(f"input {name!r}: unsupported dtype {arr.dtype}")
        dt, shape = _TO_WIRE[arr.dtype], arr.shape
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    n = b.CreateString(name)
    d = b.CreateByteVector(data)
    FbTensor.StartShapeVector(b, len(shape))
    for s in reversed(shape):
        b.PrependInt64(int(s))
    sh = b.EndVector()
    FbTensor.Start(b)
    FbTensor.AddName(b, n)
    FbTensor.AddDatatype(b, dt)
    FbTensor.AddShape(b, sh)
    FbTensor.AddData(b, d)
    return FbTensor.End(b)


class Client:
    """One WebSocket connection; thread-safe. `submit` returns a Future, `infer` waits for it."""

    def __init__(self, url, timeout=10.0, header=None):
        self._ws = websocket.create_connection(url, timeout=timeout, header=header or [], enable_multithread=True)
        self._ws.settimeout(None)
        self._ids = itertools.count(1)
        self._pending = {}
        #: The most queries this connection has had in flight at once.
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._closed = None
        self._reader = threading.Thread(target=self._read, name="skiff-client-reader", daemon=True)
        self._reader.start()

    # -- public ---------------------------------------------------------------------------------
    def submit(self, inputs, model=None, app=None, version=0, user=None, timeout_ms=None, outputs=None):
        """Sends one query; returns a Future of its Answer. `inputs`: name -> numpy array (or a
        list of bytes/str for BYTES). `timeout_ms`: the query's deadline from its arrival."""
        return self.submit_many([dict(inputs=inputs, model=model, app=app, version=version, user=user, timeout_ms=timeout_ms, outputs=outputs)])[0]

    def submit_many(self, queries):
        """Sends many queries in one frame; returns their Futures in order."""
        b = flatbuffers.Builder(1024)
        ids, reqs = [], []
        for q in queries:
            i = next(self._ids)
            ids.append(i)
            tensors = [_tensor_in(b, k, v) for k, v in q["inputs"].items()]
            ins = _vector(b, FbRequest.StartInputsVector, tensors)
            outs = _vector(b, FbRequest.StartOutputsVector, _strings(b, q.get("outputs") or [])) if q.get("outputs") else None
            model = b.CreateString(q["model"]) if q.get("model") else None
            app = b.CreateString(q["app"]) if q.get("app") else None
            user = b.CreateString(str(q["user"])) if q.get("user") is not None else None
            FbRequest.Start(b)
            FbRequest.AddId(b, i)
            if model is not None:
                FbRequest.AddModel(b, model)
            if app is not None:
                FbRequest.AddApp(b, app)
            if user is not None:
                FbRequest.AddUser(b, user)
            if q.get("version"):
                FbRequest.AddVersion(b, int(q["version"]))
            if q.get("timeout_ms") is not None:
                FbRequest.AddTimeoutUs(b, max(1, int(q["timeout_ms"] * 1000)))
            FbRequest.AddInputs(b, ins)
            if outs is not None:
                FbRequest.AddOutputs(b, outs)
            reqs.append(FbRequest.End(b))
        vec = _vector(b, FbFrame.StartRequestsVector, reqs)
        FbFrame.Start(b)
        FbFrame.AddRequests(b, vec)
        b.Finish(FbFrame.End(b), file_identifier=_IDENT)
        futures = [Future() for _ in ids]
        self._send(b.Output(), dict(zip(ids, futures)))
        return futures

    def infer(self, inputs, timeout=None, **kw):
        """`submit` and wait (`timeout`: seconds to wait here; `timeout_ms` goes to the server)."""
        return self.submit(inputs, **kw).result(timeout)

    def feedback(self, app, inputs, label, user=None, wait=True):
        """Feedback for an application: the true `label` of `inputs`. With `wait`, returns the
        server's Answer (its `models_used` are the models that learnt); else a Future."""
        b = flatbuffers.Builder(1024)
        i = next(self._ids)
        tensors = [_tensor_in(b, k, v) for k, v in inputs.items()]
        ins = _vector(b, FbFeedback.StartInputsVector, tensors)
        a = b.CreateString(app)
        u = b.CreateString(str(user)) if user is not None else None
        FbFeedback.Start(b)
        FbFeedback.AddId(b, i)
        FbFeedback.AddApp(b, a)
        if u is not None:
            FbFeedback.AddUser(b, u)
        FbFeedback.AddInputs(b, ins)
        FbFeedback.AddLabel(b, float(label))
        fb = FbFeedback.End(b)
        FbFrame.StartFeedbackVector(b, 1)
        b.PrependUOffsetTRelative(fb)
        vec = b.EndVector()
        FbFrame.Start(b)
        FbFrame.AddFeedback(b, vec)
        b.Finish(FbFrame.End(b), file_identifier=_IDENT)
        f = Future()
        self._send(b.Output(), {i: f})
        return f.result() if wait else f

    def cancel(self, future_or_id):
        """Asks the server to cancel a query in flight (its Future then gets the server's answer)."""
        i = future_or_id if isinstance(future_or_id, int) else next((k for k, f in self._pending.items() if f is future_or_id), None)
        if i is None:
            return
        b = flatbuffers.Builder(64)
        FbFrame.StartCancelVector(b, 1)
        b.PrependUint64(i)
        vec = b.EndVector()
        FbFrame.Start(b)
        FbFrame.AddCancel(b, vec)
        b.Finish(FbFrame.End(b), file_identifier=_IDENT)
        self._send(b.Output(), {})

    @property
    def in_flight(self):
        return len(self._pending)

    def close(self):
        self._fail(ConnectionError("client closed before the answer arrived"))
        try:
            self._ws.close()
        except Exception:
            pass
        self._reader.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals --------------------------------------------------------------------------------
    def _send(self, data, futures):
        with self._lock:
            if self._closed:
                raise self._closed
            self._pending.update(futures)
            self.peak_in_flight = max(self.peak_in_flight, len(self._pending))
        try:
            self._ws.send(bytes(data), opcode=websocket.ABNF.OPCODE_BINARY)
        except Exception as e:
            self._fail(ConnectionError(f"send failed: {e}"))
            raise

    def _read(self):
        try:
            while True:
                opcode, data = self._ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise ConnectionError("the server closed the connection")
                if opcode != websocket.ABNF.OPCODE_BINARY:
                    continue
                self._dispatch(data)
        except Exception as e:  # the connection is gone: everything waiting fails
            self._fail(e if isinstance(e, ConnectionError) else ConnectionError(f"connection lost: {e}"))

    def _dispatch(self, data):
        frame = FbFrame.Frame.GetRootAs(data, 0)
        for k in range(frame.ResponsesLength()):
            r = frame.Responses(k)
            with self._lock:
                f = self._pending.pop(r.Id(), None)
            if f is None:
                continue
            a = Answer()
            a.id, a.model, a.version = r.Id(), (r.Model() or b"").decode(), r.Version()
            a.outputs = {}
            for j in range(r.OutputsLength()):
                t = r.Outputs(j)
                a.outputs[t.Name().decode()] = _tensor_out(t)
            err = r.Error()
            a.error = ((err.Code() or b"").decode(), (err.Message() or b"").decode()) if err is not None else None
            a.is_default = r.IsDefault()
            a.default_explanation = (r.DefaultExplanation() or b"").decode()
            a.models_used = [r.ModelsUsed(j).decode() for j in range(r.ModelsUsedLength())]
            a.models_missing = [r.ModelsMissing(j).decode() for j in range(r.ModelsMissingLength())]
            f.set_result(a)

    def _fail(self, err):
        with self._lock:
            if self._closed is None:
                self._closed = err
            pending, self._pending = self._pending, {}
        for f in pending.values():
            if not f.done():
                f.set_exception(err)
