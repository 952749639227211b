import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { createRingBuffer, maxRecordBytes, Ring, ringBytes } from '../../src/engine/ring/ring.js';
import {
  errorRecordBytes, readTensorList, recordSeq, STATUS_ERROR, STATUS_OK, tensorBytesInRecord, tensorListBytes,
  tensorRefsBytesInRecord, TensorListWriter, writeErrorRecord,
} from '../../src/engine/ring/layout.js';
import { Prng } from '../../src/modelgen/prng.js';
import {
  checksumStep, CHECKSUM_SEED, fillRecord, recordLength, type ConsumerInit, type ConsumerReport,
} from './fixtures/ring-pattern.js';

/** Ring header size and record header size, as documented in ring.ts. */
const HEADER = 64;
const REC_HEADER = 8;
const WRAP = 0xffffffff;
const align8 = (n: number): number => (n + 7) & ~7;

function headPos(sab: SharedArrayBuffer, capacity: number): number {
  return (Atomics.load(new Int32Array(sab, 0, 2), 0) >>> 0) & (capacity - 1);
}

function put(ring: Ring, payload: Uint8Array, tag = 0): boolean {
  const v = ring.reserve(payload.length, tag);
  if (!v) return false;
  v.set(payload);
  ring.commit();
  return true;
}

function bytes(n: number, start: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i * 3) & 0xff);
}

function take(ring: Ring): { tag: number; data: Uint8Array } | null {
  const v = ring.peek();
  if (!v) return null;
  const out = { tag: ring.lastTag, data: v.slice() };
  ring.release();
  return out;
}

/** Move head and tail forward by `n` bytes (a multiple of 8) with drained records. */
function advance(ring: Ring, n: number): void {
  while (n > 0) {
    const total = Math.min(n, 128);
    assert.ok(put(ring, new Uint8Array(total - REC_HEADER)));
    take(ring);
    n -= total;
  }
}

describe('ring: construction', () => {
  it('accepts power-of-two capacities >= 64 and sizes the SAB with the header', () => {
    for (const cap of [64, 128, 1024, 1 << 16]) {
      const sab = createRingBuffer(cap);
      assert.equal(sab.byteLength, ringBytes(cap));
      assert.equal(new Ring(sab).capacity, cap);
      assert.equal(new Ring(sab).used(), 0);
    }
  });

  it('rejects capacities that are not powers of two or too small', () => {
    for (const cap of [0, 32, 63, 100, 1000, 64.5, -64]) {
      assert.throws(() => createRingBuffer(cap), RangeError, `capacity ${cap}`);
    }
  });

  it('maxRecordBytes is half the capacity minus the record header', () => {
    assert.equal(maxRecordBytes(256), 120);
    assert.equal(maxRecordBytes(1 << 20), (1 << 19) - REC_HEADER);
  });
});

describe('ring: single thread', () => {
  it('round-trips records with their tags in FIFO order', () => {
    const ring = new Ring(createRingBuffer(1024));
    assert.equal(ring.peek(), null);
    const sent = [bytes(5, 1), bytes(0, 0), bytes(64, 9), bytes(13, 200)];
    sent.forEach((b, i) => assert.ok(put(ring, b, 100 + i)));
    assert.equal(ring.used(), sent.reduce((n, b) => n + REC_HEADER + align8(b.length), 0));
    sent.forEach((b, i) => {
      const got = take(ring);
      assert.ok(got);
      assert.equal(got.tag, 100 + i);
      assert.deepEqual(got.data, b);
    });
    assert.equal(ring.peek(), null);
    assert.equal(ring.used(), 0);
  });

  it('hands out 8-byte aligned payload views into the SAB', () => {
    const ring = new Ring(createRingBuffer(1024));
    for (const n of [1, 3, 8, 17, 33]) {
      const v = ring.reserve(n)!;
      assert.equal(v.buffer, ring.sab);
      assert.equal(v.byteOffset % 8, 0);
      assert.equal(v.length, n);
      ring.commit();
    }
  });

  it('peek() is idempotent until release()', () => {
    const ring = new Ring(createRingBuffer(256));
    put(ring, bytes(10, 1), 7);
    put(ring, bytes(10, 50), 8);
    const a = ring.peek()!.slice();
    const b = ring.peek()!.slice();
    assert.deepEqual(a, b);
    assert.equal(ring.lastTag, 7);
    ring.release();
    assert.equal(ring.peek()![0], 50);
    assert.equal(ring.lastTag, 8);
  });

  it('abort() drops a reservation without publishing it', () => {
    const ring = new Ring(createRingBuffer(256));
    const v = ring.reserve(40, 1)!;
    v.fill(0xaa);
    ring.abort();
    assert.equal(ring.peek(), null);
    assert.equal(ring.used(), 0);
    assert.ok(put(ring, bytes(4, 3), 2));
    assert.deepEqual(take(ring), { tag: 2, data: bytes(4, 3) });
  });

  it('rejects protocol misuse', () => {
    const ring = new Ring(createRingBuffer(256));
    assert.throws(() => ring.commit());
    assert.throws(() => ring.release());
    ring.reserve(8);
    assert.throws(() => ring.reserve(8));
    ring.commit();
    ring.peek();
    ring.release();
    assert.throws(() => ring.release(), 'a second release() needs a new peek()');
  });

  it('throws when a record can never fit, and accepts exactly maxRecordBytes', () => {
    const ring = new Ring(createRingBuffer(256));
    assert.throws(() => ring.reserve(maxRecordBytes(256) + 1), RangeError);
    assert.throws(() => ring.reserve(10_000), RangeError);
    assert.equal(ring.used(), 0, 'a refused reservation leaves the ring untouched');
    const v = ring.reserve(maxRecordBytes(256));
    assert.ok(v);
    assert.equal(v.length, 120);
    ring.commit();
  });

  it('accepts a maxRecordBytes record whenever the ring has drained, at every head position', () => {
    const cap = 256;
    for (let start = 0; start < cap; start += 8) {
      const ring = new Ring(createRingBuffer(cap));
      advance(ring, start);
      assert.equal(headPos(ring.sab, cap), start);
      const big = bytes(maxRecordBytes(cap), start);
      assert.ok(put(ring, big, start), `empty ring at offset ${start} must take a max record`);
      assert.deepEqual(take(ring), { tag: start, data: big });
      assert.equal(ring.used(), 0);
    }
  });

  it('a full ring refuses with null, then accepts after the consumer releases', () => {
    const ring = new Ring(createRingBuffer(256));
    // 4 records of 56 payload bytes = 4 x 64 bytes: exactly full.
    for (let i = 0; i < 4; i++) assert.ok(put(ring, bytes(56, i), i));
    assert.equal(ring.used(), 256);
    assert.equal(ring.reserve(0), null);
    assert.equal(ring.reserve(56), null);
    assert.equal(take(ring)!.tag, 0);
    assert.ok(put(ring, bytes(56, 4), 4));
    for (let i = 1; i <= 4; i++) assert.deepEqual(take(ring), { tag: i, data: bytes(56, i) });
  });

  it('takes the WRAP path: marker at the old head, record at offset 0, skip counted until release', () => {
    const cap = 256;
    const ring = new Ring(createRingBuffer(cap));
    const raw = new DataView(ring.sab, HEADER, cap);
    // Two drained 112-byte records move head/tail to 224: 32 bytes remain before the end.
    advance(ring, 224);
    assert.equal(headPos(ring.sab, cap), 224);
    const payload = bytes(100, 77); // 8 + 104 = 112 bytes > 32
    const v = ring.reserve(payload.length, 9)!;
    assert.ok(v, 'an empty ring takes the record by wrapping');
    assert.equal(v.byteOffset, HEADER + REC_HEADER, 'record starts at data offset 0');
    assert.equal(raw.getUint32(224, true), WRAP, 'the wasted tail end is marked WRAP');
    v.set(payload);
    ring.commit();
    assert.equal(ring.used(), 32 + REC_HEADER + 104, 'the skipped bytes are held until release');
    assert.deepEqual(take(ring), { tag: 9, data: payload });
    assert.equal(ring.used(), 0);
    assert.equal(headPos(ring.sab, cap), 112);
  });

  it('an exact fit up to the end does not wrap', () => {
    const cap = 256;
    const ring = new Ring(createRingBuffer(cap));
    advance(ring, 128);
    // 128 bytes to the end: a 120-byte payload is exactly 128 bytes with its header.
    const v = ring.reserve(120, 1)!;
    assert.equal(v.byteOffset, HEADER + 128 + REC_HEADER);
    ring.commit();
    assert.equal(headPos(ring.sab, cap), 0);
    assert.equal(take(ring)!.tag, 1);
  });

  it('refuses a record that would fit only without the wrap skip, and leaves the ring intact', () => {
    const cap = 256;
    const ring = new Ring(createRingBuffer(cap));
    assert.ok(put(ring, bytes(88, 1), 1)); // [0, 96)
    assert.ok(put(ring, bytes(88, 2), 2)); // [96, 192)
    take(ring); // free: [0, 96) + [192, 256) = 160 bytes, but only 64 contiguous at the end
    // 112 payload = 120 bytes <= 160 free, yet needs 64 skip + 120 = 184.
    assert.equal(ring.reserve(112, 3), null);
    assert.equal(ring.used(), 96);
    assert.deepEqual(take(ring), { tag: 2, data: bytes(88, 2) });
    assert.ok(put(ring, bytes(112, 3), 3));
    assert.deepEqual(take(ring), { tag: 3, data: bytes(112, 3) });
  });

  it('keeps data intact over many thousands of random records with interleaved operations (seeded)', () => {
    const cap = 1024;
    const max = maxRecordBytes(cap);
    const sab = createRingBuffer(cap);
    // Start both counters just below 2^32 so the uint32 wrap of HEAD/TAIL is exercised too.
    const ctl = new Int32Array(sab, 0, 2);
    ctl[0] = ctl[1] = (2 ** 32 - 5000) | 0;
    const ring = new Ring(sab);
    const raw = new DataView(sab, HEADER, cap);
    const prng = new Prng(0xc0ffee);
    const pending: { tag: number; data: Uint8Array }[] = [];
    let tag = 0;
    let produced = 0;
    let consumed = 0;
    let wraps = 0;
    let refused = 0;
    for (let step = 0; step < 60_000; step++) {
      if (prng.next() < 0.55) {
        const len = prng.next() < 0.5 ? prng.int(65) : prng.int(max + 1);
        const pos = headPos(sab, cap);
        const v = ring.reserve(len, tag);
        if (!v) {
          assert.ok(pending.length > 0, 'an empty ring must accept any record up to the max');
          refused++;
          continue;
        }
        if (v.byteOffset === HEADER + REC_HEADER && pos !== 0) {
          assert.equal(raw.getUint32(pos, true), WRAP);
          wraps++;
        }
        for (let j = 0; j < len; j++) v[j] = prng.int(256);
        if (prng.next() < 0.05) {
          ring.abort();
          continue;
        }
        pending.push({ tag, data: v.slice() });
        ring.commit();
        tag++;
        produced++;
      } else {
        const v = ring.peek();
        if (pending.length === 0) {
          assert.equal(v, null);
          continue;
        }
        assert.ok(v, 'a published record must be visible');
        const want = pending.shift()!;
        assert.equal(ring.lastTag, want.tag);
        assert.deepEqual(v, want.data, `record ${want.tag}`);
        ring.release();
        consumed++;
      }
      assert.ok(ring.used() <= cap);
      assert.equal(ring.used() === 0, pending.length === 0);
    }
    for (let got = take(ring); got; got = take(ring)) {
      assert.deepEqual(got, pending.shift());
      consumed++;
    }
    assert.equal(pending.length, 0);
    assert.equal(consumed, produced);
    assert.equal(ring.used(), 0);
    assert.ok(produced > 10_000, `produced ${produced}`);
    assert.ok(wraps > 100, `WRAP path taken ${wraps} times`);
    assert.ok(refused > 100, `full-ring refusals ${refused}`);
  });
});

describe('ring: across threads', () => {
  it('a worker consumes records produced on the main thread through the same SAB', { timeout: 10_000 }, async () => {
    const cap = 4096;
    const maxLen = 1000;
    const count = 12_000;
    const seed = 12345;
    const sab = createRingBuffer(cap);
    const ring = new Ring(sab);
    const init: ConsumerInit = { sab, count, seed, maxLen, timeoutMs: 5000 };
    const worker = new Worker(new URL('./fixtures/ring-consumer.js', import.meta.url), { workerData: init });
    const report = new Promise<ConsumerReport>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`consumer exited early with ${code}`)));
    });
    const t0 = performance.now();
    let checksum = CHECKSUM_SEED;
    let waits = 0;
    try {
      for (let i = 0; i < count; i++) {
        const len = recordLength(seed, i, maxLen);
        let v = ring.reserve(len, i);
        while (!v) {
          // Never Atomics.wait on the main thread: yield to the event loop and retry.
          waits++;
          await new Promise((r) => setImmediate(r));
          assert.ok(performance.now() - t0 < 5000, 'producer stalled');
          v = ring.reserve(len, i);
        }
        fillRecord(seed, i, v);
        checksum = checksumStep(checksum, i, v);
        ring.commit();
      }
      const r = await report;
      assert.equal(r.timedOut, false);
      assert.equal(r.firstBad, -1, `first bad record: ${r.firstBad}`);
      assert.equal(r.consumed, count);
      assert.equal(r.checksum, checksum);
      assert.equal(ring.used(), 0, 'the consumer released everything');
      assert.ok(waits > 0, 'the ring filled at least once (the producer had to wait)');
    } finally {
      await worker.terminate();
    }
  });
});

describe('layout: tensor-list records', () => {
  const tensors = [
    { datatype: 11, dims: [3, 5], bytes: bytes(60, 1) },
    { datatype: 9, dims: [], bytes: bytes(8, 2) },
    { datatype: 2, dims: [2, 1, 3], bytes: bytes(6, 3) },
    { datatype: 11, dims: [0, 7], bytes: new Uint8Array(0) },
    { datatype: 1, dims: [70_000], bytes: bytes(70_000, 4) },
  ];

  function write(target: Uint8Array, seq: number, aux: number): number {
    const w = new TensorListWriter().begin(target, seq, tensors.length, aux);
    for (const t of tensors) w.tensor(t.datatype, t.dims, t.bytes.length).set(t.bytes);
    return w.length;
  }

  it('tensorListBytes accounts for headers, dims and 8-byte padding', () => {
    assert.equal(tensorBytesInRecord(0, 0), 16);
    assert.equal(tensorBytesInRecord(1, 1), 16 + 8 + 8);
    assert.equal(tensorBytesInRecord(3, 12), 16 + 16 + 16);
    assert.equal(tensorListBytes([]), 16);
    assert.equal(tensorListBytes([{ ndims: 2, byteLength: 60 }, { ndims: 0, byteLength: 8 }]), 16 + (16 + 8 + 64) + (16 + 0 + 8));
  });

  it('round-trips a tensor carried as pieces of shared memory beside one carried inline', () => {
    const items = [{ ndims: 2, byteLength: 48, pieces: 2 }, { ndims: 1, byteLength: 8 }];
    const size = tensorListBytes(items);
    assert.equal(size, 16 + tensorRefsBytesInRecord(2, 2) + tensorBytesInRecord(1, 8));
    assert.equal(tensorRefsBytesInRecord(2, 2), 16 + 8 + 8 + 2 * 16);
    const rec = new Uint8Array(size);
    const w = new TensorListWriter().begin(rec, 7, 2);
    w.tensorRefs(1, [3, 4], 48, 2);
    w.piece(5, 1024, 32);
    w.piece(6, 0, 16);
    w.tensor(9, [1], 8).set(bytes(8, 9));
    assert.equal(w.length, size, 'the writer fills exactly tensorListBytes');
    const [shared, inline] = readTensorList(rec).tensors;
    assert.deepEqual(shared!.dims, [3, 4]);
    assert.equal(shared!.byteLength, 48);
    assert.deepEqual(shared!.refs, [5, 1024, 32, 6, 0, 16]);
    assert.equal(shared!.data.byteLength, 0);
    assert.equal(inline!.refs, undefined);
    assert.deepEqual(inline!.data, bytes(8, 9));
  });

  it('round-trips several tensors with seq and aux; data offsets are 8-byte aligned', () => {
    const size = tensorListBytes(tensors.map((t) => ({ ndims: t.dims.length, byteLength: t.bytes.length })));
    // Place the record at offset 8 of a larger buffer: alignment is relative to the record start.
    const backing = new Uint8Array(size + 16);
    const rec = backing.subarray(8, 8 + size);
    assert.equal(write(rec, 0xdeadbeef, 123_456), size, 'the writer fills exactly tensorListBytes');
    assert.equal(recordSeq(rec), 0xdeadbeef);
    const list = readTensorList(rec);
    assert.equal(list.seq, 0xdeadbeef);
    assert.equal(list.status, STATUS_OK);
    assert.equal(list.aux, 123_456);
    assert.equal(list.error, undefined);
    assert.equal(list.tensors.length, tensors.length);
    list.tensors.forEach((t, i) => {
      assert.equal(t.datatype, tensors[i]!.datatype);
      assert.deepEqual(t.dims, tensors[i]!.dims);
      assert.deepEqual(t.data, tensors[i]!.bytes);
      assert.equal((t.data.byteOffset - rec.byteOffset) % 8, 0, `tensor ${i} data offset`);
      assert.equal(t.data.buffer, backing.buffer, 'tensor data are views into the record');
    });
  });

  it('aux is stored as uint32', () => {
    const rec = new Uint8Array(tensorListBytes([]));
    new TensorListWriter().begin(rec, 1, 0, 2 ** 32 - 1);
    assert.equal(readTensorList(rec).aux, 2 ** 32 - 1);
    new TensorListWriter().begin(rec, 1, 0, -1);
    assert.equal(readTensorList(rec).aux, 2 ** 32 - 1);
  });

  it('round-trips through a ring reservation', () => {
    const ring = new Ring(createRingBuffer(1 << 18));
    const size = tensorListBytes(tensors.map((t) => ({ ndims: t.dims.length, byteLength: t.bytes.length })));
    for (let seq = 1; seq <= 3; seq++) {
      write(ring.reserve(size)!, seq, seq * 10);
      ring.commit();
    }
    for (let seq = 1; seq <= 3; seq++) {
      const rec = ring.peek()!;
      assert.equal(recordSeq(rec), seq);
      const list = readTensorList(rec);
      assert.equal(list.aux, seq * 10);
      list.tensors.forEach((t, i) => {
        assert.deepEqual(t.data, tensors[i]!.bytes);
        assert.equal(t.data.byteOffset % 8, 0, 'absolute alignment inside the SAB');
      });
      ring.release();
    }
  });

  it('error records carry seq, aux and a utf-8 message and no tensors', () => {
    const message = 'model failed: überlauf ✗ 溢出';
    const size = errorRecordBytes(message);
    assert.equal(size, 16 + 4 + new TextEncoder().encode(message).length);
    const rec = new Uint8Array(size);
    writeErrorRecord(rec, 42, message, 777);
    assert.equal(recordSeq(rec), 42);
    const list = readTensorList(rec);
    assert.equal(list.status, STATUS_ERROR);
    assert.equal(list.seq, 42);
    assert.equal(list.aux, 777);
    assert.equal(list.error, message);
    assert.deepEqual(list.tensors, []);
  });

  it('an empty error message round-trips', () => {
    const rec = new Uint8Array(errorRecordBytes(''));
    writeErrorRecord(rec, 7, '');
    const list = readTensorList(rec);
    assert.equal(list.status, STATUS_ERROR);
    assert.equal(list.error, '');
    assert.equal(list.aux, 0);
  });
});
