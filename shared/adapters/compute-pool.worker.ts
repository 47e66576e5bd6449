// The entry of a compute pool's worker thread (compute-pool.worker-thread.ts starts it): the
// same tfjs backend as the main thread, the pool's data set, and the model `load` gives it; it
// answers each job with the bits the main thread would compute.
import { parentPort, workerData } from 'node:worker_threads';
import type { SparseDataset } from '../data/dataset.js';
import { runTrajectoryChunkJob } from '../method/trajectory.js';
import { trainMember } from '../method/value-function-training.js';
import type { AdaptedModel } from '../models/adapted-model.js';
import { buildAdaptedModel } from '../models/model-spec.js';
import { type BackendPreference, selectBackend } from './compute-backend.js';
import type { PoolReply, PoolRequest } from './compute-pool.worker-thread.js';
import { silentProgress } from '../ports/progress.port.js';

const { dataset, backend } = workerData as { dataset: SparseDataset; backend: BackendPreference };
const ready = selectBackend(backend);
let model: AdaptedModel | undefined;
/** Row sets by id (predict requests send a set's rows once). */
const rowSets = new Map<number, Int32Array>();

async function handle(req: PoolRequest): Promise<PoolReply> {
  if (req.kind === 'member') return { id: req.id, ok: true, layers: await trainMember(req.job, silentProgress, '') };
  if (req.kind === 'load') {
    model?.dispose();
    model = buildAdaptedModel(req.spec, dataset);
    return { id: req.id, ok: true };
  }
  if (!model) throw new Error('compute pool worker: no model loaded');
  if (req.kind === 'chunk') return { id: req.id, ok: true, chunk: runTrajectoryChunkJob(model, req.job) };
  if (req.rows) rowSets.set(req.rowsId, req.rows);
  const rows = rowSets.get(req.rowsId);
  if (!rows) throw new Error(`compute pool worker: row set ${req.rowsId} was never sent`);
  return { id: req.id, ok: true, scores: model.predict(req.phis, req.n, rows) };
}

parentPort?.on('message', async (req: PoolRequest) => {
  let reply: PoolReply;
  try {
    await ready;
    reply = await handle(req);
  } catch (e) {
    reply = { id: req.id, ok: false, message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
  const transfer: ArrayBuffer[] = [];
  if (reply.ok && reply.chunk)
    transfer.push(reply.chunk.phis.buffer as ArrayBuffer, reply.chunk.losses.buffer as ArrayBuffer);
  if (reply.ok && reply.scores) transfer.push(reply.scores.buffer as ArrayBuffer);
  parentPort?.postMessage(reply, transfer);
});
