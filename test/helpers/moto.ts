import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/** Whether moto's AWS emulator (`pip install "moto[server]"`) is installed on this machine. */
export const motoAvailable = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).status === 0;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Starts moto_server on a free loopback port and waits until it answers. */
export async function startMoto(): Promise<{ endpoint: string; stop: () => void }> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await fetch(`${endpoint}/moto-api/`);
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        proc.kill();
        throw new Error(`moto_server did not start on ${endpoint}: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { endpoint, stop: () => proc.kill() };
}
