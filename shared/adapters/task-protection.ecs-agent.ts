import type { TaskProtection } from '../ports/task-protection.port.js';

/** ECS allows protection for 1 minute to 48 hours at a time. */
const MAX_MINUTES = 2880;

/**
 * ECS task scale-in protection through the container agent's endpoint (ECS_AGENT_URI, set by
 * ECS in every container): `PUT $ECS_AGENT_URI/task-protection/v1/state`. The agent calls
 * UpdateTaskProtection with the task role, which needs `ecs:UpdateTaskProtection` on the task.
 * A refusal (an `error` or `failure` in the answer, or a non-2xx status) throws.
 */
export class EcsAgentTaskProtection implements TaskProtection {
  constructor(
    private readonly agentUri: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  protect(minutes: number): Promise<void> {
    const m = Math.max(1, Math.min(MAX_MINUTES, Math.ceil(minutes)));
    return this.put({ ProtectionEnabled: true, ExpiresInMinutes: m });
  }

  clear(): Promise<void> {
    return this.put({ ProtectionEnabled: false });
  }

  private async put(body: Record<string, unknown>): Promise<void> {
    const url = `${this.agentUri.replace(/\/$/, '')}/task-protection/v1/state`;
    const res = await this.fetchImpl(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let answer: { error?: unknown; failure?: unknown } = {};
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      // not JSON: judged by the status alone
    }
    if (!res.ok || answer.error !== undefined || answer.failure !== undefined) {
      throw new Error(
        `ECS task protection (${body.ProtectionEnabled ? 'set' : 'clear'}): HTTP ${res.status} ${text.slice(0, 300)}`,
      );
    }
  }
}
