/**
 * The WebSocket wire codec's plain TypeScript values (schemas/skiff.fbs): what `decodeFrame`
 * (wire-decode.ts) returns and `encodeFrame` / `ResponseEncoder` (wire-encode.ts) take, and the
 * decoder's limits. No FlatBuffers type appears here.
 */
import type { ErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DataType } from '../tensor/datatype.js';

export interface WireRequest {
  id: bigint;
  model: string;
  version: number;
  timeoutUs: number;
  deadlineUnixUs: number;
  inputs: Tensor[];
  outputs: string[];
  app: string;
  user: string;
  /** Set when THIS request is malformed; the rest of the frame still decodes. */
  error?: ErrorInfo;
}

export interface WireFeedback {
  id: bigint;
  app: string;
  user: string;
  inputs: Tensor[];
  label: number;
  error?: ErrorInfo;
}

/**
 * An answer. Optional fields are absent (not empty) when unset: the codec omits empty strings,
 * empty lists and `false` on the wire and leaves them out when decoding.
 */
export interface WireResponse {
  id: bigint;
  model: string;
  version: number;
  outputs: Tensor[];
  error?: ErrorInfo;
  isDefault?: boolean;
  defaultExplanation?: string;
  modelsUsed?: string[];
  modelsMissing?: string[];
}

export interface DecodedFrame {
  requests: WireRequest[];
  feedback: WireFeedback[];
  cancel: bigint[];
  responses: WireResponse[];
  /** Frame-level error record (a server telling the client its frame could not be decoded). */
  error?: ErrorInfo;
}

/**
 * A frame of requests that differ only in their ids and their one input's row (the common frame
 * of a streaming client): decoded without an object per request. Every request names the same
 * model and version, has the same timeout and deadline, no app, user or output list, and one
 * input tensor of the same name, datatype and shape [1, ...rowShape]; `data` holds the rows back
 * to back, in request order.
 */
export interface UniformRequests {
  ids: bigint[];
  model: string;
  version: number;
  timeoutUs: number;
  deadlineUnixUs: number;
  name: string;
  datatype: DataType;
  /** The input's shape without its leading 1. */
  rowShape: number[];
  rowBytes: number;
  /** All rows, one slab reference (the owner releases it once nothing reads the rows). */
  data: Uint8Array;
}

export interface WireLimits {
  /** Per request/feedback/response: input or output tensors, and names in `outputs`. */
  maxTensorsPerRequest: number;
  /** Per frame, for each of requests, feedback, cancels and responses. */
  maxRequestsPerFrame: number;
  /** Per tensor shape. */
  maxDims: number;
}

export const DEFAULT_WIRE_LIMITS: Readonly<WireLimits> = Object.freeze({
  maxTensorsPerRequest: 64,
  maxRequestsPerFrame: 4096,
  maxDims: 32,
});

export type RequestInit = Partial<Omit<WireRequest, 'error'>>;
export type FeedbackInit = Partial<Omit<WireFeedback, 'error'>>;
export interface FrameInit {
  requests?: RequestInit[];
  feedback?: FeedbackInit[];
  cancel?: bigint[];
  responses?: WireResponse[];
  error?: ErrorInfo;
}
