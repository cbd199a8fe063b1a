// A TensorBoard event file reader for the tests, written apart from src/train/tfevents.ts: its own
// bitwise CRC-32C, its own TFRecord framing and a generic protocol buffer decoder, so that a
// mistake in the writer is not repeated here.
import assert from "node:assert/strict";
import fs from "node:fs";

/** CRC-32C bit by bit (no table), reflected polynomial 0x82f63b78. */
export function crc32cBitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return ~crc >>> 0;
}

const masked = (data: Uint8Array) => {
  const c = crc32cBitwise(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

/** The records of a TFRecord file; every length and data CRC is checked. */
export function readRecords(bytes: Buffer): Buffer[] {
  const records: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    assert.ok(at + 12 <= bytes.length, `record header cut at byte ${at}`);
    const header = bytes.subarray(at, at + 8);
    assert.equal(bytes.readUInt32LE(at + 8), masked(header), `length CRC of the record at byte ${at}`);
    const length = Number(header.readBigUInt64LE());
    const data = bytes.subarray(at + 12, at + 12 + length);
    assert.equal(data.length, length, `record at byte ${at} cut short`);
    assert.equal(bytes.readUInt32LE(at + 12 + length), masked(data), `data CRC of the record at byte ${at}`);
    records.push(data);
    at += 12 + length + 4;
  }
  return records;
}

type Field = { field: number; wire: number; value: bigint | Buffer };

/** The fields of a protocol buffer message, in order. */
export function decodeMessage(buf: Buffer): Field[] {
  const fields: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[at++];
      assert.ok(b !== undefined, "varint runs past the end");
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) fields.push({ field, wire, value: varint() });
    else if (wire === 1) fields.push({ field, wire, value: buf.subarray(at, (at += 8)) });
    else if (wire === 5) fields.push({ field, wire, value: buf.subarray(at, (at += 4)) });
    else if (wire === 2) {
      const n = Number(varint());
      fields.push({ field, wire, value: buf.subarray(at, (at += n)) });
    } else assert.fail(`unexpected wire type ${wire}`);
  }
  return fields;
}

export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Map<string, number>;
}

/** tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5 {value = 1 {tag = 1, simple_value = 2}}. */
export function decodeEvent(data: Buffer): DecodedEvent {
  const event: DecodedEvent = { wallTime: Number.NaN, step: 0, scalars: new Map() };
  for (const f of decodeMessage(data)) {
    if (f.field === 1 && f.wire === 1) event.wallTime = (f.value as Buffer).readDoubleLE();
    else if (f.field === 2 && f.wire === 0) event.step = Number(f.value);
    else if (f.field === 3 && f.wire === 2) event.fileVersion = (f.value as Buffer).toString("utf8");
    else if (f.field === 5 && f.wire === 2) {
      for (const v of decodeMessage(f.value as Buffer)) {
        assert.equal(v.field, 1, "Summary holds only values");
        let tag = "";
        let value = Number.NaN;
        for (const x of decodeMessage(v.value as Buffer)) {
          if (x.field === 1) tag = (x.value as Buffer).toString("utf8");
          else if (x.field === 2 && x.wire === 5) value = (x.value as Buffer).readFloatLE();
          else assert.fail(`unexpected Value field ${x.field}`);
        }
        event.scalars.set(tag, value);
      }
    } else assert.fail(`unexpected Event field ${f.field} (wire ${f.wire})`);
  }
  return event;
}

/** Every event of a file, the file-version event first. */
export const readEventFile = (file: string): DecodedEvent[] => readRecords(fs.readFileSync(file)).map(decodeEvent);
