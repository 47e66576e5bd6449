import { selectBackend } from '../../shared/adapters/compute-backend.js';

/** Tests run on the same backend as the product default on this machine (wasm). */
export async function useTestBackend(): Promise<string> {
  return (await selectBackend((process.env.METRICOPT_BACKEND as 'wasm' | 'cpu' | undefined) ?? 'wasm')).name;
}
