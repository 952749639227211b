/**
 * The WebSocket wire codec: one FlatBuffers `Frame` (schemas/skiff.fbs, identifier "SKF1") per
 * binary message. Plain TypeScript values go in and come out; FlatBuffers objects never leave
 * the codec.
 *
 * The codec lives in three modules: wire-types.ts (the values and the decoder's limits),
 * wire-decode.ts (`decodeFrame`: the checked reader, its failure model and budget) and
 * wire-encode.ts (`encodeFrame`, `ResponseEncoder`). This module re-exports all three: it is
 * the public entry, and what modules that take both directions import.
 */
export * from './wire-types.js';
export * from './wire-decode.js';
export * from './wire-encode.js';
