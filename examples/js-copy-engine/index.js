#!/usr/bin/env node
// A copy engine for iommu-emu, written as an external device model: a plain Node program that talks to the
// bus with @grpc/grpc-js and loads the project's .proto files at run time with @grpc/proto-loader (no code
// generation). It attaches as a DMA master on one stream id, copies LEN bytes from a source iova to a
// destination iova with pipelined Dma.Transfer requests, reads the destination back to check it, shows that a
// DMA to an unmapped iova comes back as a fault (a normal reply, not an error), and detaches.
//
// Standalone mode (no --src/--dst): it first plays the host through the Driver and Machine services (domain,
// buffers, maps, source pattern, stream attached to the domain), then does the device part, then checks the
// destination in guest memory and cleans up. Device-only mode (--src, --dst, --len): someone else (a scenario)
// owns the set-up; the program is only the device.
//
// Exit status: 0 every check held; 1 a check failed or the bus refused something; 2 bad command line.
// See README.md beside this file and docs/DEVICE-MODELS.md.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const USAGE = `usage: node index.js [options]
  --target HOST:PORT   the iommu-emu bus (default 127.0.0.1:7400)
  --token-file FILE    send the bearer token in FILE (the token alone, or a token-file line: its 2nd field)
  --tls-ca FILE        use TLS, trusting server certificates signed by this PEM CA
  --iommu NAME         the IOMMU instance the engine sits behind (default smmu0)
  --stream ID          its stream id / requester id (default 0x20)
  --name NAME          the master's name on the bus (default js-copy)
  --len N              bytes to copy (default 64KiB; suffixes K, KiB, M, MiB)
  --chunk N            bytes per DMA request (default 4KiB, at most the server's max_dma_length)
  --window N           Transfer requests in flight (default 8, at most the server's max_transfer_in_flight)
  --src IOVA --dst IOVA
                       device-only mode: copy from src to dst (both mapped by someone else)
  --fault-iova IOVA    an iova that must fault (standalone default 0x30000000; device-only: none unless given)
  --fault-kind KIND    the fault kind expected there (default TRANSLATION)
  --proto-root DIR     where iommuemu/v1/*.proto are (default ../../proto/src/main/proto from this file)
  --help`;

// ------------------------------------------------------------------ command line

function parseNumber(text, what) {
  const m = /^(0x[0-9a-f_]+|[0-9_]+)\s*(k|kib|m|mib|g|gib)?$/i.exec(String(text).trim());
  if (!m) {
    throw new UsageError(`${what}: not a number: '${text}'`);
  }
  let n = BigInt(m[1].replace(/_/g, ''));
  const unit = (m[2] || '').toLowerCase();
  if (unit.startsWith('k')) n <<= 10n;
  if (unit.startsWith('m')) n <<= 20n;
  if (unit.startsWith('g')) n <<= 30n;
  if (n >= 1n << 64n) {
    throw new UsageError(`${what}: ${text} does not fit in 64 bits`);
  }
  return n;
}

class UsageError extends Error {}

function parseArgs(argv) {
  const o = {
    target: '127.0.0.1:7400', tokenFile: null, tlsCa: null, iommu: 'smmu0', stream: 0x20n, name: 'js-copy',
    len: 64n << 10n, chunk: 4096n, window: 8n, src: null, dst: null, faultIova: null, faultKind: 'TRANSLATION',
    protoRoot: path.resolve(__dirname, '..', '..', 'proto', 'src', 'main', 'proto'), help: false,
  };
  const numbers = { '--stream': 'stream', '--len': 'len', '--chunk': 'chunk', '--window': 'window', '--src': 'src',
    '--dst': 'dst', '--fault-iova': 'faultIova' };
  const strings = { '--target': 'target', '--token-file': 'tokenFile', '--tls-ca': 'tlsCa', '--iommu': 'iommu',
    '--name': 'name', '--fault-kind': 'faultKind', '--proto-root': 'protoRoot' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      o.help = true;
      continue;
    }
    const key = numbers[a] || strings[a];
    if (!key) {
      throw new UsageError(`unknown option '${a}'`);
    }
    if (i + 1 >= argv.length) {
      throw new UsageError(`${a} needs a value`);
    }
    const v = argv[++i];
    o[key] = numbers[a] ? parseNumber(v, a) : v;
  }
  if ((o.src === null) !== (o.dst === null)) {
    throw new UsageError('--src and --dst go together (device-only mode)');
  }
  if (o.len < 1n || o.len > 1n << 30n) throw new UsageError(`--len must be 1 to 1GiB, got ${o.len}`);
  if (o.chunk < 1n || o.chunk > 16n << 20n) throw new UsageError(`--chunk must be 1 to 16MiB, got ${o.chunk}`);
  if (o.window < 1n || o.window > 1024n) throw new UsageError(`--window must be 1 to 1024, got ${o.window}`);
  if (o.stream >= 1n << 32n) throw new UsageError(`--stream ${o.stream} is not a 32-bit stream id`);
  if (!/^[^\s:]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/.test(o.target)) {
    throw new UsageError(`--target must be HOST:PORT, got '${o.target}'`);
  }
  if (o.src === null && o.faultIova === null) {
    o.faultIova = 0x3000_0000n; // standalone: nothing is mapped there
  }
  return o;
}

// ------------------------------------------------------------------ the bus

const hex = (n) => '0x' + BigInt(n).toString(16);
// 64-bit fields travel as decimal strings (proto-loader's longs: String), so addresses never lose bits.
const u64 = (n) => BigInt(n).toString();

function loadServices(protoRoot) {
  const files = ['dma.proto', 'machine.proto', 'driver.proto'].map((f) => path.join('iommuemu', 'v1', f));
  for (const f of files) {
    if (!fs.existsSync(path.join(protoRoot, f))) {
      throw new UsageError(`${path.join(protoRoot, f)}: not found (give --proto-root DIR, the folder that holds `
        + 'iommuemu/v1/*.proto: proto/src/main/proto in the iommu-emu repository)');
    }
  }
  const definition = protoLoader.loadSync(files, {
    includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).iommuemu.v1;
}

/** The token a --token-file holds: the file's only word, or the second field of its first token line. */
function readToken(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) {
    throw new UsageError(`--token-file ${file}: no token in it`);
  }
  const fields = lines[0].split(/\s+/);
  return fields.length === 1 ? fields[0] : fields[1];
}

class Bus {
  constructor(o, v1) {
    const creds = o.tlsCa ? grpc.credentials.createSsl(fs.readFileSync(o.tlsCa)) : grpc.credentials.createInsecure();
    const options = { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 };
    this.token = o.tokenFile ? readToken(o.tokenFile) : null;
    this.dma = new v1.Dma(o.target, creds, options);
    this.machine = new v1.Machine(o.target, creds, options);
    this.driver = new v1.Driver(o.target, creds, options);
  }

  /** Metadata for every call: the bearer token when there is one. */
  meta() {
    const m = new grpc.Metadata();
    if (this.token) {
      m.set('authorization', `Bearer ${this.token}`);
    }
    return m;
  }

  /** A unary call as a promise; a refused call rejects with its gRPC status and the service's message. */
  call(client, method, request, seconds = 30) {
    return new Promise((resolve, reject) => {
      client[method](request, this.meta(), { deadline: Date.now() + seconds * 1000 }, (err, reply) => {
        if (err) {
          const e = new Error(`${method}: ${grpc.status[err.code] || err.code}: ${err.details || err.message}`);
          e.code = err.code;
          reject(e);
        } else {
          resolve(reply);
        }
      });
    });
  }

  close() {
    this.dma.close();
    this.machine.close();
    this.driver.close();
  }
}

/**
 * One Dma.Transfer stream: requests go out tagged, replies come back in request order with the tag, and each
 * request's promise settles with its reply (data and/or fault, or a per-request error). At most `window` requests
 * are in flight; the caller keeps it below the server's max_transfer_in_flight.
 */
class TransferStream {
  constructor(bus, sessionId) {
    this.sessionId = sessionId;
    this.pending = new Map();
    this.nextTag = 1n;
    this.failed = null;
    this.call = bus.dma.Transfer(bus.meta());
    this.ended = new Promise((resolve) => this.call.on('status', resolve));
    this.call.on('data', (reply) => {
      const p = this.pending.get(reply.tag);
      if (!p) {
        this.fail(new Error(`Transfer: a reply with unknown tag ${reply.tag}`));
        return;
      }
      this.pending.delete(reply.tag);
      p.resolve(reply);
    });
    this.call.on('error', (err) => this.fail(new Error(`Transfer stream ended: ${grpc.status[err.code] || err.code}: `
      + `${err.details || err.message} (requests without a reply were not performed)`)));
  }

  fail(err) {
    this.failed = this.failed || err;
    for (const p of this.pending.values()) {
      p.reject(err);
    }
    this.pending.clear();
  }

  /** Sends one request; resolves with its TransferReply. */
  send(op, iova, lengthOrData) {
    if (this.failed) {
      return Promise.reject(this.failed);
    }
    const tag = (this.nextTag++).toString();
    const request = { tag, session_id: this.sessionId, op, iova: u64(iova) };
    if (op === 'READ') {
      request.length = Number(lengthOrData);
    } else {
      request.data = lengthOrData;
    }
    return new Promise((resolve, reject) => {
      this.pending.set(tag, { resolve, reject });
      // write() returning false only means grpc-js buffered it: the window keeps that buffer small
      this.call.write(request);
    });
  }

  read(iova, length) {
    return this.send('READ', iova, length);
  }

  write(iova, data) {
    return this.send('WRITE', iova, data);
  }

  /** Half-closes the stream and waits for the server to end it. */
  async end() {
    this.call.end();
    await this.ended;
  }
}

/** What a reply's fault says, e.g. "TRANSLATION at 0x30000000 (code 0x10, 0 bytes done)". */
function faultText(f) {
  return `${f.kind} at ${hex(f.address)} (code ${hex(f.code)}, ${f.bytes_done} bytes done)`;
}

/** Runs `work(i)` for i in [0, n) with at most `width` running at once; rejects with the first failure. */
async function pool(n, width, work) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

// ------------------------------------------------------------------ the device

class CheckFailed extends Error {}

/**
 * The device part: attach, pipelined copy, read-back check, a fault at faultIova, detach. Returns the bytes it
 * read from the source.
 */
async function runDevice(bus, o, limits) {
  const chunk = Number(o.chunk);
  const len = Number(o.len);
  const attach = await bus.call(bus.dma, 'Attach', { name: o.name, iommu: o.iommu, stream_id: Number(o.stream) });
  const session = attach.session_id;
  console.log(`attached '${o.name}' on ${attach.iommu} stream ${hex(attach.stream_id)}`);
  const stream = new TransferStream(bus, session);
  const source = Buffer.alloc(len);
  try {
    // copy: every chunk is a READ of the source then a WRITE of what came back; `window` chunks run at once, so
    // up to `window` requests are in flight on the one stream
    const chunks = Math.ceil(len / chunk);
    let requests = 0;
    await pool(chunks, Number(o.window), async (i) => {
      const off = i * chunk;
      const n = Math.min(chunk, len - off);
      const r = await stream.read(o.src + BigInt(off), n);
      requests++;
      check(r, `read of source chunk ${i} at ${hex(o.src + BigInt(off))}`);
      r.data.copy(source, off);
      const w = await stream.write(o.dst + BigInt(off), r.data);
      requests++;
      check(w, `write of destination chunk ${i} at ${hex(o.dst + BigInt(off))}`);
    });
    console.log(`copied ${len} bytes from iova ${hex(o.src)} to ${hex(o.dst)}: ${chunks} chunks of ${chunk} bytes, `
      + `${o.window} in flight, ${requests} Transfer requests`);

    // check: read the destination back through the IOMMU
    const back = Buffer.alloc(len);
    await pool(chunks, Number(o.window), async (i) => {
      const off = i * chunk;
      const n = Math.min(chunk, len - off);
      const r = await stream.read(o.dst + BigInt(off), n);
      check(r, `read-back of chunk ${i}`);
      r.data.copy(back, off);
    });
    const bad = firstDifference(source, back);
    if (bad >= 0) {
      throw new CheckFailed(`read-back: byte ${bad} of the destination is ${hex(back[bad])}, the source had `
        + hex(source[bad]));
    }
    console.log(`check: read back ${len} bytes at ${hex(o.dst)}: they match the source`);

    // a fault is a normal reply: the request was fine, the translation failed
    if (o.faultIova !== null) {
      const f = await stream.read(o.faultIova, 64);
      if (f.error) {
        throw new CheckFailed(`the read at ${hex(o.faultIova)} was rejected: ${f.error.message}`);
      }
      if (!f.fault) {
        throw new CheckFailed(`a read at ${hex(o.faultIova)} did not fault (is that iova mapped?)`);
      }
      if (f.fault.kind !== o.faultKind.toUpperCase()) {
        throw new CheckFailed(`the read at ${hex(o.faultIova)} faulted with ${faultText(f.fault)}, expected `
          + o.faultKind);
      }
      console.log(`fault: a read at unmapped iova ${hex(o.faultIova)} came back as a fault reply: `
        + faultText(f.fault));
    }
    await stream.end();
  } finally {
    stream.call.cancel(); // no-op when it has ended
    try {
      await bus.call(bus.dma, 'Detach', { session_id: session });
      console.log('detached');
    } catch (e) {
      console.log(`detach: ${e.message}`); // e.g. the connection went away: the server released the session
    }
  }
  return source;
}

/** Throws when a Transfer reply carries a per-request error or a fault. */
function check(reply, what) {
  if (reply.error) {
    throw new CheckFailed(`${what}: rejected: ${grpc.status[reply.error.code] || reply.error.code}: `
      + reply.error.message);
  }
  if (reply.fault) {
    throw new CheckFailed(`${what}: fault ${faultText(reply.fault)}`);
  }
}

function firstDifference(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return i;
  }
  return -1;
}

// ------------------------------------------------------------------ the host (standalone mode)

/** The known source pattern: byte i of the source. */
const patternByte = (i) => (i * 31 + (i >>> 8) * 7 + 0x5a) & 0xff;

function pattern(len) {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = patternByte(i);
  return b;
}

/** Machine.MemWrite / MemRead in pieces of max_mem_access_length. */
async function memWrite(bus, pa, data, max) {
  for (let off = 0; off < data.length; off += max) {
    await bus.call(bus.machine, 'MemWrite', { address: u64(pa + BigInt(off)), data: data.subarray(off, off + max) });
  }
}

async function memRead(bus, pa, len, max) {
  const parts = [];
  for (let off = 0; off < len; off += max) {
    const n = Math.min(max, len - off);
    parts.push((await bus.call(bus.machine, 'MemRead', { address: u64(pa + BigInt(off)), length: u64(n) })).data);
  }
  return Buffer.concat(parts);
}

/** Plays the host: a stage-1 domain, two buffers mapped at src/dst, the source filled, the stream attached. */
async function hostSetUp(bus, o, limits, undo) {
  const len = o.len;
  const mapped = (len + 4095n) & ~4095n;
  const domain = await bus.call(bus.driver, 'CreateDomain', { iommus: [o.iommu], stage: 'STAGE_1', granule: '4096',
    input_bits: 48, flush: 'STRICT', name: o.name });
  undo.push(() => bus.call(bus.driver, 'DestroyDomain', { domain: domain.domain }));
  const src = await bus.call(bus.driver, 'AllocBuffer', { size: u64(mapped), alignment: '4096' });
  undo.push(() => bus.call(bus.driver, 'FreeBuffer', { pa: src.pa }));
  const dst = await bus.call(bus.driver, 'AllocBuffer', { size: u64(mapped), alignment: '4096' });
  undo.push(() => bus.call(bus.driver, 'FreeBuffer', { pa: dst.pa }));
  o.src = 0x1000_0000n;
  o.dst = 0x2000_0000n;
  await bus.call(bus.driver, 'Map', { domain: domain.domain, iova: u64(o.src), pa: src.pa, size: u64(mapped),
    prot: { read: true } });
  undo.push(() => bus.call(bus.driver, 'Unmap', { domain: domain.domain, iova: u64(o.src), size: u64(mapped) }));
  await bus.call(bus.driver, 'Map', { domain: domain.domain, iova: u64(o.dst), pa: dst.pa, size: u64(mapped),
    prot: { read: true, write: true } });
  undo.push(() => bus.call(bus.driver, 'Unmap', { domain: domain.domain, iova: u64(o.dst), size: u64(mapped) }));
  const max = Number(limits.max_mem_access_length);
  await memWrite(bus, BigInt(src.pa), pattern(Number(len)), max);
  await memWrite(bus, BigInt(dst.pa), Buffer.alloc(Number(len)), max); // a clean destination: no stale pass
  await bus.call(bus.driver, 'AttachDevice', { domain: domain.domain, iommu: o.iommu, stream_id: Number(o.stream) });
  undo.push(() => bus.call(bus.driver, 'DetachDevice', { iommu: o.iommu, stream_id: Number(o.stream) }));
  console.log(`host: domain ${domain.domain} (stage 1) on ${o.iommu}; source ${len} bytes at pa ${hex(src.pa)} mapped `
    + `read-only at iova ${hex(o.src)}, destination at pa ${hex(dst.pa)} mapped read-write at iova ${hex(o.dst)}; `
    + `source filled with the test pattern; stream ${hex(o.stream)} attached to the domain`);
  return { srcPa: BigInt(src.pa), dstPa: BigInt(dst.pa), max };
}

// ------------------------------------------------------------------ main

async function main(argv) {
  const o = parseArgs(argv);
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const v1 = loadServices(o.protoRoot);
  const bus = new Bus(o, v1);
  const undo = [];
  try {
    let limits = null;
    try {
      const d = await bus.call(bus.machine, 'Describe', {}, 10);
      limits = d.limits;
      console.log(`connected to ${o.target}: iommu-emu ${d.server_version} (bus ${d.api_version}), instances `
        + d.iommus.map((i) => `${i.name} (${i.kind})`).join(', ') + `; max_dma_length ${limits.max_dma_length}, `
        + `max_transfer_in_flight ${limits.max_transfer_in_flight}`);
    } catch (e) {
      if (e.code !== grpc.status.PERMISSION_DENIED || o.src === null) {
        throw e;
      }
      // a device token may call Dma only: go on with the defaults
      console.log(`connected to ${o.target} with a device token (Machine.Describe is for hosts): limits unknown`);
    }
    if (limits) {
      if (o.chunk > BigInt(limits.max_dma_length)) {
        throw new UsageError(`--chunk ${o.chunk} is above the server's max_dma_length ${limits.max_dma_length}`);
      }
      if (o.window > BigInt(limits.max_transfer_in_flight)) {
        throw new UsageError(`--window ${o.window} is above the server's max_transfer_in_flight `
          + limits.max_transfer_in_flight);
      }
    }
    let host = null;
    if (o.src === null) {
      host = await hostSetUp(bus, o, limits, undo);
    }
    const source = await runDevice(bus, o, limits);
    if (host) {
      const want = pattern(Number(o.len));
      const bad = firstDifference(want, source);
      if (bad >= 0) {
        throw new CheckFailed(`the device read byte ${bad} of the source as ${hex(source[bad])}, memory holds `
          + hex(want[bad]));
      }
      const got = await memRead(bus, host.dstPa, Number(o.len), host.max);
      const wrong = firstDifference(want, got);
      if (wrong >= 0) {
        throw new CheckFailed(`guest memory: byte ${wrong} of the destination is ${hex(got[wrong])}, expected `
          + hex(want[wrong]));
      }
      console.log(`host: the destination in guest memory (Machine.MemRead) holds the ${o.len}-byte source pattern`);
    }
    console.log('PASS: every check held');
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      throw e;
    }
    console.log(`FAIL: ${e.message}`);
    return 1;
  } finally {
    let cleaned = 0;
    for (const step of undo.reverse()) {
      try {
        await step();
        cleaned++;
      } catch (e) {
        console.log(`clean-up: ${e.message}`);
      }
    }
    if (undo.length) {
      console.log(`host: cleaned up (${cleaned} of ${undo.length} steps)`);
    }
    bus.close();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (e) => {
  console.error(`js-copy-engine: ${e.message}`);
  if (!(e instanceof UsageError)) {
    console.error(e.stack);
  }
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
