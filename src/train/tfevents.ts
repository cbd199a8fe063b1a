// TensorBoard event files, written without TensorFlow: a TFRecord file of Event protocol
// buffers, encoded here by hand (the few fields scalars need). `tensorboard --logdir` reads them.
//
// A record: uint64 length, uint32 masked CRC-32C of those 8 bytes, the data, uint32 masked
// CRC-32C of the data (all little-endian); mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8.
// The first record is an Event with file_version "brain.Event:2"; each later one an Event with
// wall_time, step and a Summary of {tag, simple_value} values. Field numbers (proto3):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeAll } from "../util/atomic.js";

// ---- CRC-32C (Castagnoli), as TFRecord checks it ---------------------------------------------

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC32C_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC a TFRecord stores: rotated and offset, so that a CRC of CRCs is not trivially zero. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, its masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  const crcs = Buffer.alloc(8);
  crcs.writeUInt32LE(maskedCrc32c(length), 0);
  crcs.writeUInt32LE(maskedCrc32c(data), 4);
  return Buffer.concat([length, crcs.subarray(0, 4), data, crcs.subarray(4)]);
}

// ---- protocol buffer fields ------------------------------------------------------------------

const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

function varint(n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`tfevents: ${n} is not a whole number ≥ 0`);
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return out;
}

const key = (field: number, wire: number) => Buffer.from(varint(field * 8 + wire));

function bytesField(field: number, data: Uint8Array): Buffer {
  return Buffer.concat([key(field, WIRE.bytes), Buffer.from(varint(data.length)), data]);
}

function doubleField(field: number, x: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return Buffer.concat([key(field, WIRE.fixed64), b]);
}

function floatField(field: number, x: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return Buffer.concat([key(field, WIRE.fixed32), b]);
}

function varintField(field: number, n: number): Buffer {
  return Buffer.concat([key(field, WIRE.varint), Buffer.from(varint(n))]);
}

/** The event that starts every file. */
export function fileVersionEvent(wallTime: number): Buffer {
  return Buffer.concat([doubleField(1, wallTime), bytesField(3, Buffer.from("brain.Event:2", "utf8"))]);
}

/** An event with scalar values (tag → value, stored as float32) at one step. */
export function scalarsEvent(wallTime: number, step: number, scalars: [string, number][]): Buffer {
  const values = scalars.map(([tag, value]) =>
    bytesField(1, Buffer.concat([bytesField(1, Buffer.from(tag, "utf8")), floatField(2, value)])),
  );
  return Buffer.concat([doubleField(1, wallTime), ...(step === 0 ? [] : [varintField(2, step)]), bytesField(5, Buffer.concat(values))]);
}

// ---- the file --------------------------------------------------------------------------------

/** The name TensorBoard looks for: events.out.tfevents.<seconds>.<host>.<pid>. */
export function eventFileName(wallTime: number): string {
  const host = os.hostname().replace(/[^\w.-]/g, "_") || "localhost";
  return `events.out.tfevents.${Math.floor(wallTime)}.${host}.${process.pid}`;
}

/** Appends events to a fresh event file in `dir`, each record written through to the OS at once. */
export class EventFileWriter {
  readonly path: string;
  private fd: number | null;

  constructor(dir: string, wallTime = Date.now() / 1000) {
    fs.mkdirSync(dir, { recursive: true });
    this.path = path.join(dir, eventFileName(wallTime));
    this.fd = fs.openSync(this.path, "w");
    this.write(fileVersionEvent(wallTime));
  }

  scalars(wallTime: number, step: number, scalars: [string, number][]): void {
    this.write(scalarsEvent(wallTime, step, scalars));
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private write(event: Buffer): void {
    if (this.fd === null) throw new Error(`event file ${this.path} is closed`);
    // One write per record: a crash can cut the last record, which TensorBoard skips, never an earlier one.
    writeAll(this.fd, tfRecord(event));
  }
}
