/**
 * TypeScript client of the MetricOpt value-function API (`import { ValueApiClient } from
 * 'metricopt/client'`). Typed methods for every route, the binary form for the lowest latency,
 * and retries with exponential backoff on 5xx and network errors (never on 4xx: those are the
 * caller's to fix). Uses the global fetch (Node >= 18, browsers).
 */
import type {
  ErrorResponse,
  GradientResponse,
  GuideRequest,
  GuideResponse,
  HealthResponse,
  PredictResponse,
  ValueFunctionSummary,
} from '../../shared/schemas/api.js';
import type {
  CreateFitJobRequest,
  FitJobSummaryResponse,
  ObservationUploadResponse,
} from '../../shared/schemas/fit-api.js';

export type {
  CreateFitJobRequest,
  FitJobSummaryResponse,
  ObservationUploadResponse,
} from '../../shared/schemas/fit-api.js';
export type {
  GradientResponse,
  GuideRequest,
  GuideResponse,
  HealthResponse,
  PredictResponse,
  ValueFunctionSummary,
} from '../../shared/schemas/api.js';

export interface ValueApiClientOptions {
  /** e.g. http://127.0.0.1:8787 or a Lambda function URL. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Retries after the first try on 5xx and network errors (default 3). */
  retries?: number;
  /** First backoff; doubles per retry, with jitter (default 100 ms). */
  backoffMs?: number;
  /** Per-try timeout (default 10 s). */
  timeoutMs?: number;
  /** A fetch to use instead of the global one (tests, custom agents). */
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Pin a checkpoint version; the latest when omitted. */
  version?: number;
}

/**
 * An error answer of the API (status and stable code), a failure after the last retry (status
 * 0, NETWORK), a bad argument caught before sending (status 0, the code the server would give:
 * NOT_FINITE, DIMENSION_MISMATCH), or a success status whose body is not what the route answers
 * (INVALID_RESPONSE).
 */
export class ValueApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ValueApiError';
  }
}

export interface BinaryPrediction {
  /** Natural-direction estimates, one per row. */
  values: Float32Array;
  version: number;
}

export interface BinaryGradient extends BinaryPrediction {
  /** d(normalised)/d(phi), row-major n x d. */
  gradients: Float32Array;
}

const VERSION_HEADER = 'x-value-function-version';

export class ValueApiClient {
  private readonly baseUrl: string;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly auth: Record<string, string>;

  constructor(options: ValueApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 100;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.auth = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  }

  health(): Promise<HealthResponse> {
    return this.json('GET', '/healthz');
  }

  /** The OpenAPI 3 document of the server. */
  openApi(): Promise<Record<string, unknown>> {
    return this.json('GET', '/openapi.json');
  }

  async listValueFunctions(): Promise<ValueFunctionSummary[]> {
    return (await this.json<{ valueFunctions: ValueFunctionSummary[] }>('GET', '/v1/value-functions')).valueFunctions;
  }

  getValueFunction(id: string): Promise<ValueFunctionSummary> {
    return this.json('GET', `/v1/value-functions/${encodeURIComponent(id)}`);
  }

  /** Metric estimates (natural direction, and normalised) at one phi or a batch. */
  async predict(id: string, phi: number[] | number[][], options: CallOptions = {}): Promise<PredictResponse> {
    return this.json('POST', this.path(id, 'predict', options), { phi: finitePhi('predict', 'phi', phi) });
  }

  /** Estimates and d(normalised, lower-is-better value)/d(phi). */
  async gradient(id: string, phi: number[] | number[][], options: CallOptions = {}): Promise<GradientResponse> {
    return this.json('POST', this.path(id, 'gradient', options), { phi: finitePhi('gradient', 'phi', phi) });
  }

  /** The Guided-ES descent direction at phi: step with phi <- phi - alpha * direction. */
  async guide(id: string, request: GuideRequest, options: CallOptions = {}): Promise<GuideResponse> {
    finitePhi('guide', 'phi', request.phi);
    finitePhi('guide', 'lossGradients', request.lossGradients);
    return this.json('POST', this.path(id, 'guide', options), request);
  }

  /** predict in the binary form: `phis` is n x d row-major. */
  async predictBinary(id: string, phis: Float32Array, options: CallOptions = {}): Promise<BinaryPrediction> {
    const { data, version } = await this.binary(this.path(id, 'predict', options), phis);
    return { values: data, version };
  }

  /**
   * gradient in the binary form: `phis` is n x d row-major, `d` the value function's dimension.
   * A `d` that does not divide `phis`, or that is not the value function's (the answer then
   * has another length than n + n x d), throws DIMENSION_MISMATCH instead of slicing wrongly.
   */
  async gradientBinary(id: string, phis: Float32Array, d: number, options: CallOptions = {}): Promise<BinaryGradient> {
    if (!Number.isInteger(d) || d < 1 || phis.length % d !== 0) {
      throw new ValueApiError(
        0,
        'DIMENSION_MISMATCH',
        `gradientBinary: ${phis.length} values are not whole rows of d = ${d}`,
      );
    }
    const { data, version } = await this.binary(this.path(id, 'gradient', options), phis);
    const n = phis.length / d;
    if (data.length !== n + n * d) {
      throw new ValueApiError(
        200,
        'DIMENSION_MISMATCH',
        `gradientBinary: the answer has ${data.length} values, not n + n x d = ${n + n * d} for d = ${d}: d is not the dimension of value function '${id}'`,
      );
    }
    return { values: data.subarray(0, n), gradients: data.subarray(n), version };
  }

  // -- fit jobs (bring your own model, docs/bring-your-own-model.md) -------------------------

  /** Creates a fit job (the same spec again is fine). */
  createFitJob(request: CreateFitJobRequest): Promise<FitJobSummaryResponse> {
    return this.json('POST', '/v1/fit-jobs', request);
  }

  /**
   * Uploads observation lines in JSON-lines batches under `maxBatchBytes` (the server's limit is
   * 6 MiB by default). Idempotent per (trajectory, step): a retried batch is never counted twice.
   * Answers the last batch's counts, with `accepted` and `duplicates` summed over the batches.
   */
  async uploadObservations(
    jobId: string,
    lines: readonly ObservationLineInput[],
    maxBatchBytes = 4 * 1024 * 1024,
  ): Promise<ObservationUploadResponse> {
    const path = `/v1/fit-jobs/${encodeURIComponent(jobId)}/observations`;
    const totals = { accepted: 0, duplicates: 0 };
    let last: ObservationUploadResponse | undefined;
    let batch: string[] = [];
    let size = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const res = await this.send('POST', path, batch.join(''), 'application/x-ndjson');
      last = (await res.json()) as ObservationUploadResponse;
      totals.accepted += last.accepted;
      totals.duplicates += last.duplicates;
      batch = [];
      size = 0;
    };
    for (const [i, line] of lines.entries()) {
      const phi = finitePhi('uploadObservations', `lines[${i}].phi`, Array.from(line.phi));
      if (line.metric !== undefined && !Number.isFinite(line.metric)) {
        throw new ValueApiError(0, 'NOT_FINITE', `uploadObservations: lines[${i}].metric is ${line.metric}`);
      }
      const text = `${JSON.stringify({
        trajectory: line.trajectory,
        step: line.step,
        phi,
        ...(line.metric === undefined ? {} : { metric: line.metric }),
        ...(line.predictions === undefined ? {} : { predictions: line.predictions }),
      })}\n`;
      const bytes = new TextEncoder().encode(text).byteLength;
      if (size + bytes > maxBatchBytes) await flush();
      batch.push(text);
      size += bytes;
    }
    await flush();
    if (last === undefined) throw new ValueApiError(0, 'OBSERVATIONS_EMPTY', 'uploadObservations: no lines');
    return { ...last, ...totals };
  }

  /**
   * Uploads the labels that prediction lines are scored on (once per job; the same again is
   * fine), optionally with the examples' `rows` (indices in your data set, each once) and per-row
   * `context` columns (one finite number per label each): the evaluator gets them as
   * EvaluationInput.rows / .context. A non-finite context value throws NOT_FINITE before anything
   * is sent; a wrong length or a repeated row is the server's 400 PREDICTIONS_INVALID, and nothing
   * is stored.
   */
  async uploadLabels(
    jobId: string,
    labels: ArrayLike<number>,
    classes: number,
    extra: LabelsExtra = {},
  ): Promise<{ created: boolean }> {
    return this.json('POST', `/v1/fit-jobs/${encodeURIComponent(jobId)}/labels`, labelsBody(labels, classes, extra));
  }

  /**
   * Uploads one set of predictions (n scores for two classes, n x classes otherwise) as float32
   * under `key`, for lines carrying `{predictions: {evaluator, key}}`.
   */
  async uploadPredictions(jobId: string, key: string, predictions: ArrayLike<number>): Promise<{ created: boolean }> {
    const values = Float32Array.from(predictions);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new ValueApiError(0, 'NOT_FINITE', `uploadPredictions: ${key}[${bad}] is ${values[bad]} as float32`);
    }
    const path = `/v1/fit-jobs/${encodeURIComponent(jobId)}/predictions/${encodeURIComponent(key)}`;
    const res = await this.send('POST', path, new Uint8Array(values.buffer), 'application/octet-stream');
    return (await res.json()) as { created: boolean };
  }

  startFitJob(jobId: string): Promise<FitJobSummaryResponse> {
    return this.json('POST', `/v1/fit-jobs/${encodeURIComponent(jobId)}/start`, {});
  }

  /** Cancels the job: it stops, or never runs (a done job stays done). */
  cancelFitJob(jobId: string): Promise<FitJobSummaryResponse> {
    return this.json('POST', `/v1/fit-jobs/${encodeURIComponent(jobId)}/cancel`, {});
  }

  fitJob(jobId: string): Promise<FitJobSummaryResponse> {
    return this.json('GET', `/v1/fit-jobs/${encodeURIComponent(jobId)}`);
  }

  /** How long `waitFitJob` waits by default before it throws TIMEOUT (one hour). */
  static readonly DEFAULT_FIT_WAIT_MS = 3_600_000;

  /**
   * Polls until the job is done (answers its summary), or throws: FIT_JOB_FAILED (failed or
   * interrupted), FIT_JOB_STALLED (its runner stopped renewing its lease: `startFitJob` re-queues
   * it), FIT_JOB_CANCELLED, or TIMEOUT after `timeoutMs` (default DEFAULT_FIT_WAIT_MS).
   * `onProgress` is called on every change of state or stage.
   */
  async waitFitJob(
    jobId: string,
    options: { pollMs?: number; timeoutMs?: number; onProgress?: (s: FitJobSummaryResponse) => void } = {},
  ): Promise<FitJobSummaryResponse> {
    const timeoutMs = options.timeoutMs ?? ValueApiClient.DEFAULT_FIT_WAIT_MS;
    const started = Date.now();
    let seen = '';
    for (;;) {
      const s = await this.fitJob(jobId);
      const key = `${s.state}/${s.status?.stage ?? '-'}`;
      if (key !== seen) {
        seen = key;
        options.onProgress?.(s);
      }
      if (s.state === 'done') return s;
      if (s.state === 'failed' || s.state === 'interrupted') {
        const e = s.status?.lastError;
        throw new ValueApiError(200, 'FIT_JOB_FAILED', `fit job ${jobId} ${s.state}: [${e?.code}] ${e?.message}`, s);
      }
      if (s.state === 'stalled') {
        throw new ValueApiError(
          200,
          'FIT_JOB_STALLED',
          `fit job ${jobId} stalled: its runner stopped (a server restart?); startFitJob re-queues it`,
          s,
        );
      }
      if (s.state === 'cancelled')
        throw new ValueApiError(200, 'FIT_JOB_CANCELLED', `fit job ${jobId} was cancelled`, s);
      if (Date.now() - started > timeoutMs) {
        throw new ValueApiError(0, 'TIMEOUT', `fit job ${jobId} still ${s.state} after ${timeoutMs} ms`);
      }
      await sleep(options.pollMs ?? 1000);
    }
  }

  private path(id: string, op: string, options: CallOptions): string {
    const query = options.version === undefined ? '' : `?version=${options.version}`;
    return `/v1/value-functions/${encodeURIComponent(id)}/${op}${query}`;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      'application/json',
    );
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ValueApiError(
        res.status,
        'INVALID_RESPONSE',
        `${method} ${path}: HTTP ${res.status} with a body that is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
  }

  private async binary(path: string, phis: Float32Array): Promise<{ data: Float32Array; version: number }> {
    const bytes = new Uint8Array(phis.buffer, phis.byteOffset, phis.byteLength);
    const res = await this.send('POST', path, bytes, 'application/octet-stream');
    const buffer = await res.arrayBuffer();
    const type = res.headers.get('content-type') ?? '';
    if (!type.toLowerCase().startsWith('application/octet-stream') || buffer.byteLength % 4 !== 0) {
      throw new ValueApiError(
        res.status,
        'INVALID_RESPONSE',
        `POST ${path}: HTTP ${res.status} with ${buffer.byteLength} bytes of '${type}', not float32 values`,
      );
    }
    const data = new Float32Array(buffer.byteLength / 4);
    const view = new DataView(buffer);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
    return { data, version: Number(res.headers.get(VERSION_HEADER)) };
  }

  /** One call with retries: 5xx and network errors back off and try again; 4xx throw at once. */
  private async send(
    method: string,
    path: string,
    body: string | Uint8Array | undefined,
    type: string,
  ): Promise<Response> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
      let res: Response;
      try {
        res = await this.fetchImpl(this.baseUrl + path, {
          method,
          headers: { ...this.auth, ...(body === undefined ? {} : { 'content-type': type }) },
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (e) {
        lastError = e;
        continue;
      }
      if (res.ok) return res;
      const error = await toError(res);
      if (res.status < 500) throw error;
      lastError = error;
    }
    if (lastError instanceof ValueApiError) throw lastError;
    throw new ValueApiError(
      0,
      'NETWORK',
      `value API unreachable at ${this.baseUrl}: ${String((lastError as Error)?.message ?? lastError)}`,
    );
  }
}

/** What labels may carry besides the labels (shared/schemas/observations.ts, FitLabels). */
export interface LabelsExtra {
  /** The examples' 0-based indices in your data set, one per label, each once (default 0..n-1). */
  rows?: ArrayLike<number>;
  /** Named per-row numeric columns, one finite value per label each. */
  context?: Readonly<Record<string, ArrayLike<number>>>;
}

/** The labels upload's body; throws NOT_FINITE for a context value JSON cannot carry. */
function labelsBody(labels: ArrayLike<number>, classes: number, { rows, context }: LabelsExtra) {
  const columns: Record<string, number[]> = {};
  for (const [name, values] of Object.entries(context ?? {})) {
    columns[name] = finitePhi('uploadLabels', `context.${name}`, Array.from(values));
  }
  return {
    classes,
    labels: Array.from(labels),
    ...(rows === undefined ? {} : { rows: Array.from(rows) }),
    ...(context === undefined ? {} : { context: columns }),
  };
}

/** One observation line as a training loop records it (shared/schemas/observations.ts). */
export interface ObservationLineInput {
  trajectory: string;
  step: number;
  phi: ArrayLike<number>;
  metric?: number;
  /** Predictions uploaded under `key`, scored by the registered evaluator when the fit runs. */
  predictions?: { evaluator: string; key: string };
}

/**
 * Records a training loop's phi and metric observations for a fit job:
 * `rec.log(trajectory, step, phi)` every step, `rec.observe(trajectory, step, value)` where the
 * metric was measured, then `rec.fit(client, jobId, { ... })`. Or, to have a registered
 * evaluator score them instead: `rec.labels(y, classes)` (or `rec.labels(y, classes, { rows,
 * context })` for a metric of who is scored) once and
 * `rec.observePredictions(trajectory, step, scores, evaluator)` instead of `observe`.
 */
export class Recorder {
  private readonly phis = new Map<string, { trajectory: string; step: number; phi: number[] }>();
  private readonly metrics = new Map<string, number>();
  private readonly predictions = new Map<string, { evaluator: string; values: Float32Array }>();
  private labelSet: ReturnType<typeof labelsBody> | undefined;

  /**
   * The labels the predictions are scored on, with their rows and context if the metric needs
   * them (copied now; a non-finite context value throws NOT_FINITE here).
   */
  labels(labels: ArrayLike<number>, classes: number, extra: LabelsExtra = {}): void {
    this.labelSet = labelsBody(labels, classes, extra);
  }

  observePredictions(trajectory: string, step: number, predictions: ArrayLike<number>, evaluator: string): void {
    this.predictions.set(JSON.stringify([trajectory, step]), { evaluator, values: Float32Array.from(predictions) });
  }

  /** A stable name per (trajectory, step), so a retried upload names the same predictions. */
  private static keyOf(key: string): string {
    let a = 0x811c9dc5;
    let b = 0x01000193;
    for (let i = 0; i < key.length; i++) {
      a = Math.imul(a ^ key.charCodeAt(i), 0x01000193) >>> 0;
      b = Math.imul(b ^ key.charCodeAt(i), 0x811c9dc5) >>> 0;
    }
    return `p-${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}.f32`;
  }

  log(trajectory: string, step: number, phi: ArrayLike<number>): void {
    this.phis.set(JSON.stringify([trajectory, step]), { trajectory, step, phi: Array.from(phi) });
  }

  observe(trajectory: string, step: number, value: number): void {
    this.metrics.set(JSON.stringify([trajectory, step]), value);
  }

  lines(): ObservationLineInput[] {
    for (const key of [...this.metrics.keys(), ...this.predictions.keys()]) {
      if (!this.phis.has(key)) {
        throw new ValueApiError(0, 'INVALID_INPUT', `observe: ${key} has a metric value but no logged phi`);
      }
    }
    return [...this.phis.entries()]
      .map(([key, line]) => {
        const metric = this.metrics.get(key);
        const scored = this.predictions.get(key);
        if (metric !== undefined) return { ...line, metric };
        return scored === undefined
          ? line
          : { ...line, predictions: { evaluator: scored.evaluator, key: Recorder.keyOf(key) } };
      })
      .sort((a, b) => (a.trajectory === b.trajectory ? a.step - b.step : a.trajectory < b.trajectory ? -1 : 1));
  }

  /** Uploads the labels and predictions (if any), then the observation lines. */
  async upload(client: ValueApiClient, jobId: string): Promise<ObservationUploadResponse> {
    const lines = this.lines();
    if (this.predictions.size > 0) {
      if (this.labelSet === undefined) {
        throw new ValueApiError(0, 'INVALID_INPUT', 'observePredictions: call labels(y, classes) first');
      }
      const { labels, classes, ...extra } = this.labelSet;
      await client.uploadLabels(jobId, labels, classes, extra);
      for (const [key, p] of this.predictions) await client.uploadPredictions(jobId, Recorder.keyOf(key), p.values);
    }
    return client.uploadObservations(jobId, lines);
  }

  /** Creates the job, uploads, starts it and waits for it to be done. */
  async fit(
    client: ValueApiClient,
    job: CreateFitJobRequest,
    wait: Parameters<ValueApiClient['waitFitJob']>[1] = {},
  ): Promise<FitJobSummaryResponse> {
    await client.createFitJob(job);
    await this.upload(client, job.id);
    await client.startFitJob(job.id);
    return client.waitFitJob(job.id, wait);
  }
}

async function toError(res: Response): Promise<ValueApiError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as ErrorResponse;
    return new ValueApiError(res.status, error.code, error.message, error.details);
  } catch {
    return new ValueApiError(res.status, `HTTP_${res.status}`, text.slice(0, 200) || res.statusText);
  }
}

/**
 * phi (or rows of it) as given, after checking that every entry is a finite number: JSON has no
 * NaN or Infinity, and JSON.stringify would send them as null (the server would then answer a
 * puzzling INVALID_BODY). Throws NOT_FINITE naming the entry, before anything is sent.
 */
function finitePhi<T extends readonly number[] | readonly (readonly number[])[]>(op: string, name: string, phi: T): T {
  for (let r = 0; r < phi.length; r++) {
    const row = phi[r];
    if (Array.isArray(row)) {
      for (let i = 0; i < row.length; i++) {
        if (!Number.isFinite(row[i])) {
          throw new ValueApiError(0, 'NOT_FINITE', `${op}: ${name}[${r}][${i}] is ${row[i]}; JSON cannot carry it`);
        }
      }
    } else if (!Number.isFinite(row)) {
      throw new ValueApiError(0, 'NOT_FINITE', `${op}: ${name}[${r}] is ${row}; JSON cannot carry it`);
    }
  }
  return phi;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
