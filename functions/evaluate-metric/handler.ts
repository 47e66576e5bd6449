import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import {
  type EvaluateRequestDeps,
  evaluateRequest,
  faultOutcome,
  type RequestOutcome,
} from '../../shared/use-cases/evaluation/evaluate-request.js';

export interface EvaluateMetricDeps {
  request: EvaluateRequestDeps;
  /** Sends a body to the dead-letter queue with the reason (the runtime then deletes the delivery). */
  deadLetter: (body: string, reason: string) => Promise<void>;
  logger: Logger;
}

/** Thrown for a record SQS should deliver again: Powertools reports it in batchItemFailures. */
class RetryLater extends Error {
  override readonly name = 'RetryLater';
}

/**
 * The evaluator worker on Lambda for SQS events: each record runs the evaluate-request use-case;
 * a transient failure becomes a batch item failure (SQS redelivers it, its batch-mates are
 * deleted), a poison message goes to the DLQ at once and counts as handled. Dependencies are
 * awaited once, so the clients and the registry live as long as the container.
 */
export function createEvaluateMetricHandler(
  deps: EvaluateMetricDeps | Promise<EvaluateMetricDeps>,
): (event: SQSEvent, context: Context) => Promise<SQSBatchResponse> {
  const processor = new BatchProcessor(EventType.SQS);
  return async (event, context) => {
    const { request, deadLetter, logger } = await deps;
    const recordHandler = async (record: SQSRecord): Promise<void> => {
      const receiveCount = Number(record.attributes.ApproximateReceiveCount) || 1;
      const delivery = { body: record.body, receiveCount };
      let outcome: RequestOutcome;
      try {
        outcome = await evaluateRequest(request, delivery);
      } catch (e) {
        // A fault of this worker: retried; on the last delivery recorded as the query's result.
        outcome = await faultOutcome(request, delivery, e instanceof Error ? e.message : String(e));
      }
      logger.info('evaluation', { messageId: record.messageId, receiveCount, ...outcome });
      if (outcome.action === 'retry') throw new RetryLater(outcome.reason);
      if (outcome.action === 'dead-letter') await deadLetter(record.body, `${outcome.code}: ${outcome.reason}`);
    };
    return processPartialResponse(event, recordHandler, processor, { context, throwOnFullBatchFailure: false });
  };
}
