/**
 * Keeps the orchestrator from stopping this worker while it holds work: ECS task scale-in
 * protection deployed (shared/adapters/task-protection.ecs-agent.ts), nothing on one machine.
 * A scale-in or a deployment then stops only idle workers.
 */
export interface TaskProtection {
  /** Protects this task for `minutes` from now; called again to renew. */
  protect(minutes: number): Promise<void>;
  /** Lifts the protection at once. */
  clear(): Promise<void>;
}
