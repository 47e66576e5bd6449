import * as tf from '@tensorflow/tfjs';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';

export interface SelectedBackend {
  name: string;
  /** Why this one (e.g. "tfjs-node-gpu not installed; using wasm"). */
  note: string;
}

async function tryImport(specifier: string): Promise<boolean> {
  try {
    await import(specifier);
    return true;
  } catch {
    return false;
  }
}

/**
 * Picks the tfjs backend at run time: `tensorflow` (tfjs-node-gpu, then tfjs-node, when
 * installed: the CUDA container installs them itself), else `wasm`, else the pure-JS `cpu`.
 * `METRICOPT_BACKEND` (parsed by the entry point) forces one; a forced backend that cannot load
 * is an error rather than a silent fallback.
 */
export async function selectBackend(preference: BackendPreference = 'auto'): Promise<SelectedBackend> {
  const notes: string[] = [];
  const order: BackendPreference[] = preference === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [preference];
  for (const name of order) {
    if (name === 'tensorflow') {
      const loaded = (await tryImport('@tensorflow/tfjs-node-gpu')) || (await tryImport('@tensorflow/tfjs-node'));
      if (loaded && (await tf.setBackend('tensorflow'))) {
        await tf.ready();
        return { name: 'tensorflow', note: notes.join('; ') || 'tfjs-node backend' };
      }
      notes.push('tfjs-node(-gpu) not installed');
    } else if (name === 'wasm') {
      if ((await tryImport('@tensorflow/tfjs-backend-wasm')) && (await tf.setBackend('wasm'))) {
        await tf.ready();
        return { name: 'wasm', note: notes.join('; ') || 'wasm backend' };
      }
      notes.push('wasm backend failed to load');
    } else if (name === 'webgpu') {
      if ((await tryImport('@tensorflow/tfjs-backend-webgpu')) && (await tf.setBackend('webgpu'))) {
        await tf.ready();
        return { name: 'webgpu', note: 'webgpu backend' };
      }
      notes.push('webgpu backend not available');
    } else if (name === 'cpu') {
      await tf.setBackend('cpu');
      await tf.ready();
      return { name: 'cpu', note: notes.join('; ') || 'cpu backend' };
    }
  }
  throw new Error(`compute backend '${preference}' could not be loaded (${notes.join('; ')})`);
}
