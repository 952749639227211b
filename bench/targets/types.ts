/**
 * A benchmark target: the models it needs in the shared repository, and the procedure that
 * measures it against its baseline in the same run.
 */
import type { BenchContext, TargetResult } from '../lib/context.js';
import type { BenchModel, DelaySpec, ModelKind } from '../lib/models.js';
import type { ChildHandle } from '../lib/child.js';

export interface ModelDecl {
  name: string;
  kind: ModelKind;
  config?: Record<string, unknown>;
  delay?: DelaySpec;
}

/** The servers under test, shared by the targets of one runner invocation. */
export interface BenchEnv {
  repo: string;
  /** Skiff (bench/servers/skiff-host.js) serving `repo`. */
  skiff: ChildHandle;
  wsUrl: string;
  httpUrl: string;
  models: Record<string, BenchModel>;
  /** Baseline (c): the uWS echo server's WebSocket URL (started on first use). */
  echoUrl(): Promise<string>;
  /** Baseline (b): the hand-written node:http server for `model` (started on first use). */
  naiveUrl(model: BenchModel): Promise<string>;
  /** Baseline (d): FastAPI + numpy on uvicorn, two workers, for `model` (started on first use; rejects when Python or its packages are missing). */
  pythonUrl(model: BenchModel): Promise<string>;
}

export interface Target {
  id: string;
  title: string;
  models(quick: boolean): ModelDecl[];
  run(ctx: BenchContext, env: BenchEnv): Promise<TargetResult>;
}
