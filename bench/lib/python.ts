/**
 * Where the Python baseline lives and what it needs: Debian's python3 and packages (CI installs
 * them; see docs/benchmarks.md).
 */
import { fileURLToPath } from 'node:url';

export const PYTHON = '/usr/bin/python3';
/** FastAPI + numpy server and its numpy forward pass (bench/baselines/fastapi_numpy.py). */
export const FASTAPI_SCRIPT = fileURLToPath(new URL('../../../bench/baselines/fastapi_numpy.py', import.meta.url));
/** Debian's packages the baseline needs. */
export const FASTAPI_PACKAGES = 'python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-onnx python3-numpy';
