import type { IncomingMessage, ServerResponse } from 'node:http';
import { BINARY_CONTENT_TYPE, VERSION_HEADER } from '../../shared/schemas/api.js';
import type { GuidanceService, PhiInput, ServedValueFunction } from '../../shared/use-cases/serving/serve-guidance.js';
import type { AuthorizationCheck } from './auth.js';
import { type PreRead, preReadBody } from './body.js';
import {
  handOverReading,
  isBinaryType,
  type PhiAnswer,
  type PhiOp,
  tryReadPhiInput,
  writePhiAnswer,
} from './phi-routes.js';
import { isJsonType } from './validate.js';

/** A Node request listener. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface FastLaneOptions {
  service: GuidanceService;
  maxBodyBytes: number;
  /** The Authorization header test of the configured API keys, or one that accepts all (auth off). */
  authorization: AuthorizationCheck;
  /** The app's Host rule, when it has one (auth off): a Host it refuses goes to the app (403). */
  hostAllowed?: (host: string | undefined) => boolean;
  /** The Hono app's Node listener: everything the lane does not answer itself goes there. */
  fallback: NodeListener;
}

/**
 * `POST /v1/value-functions/{id}/(predict|gradient)[?version=N]`, the plain form only: an id and
 * version that cannot need decoding (the checkpoint id pattern, a positive integer).
 */
const HOT_ROUTE =
  /^\/v1\/value-functions\/([a-z0-9][a-z0-9._-]{0,62})\/(predict|gradient)(?:\?version=([1-9]\d{0,8}))?$/;

/**
 * The Node fast lane of the hot routes: it answers the plain, valid `predict` and `gradient`
 * requests straight from Node's IncomingMessage and ServerResponse, without the per-request
 * work of @hono/node-server and Hono (a URL object, a Request and Response pair, listeners,
 * routing, a Context, a chain of promises), which is about as much server CPU as the gradient
 * itself. It answers only success: anything it is not sure of it hands, untouched or with the
 * body it has read, to the Hono app, so that every error, status and message still comes from
 * one place (app.ts), and both paths share the parsing and the answers (phi-routes.ts). Handed
 * on: other routes and methods, a query other than `?version=N`, a failed auth check, a
 * content type that is neither JSON nor binary, a body without Content-Length or over the limit,
 * a checkpoint not yet compiled (Hono waits for it to load), and every request whose body or
 * use-case call fails (the app takes the lane's reading of the body instead of parsing it
 * again). test/value-api/fast-paths.test.ts checks that a server with the lane and one without
 * it answer the same status, headers and bytes.
 *
 * Returns a listener that answers true when it took the request.
 */
export function createFastLane(options: FastLaneOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { service, maxBodyBytes, authorization, hostAllowed, fallback } = options;
  const hosts = new HostCheck(hostAllowed);

  const handOver = (req: IncomingMessage & PreRead, res: ServerResponse, body: Uint8Array) => {
    req[preReadBody] = body;
    fallback(req, res);
  };

  /** The compiled checkpoint when it is ready; undefined (also on a failure) hands the request to Hono. */
  const cached = (id: string, version: number | undefined): ServedValueFunction | undefined => {
    try {
      return service.catalog.cached(id, version);
    } catch {
      return undefined;
    }
  };

  /** The answer when every step succeeds synchronously; undefined hands the request to Hono. */
  const compute = (op: PhiOp, served: ServedValueFunction, input: PhiInput, binary: boolean): PhiAnswer | undefined => {
    try {
      const result = op === 'predict' ? service.predictOn(served, input) : service.gradientOn(served, input);
      return result.ok ? writePhiAnswer(result.value, binary) : undefined;
    } catch {
      return undefined;
    }
  };

  const respond = (
    req: IncomingMessage,
    res: ServerResponse,
    op: PhiOp,
    id: string,
    version: number | undefined,
    binary: boolean,
    body: Uint8Array,
  ) => {
    const served = cached(id, version);
    if (served === undefined) return handOver(req, res, body);
    // Read once: when the lane hands the request on, the app takes this reading (phi-routes.ts).
    const reading = tryReadPhiInput(op, binary, body, service.limits.maxRows);
    const answer = reading instanceof Error ? undefined : compute(op, served, reading, binary);
    if (answer === undefined) {
      handOverReading(body, reading);
      return handOver(req, res, body);
    }
    res.writeHead(
      200,
      answer.binary
        ? {
            'content-type': BINARY_CONTENT_TYPE,
            [VERSION_HEADER]: String(answer.version),
            'content-length': answer.body.byteLength,
          }
        : { 'content-type': 'application/json', 'content-length': answer.body.byteLength },
    );
    res.end(answer.body);
  };

  return (req, res) => {
    if (req.method !== 'POST') return false;
    const route = HOT_ROUTE.exec(req.url as string);
    if (route === null) return false;
    const headers = req.headers;
    if (!authorization(headers.authorization)) return false;
    const host = headers.host;
    if (host === undefined || !hosts.ok(host)) return false;
    const type = headers['content-type'];
    const binary = isBinaryType(type);
    if (!binary && !isJsonType(type)) return false;
    const length = Number(headers['content-length']);
    if (!(length <= maxBodyBytes)) return false;

    const op = route[2] as PhiOp;
    const id = route[1] as string;
    const version = route[3] === undefined ? undefined : Number(route[3]);
    // Node's parser holds the body to Content-Length, so it cannot outgrow the check above. An
    // aborted request never ends: nothing is answered and the socket is gone already.
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () =>
      respond(req, res, op, id, version, binary, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
    );
    return true;
  };
}

/**
 * The Host check @hono/node-server makes (it builds the request URL from Host and answers 400
 * when the name does not survive URL parsing), plus the app's own Host rule when it has one,
 * done once per distinct Host and remembered.
 */
class HostCheck {
  private readonly good = new Set<string>();

  constructor(private readonly allowed?: (host: string | undefined) => boolean) {}

  ok(host: string): boolean {
    if (this.good.has(host)) return true;
    if (this.allowed !== undefined && !this.allowed(host)) return false;
    try {
      const url = new URL(`http://${host}/`);
      if (url.hostname.length !== host.length && url.hostname !== host.replace(/:\d+$/, '')) return false;
    } catch {
      return false;
    }
    if (this.good.size >= 64) this.good.clear();
    this.good.add(host);
    return true;
  }
}
