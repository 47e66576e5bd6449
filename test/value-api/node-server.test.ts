import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startValueApiServer } from '../../functions/value-api/node.js';
import { tempStore } from './fixtures.js';

let fixture: Awaited<ReturnType<typeof tempStore>>;
let server: RunningServer;

beforeAll(async () => {
  fixture = await tempStore([{ id: 'vf', d: 4 }]);
  server = await startValueApiServer({
    store: fixture.store,
    port: 0,
    auth: { mode: 'none' },
    maxBodyBytes: 1 << 16,
    maxRows: 8,
    refreshMs: 1000,
    requestTimeoutMs: 400,
  });
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

/** Writes raw bytes to the server and reads everything until it closes the connection. */
function rawExchange(bytes: string, waitMs = 5000): Promise<{ text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8') }));
    setTimeout(() => socket.destroy(), waitMs);
  });
}

function parse(text: string): { status: number; type: string | undefined; code: string | undefined } {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const type = /\r\ncontent-type: ([^\r]+)/i.exec(head)?.[1];
  return { status, type, code: (JSON.parse(body) as { error?: { code: string } }).error?.code };
}

/**
 * Uploads `length` bytes the way Python's http.client does (the whole body, then the answer),
 * with `Connection: close`; returns the answer's status, or the error that ended the upload.
 */
function uploadThenRead(length: number, chunked: boolean): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let failed: string | undefined;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      failed ??= e.code ?? e.message;
    });
    socket.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))?.[1];
      resolve(failed !== undefined ? { error: failed } : { status: Number(status) });
    });
    const framing = chunked ? 'transfer-encoding: chunked' : `content-length: ${length}`;
    socket.write(
      `POST /v1/value-functions/vf/predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n${framing}\r\n\r\n`,
    );
    const piece = Buffer.alloc(64 * 1024);
    let sent = 0;
    const pump = () => {
      while (sent < length && failed === undefined) {
        sent += piece.length;
        const data = chunked
          ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
          : piece;
        if (!socket.write(data)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (chunked && failed === undefined) socket.write('0\r\n\r\n');
    };
    pump();
  });
}

describe('Node server framing of bad and slow requests', () => {
  it.each([false, true])(
    'lets a client with Connection: close upload a too-large body and read the 413 (chunked: %s)',
    async (chunked) => {
      // The limit here is 64 KiB; 4 MiB is well past it and well within DRAIN_BEFORE_413.
      for (let i = 0; i < 3; i++) expect(await uploadThenRead(4 << 20, chunked)).toEqual({ status: 413 });
    },
  );

  it('answers bytes that are not HTTP with a JSON 400, not an empty body', async () => {
    const { text } = await rawExchange('NOT HTTP AT ALL\r\n\r\n');
    expect(parse(text)).toEqual({ status: 400, type: 'application/json', code: 'MALFORMED_REQUEST' });
  });

  it('answers a request whose body trickles in past the request timeout with a JSON 408 and closes', async () => {
    const head =
      'POST /v1/value-functions/vf/predict HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"phi":[';
    // The client gives up after 5 s: a 408 read before that is the server's request timeout.
    const { text } = await rawExchange(head);
    expect(parse(text)).toEqual({ status: 408, type: 'application/json', code: 'REQUEST_TIMEOUT' });
  });
});
