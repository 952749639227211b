"""Baseline (d): the inference server a Python user writes. FastAPI on uvicorn (uvloop event
loop, httptools parser), two worker processes, an OIP-shaped JSON body declared as pydantic
models, and the model's forward pass in numpy over the same ONNX weights Skiff serves (read
with python3-onnx). All from Debian's packages:

    apt-get install -y python3-fastapi python3-uvicorn python3-uvloop python3-httptools \
        python3-onnx python3-numpy

Usage:
    python3 fastapi_numpy.py serve MODEL.onnx MODEL_NAME [WORKERS]
        binds 127.0.0.1 on a free port, prints {"port": N} on one line, serves until SIGTERM
    python3 fastapi_numpy.py forward MODEL.onnx < {"input": [[...], ...]}
        prints the forward pass's outputs as JSON (for the test against ONNX Runtime)

The numpy forward pass interprets the few ONNX operators the project's benchmark models use
(Gemm, MatMul, Add, Relu, Softmax, ArgMax, Identity); anything else is refused at load.
"""
import json
import os
import socket
import sys
from typing import Dict, List, Optional

import numpy as np
import onnx
from onnx import numpy_helper


class NumpyModel:
    """An ONNX graph of supported operators, run with numpy (float32 throughout)."""

    SUPPORTED = {"Gemm", "MatMul", "Add", "Relu", "Softmax", "ArgMax", "Identity"}

    def __init__(self, path: str):
        graph = onnx.load(path).graph
        self.weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.inputs = [i.name for i in graph.input if i.name not in self.weights]
        self.outputs = [o.name for o in graph.output]
        self.nodes = []
        for n in graph.node:
            if n.op_type not in self.SUPPORTED:
                raise ValueError(f"operator {n.op_type} is not supported by the numpy baseline")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))
        # Gemm with transB: transpose the weight once, not per call.
        for i, (op, ins, outs, attrs) in enumerate(self.nodes):
            if op == "Gemm" and attrs.get("transB", 0) and ins[1] in self.weights:
                self.weights[ins[1]] = np.ascontiguousarray(self.weights[ins[1]].T)
                attrs = dict(attrs, transB=0)
                self.nodes[i] = (op, ins, outs, attrs)

    def forward(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        env = dict(self.weights)
        env.update(feeds)
        for op, ins, outs, attrs in self.nodes:
            x = [env[name] for name in ins if name]
            if op == "Gemm":
                a, b = x[0], x[1]
                if attrs.get("transA", 0):
                    a = a.T
                if attrs.get("transB", 0):
                    b = b.T
                y = attrs.get("alpha", 1.0) * (a @ b)
                if len(x) > 2:
                    y = y + attrs.get("beta", 1.0) * x[2]
            elif op == "MatMul":
                y = x[0] @ x[1]
            elif op == "Add":
                y = x[0] + x[1]
            elif op == "Relu":
                y = np.maximum(x[0], 0)
            elif op == "Softmax":
                axis = attrs.get("axis", -1)
                e = np.exp(x[0] - x[0].max(axis=axis, keepdims=True))
                y = e / e.sum(axis=axis, keepdims=True)
            elif op == "ArgMax":
                y = np.argmax(x[0], axis=attrs.get("axis", 0))
                if attrs.get("keepdims", 1):
                    y = np.expand_dims(y, attrs.get("axis", 0))
                y = y.astype(np.int64)
            else:  # Identity
                y = x[0]
            env[outs[0]] = y.astype(np.float32, copy=False) if y.dtype == np.float64 else y
        return {name: env[name] for name in self.outputs}


def datatype(a: np.ndarray) -> str:
    return {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}.get(a.dtype, "FP32")


def build_app():
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    model = NumpyModel(os.environ["SKIFF_BENCH_ONNX"])
    model_name = os.environ["SKIFF_BENCH_MODEL_NAME"]

    class InputTensor(BaseModel):
        name: str
        shape: List[int]
        datatype: str
        data: List[float]

    class InferRequest(BaseModel):
        id: Optional[str] = None
        inputs: List[InputTensor]

    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready():
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, req: InferRequest):
        if name != model_name:
            raise HTTPException(status_code=404, detail="unknown model")
        feeds = {t.name: np.asarray(t.data, dtype=np.float32).reshape(t.shape) for t in req.inputs}
        out = model.forward(feeds)
        return {
            "model_name": model_name,
            "model_version": "1",
            "id": req.id,
            "outputs": [{"name": k, "datatype": datatype(v), "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in out.items()],
        }

    return app


# uvicorn's worker processes import this module and look up `app` (an import string is what
# uvicorn needs to start more than one worker).
app = build_app() if "SKIFF_BENCH_ONNX" in os.environ else None


def serve(path: str, name: str, workers: int) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ["SKIFF_BENCH_ONNX"] = path
    os.environ["SKIFF_BENCH_MODEL_NAME"] = name
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    config = uvicorn.Config("fastapi_numpy:app", loop="uvloop", http="httptools", workers=workers,
                            access_log=False, log_level="warning", backlog=2048)
    server = uvicorn.Server(config=config)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    if workers > 1:
        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


def forward_cli(path: str) -> None:
    model = NumpyModel(path)
    req = json.load(sys.stdin)
    feeds = {k: np.asarray(v, dtype=np.float32) for k, v in req.items()}
    out = model.forward(feeds)
    json.dump({k: {"shape": list(v.shape), "data": v.ravel().tolist()} for k, v in out.items()}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2)
    elif len(sys.argv) == 3 and sys.argv[1] == "forward":
        forward_cli(sys.argv[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
